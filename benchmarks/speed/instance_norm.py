"""Instance normalisation alone: nn.InstanceNorm2d's formulation against the alternatives.

Each formulation normalises tensors of the ResNet generator's shapes (ngf 64 at 256 and 128 px,
batch 1 and the batches of the trainer's batched generator calls), contiguous and channels-last,
forward and backward (input gradient) or forward only. The alternatives give the same result to
float tolerance; `project` is `cyclegan.layers.instance_norm.instance_norm`, which picks among them.

    python benchmarks/speed/instance_norm.py --threads 1 --repeats 9
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

import common
from cyclegan.layers.instance_norm import instance_norm

EPS = 1e-5
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
DEFAULT_SHAPES = "1x64x256x256,1x128x128x128,1x256x64x64,1x64x128x128,1x256x32x32,2x64x256x256,2x256x64x64,3x256x32x32"


def per_image_batch_norm(x: torch.Tensor) -> torch.Tensor:
    images = [F.batch_norm(image, None, None, training=True, eps=EPS) for image in x.split(1)]
    return images[0] if len(images) == 1 else torch.cat(images)


def var_mean(x: torch.Tensor) -> torch.Tensor:
    variance, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    return (x - mean) * torch.rsqrt(variance + EPS)


FORMULATIONS = {
    "instance_norm": lambda x: F.instance_norm(x, eps=EPS),  # nn.InstanceNorm2d's
    "group_norm": lambda x: F.group_norm(x, x.shape[1], eps=EPS),
    "batch_norm": per_image_batch_norm,
    "var_mean": var_mean,
    "project": lambda x: instance_norm(x, EPS),
}


def make_step(formulation, x: torch.Tensor, gradient: torch.Tensor | None):
    def step() -> None:
        if gradient is None:
            with torch.no_grad():
                formulation(x)
        else:
            x.grad = None
            formulation(x).backward(gradient)
    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="Comma-separated NxCxHxW.")
    parser.add_argument("--formulations", default=",".join(FORMULATIONS), help="Comma-separated, of: " + ", ".join(FORMULATIONS))
    parser.add_argument("--passes", default="forward+backward,forward", help="forward+backward and/or forward.")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    args = parser.parse_args(argv)
    common.check_counts(parser, {"--repeats": args.repeats}, args.warmup)
    common.set_threads(args.threads)
    names = args.formulations.split(",")
    unknown = [name for name in names if name not in FORMULATIONS]
    if unknown:
        parser.error(f"unknown formulation(s) {', '.join(unknown)}; choose from {', '.join(FORMULATIONS)}")
    common.announce(torch.device("cpu"), [])
    headers = ["pass", "shape", "layout"] + [f"{name} ms (x)" for name in names]
    rows = []
    for passes in args.passes.split(","):
        for shape_text in args.shapes.split(","):
            shape = tuple(int(side) for side in shape_text.split("x"))
            for layout, memory_format in LAYOUTS.items():
                generator = torch.Generator().manual_seed(0)
                x = torch.randn(shape, generator=generator).contiguous(memory_format=memory_format)
                gradient = None
                if passes == "forward+backward":
                    x.requires_grad_()
                    gradient = torch.randn(shape, generator=generator).contiguous(memory_format=memory_format)
                steps = {name: make_step(FORMULATIONS[name], x, gradient) for name in names}
                times = common.alternate(steps, args.repeats, args.warmup)
                medians = {name: common.summarize(times[name]).median for name in names}
                base = medians.get("instance_norm", medians[names[0]])
                rows.append([passes, shape_text, layout] + [f"{medians[name] * 1e3:.2f} ({base / medians[name]:.2f}x)"
                                                          for name in names])
                print(" ".join(rows[-1]), file=sys.stderr, flush=True)
    print(common.format_table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
