"""Paper-style Markdown tables from the evaluation.json files an experiment suite wrote.

    python benchmarks/figures/results_tables.py experiments/ablation_synth64 [--kind segmentation|fid]

Photo -> labels and labels -> photo: per-pixel accuracy, per-class accuracy, class IoU (as the
paper's Tables 1, 2 and 4); then FID / KID of both directions and the cycle error.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def _fmt(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}"


def segmentation_table(rows: list[tuple[str, dict, dict]]) -> list[str]:
    lines = ["| variant | iterations | photo→labels pixel acc | class acc | class IoU | labels→photo (FCN) pixel acc "
             "| class acc | class IoU |", "|---|---|---|---|---|---|---|---|"]
    ceiling = None
    for name, row, report in rows:
        segmentation = report.get("segmentation") or {}
        p2l, l2p = segmentation.get("photo_to_labels"), segmentation.get("labels_to_photo")
        ceiling = segmentation.get("ceiling") or ceiling
        cells = [_fmt(block and block[key]) for block in (p2l, l2p)
                 for key in ("pixel_accuracy", "class_accuracy", "class_iou")]
        lines.append(f"| {name} | {row.get('iterations', '')} | " + " | ".join(cells) + " |")
    if ceiling:
        lines.append("| *segmenter on real photos (ceiling)* | | | | | "
                     + " | ".join(_fmt(ceiling[key]) for key in ("pixel_accuracy", "class_accuracy", "class_iou")) + " |")
    return lines


def distribution_table(rows: list[tuple[str, dict, dict]]) -> list[str]:
    lines = ["| variant | direction | FID | KID (mean ± std) | cycle L1 | PSNR | SSIM |", "|---|---|---|---|---|---|---|"]
    for name, _row, report in rows:
        for direction, scores in report["directions"].items():
            if "skipped" in scores:
                continue
            kid = scores.get("kid")
            kid_text = f"{kid['mean']:.3f} ± {kid['std']:.3f}" if kid else "–"
            lines.append(f"| {name} | {scores['source']}→{scores['target']} | {_fmt(scores.get('fid'), 1)} | {kid_text} | "
                         f"{_fmt(scores.get('cycle_l1'))} | {_fmt(scores.get('psnr'), 2)} | {_fmt(scores.get('ssim'))} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="An experiment output folder (with results.csv and runs/).")
    parser.add_argument("--kind", choices=("segmentation", "fid", "both"), default="both", help="Which tables.")
    args = parser.parse_args()
    suite = Path(args.suite)
    rows = []
    with open(suite / "results.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("status") != "ok":
                continue
            slug = "".join(ch if ch.isalnum() else "_" for ch in row["variant"].lower()).strip("_")
            rows.append((row["variant"], row, json.loads((suite / "runs" / slug / "evaluation.json").read_text())))
    if args.kind in ("segmentation", "both"):
        print("\n".join(segmentation_table(rows)), end="\n\n")
    if args.kind in ("fid", "both"):
        print("\n".join(distribution_table(rows)))


if __name__ == "__main__":
    main()
