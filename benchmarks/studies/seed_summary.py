"""The reference-parity runs over seeds, beside the reference code's numbers on the same setting.

    python benchmarks/studies/seed_summary.py experiments/reference_parity/seed*/evaluation.json
    (benchmarks/studies/reference_parity.sh summary [OUT] calls it)

Prints a Markdown table: per segmentation score, the project's mean ± standard deviation over the
given seeds, the reference code's values, and two checks, each stated under the table:
- band: every reference value lies within the project's mean ± 2 standard deviations (a seed of
  the reference looks like one more seed of the project); needs two project seeds;
- two-sample: the difference of the means in standard errors, sqrt(sd_project²/n_project +
  sd_reference²/n_reference), "within noise" up to 2 (cyclegan.studies.comparison's rule); needs
  two seeds on each side, so only photo -> labels has it, and with the reference's two seeds its
  standard deviation rests on one degree of freedom: the check only catches large gaps.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cyclegan.studies import comparison

# The reference code (junyanz/pytorch-CycleGAN-and-pix2pix) on the parity setting, evaluated on the
# same 8 Cityscapes test images at 128 px: photo -> labels with two seeds, labels -> photo with one.
SETTING = ("Cityscapes, --load-size 143 --crop-size 128 --netG resnet_6blocks --ngf 32 --epochs 10 "
           "--epochs-decay 10 (3,600 iterations, one thread), 8 test images at 128 px")
REFERENCE = {
    "segmentation.photo_to_labels.pixel_accuracy": (0.616, 0.614),
    "segmentation.photo_to_labels.class_accuracy": (0.220, 0.242),
    "segmentation.photo_to_labels.class_iou": (0.161, 0.184),
    "segmentation.labels_to_photo.pixel_accuracy": (0.651,),
    "segmentation.labels_to_photo.class_accuracy": (0.236,),
    "segmentation.labels_to_photo.class_iou": (0.177,),
}
BAND = 2.0  # project standard deviations


def within_band(project: list[float], reference: tuple[float, ...]) -> bool | None:
    """Every reference value within the project's mean ± BAND sd; None with fewer than two project seeds."""
    if len(project) < 2:
        return None
    spread = comparison.spread(project)
    return all(abs(value - spread.mean) <= BAND * spread.sd for value in reference)


def summary_rows(reports: dict[str, dict]) -> list[dict]:
    """{seed name: evaluation.json} -> one row per score of REFERENCE that the project has."""
    from cyclegan.studies.suites import flatten

    flat = {seed: flatten(report) for seed, report in reports.items()}
    rows = []
    for key, reference in REFERENCE.items():
        project = [values[key] for values in flat.values() if isinstance(values.get(key), float)]
        if not project:
            continue
        spread = comparison.spread(project)
        two_sample = comparison.difference(project, reference) if len(project) > 1 and len(reference) > 1 else None
        rows.append({"key": key, "project": project, "project_mean": spread.mean, "project_sd": spread.sd,
                     "reference": list(reference), "within_band": within_band(project, reference),
                     "standard_errors": two_sample.standard_errors if two_sample else None,
                     "two_sample": two_sample.verdict() if two_sample else None})
    return rows


def markdown(rows: list[dict], seeds: list[str]) -> list[str]:
    def yes_no(value) -> str:
        return "–" if value is None else ("yes" if value else "NO")

    lines = [f"Project: {len(seeds)} seed(s) ({', '.join(seeds)}); reference code: {SETTING}.", "",
             f"| score | project mean ± sd (n) | project per seed | reference | reference within mean ± {BAND:g} sd | "
             "reference − project in std. errors |", "|---|---|---|---|---|---|"]
    for row in rows:
        sd = "–" if len(row["project"]) < 2 else f"{row['project_sd']:.3f}"
        z = "–" if row["standard_errors"] is None else f"{row['standard_errors']:+.2f} ({row['two_sample']})"
        lines.append(f"| {row['key'].removeprefix('segmentation.')} | {row['project_mean']:.3f} ± {sd} "
                     f"({len(row['project'])}) | {' / '.join(f'{v:.3f}' for v in row['project'])} | "
                     f"{' / '.join(f'{v:.3f}' for v in row['reference'])} | {yes_no(row['within_band'])} | {z} |")
    banded = [row for row in rows if row["within_band"] is not None]
    outside = [row["key"].removeprefix("segmentation.") for row in banded if not row["within_band"]]
    lines += ["", f"Band rule: a score agrees when every reference value lies within the project's mean ± {BAND:g} "
              "standard deviations over seeds. Two-sample: the difference of the means in standard errors "
              "(within noise up to 2), only where both sides have two seeds; the reference's two seeds give its "
              "spread one degree of freedom, so that check only catches large gaps."]
    if not banded:
        lines.append("Verdict: not yet: the band rule needs at least two project seeds.")
    elif outside:
        lines.append(f"Verdict: outside the band on {', '.join(outside)}.")
    else:
        lines.append(f"Verdict: the reference's values lie within the band on all {len(banded)} scores.")
    return lines


def run_label(path: Path, every: list[Path]) -> str:
    """The run's folder name (`seed1`), or `parent/seed1` where two runs share a name: runs from two
    machines (benchmarks/gpu.sh parity128 beside the CPU's seeds) are separate replicates."""
    name = path.parent.name
    if sum(other.parent.name == name for other in every) > 1:
        return f"{path.parent.parent.name}/{name}"
    return name


def main(argv=None) -> int:
    paths = [Path(text) for text in (sys.argv[1:] if argv is None else argv)]
    found = list(dict.fromkeys(path for path in paths if path.is_file()))  # a path given twice counts once
    if not found:
        print("no finished seeds: no evaluation.json among " + (" ".join(map(str, paths)) or "(no paths)")
              + "; run benchmarks/studies/reference_parity.sh SEED first", file=sys.stderr)
        return 1
    reports = {run_label(path, found): json.loads(path.read_text()) for path in found}
    rows = summary_rows(reports)
    if not rows:
        print("the evaluation.json files hold no segmentation scores", file=sys.stderr)
        return 1
    print("\n".join(markdown(rows, list(reports))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
