"""Seconds per training iteration: the project's Trainer.train_step against a plain fp32 reference.

The reference is the reference code's iteration written out below (`ReferenceIteration`): six
separate generator calls, the LSGAN + cycle + identity generator loss, one Adam step, then each
discriminator on a real and a pooled generated image with its loss halved, one Adam step; float32,
contiguous memory, the same network classes with the reference's nn.InstanceNorm2d. The candidates are `Trainer.train_step` itself, on a
Trainer built from a TrainConfig, in the variants asked for. All variants run in alternation in
one process; see README.md for how to read the table.

    python benchmarks/speed/train_step.py --size 256 --variants fp32,bf16+cl --repeats 5
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import common
import conv_throughput
from cyclegan.config import ONE_DIRECTION_MODELS, ModelConfig, RunConfig, TrainConfig
from cyclegan.networks import build_discriminator, build_generator
from cyclegan.training.pool import ImagePool

if TYPE_CHECKING:  # imported when used: reference_train.py imports this module for
    # ReferenceIteration, and the reference's start-up should not include the project's trainer
    from cyclegan.training.trainer import Trainer

REFERENCE = "reference"


@dataclass(frozen=True)
class Variant:
    """A candidate configuration of the Trainer, written as e.g. `bf16+cl+compile`.

    Tokens: fp32, bf16 or fp16 (precision; fp16 needs CUDA), cl (channels-last), nobatch (six
    separate generator calls instead of the batched three), compile (torch.compile), graphs (CUDA
    graphs, --cuda-graphs), nonnpack (no NNPACK convolutions on the CPU), fused (Adam's fused
    single-kernel update, CUDA only: a candidate measured here before it becomes a Trainer choice).
    """

    precision: str = RunConfig.precision
    channels_last: bool | None = RunConfig.channels_last
    batch_generator_calls: bool = RunConfig.batch_generator_calls
    compile: bool = RunConfig.compile
    cuda_graphs: bool = RunConfig.cuda_graphs
    nnpack: bool | None = RunConfig.nnpack
    fused_adam: bool = False

    @property
    def name(self) -> str:
        tokens = [self.precision]
        if self.channels_last:
            tokens.append("cl")
        if not self.batch_generator_calls:
            tokens.append("nobatch")
        if self.compile:
            tokens.append("compile")
        if self.cuda_graphs:
            tokens.append("graphs")
        if self.nnpack is False:
            tokens.append("nonnpack")
        if self.fused_adam:
            tokens.append("fused")
        return "+".join(tokens)

    @classmethod
    def parse(cls, text: str) -> "Variant":
        values = {"precision": "fp32", "channels_last": False, "batch_generator_calls": True, "compile": False,
                  "cuda_graphs": False, "nnpack": True, "fused_adam": False}
        for token in text.strip().split("+"):
            if token in ("fp32", "bf16", "fp16"):
                values["precision"] = token
            elif token == "auto":  # the Trainer's own timed choice, as `cyclegan train` makes it
                values.update(precision="auto", channels_last=None, nnpack=None)
            elif token == "cl":
                values["channels_last"] = True
            elif token == "nobatch":
                values["batch_generator_calls"] = False
            elif token == "compile":
                values["compile"] = True
            elif token == "graphs":
                values["cuda_graphs"] = True
            elif token == "nonnpack":
                values["nnpack"] = False
            elif token == "fused":
                values["fused_adam"] = True
            else:
                raise ValueError(f"unknown variant token {token!r} in {text!r}; "
                                 "use auto, fp32, bf16 or fp16, optionally with +cl, +nobatch, +compile, +graphs, "
                                 "+nonnpack, +fused")
        return cls(**values)


def set_requires_grad(networks, flag: bool) -> None:
    for network in networks:
        for parameter in network.parameters():
            parameter.requires_grad_(flag)


class ReferenceIteration:
    """The reference code's training iteration in plain float32 (its naming: G_A maps A -> B,
    D_A judges domain B), with the project's network classes and image pool."""

    def __init__(self, model: ModelConfig, seed: int = 0, lambda_cycle: float = 10.0,
                 lambda_identity: float = 0.5, pool_size: int = 50, device: torch.device | str = "cpu"):
        torch.manual_seed(seed)

        def generator():
            return build_generator(model.net_g, model.input_nc, model.output_nc, model.ngf, model.norm,
                                   model.use_dropout, model.padding_type, model.init_type, model.init_gain)

        def discriminator():
            return build_discriminator(model.net_d, model.output_nc, model.ndf, model.n_layers_d, model.norm,
                                       model.init_type, model.init_gain)

        # The reference code's nn.InstanceNorm2d, not the project's faster subclass.
        self.G_A, self.G_B, self.D_A, self.D_B = (common.with_plain_instance_norms(network).to(device) for network in
                                                  (generator(), generator(), discriminator(), discriminator()))
        self.optimizer_G = torch.optim.Adam([*self.G_A.parameters(), *self.G_B.parameters()],
                                            lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = torch.optim.Adam([*self.D_A.parameters(), *self.D_B.parameters()],
                                            lr=2e-4, betas=(0.5, 0.999))
        self.pool_A, self.pool_B = ImagePool(pool_size, seed=1), ImagePool(pool_size, seed=2)
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity

    @staticmethod
    def gan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        return F.mse_loss(prediction, target)

    def __call__(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration; returns the loss terms as tensors (reading them waits for the device,
        so the caller does it only when it prints them, as the reference code does)."""
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)

        set_requires_grad([self.D_A, self.D_B], False)
        self.optimizer_G.zero_grad()
        idt_weight = self.lambda_cycle * self.lambda_identity
        loss_idt_A = F.l1_loss(self.G_A(real_B), real_B) * idt_weight
        loss_idt_B = F.l1_loss(self.G_B(real_A), real_A) * idt_weight
        loss_G_A = self.gan_loss(self.D_A(fake_B), True)
        loss_G_B = self.gan_loss(self.D_B(fake_A), True)
        loss_cycle = (F.l1_loss(rec_A, real_A) + F.l1_loss(rec_B, real_B)) * self.lambda_cycle
        (loss_G_A + loss_G_B + loss_cycle + loss_idt_A + loss_idt_B).backward()
        self.optimizer_G.step()

        set_requires_grad([self.D_A, self.D_B], True)
        self.optimizer_D.zero_grad()
        losses_D = {}
        for name, discriminator, real, pool, fake in (("D_A", self.D_A, real_B, self.pool_B, fake_B),
                                                      ("D_B", self.D_B, real_A, self.pool_A, fake_A)):
            pooled = pool.query(fake)
            loss_D = (self.gan_loss(discriminator(real), True)
                      + self.gan_loss(discriminator(pooled.detach()), False)) * 0.5
            loss_D.backward()
            losses_D[name] = loss_D.detach()
        self.optimizer_D.step()
        losses = {"G_A": loss_G_A, "G_B": loss_G_B, "cycle": loss_cycle, "idt_A": loss_idt_A, "idt_B": loss_idt_B}
        return {**losses_D, **{name: value.detach() for name, value in losses.items()}}


def write_dataset(root: Path, size: int) -> Path:
    """trainA/ and trainB/ with one random image each: the Trainer needs a dataset to be built,
    though train_step never reads it."""
    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / domain / "0.png")
    return root


def build_trainer(variant: Variant, args: argparse.Namespace, workdir: Path) -> Trainer:
    from cyclegan.training.trainer import Trainer

    config = TrainConfig(model=ModelConfig(model=args.model))
    config.model.net_g, config.model.ngf, config.model.ndf = args.netG, args.ngf, args.ndf
    config.data.data = str(workdir / "data")
    config.data.load_size = config.data.crop_size = args.size
    config.data.batch_size, config.data.num_workers = args.batch, 0
    run = config.run
    run.runs_dir, run.name, run.device = str(workdir / "runs"), variant.name, str(args.device)
    run.precision, run.channels_last = variant.precision, variant.channels_last
    run.batch_generator_calls, run.compile = variant.batch_generator_calls, variant.compile
    run.cuda_graphs = variant.cuda_graphs
    run.nnpack = variant.nnpack
    run.progress, run.tensorboard, run.gallery_size = False, False, 1
    trainer = Trainer(config)
    if variant.precision == "auto":
        print(f"{variant.name}: {trainer.arithmetic.describe()}", flush=True)
    if variant.fused_adam:
        for name in ("optimizer_g", "optimizer_d"):
            plain = getattr(trainer, name)
            group = plain.param_groups[0]
            setattr(trainer, name, torch.optim.Adam(group["params"], lr=group["lr"], betas=group["betas"], fused=True))
    return trainer


def build_step(name: str, args: argparse.Namespace, workdir: Path, real_a: torch.Tensor, real_b: torch.Tensor):
    """A no-argument callable doing one iteration of variant `name`, as the training loop would
    (the candidates get their inputs in the Trainer's memory format, as Trainer.train does)."""
    if name == REFERENCE:
        model = ModelConfig(net_g=args.netG, ngf=args.ngf, ndf=args.ndf)
        reference = ReferenceIteration(model, device=args.device)
        return lambda: reference(real_a, real_b)
    trainer = build_trainer(Variant.parse(name), args, workdir)

    def step() -> None:
        trainer.train_step(real_a.to(memory_format=trainer.memory_format),
                           real_b.to(memory_format=trainer.memory_format))
        trainer.iteration += 1
        trainer.position += 1

    return step


def make_inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    shape = (args.batch, 3, args.size, args.size)
    real_a = torch.rand(shape, generator=generator) * 2 - 1
    real_b = torch.rand(shape, generator=generator) * 2 - 1
    return real_a.to(args.device), real_b.to(args.device)


def probe_arguments(args: argparse.Namespace, name: str) -> list[str]:
    arguments = ["--model", args.model, "--size", str(args.size), "--netG", args.netG, "--ngf", str(args.ngf), "--ndf", str(args.ndf),
                 "--batch", str(args.batch), "--memory-probe", name,
                 "--probe-iterations", str(args.probe_iterations), "--device", str(args.device)]
    if args.threads is not None:
        arguments += ["--threads", str(args.threads)]
    return arguments


def run_memory_probe(args: argparse.Namespace) -> int:
    """Build one variant, run a few iterations and report this process's peak RSS (and the
    seconds of each iteration, which benchmarks/speed/allocator.py reads)."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        workdir = Path(tmp)
        write_dataset(workdir / "data", args.size)
        real_a, real_b = make_inputs(args)
        step = build_step(args.memory_probe, args, workdir, real_a, real_b)
        rss_after_setup = common.peak_rss_bytes()
        times = []
        for _ in range(args.probe_iterations):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        common.report_probe(rss_after_setup, args.device, probe_times=times)
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    defaults = RunConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="Square crop side (the paper: 256).")
    parser.add_argument("--model", default="cyclegan", choices=("cyclegan", *ONE_DIRECTION_MODELS),
                        help="The candidates' model (cut / fastcut: CUT's; the reference iteration and the GFLOP "
                             "columns stay CycleGAN's).")
    parser.add_argument("--netG", default="resnet_9blocks",
                        choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=None, help="Discriminator filters (default: --ngf).")
    parser.add_argument("--batch", type=int, default=1, help="Images per domain per iteration (the paper: 1).")
    candidate = parser.add_argument_group("the candidate, when --variants is not given (default: the project's defaults)")
    candidate.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=defaults.precision)
    candidate.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=defaults.channels_last)
    candidate.add_argument("--batch-generator-calls", action=argparse.BooleanOptionalAction,
                           default=defaults.batch_generator_calls)
    candidate.add_argument("--compile", action=argparse.BooleanOptionalAction, default=defaults.compile)
    candidate.add_argument("--nnpack", action=argparse.BooleanOptionalAction, default=defaults.nnpack)
    parser.add_argument("--variants", default=None,
                        help="Comma-separated candidates, each auto|fp32|bf16|fp16 with optional +cl, +nobatch, +compile, +graphs, +nonnpack "
                             "(e.g. fp32,bf16,bf16+cl). The reference always runs as well.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed iterations per variant.")
    parser.add_argument("--warmup", type=int, default=2,
                        help="Untimed iterations per variant, after the one that counts FLOPs.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    common.add_device_argument(parser)
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="Measure each variant's peak RSS in a fresh process (costs probe-iterations more each).")
    parser.add_argument("--probe-iterations", type=int, default=2, help="Iterations run by each memory probe.")
    parser.add_argument("--floor-gflops", type=float, default=None,
                        help="bf16 conv throughput for the floor estimate (e.g. the 'generator mix' of "
                             "conv_throughput.py); default: measure the residual-block conv now.")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                        help="Estimate the bf16 time floor.")
    parser.add_argument("--profile", action="store_true", help="Also print the costliest operators of each variant.")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.ndf = args.ndf or args.ngf
    if args.variants:
        try:
            candidates = [Variant.parse(text) for text in args.variants.split(",") if text.strip()]
        except ValueError as error:
            parser.error(str(error))
    else:
        candidates = [Variant(precision=args.precision, channels_last=args.channels_last,
                              batch_generator_calls=args.batch_generator_calls, compile=args.compile,
                              nnpack=args.nnpack)]
    args.names = [REFERENCE] + list(dict.fromkeys(variant.name for variant in candidates))
    common.check_counts(parser, {"--repeats": args.repeats, "--probe-iterations": args.probe_iterations},
                        args.warmup)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    args.device = common.resolve_device(args.device)
    if args.memory_probe:
        return run_memory_probe(args)
    print(f"training iteration, {args.netG}, {args.size}x{args.size}, batch {args.batch}, ngf {args.ngf}, "
          f"ndf {args.ndf}; {args.repeats} timed iterations per variant, alternating")
    machine = common.announce(args.device, args.names)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        workdir = Path(tmp)
        write_dataset(workdir / "data", args.size)
        real_a, real_b = make_inputs(args)
        steps = {name: build_step(name, args, workdir, real_a, real_b) for name in args.names}
        # The first iteration of each variant is untimed: it counts FLOPs (compiled variants, which
        # a FLOP counter would disturb, just run it and are credited with the reference's FLOPs).
        flops: dict[str, int | None] = {}
        for name, step in steps.items():
            if "compile" in name:
                step()
                flops[name] = None
            else:
                flops[name] = common.count_flops(step)
        times = common.alternate(steps, args.repeats, args.warmup, args.device)
        if args.profile:
            for name, step in steps.items():
                print(f"\ncostliest operators of one iteration, {name}:")
                print(common.top_operators(step, device=args.device))

    summaries = {name: common.summarize(values) for name, values in times.items()}
    reference_flops = flops[REFERENCE]
    floors = {}
    if args.floor:
        bf16 = args.floor_gflops
        if bf16 is None:
            bf16 = conv_throughput.dominant_throughput(args.size, args.ngf, "bf16", backward=True,
                                                       device=args.device)
        floors = {"bf16_gflops": bf16, "bf16_seconds": reference_flops / (bf16 * 1e9)}
        if args.floor_gflops is None:
            floors["source"] = "residual-block conv, forward + backward, bf16 channels-last, measured now"
        else:
            floors["source"] = "--floor-gflops"
    memory = {}
    if args.memory:
        for name in args.names:
            memory[name] = common.peak_memory_in_subprocess(Path(__file__), probe_arguments(args, name))

    reference = summaries[REFERENCE]
    results = {}
    rows = []
    for name in args.names:
        summary = summaries[name]
        # Every variant computes the same algorithm, so each is credited with the reference's
        # FLOPs; torch's counter does not see NNPACK's (Winograd) or compiled kernels.
        result = {
            "seconds": common.summary_dict(summary),
            "times": times[name],
            "speedup": reference.median / summary.median,
            "flops": reference_flops,
            "flops_seen_by_counter": flops[name],
            "gflops_per_second": reference_flops / summary.median / 1e9,
        }
        if floors:
            result["times_floor"] = summary.median / floors["bf16_seconds"]
        if memory:
            result.update(common.memory_columns(memory[name], memory[REFERENCE]))
        results[name] = result
        rows.append([
            name, common.seconds(summary.median), common.seconds(summary.iqr),
            f"{common.seconds(summary.min)}-{common.seconds(summary.max)}", f"{result['speedup']:.2f}x",
            common.gigaflops(reference_flops),
            f"{result['gflops_per_second']:.1f}",
            f"{result['times_floor']:.2f}" if floors else "-",
            common.megabytes(result.get("peak")),
            f"{result['peak_vs_reference']:.2f}" if memory else "-",
        ])
    print()
    print(common.format_table(["variant", "s/iter", "IQR", "min-max", "speed-up", "GFLOP/iter", "GFLOP/s",
                               "x floor", common.peak_memory_label(args.device), "peak/ref"], rows))
    print("GFLOP/iter: the reference's count for every variant (the same algorithm; torch's FLOP counter "
          "does not see NNPACK's Winograd or compiled kernels); GFLOP/s: those FLOPs / median time")
    if floors:
        print(f"bf16 floor: {floors['bf16_seconds']:.4f} s/iter = {reference_flops / 1e9:.2f} GFLOP / "
              f"{floors['bf16_gflops']:.1f} GFLOP/s ({floors['source']}); 'x floor' = median / floor")
    if memory:
        print(common.peak_memory_note(args.device, f"running the variant alone for {args.probe_iterations} "
                                                   "iterations"))
    if args.json:
        common.write_json(args.json, {
            "benchmark": "train_step", "machine": machine,
            "config": {"size": args.size, "netG": args.netG, "ngf": args.ngf, "ndf": args.ndf, "batch": args.batch,
                       "repeats": args.repeats, "warmup": args.warmup, "threads": args.threads,
                       "device": str(args.device)},
            "reference_flops": reference_flops, "floor": floors, "variants": results,
        })
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
