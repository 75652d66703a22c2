"""Images per second translating a whole folder: `Translator.translate_files` against the reference's loop.

The reference is the reference code's test loop written out: for each file, decode it with PIL,
scale to [-1, 1], run the generator (float32, `nn.InstanceNorm2d`) on that one image under
`torch.no_grad()`, convert back and save a PNG. The candidates are `Translator.translate_files`
on the same folder, with the batch sizes asked for (`auto`: the default, chosen for the device),
decoding and encoding in worker threads (`--io-threads`: how many; each batch size is run with
each count when several are given). The folder holds `--count` random images of `--size`
pixels; the weights are random (speed does not depend on them). Reference and candidates
alternate, as in the other scripts.

    python benchmarks/speed/translate_folder.py --device cuda --size 256 --count 64 --batches auto,1,8,16
    python benchmarks/speed/translate_folder.py --device cuda --size 256 --count 64 --batches auto --io-threads 2,8
"""
from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import common
from translate import make_generator

from cyclegan.data.images import load_image
from cyclegan.imageconv import image_to_tensor, tensor_to_image
from cyclegan.inference import Translator

REFERENCE = "reference"


def write_folder(folder: Path, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        path = folder / f"{index:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def reference_loop(generator: torch.nn.Module, paths: list[Path], out: Path, device: torch.device):
    def run() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        with torch.no_grad():
            for path in paths:
                image = image_to_tensor(load_image(path, 3)).unsqueeze(0).to(device)
                tensor_to_image(generator(image)[0].float().cpu()).save(out / path.name)
    return run


def candidate(translator: Translator, folder: Path, out: Path, batch: int | None, io_threads: int | None):
    def run() -> None:
        shutil.rmtree(out, ignore_errors=True)
        translator.translate_files([folder], out, batch_size=batch, io_threads=io_threads)
    return run


def candidate_names(batches: str, io_threads: str) -> dict[str, tuple[int | None, int | None]]:
    """{"batch 8": (8, None)} or, with several thread counts, {"batch 8 io 2": (8, 2), ...}; auto is None."""
    def value(text: str) -> int | None:
        return None if text == "auto" else int(text)

    counts = io_threads.split(",")
    return {f"batch {batch}" + (f" io {threads}" if len(counts) > 1 else ""): (value(batch), value(threads))
            for batch in batches.split(",") for threads in counts}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_device_argument(parser)
    parser.add_argument("--size", type=int, default=256, help="Side of the square images.")
    parser.add_argument("--count", type=int, default=64, help="Images in the folder.")
    parser.add_argument("--netG", default="resnet_9blocks")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batches", default="auto,1",
                        help="Comma-separated batch sizes of the candidates; auto is the default choice.")
    parser.add_argument("--io-threads", default="auto",
                        help="Comma-separated counts of file threads of the candidates; auto is the default choice.")
    parser.add_argument("--precision", default="auto", help="The candidates' --precision.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed passes over the folder per variant.")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed passes per variant.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args(argv)
    common.check_counts(parser, {"--count": args.count, "--size": args.size, "--repeats": args.repeats},
                        args.warmup)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    args.device = common.resolve_device(args.device)
    candidates = candidate_names(args.batches, args.io_threads)
    names = [REFERENCE, *candidates]
    machine = common.announce(args.device, names)
    generator, info = make_generator(args)
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        paths = write_folder(workdir / "in", args.count, args.size)
        steps = {REFERENCE: reference_loop(common.with_plain_instance_norms(copy.deepcopy(generator)), paths,
                                           workdir / REFERENCE, args.device)}
        for name, (batch, io_threads) in candidates.items():
            translator = Translator(copy.deepcopy(generator), info, device=str(args.device), precision=args.precision)
            steps[name] = candidate(translator, workdir / "in", workdir / name.replace(" ", "_"), batch, io_threads)
        times = common.alternate(steps, args.repeats, args.warmup, args.device)
    summaries = {name: common.summarize(values) for name, values in times.items()}
    reference = summaries[REFERENCE].median
    rows = [[name, common.seconds(summary.median), common.seconds(summary.iqr),
             f"{args.count / summary.median:.1f}", f"{reference / summary.median:.2f}x"]
            for name, summary in summaries.items()]
    print(f"{args.count} images of {args.size}x{args.size}, {args.netG} ngf {args.ngf}, precision {args.precision}")
    print(common.format_table(["variant", "s/folder (median)", "IQR", "images/s", "speed-up"], rows))
    if args.json:
        common.write_json(args.json, {"machine": machine, "arguments": {k: str(v) for k, v in vars(args).items()},
                                      "times": times,
                                      "summaries": {name: common.summary_dict(s) for name, s in summaries.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
