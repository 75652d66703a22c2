"""Peak memory of one generator call, per pixel: the figures behind `cyclegan.inference.memory`.

Each case runs in a fresh process, so that its peak resident memory (ru_maxrss) is its own: the
generator is built and warmed up on a 32 px image, the input is allocated, and the peak growth
of one `Translator.translate_tensor` call is divided by the pixels and by ngf. CPU only (on a
GPU, torch.cuda.max_memory_allocated would be the measure).

    python benchmarks/translation_memory.py            # the table in docs/PERFORMANCE.md, "Memory"
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys

# (generator, ngf, side, batch, nnpack)
CASES = [("resnet_9blocks", 64, 256, 1, True), ("resnet_9blocks", 64, 512, 1, True),
         ("resnet_9blocks", 64, 512, 1, False), ("resnet_9blocks", 64, 256, 4, True),
         ("resnet_9blocks", 16, 512, 1, True), ("resnet_9blocks", 8, 512, 1, True),
         ("resnet_9blocks", 8, 1024, 1, True), ("unet_256", 64, 512, 1, True)]


def measure(net_g: str, ngf: int, side: int, batch: int, nnpack: bool) -> int:
    """Peak growth in bytes of one call, in this process."""
    import torch

    from cyclegan.checkpoint import GeneratorSpec
    from cyclegan.inference import Translator
    from cyclegan.networks import build_generator

    torch.set_num_threads(1)
    spec = GeneratorSpec(net_g, 3, 3, ngf, "instance", "random weights", "AtoB", False)
    translator = Translator(build_generator(net_g, 3, 3, ngf, "instance"), spec, "cpu", "fp32", nnpack=nnpack)
    translator.translate_tensor(torch.rand(1, 3, 32, 32) * 2 - 1)
    batch_tensor = torch.rand(batch, 3, side, side) * 2 - 1
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    translator.translate_tensor(batch_tensor)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=5, metavar=("NET_G", "NGF", "SIDE", "BATCH", "NNPACK"),
                        help="measure one case in this process and print its bytes (used by the table)")
    args = parser.parse_args()
    if args.case:
        net_g, ngf, side, batch, nnpack = args.case
        print(measure(net_g, int(ngf), int(side), int(batch), nnpack == "1"))
        return
    print("| generator | ngf | input | NNPACK | peak growth MiB | bytes / pixel | bytes / pixel / filter |")
    print("|---|---|---|---|---|---|---|")
    for net_g, ngf, side, batch, nnpack in CASES:
        result = subprocess.run([sys.executable, __file__, "--case", net_g, str(ngf), str(side), str(batch),
                                 "1" if nnpack else "0"], capture_output=True, text=True, check=True)
        peak = int(result.stdout.split()[-1])
        pixels = batch * side * side
        print(f"| {net_g} | {ngf} | {batch}×{side}² | {'on' if nnpack else 'off'} | {peak / 2**20:.0f} | "
              f"{peak / pixels:.0f} | {peak / pixels / ngf:.1f} |", flush=True)


if __name__ == "__main__":
    main()
