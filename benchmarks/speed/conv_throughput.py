"""Convolution throughput (GFLOP/s) in fp32 and bf16 for the convolutions of a CycleGAN.

Each shape is one convolution of the ResNet generator or of the 70x70 PatchGAN at the given image
size, called directly (no autocast, no norm) in both memory layouts, forward only or forward and
backward (gradients of input and weights, as in training). The "mix" rows weight every shape by
how often it occurs in one network call, so they give the throughput a whole generator (or G + D)
could reach if its convolutions ran at these speeds; train_step.py divides an iteration's FLOPs by
such a figure to estimate the time floor.

    python benchmarks/speed/conv_throughput.py --size 256 --ngf 64 --repeats 5
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

import common

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


@dataclass(frozen=True)
class ConvShape:
    """One convolution: input (channels, side) already padded as the network pads it."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    side: int
    count: int  # occurrences per network call
    transposed: bool = False

    def make(self, dtype: torch.dtype, layout: torch.memory_format, requires_grad: bool,
             device: torch.device | str = "cpu"):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(1, self.in_channels, self.side, self.side, generator=generator)
        weight_shape = ((self.in_channels, self.out_channels) if self.transposed
                        else (self.out_channels, self.in_channels)) + (self.kernel, self.kernel)
        w = torch.randn(weight_shape, generator=generator) * 0.02
        x = x.to(device=device, dtype=dtype, memory_format=layout).requires_grad_(requires_grad)
        w = w.to(device=device, dtype=dtype, memory_format=layout).requires_grad_(requires_grad)
        return x, w

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, w, stride=self.stride, padding=self.padding,
                                      output_padding=self.stride - 1)
        return F.conv2d(x, w, stride=self.stride, padding=self.padding)


def generator_shapes(size: int, ngf: int, n_blocks: int = 9, channels: int = 3) -> list[ConvShape]:
    """The convolutions of ResnetGenerator (reflection padding applied beforehand, as there)."""
    return [
        ConvShape("G c7s1 in", channels, ngf, 7, 1, 0, size + 6, 1),
        ConvShape("G down 1", ngf, 2 * ngf, 3, 2, 1, size, 1),
        ConvShape("G down 2", 2 * ngf, 4 * ngf, 3, 2, 1, size // 2, 1),
        ConvShape("G res block", 4 * ngf, 4 * ngf, 3, 1, 0, size // 4 + 2, 2 * n_blocks),
        ConvShape("G up 1", 4 * ngf, 2 * ngf, 3, 2, 1, size // 4, 1, transposed=True),
        ConvShape("G up 2", 2 * ngf, ngf, 3, 2, 1, size // 2, 1, transposed=True),
        ConvShape("G c7s1 out", ngf, channels, 7, 1, 0, size + 6, 1),
    ]


def discriminator_shapes(size: int, ndf: int, channels: int = 3) -> list[ConvShape]:
    """The convolutions of the 70x70 PatchGAN (NLayerDiscriminator, 3 layers)."""
    return [
        ConvShape("D conv 1", channels, ndf, 4, 2, 1, size, 1),
        ConvShape("D conv 2", ndf, 2 * ndf, 4, 2, 1, size // 2, 1),
        ConvShape("D conv 3", 2 * ndf, 4 * ndf, 4, 2, 1, size // 4, 1),
        ConvShape("D conv 4", 4 * ndf, 8 * ndf, 4, 1, 1, size // 8, 1),
        ConvShape("D conv 5", 8 * ndf, 1, 4, 1, 1, size // 8 - 1, 1),
    ]


@dataclass
class Measurement:
    shape: ConvShape
    dtype: str
    layout: str
    backward: bool
    flops: int
    median_seconds: float

    @property
    def gflops(self) -> float:
        return self.flops / self.median_seconds / 1e9


def _step(shape: ConvShape, dtype: str, layout: str, backward: bool, device: torch.device | str = "cpu"):
    x, w = shape.make(DTYPES[dtype], LAYOUTS[layout], requires_grad=backward, device=device)

    def run() -> None:
        if backward:
            out = shape.forward(x, w)
            out.backward(torch.ones_like(out))
            x.grad = w.grad = None
        else:
            with torch.no_grad():
                shape.forward(x, w)

    return run


def measure(shapes: Sequence[ConvShape], dtypes: Sequence[str], layouts: Sequence[str], backward: bool,
            repeats: int, warmup: int, device: torch.device | None = None) -> list[Measurement]:
    """Time every shape in every dtype x layout, the combinations alternating per shape."""
    device = device or torch.device("cpu")
    results = []
    for shape in shapes:
        steps = {(dtype, layout): _step(shape, dtype, layout, backward, device)
                 for dtype in dtypes for layout in layouts}
        flops = common.count_flops(next(iter(steps.values())))
        times = common.alternate({f"{d}/{l}": step for (d, l), step in steps.items()}, repeats, warmup, device)
        for dtype, layout in steps:
            median = common.summarize(times[f"{dtype}/{layout}"]).median
            results.append(Measurement(shape, dtype, layout, backward, flops, median))
    return results


def mix_gflops(measurements: Sequence[Measurement], dtype: str, layout: str | None = None) -> float:
    """Throughput of the shapes weighted by their counts; with layout None each shape takes its
    faster layout (what a network could get by choosing per layer)."""
    flops = seconds = 0.0
    for shape in dict.fromkeys(m.shape for m in measurements):
        candidates = [m for m in measurements if m.shape == shape and m.dtype == dtype
                      and (layout is None or m.layout == layout)]
        if not candidates:
            continue
        best = min(candidates, key=lambda m: m.median_seconds)
        flops += shape.count * best.flops
        seconds += shape.count * best.median_seconds
    return flops / seconds / 1e9 if seconds else float("nan")


def dominant_throughput(size: int, ngf: int, dtype: str, backward: bool, repeats: int = 3,
                        layout: str = "channels_last", device: torch.device | None = None) -> float:
    """GFLOP/s of the generator's residual-block convolution (about 87% of a ResNet-9's FLOPs at
    ngf 64) in one dtype and layout: a quick stand-in for the full mix."""
    shape = next(s for s in generator_shapes(size, ngf) if s.name == "G res block")
    (result,) = measure([shape], [dtype], [layout], backward, repeats, warmup=1, device=device)
    return result.gflops


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="Image side the shapes are taken from.")
    parser.add_argument("--ngf", type=int, default=64, help="Generator filters (and discriminator ndf).")
    parser.add_argument("--n-blocks", type=int, default=9, help="Residual blocks (9 or 6).")
    parser.add_argument("--dtypes", default="fp32,bf16", help="Comma-separated: fp32, bf16.")
    parser.add_argument("--layouts", default="contiguous,channels_last",
                        help="Comma-separated: contiguous, channels_last. On a CPU without native bf16, "
                             "contiguous bf16 can take minutes per call at 256 px.")
    parser.add_argument("--passes", default="forward,training",
                        help="Comma-separated: forward (inference) and/or training (forward + backward).")
    parser.add_argument("--no-discriminator", action="store_true", help="Only the generator's shapes.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    common.add_device_argument(parser)
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args(argv)
    args.dtypes = _choices("--dtypes", args.dtypes, DTYPES)
    args.layouts = _choices("--layouts", args.layouts, LAYOUTS)
    args.passes = _choices("--passes", args.passes, ("forward", "training"))
    if args.size % 8 or args.size < 32:
        parser.error(f"--size must be a multiple of 8 and at least 32, got {args.size}")
    return args


def _choices(flag: str, text: str, allowed) -> list[str]:
    values = [value.strip() for value in text.split(",") if value.strip()]
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise SystemExit(f"error: {flag}: unknown value(s) {unknown or text!r}; choose from {', '.join(allowed)}")
    return values


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    device = common.resolve_device(args.device)
    machine = common.announce(device, args.dtypes)
    shapes = generator_shapes(args.size, args.ngf, args.n_blocks)
    if not args.no_discriminator:
        shapes += discriminator_shapes(args.size, args.ngf)
    payload = {"machine": machine, "size": args.size, "ngf": args.ngf, "passes": {}}
    for pass_name in args.passes:
        backward = pass_name == "training"
        results = measure(shapes, args.dtypes, args.layouts, backward, args.repeats, args.warmup, device)
        combos = [(d, l) for d in args.dtypes for l in args.layouts]
        rows = []
        for shape in shapes:
            row = [shape.name, f"{shape.in_channels}->{shape.out_channels} k{shape.kernel} s{shape.stride} "
                               f"@{shape.side}", str(shape.count)]
            for dtype, layout in combos:
                match = next(m for m in results if m.shape == shape and m.dtype == dtype and m.layout == layout)
                row.append(f"{match.gflops:.1f}")
            rows.append(row)
        generator_names = {s.name for s in generator_shapes(args.size, args.ngf, args.n_blocks)}
        generator_results = [m for m in results if m.shape.name in generator_names]
        for label, subset in (("mix G", generator_results), ("mix G+D", results)):
            if label == "mix G+D" and args.no_discriminator:
                continue
            rows.append([label, "count-weighted", ""] + [f"{mix_gflops(subset, d, l):.1f}" for d, l in combos])
        headers = ["shape", "conv", "count"] + [f"{d} {l} GFLOP/s" for d, l in combos]
        print(f"\n{pass_name} ({'forward + backward' if backward else 'forward only'}), {args.size}x{args.size}, "
              f"ngf {args.ngf}, median of {args.repeats}")
        print(common.format_table(headers, rows))
        best = {d: mix_gflops(generator_results, d) for d in args.dtypes}
        print("generator mix, best layout per shape: "
              + ", ".join(f"{d} {value:.1f} GFLOP/s" for d, value in best.items()))
        payload["passes"][pass_name] = {
            "shapes": [{"name": m.shape.name, "dtype": m.dtype, "layout": m.layout, "flops": m.flops,
                        "median_seconds": m.median_seconds, "gflops": m.gflops} for m in results],
            "generator_mix_gflops": {f"{d}/{l}": mix_gflops(generator_results, d, l) for d, l in combos},
            "generator_mix_best_layout_gflops": best,
            "all_mix_gflops": {f"{d}/{l}": mix_gflops(results, d, l) for d, l in combos},
        }
    if args.json:
        common.write_json(args.json, payload)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
