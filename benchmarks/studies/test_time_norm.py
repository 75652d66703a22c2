"""Batch norm at test time: each image's own statistics (the pix2pix paper, the reference, and
this project since layers/test_time_norm.py) against the running averages (the project before).

Trains pix2pix (its defaults: U-Net, batch norm) once per seed, then scores every run's test
translations both ways with `cyclegan evaluate`: the same weights, only the test-time norm differs,
so the comparison is paired per seed. Writes OUT/study.md and OUT/scores.json.

    python benchmarks/studies/test_time_norm.py --data ../shared/data/cityscapes --out experiments/ttnorm \
        --seeds 0,1,2 --iters 600 -- --netG unet_128 --ngf 16 --ndf 16 --load-size 143 --crop-size 128 --precision bf16 \
        --dropout
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from cyclegan.cli import main as cyclegan_main
from cyclegan.inference import translator as translator_module

MODES = ("own statistics", "running averages")


def train(data: str, runs: Path, seed: int, iters: int, extra: list[str]) -> Path:
    run = runs / f"seed{seed}"
    if (run / "checkpoints" / "latest.json").exists():
        return run
    subprocess.run([sys.executable, "-m", "cyclegan", "train", "--model", "pix2pix", "--data", data,
                    "--runs-dir", str(runs), "--name", run.name, "--seed", str(seed), "--max-iters", str(iters),
                    "--no-progress", "--no-tensorboard", "--num-workers", "0", *extra], check=True)
    return run


def scores(run: Path, data: str, out: Path, mode: str) -> dict:
    """`cyclegan evaluate`'s scores of `run`, its batch norm at test time as `mode` says."""
    original = translator_module.each_image_normalised
    if mode == "running averages":  # the Translator as it was before layers/test_time_norm.py
        translator_module.each_image_normalised = lambda generator: generator
    try:
        if cyclegan_main(["evaluate", str(run), "--data", data, "--no-fid", "--device", "cpu", "--precision", "fp32",
                          "--out", str(out), "--quiet"]) != 0:
            raise SystemExit(f"cyclegan evaluate {run} failed")
    finally:
        translator_module.each_image_normalised = original
    return json.loads(out.read_text())


def flatten(record, prefix: str = "") -> dict[str, float]:
    found = {}
    if isinstance(record, dict):
        for key, value in record.items():
            found.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(record, (int, float)) and not isinstance(record, bool):
        found[prefix.rstrip(".")] = float(record)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then flags for cyclegan train")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    seeds = [int(seed) for seed in args.seeds.split(",")]
    results: dict[int, dict[str, dict[str, float]]] = {}
    for seed in seeds:
        run = train(args.data, args.out / "runs", seed, args.iters, extra)
        results[seed] = {mode: flatten(scores(run, args.data, args.out / f"seed{seed}_{index}.json", mode))
                         for index, mode in enumerate(MODES)}
        (args.out / "scores.json").write_text(json.dumps(results, indent=1))
    names = sorted(set.intersection(*(set(r[mode]) for r in results.values() for mode in MODES)))
    names = [name for name in names if ".per_class." not in name
             and any(word in name for word in ("accuracy", "iou", "psnr", "ssim", "l1"))]
    lines = [f"# Test-time batch norm, pix2pix, {len(seeds)} seeds (paired: same weights)", "",
             f"`{' '.join(sys.argv)}`", "",
             "| score | own statistics (mean ± SE) | running averages | difference (own − running), mean ± SE | verdict |",
             "|---|---|---|---|---|"]
    for name in names:
        own = [results[seed][MODES[0]][name] for seed in seeds]
        running = [results[seed][MODES[1]][name] for seed in seeds]
        differences = [a - b for a, b in zip(own, running)]
        se = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
        mean = statistics.mean(differences)
        verdict = "within noise" if not abs(mean) > 2 * se else ("own higher" if mean > 0 else "running higher")

        def summary(values):
            spread = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
            return f"{statistics.mean(values):.4f} ± {spread:.4f}"

        lines.append(f"| {name} | {summary(own)} | {summary(running)} | {mean:+.4f} ± {se:.4f} | {verdict} |")
    (args.out / "study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
