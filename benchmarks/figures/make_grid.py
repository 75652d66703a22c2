"""A picture grid of test translations for docs: one row per test image, one column per model.

    python benchmarks/figures/make_grid.py --inputs DIR --truth DIR --out grid.png --count 6 \\
        --model CycleGAN=experiments/ablation_synth64/runs/cyclegan --model pix2pix=... [--direction AtoB]

Columns: input, each model's translation, then the ground truth (same file name in --truth).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from cyclegan.data.images import list_images, load_image
from cyclegan.inference import Translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", required=True, help="Folder of test inputs.")
    parser.add_argument("--truth", help="Folder of ground-truth targets with the same file names.")
    parser.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT, repeatable.")
    parser.add_argument("--direction", default="AtoB", help="AtoB or BtoA.")
    parser.add_argument("--count", type=int, default=6, help="Rows (test images).")
    parser.add_argument("--size", type=int, default=64, help="Side of each cell in pixels.")
    parser.add_argument("--out", required=True, help="PNG to write.")
    args = parser.parse_args()

    models = [(name, Translator.from_checkpoint(path, args.direction, device="cpu"))
              for name, path in (item.split("=", 1) for item in args.model)]
    paths = list_images(Path(args.inputs))[: args.count]
    headers = ["input", *[name for name, _ in models]] + (["ground truth"] if args.truth else [])
    cell, label = args.size, 14
    grid = Image.new("RGB", (cell * len(headers), label + cell * len(paths)), "white")
    draw = ImageDraw.Draw(grid)
    for column, header in enumerate(headers):
        draw.text((column * cell + 2, 1), header[: cell // 6], fill="black")
    for row, path in enumerate(paths):
        image = load_image(path, models[0][1].input_channels).resize((cell, cell), Image.BICUBIC)
        cells = [image] + [translator(image) for _, translator in models]
        if args.truth:
            cells.append(load_image(Path(args.truth) / path.name, 3).resize((cell, cell), Image.BICUBIC))
        for column, picture in enumerate(cells):
            grid.paste(picture.convert("RGB"), (column * cell, label + row * cell))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
