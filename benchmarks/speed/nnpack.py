"""NNPACK's convolutions (cyclegan.layers.nnpack) against oneDNN's, per shape.

For the residual-block convolution (3x3, channels -> channels) at several channel counts, and the
generator's first and last convolutions (7x7, 3 -> 64 and 64 -> 3), at several feature-map sides,
batch 1 and 3, it times the ordinary `F.conv2d` and `cyclegan.layers.nnpack.conv2d` in alternation,
forward only and forward + backward (input, weight and bias gradients), and prints the medians
and the ratio; `cyclegan.layers.nnpack.MIN_SIDE` and the module's docstring come from this table.

    python benchmarks/speed/nnpack.py --threads 1
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

import common
from cyclegan.layers import nnpack


def make_step(kind: str, batch: int, channels: tuple[int, int], kernel: int, side: int, backward: bool):
    generator = torch.Generator().manual_seed(0)
    channels_in, channels_out = channels
    x = torch.randn(batch, channels_in, side + kernel - 1, side + kernel - 1, generator=generator)
    x.requires_grad_(backward)
    w = (torch.randn(channels_out, channels_in, kernel, kernel, generator=generator) * 0.02).requires_grad_(backward)
    b = torch.zeros(channels_out).requires_grad_(backward)
    grad = torch.randn(batch, channels_out, side, side, generator=generator)

    def conv():
        return F.conv2d(x, w, b) if kind == "onednn" else nnpack.conv2d(x, w, b, 0)

    def step() -> None:
        if backward:
            conv().backward(grad)
            x.grad = w.grad = b.grad = None
        else:
            with torch.no_grad():
                conv()

    return step


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", default="64,128,256", help="Comma-separated channel counts of the 3x3 shapes.")
    parser.add_argument("--sides", default="16,32,64,128", help="Comma-separated output sides.")
    parser.add_argument("--batches", default="1,3", help="Comma-separated batch sizes.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    args = parser.parse_args(argv)
    try:
        for name in ("channels", "sides", "batches"):
            setattr(args, name, [int(v) for v in getattr(args, name).split(",") if v.strip()])
    except ValueError:
        parser.error("--channels, --sides and --batches take comma-separated integers")
    common.check_counts(parser, {"--repeats": args.repeats}, args.warmup)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    if not nnpack.available():
        print("this PyTorch has no NNPACK (or this CPU cannot run it): nothing to compare", file=sys.stderr)
        return 1
    common.announce(torch.device("cpu"), [])
    rows = []
    shapes = [(3, (c, c)) for c in args.channels] + [(7, (3, 64)), (7, (64, 3))]
    for kernel, channels in shapes:
        for side in args.sides:
            for batch in args.batches:
                row = [f"{kernel}x{kernel}", f"{channels[0]}->{channels[1]}", f"{side}x{side}", str(batch)]
                for backward in (False, True):
                    steps = {kind: make_step(kind, batch, channels, kernel, side, backward)
                             for kind in ("onednn", "nnpack")}
                    times = common.alternate(steps, args.repeats, args.warmup)
                    onednn, fast = (common.summarize(times[kind]).median for kind in ("onednn", "nnpack"))
                    row += [f"{onednn * 1e3:.1f}", f"{fast * 1e3:.1f}", f"{onednn / fast:.2f}x"]
                rows.append(row)
                print("  ".join(row), flush=True)
    print()
    print(common.format_table(["kernel", "channels", "output", "batch", "fwd oneDNN ms", "fwd NNPACK ms", "fwd ratio",
                               "fwd+bwd oneDNN ms", "fwd+bwd NNPACK ms", "fwd+bwd ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
