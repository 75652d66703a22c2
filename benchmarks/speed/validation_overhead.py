"""The time a run spends scoring its validation images, against the time it spends training.

In one process: a Trainer of the given setting (the paper's by default: 256 px, ResNet-9, ngf 64,
batch 1) on a synthetic dataset with valA/ and valB/ of --eval-images images each, then, in
alternation, --iters training iterations (`Trainer.train_step`) and one evaluation through the
run's own `QualityTracker` (translation both ways, cycle, the Inception features of the
translations, KID and FID, metrics.jsonl and metrics.png: what `cyclegan train` does at an epoch
end). The first evaluation also loads the Inception network and computes the real images'
features, which later evaluations reuse; it is reported apart.

The overhead of an epoch of E iterations is (one evaluation) / (E x seconds per iteration), for
each E of --epoch-iters (the paper's datasets have about 400 to 6,300 iterations per epoch at
batch 1). Without the `metrics` extra the evaluation has no KID/FID and the overhead is lower.

    python benchmarks/speed/validation_overhead.py --iters 3 --rounds 2 --eval-images 50
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import common
from cyclegan.config import TrainConfig
from cyclegan.training.logging import MetricsLog
from cyclegan.training.trainer import Trainer


def write_dataset(root: Path, size: int, validation_images: int) -> Path:
    """trainA/ trainB/ (one image each: train_step is fed tensors) and valA/ valB/ of smooth
    random images, so that translations and Inception features are those of image-like inputs."""
    rng = np.random.default_rng(0)
    counts = {"trainA": 1, "trainB": 1, "valA": validation_images, "valB": validation_images}
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True)
        for index in range(count):
            coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(coarse).resize((size, size), Image.BILINEAR).save(root / folder / f"{index}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--netG", default="resnet_9blocks")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--eval-images", type=int, default=TrainConfig().validation.eval_images)
    parser.add_argument("--iters", type=int, default=3, help="Timed training iterations per round.")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of --iters iterations, then one evaluation.")
    parser.add_argument("--epoch-iters", default="400,1334,6287",
                        help="Epoch lengths (iterations) to report the overhead for.")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, metavar="OUT")
    common.add_device_argument(parser)
    args = parser.parse_args()
    common.set_threads(args.threads)
    device = common.resolve_device(args.device)
    wait = common.synchronizer(device)

    with tempfile.TemporaryDirectory() as workdir:
        data = write_dataset(Path(workdir) / "data", args.size, args.eval_images)
        config = TrainConfig()
        config.model.net_g, config.model.ngf, config.model.ndf = args.netG, args.ngf, args.ndf
        config.data.data, config.data.num_workers = str(data), 0
        config.data.load_size = config.data.crop_size = args.size
        config.validation.eval_images = args.eval_images
        run = config.run
        run.runs_dir, run.name, run.device, run.precision = str(Path(workdir) / "runs"), "overhead", str(device), \
            args.precision
        run.progress, run.tensorboard = False, False
        trainer = Trainer(config)
        trainer.run_dir.mkdir(parents=True)
        trainer.quality.start(0, MetricsLog(trainer.run_dir / "log.jsonl", enabled=False))
        generator = torch.Generator().manual_seed(1)
        real_a, real_b = (torch.rand(1, 3, args.size, args.size, generator=generator).to(device) * 2 - 1
                          for _ in range(2))

        def evaluation() -> float:
            wait()
            started = time.perf_counter()
            record = trainer.quality.evaluate(trainer.model, trainer.iteration, 1)
            trainer.quality.record(record, improves=False)
            wait()
            return time.perf_counter() - started

        trainer.train_step(real_a, real_b)  # warm-up: first-call allocations and, on CUDA, cuDNN's autotuning
        first = evaluation()
        print(f"first evaluation: {first:.2f} s", flush=True)
        iteration_times, evaluation_times = [], []
        for _ in range(args.rounds):
            for _ in range(args.iters):
                wait()
                started = time.perf_counter()
                trainer.train_step(real_a, real_b)
                wait()
                iteration_times.append(time.perf_counter() - started)
                trainer.iteration += 1
                print(f"training iteration: {iteration_times[-1]:.3f} s", flush=True)
            evaluation_times.append(evaluation())
            print(f"evaluation: {evaluation_times[-1]:.2f} s", flush=True)

    per_iteration = statistics.median(iteration_times)
    per_evaluation = statistics.median(evaluation_times)
    machine = common.machine_description(device)
    print(common.describe_machine(machine))
    print(f"setting: {args.size} px, {args.netG}, ngf {args.ngf}, {args.precision}; {args.eval_images} validation "
          f"images per direction; torch threads {torch.get_num_threads()}")
    print(f"training iteration: {per_iteration:.3f} s (median of {len(iteration_times)})")
    print(f"evaluation: {per_evaluation:.1f} s (median of {len(evaluation_times)}); the first one, with the "
          f"Inception network's loading and the real images' features: {first:.1f} s")
    rows = []
    for epoch in (int(value) for value in args.epoch_iters.split(",")):
        training = epoch * per_iteration
        rows.append([str(epoch), f"{training:.0f}", f"{per_evaluation / training:.1%}",
                     f"{first / training:.1%}"])
    print(common.format_table(["iterations per epoch", "training s", "overhead", "first epoch's"], rows))
    if args.json:
        common.write_json(args.json, {"machine": machine, "args": vars(args), "iteration_seconds": iteration_times,
                                      "evaluation_seconds": evaluation_times, "first_evaluation_seconds": first})


if __name__ == "__main__":
    main()
