"""Does the replayed CUDA graph (`--cuda-graphs`) train as the ordinary step does? Two Trainers
built alike from the same seed, one with the whole iteration captured, are fed the same batches;
the script prints, per iteration, the largest relative difference between their logged values,
and at the end the largest difference between their weights and whether the capture happened.

On a CPU tests/test_captured_step.py holds the same step, run eagerly, to the ordinary one bit for
bit; a GPU adds the capture and the replay themselves, and cuDNN's atomics (reflection padding's
backward pass) make the two runs differ by rounding, so here the differences are printed, not
required to be zero. On a CPU the script runs the captured step's body eagerly, as the tests do. The ordinary Trainer's Adam is switched to the fused kernel at the iteration
where the captured one switches, so both update alike.

    python benchmarks/speed/captured_check.py --device cuda --size 64 --iterations 20
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

import common
from train_step import write_dataset
from cyclegan.config import TrainConfig
from cyclegan.training.captured_step import WARM_UP_ITERATIONS, CapturedStep, make_capturable
from cyclegan.training.trainer import Trainer


def build(workdir: Path, args: argparse.Namespace, name: str, graphs: bool) -> Trainer:
    config = TrainConfig()
    config.model.net_g, config.model.ngf, config.model.ndf = args.netG, args.ngf, args.ngf
    config.data.data = str(workdir / "data")
    config.data.load_size = config.data.crop_size = args.size
    config.data.num_workers = 0
    config.loss.pool_size = args.pool_size
    run = config.run
    run.runs_dir, run.name, run.device = str(workdir / "runs"), name, str(args.device)
    run.precision, run.channels_last, run.nnpack = args.precision, False, False
    run.cuda_graphs, run.progress, run.tensorboard, run.gallery_size = graphs, False, False, 1
    return Trainer(config)


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_device_argument(parser)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--netG", default="resnet_6blocks")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--pool-size", type=int, default=4, help="Small, so the history swaps images early.")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args(argv)
    args.device = common.resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="captured-check-") as tmp:
        workdir = Path(tmp)
        write_dataset(workdir / "data", args.size)
        ordinary = build(workdir, args, "ordinary", graphs=False)
        captured = build(workdir, args, "captured", graphs=True)
        if args.device.type != "cuda":  # no graphs here: the captured step's body, run eagerly
            captured.captured_step = CapturedStep(captured, replay=False)
        generator = torch.Generator().manual_seed(0)
        worst = 0.0
        for iteration in range(args.iterations):
            if iteration == WARM_UP_ITERATIONS:
                for optimizer in (ordinary.optimizer_g, ordinary.optimizer_d):
                    make_capturable(optimizer, ordinary.device)
            real_a, real_b = ((torch.rand((1, 3, args.size, args.size), generator=generator) * 2 - 1).to(args.device)
                              for _ in range(2))
            expected = ordinary.train_step(real_a, real_b)
            values = captured.train_step(real_a, real_b)
            for trainer in (ordinary, captured):
                trainer.iteration += 1
            if values.keys() != expected.keys():
                print(f"iteration {iteration + 1}: different values logged: {sorted(values)} against {sorted(expected)}")
                return 1
            difference = max(relative(values[key], expected[key]) for key in values)
            worst = max(worst, difference)
            kind = "ordinary (warm-up)" if iteration < WARM_UP_ITERATIONS else "captured step"
            print(f"iteration {iteration + 1:>3} {kind:<18} largest relative difference {difference:.2e}", flush=True)
        step = captured.captured_step
        weights = max((mine - theirs).abs().max().item()
                      for mine, theirs in zip(ordinary.model.parameters(), captured.model.parameters()))
        how = ("yes" if args.device.type == "cuda" else "yes, eagerly (no CUDA graphs on this device)") \
            if step.captured else f"no ({step.failure})"
        print(f"captured: {how}; largest relative difference "
              f"of a logged value {worst:.2e}; largest weight difference {weights:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
