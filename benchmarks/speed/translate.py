"""Images per second at inference: the project's Translator against a plain fp32 generator call.

The reference is what the reference code's test script does per image: the generator in float32,
contiguous memory, with nn.InstanceNorm2d, called under torch.no_grad(). The candidates are
`Translator.translate_tensor`, the tensor path behind `Translator.__call__` (padding to the size
multiple, autocast, the crop back and the cast to float32 included; PIL decoding and encoding,
the same for both, are not). The same random weights serve every variant; sizes are W x H.

    python benchmarks/speed/translate.py --sizes 256,512,1024x768 --variants fp32,bf16+cl --repeats 5
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

import common
import conv_throughput
from cyclegan.checkpoint import GeneratorSpec
from cyclegan.inference import Translator
from cyclegan.networks import build_generator

REFERENCE = "reference"


@dataclass(frozen=True)
class Variant:
    """A Translator configuration, written as e.g. `bf16+cl`: fp32, bf16 or fp16 (CUDA), optional +cl
    (channels-last; otherwise contiguous) and +nonnpack (no NNPACK convolutions on the CPU)."""

    precision: str = "fp32"
    channels_last: bool = False
    nnpack: bool = True

    @property
    def name(self) -> str:
        return self.precision + ("+cl" if self.channels_last else "") + ("" if self.nnpack else "+nonnpack")

    @classmethod
    def parse(cls, text: str) -> "Variant":
        precision, channels_last, nnpack = "fp32", False, True
        for token in text.strip().split("+"):
            if token in ("fp32", "bf16", "fp16"):
                precision = token
            elif token == "cl":
                channels_last = True
            elif token == "nonnpack":
                nnpack = False
            else:
                raise ValueError(f"unknown variant token {token!r} in {text!r}; use fp32, bf16 or fp16, optionally "
                                 "with +cl and +nonnpack")
        return cls(precision, channels_last, nnpack)


def parse_size(text: str) -> tuple[int, int]:
    """'256' -> (256, 256); '1024x768' -> (1024, 768), width first."""
    parts = text.lower().split("x")
    try:
        width, height = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        raise ValueError(f"size {text!r} is not N or WxH") from None
    if width < 8 or height < 8 or len(parts) > 2:
        raise ValueError(f"size {text!r}: give N or WxH, each side at least 8")
    return width, height


def size_label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def make_generator(args: argparse.Namespace) -> tuple[torch.nn.Module, GeneratorSpec]:
    torch.manual_seed(0)
    generator = build_generator(args.netG, 3, 3, args.ngf, "instance").eval().to(args.device)
    return generator, GeneratorSpec(args.netG, 3, 3, args.ngf, "instance", "random weights", "AtoB")


def build_step(name: str, generator: torch.nn.Module, spec: GeneratorSpec, batch: torch.Tensor,
               copy_weights: bool = True):
    """A no-argument callable translating `batch` with variant `name` (the reference, or a
    Translator with the variant's precision and layout). Candidates, and the reference, work on a
    copy of `generator` unless `copy_weights` is False."""
    if name == REFERENCE:
        # The reference code's nn.InstanceNorm2d, not the project's faster subclass.
        reference_generator = common.with_plain_instance_norms(copy.deepcopy(generator) if copy_weights else generator)

        def reference() -> None:
            with torch.no_grad():
                reference_generator(batch)

        return reference
    variant = Variant.parse(name)
    translator = Translator(copy.deepcopy(generator) if copy_weights else generator, spec, device=str(batch.device),
                            precision=variant.precision, channels_last=variant.channels_last,
                            nnpack=variant.nnpack)
    return lambda: translator.translate_tensor(batch)


def make_batch(size: tuple[int, int], batch: int, device: torch.device) -> torch.Tensor:
    width, height = size
    return (torch.rand((batch, 3, height, width), generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)


def probe_arguments(args: argparse.Namespace, size: tuple[int, int], name: str) -> list[str]:
    arguments = ["--sizes", size_label(size), "--netG", args.netG, "--ngf", str(args.ngf), "--batch", str(args.batch),
                 "--memory-probe", name, "--probe-iterations", str(args.probe_iterations), "--device", str(args.device)]
    if args.threads is not None:
        arguments += ["--threads", str(args.threads)]
    return arguments


def run_memory_probe(args: argparse.Namespace) -> int:
    generator, spec = make_generator(args)
    step = build_step(args.memory_probe, generator, spec, make_batch(args.sizes[0], args.batch, args.device),
                         copy_weights=False)
    rss_after_setup = common.peak_rss_bytes()
    for _ in range(args.probe_iterations):
        step()
    common.report_probe(rss_after_setup, args.device)
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512,1024x768", help="Comma-separated image sizes, N or WxH.")
    parser.add_argument("--size", default=None, help="One size (N or WxH), instead of --sizes.")
    parser.add_argument("--netG", default="resnet_9blocks",
                        choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1, help="Images per call.")
    candidate = parser.add_argument_group("the candidate, when --variants is not given")
    candidate.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    candidate.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False)
    candidate.add_argument("--nnpack", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--variants", default=None,
                        help="Comma-separated candidates, fp32|bf16 with optional +cl (e.g. fp32,bf16,bf16+cl). "
                             "The reference always runs as well.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed calls per variant and size.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed calls per variant and size, after the "
                                                               "one that counts FLOPs.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    common.add_device_argument(parser)
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="Measure each variant's peak RSS in a fresh process per size.")
    parser.add_argument("--probe-iterations", type=int, default=2, help="Calls made by each memory probe.")
    parser.add_argument("--floor-gflops", type=float, default=None,
                        help="bf16 forward conv throughput for the floor estimate; default: measure the "
                             "residual-block conv at each size now.")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                        help="Estimate the bf16 time floor.")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(text) for text in (args.size or args.sizes).split(",") if text.strip()]
        candidates = ([Variant.parse(text) for text in args.variants.split(",") if text.strip()] if args.variants
                      else [Variant(args.precision, args.channels_last, args.nnpack)])
    except ValueError as error:
        parser.error(str(error))
    args.names = [REFERENCE] + list(dict.fromkeys(variant.name for variant in candidates))
    common.check_counts(parser, {"--repeats": args.repeats, "--probe-iterations": args.probe_iterations,
                                 "--batch": args.batch}, args.warmup)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    args.device = common.resolve_device(args.device)
    if args.memory_probe:
        return run_memory_probe(args)
    print(f"translation, {args.netG}, ngf {args.ngf}, batch {args.batch}; {args.repeats} timed calls per variant "
          "and size, alternating")
    machine = common.announce(args.device, args.names)
    generator, spec = make_generator(args)
    results: dict[str, dict] = {}
    rows = []
    for size in args.sizes:
        batch = make_batch(size, args.batch, args.device)
        steps = {name: build_step(name, generator, spec, batch) for name in args.names}
        flops = common.count_flops(steps[REFERENCE])
        for name, step in steps.items():
            if name != REFERENCE:
                step()  # the reference's first call was the counted one
        times = common.alternate(steps, args.repeats, args.warmup, args.device)
        floor = None
        if args.floor:
            gflops = args.floor_gflops
            if gflops is None:
                side = max(16, 4 * round(math.sqrt(size[0] * size[1]) / 4))
                gflops = conv_throughput.dominant_throughput(side, args.ngf, "bf16", backward=False,
                                                             device=args.device)
            floor = {"bf16_gflops": gflops, "bf16_seconds": flops / (gflops * 1e9)}
        memory = ({name: common.peak_memory_in_subprocess(Path(__file__), probe_arguments(args, size, name))
                   for name in args.names} if args.memory else {})
        reference = common.summarize(times[REFERENCE])
        per_variant = {}
        for name in args.names:
            summary = common.summarize(times[name])
            result = {
                "seconds": common.summary_dict(summary), "times": times[name],
                "images_per_second": args.batch / summary.median,
                "speedup": reference.median / summary.median,
                "flops": flops, "gflops_per_second": flops / summary.median / 1e9,
            }
            if floor:
                result["times_floor"] = summary.median / floor["bf16_seconds"]
            if memory:
                result.update(common.memory_columns(memory[name], memory[REFERENCE]))
            per_variant[name] = result
            rows.append([
                size_label(size), name, common.seconds(summary.median),
                common.seconds(summary.iqr), f"{common.seconds(summary.min)}-{common.seconds(summary.max)}",
                f"{result['images_per_second']:.2f}", f"{result['speedup']:.2f}x", common.gigaflops(flops),
                f"{result['gflops_per_second']:.1f}", f"{result['times_floor']:.2f}" if floor else "-",
                common.megabytes(result.get("peak")),
                f"{result['peak_vs_reference']:.2f}" if memory else "-",
            ])
        results[size_label(size)] = {"floor": floor, "variants": per_variant}
    print()
    print(common.format_table(["size", "variant", "s/call", "IQR", "min-max", "images/s", "speed-up", "GFLOP/call",
                               "GFLOP/s", "x floor", common.peak_memory_label(args.device), "peak/ref"], rows))
    if args.floor:
        print("x floor: median / (GFLOP per call / bf16 forward GFLOP/s of the residual-block conv at that size)")
    if args.memory:
        print(common.peak_memory_note(args.device, f"making {args.probe_iterations} calls with the variant alone"))
    if args.json:
        common.write_json(args.json, {
            "benchmark": "translate", "machine": machine,
            "config": {"netG": args.netG, "ngf": args.ngf, "batch": args.batch, "repeats": args.repeats,
                       "warmup": args.warmup, "threads": args.threads, "device": str(args.device)},
            "sizes": results,
        })
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
