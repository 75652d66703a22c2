"""`cyclegan study`: every variant of a suite over several seeds, each compared with a baseline variant.

For every variant and seed, `cyclegan experiment SUITE --only VARIANT --seed S --resume` trains and
evaluates one run (--parallel of them at once, which suits a GPU: small models leave it mostly
idle). Where a run kept a `best` checkpoint (checkpoints/best.json), that checkpoint is evaluated
too, by `cyclegan evaluate RUN --pick best` into RUN/evaluation_best.json, when this version of
`cyclegan evaluate` has --pick. Then every variant is compared with the baseline variant, for every
score that evaluation.json holds (segmentation accuracies and IoU, FID, KID, cycle L1, PSNR, SSIM)
and for every loss term averaged over the last quarter of each run's log.jsonl: the mean and the
standard deviation over seeds, the difference of the means, and that difference in standard
errors, sqrt(sd_baseline²/n_baseline + sd_variant²/n_variant).

A score is "better" or "worse" only when the difference exceeds 2 standard errors in its good or
bad direction (accuracies, IoU, PSNR and SSIM are better up; FID, KID and cycle L1 down), else
"within noise"; a loss term is "higher" or "lower" by the same rule. A variant is "better" when it
is better on at least one primary score (--primary; by default the class IoU of both
segmentation directions and the KID of both translation directions, those present) and worse on
no score at all. In the improvements suite, the options of the single-option variants that are better
make the line `recipe improved: FLAGS` (issue #13: the preset "turns on exactly the options that beat the
defaults by more than two standard errors, and nothing else"); when none is, the line says so.

It writes study.md, study.json and loss_curves.png into --out. Run again with the same arguments,
a study continues where it stopped: finished runs are kept, interrupted trainings resume.

    cyclegan study improvements --data ../shared/data/cityscapes \\
        --out experiments/improvements_cityscapes64 --iters 1000 --seeds 0,1,2 --baseline "paper defaults" \\
        -- --netG resnet_6blocks --ngf 16 --ndf 16 --load-size 72 --crop-size 64 --lambda-identity 0
    cyclegan study improvements --out experiments/improvements_cityscapes64 --summarize

The statistics are in `cyclegan.studies.comparison`; the runs are `cyclegan experiment`'s
(`cyclegan.studies.suites`).
"""
from __future__ import annotations

import functools
import json
import math
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cyclegan.studies.comparison import NOISE_LIMIT, difference, spread

# ---------------------------------------------------------------------------------------------
# What is compared.

@dataclass(frozen=True)
class Score:
    key: str                # as flattened by `cyclegan experiment` (results.csv columns)
    higher_is_better: bool


SCORES: tuple[Score, ...] = (
    *(Score(f"segmentation.{direction}.{name}", True) for direction in ("photo_to_labels", "labels_to_photo")
      for name in ("pixel_accuracy", "class_accuracy", "class_iou")),
    *(Score(f"directions.{direction}.{name}", higher) for name, higher in
      (("fid", False), ("kid.mean", False), ("cycle_l1", False), ("psnr", True), ("ssim", True))
      for direction in ("AtoB", "BtoA")),
)
PRIMARY = ("segmentation.photo_to_labels.class_iou", "segmentation.labels_to_photo.class_iou",
           "directions.AtoB.kid.mean", "directions.BtoA.kid.mean")
# The reports of a run: the final checkpoint's, and the best checkpoint's where the run kept one.
REPORTS = {"final": "evaluation.json", "best": "evaluation_best.json"}


def loss_keys() -> tuple[str, ...]:
    from cyclegan.training.plots import ACCURACY_KEYS, LOSS_KEYS

    return LOSS_KEYS + ACCURACY_KEYS


def arrow(higher_is_better: bool | None) -> str:
    return {True: "↑", False: "↓", None: ""}[higher_is_better]


# ---------------------------------------------------------------------------------------------
# Reading finished runs: OUT/seed_S/runs/<variant slug>/{evaluation.json, evaluation_best.json, log.jsonl}.

def seed_dir(out: Path, seed: int) -> Path:
    return Path(out) / f"seed_{seed}"


def run_folder(out: Path, seed: int, variant: str) -> Path:
    from cyclegan.studies.suites import variant_slug

    return seed_dir(out, seed) / "runs" / variant_slug(variant)


def read_scores(out: Path, seeds: Sequence[int], variants: Sequence[str], report: str = "final",
                keys: Sequence[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """{variant: {score: [value per seed]}} from each run's evaluation.json (or, with report
    "best", evaluation_best.json); scores a run lacks (FID with --no-fid, say) are left out."""
    from cyclegan.studies.suites import flatten

    keys = [score.key for score in SCORES] if keys is None else list(keys)
    scores: dict[str, dict[str, list[float]]] = {variant: {} for variant in variants}
    for seed in seeds:
        for variant in variants:
            path = run_folder(out, seed, variant) / REPORTS[report]
            if not path.exists():
                continue
            flat = flatten(json.loads(path.read_text()))
            for key in keys:
                if isinstance(flat.get(key), (int, float)):
                    scores[variant].setdefault(key, []).append(float(flat[key]))
    return scores


def read_curves(out: Path, seeds: Sequence[int], variants: Sequence[str]) -> dict[str, list[list[dict]]]:
    """{variant: [log.jsonl records of one run, per seed]}."""
    from cyclegan.training.logging import read_log

    curves: dict[str, list[list[dict]]] = {variant: [] for variant in variants}
    for seed in seeds:
        for variant in variants:
            records = read_log(run_folder(out, seed, variant) / "log.jsonl")
            if records:
                curves[variant].append(records)
    return curves


def late_means(curves: dict[str, list[list[dict]]], keys: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """Each loss term's mean over the last quarter of each run's log."""
    result: dict[str, dict[str, list[float]]] = {variant: {} for variant in curves}
    for variant, runs in curves.items():
        for records in runs:
            tail = records[len(records) - max(1, len(records) // 4):]
            for key in keys:
                values = [record[key] for record in tail if key in record]
                if values:
                    result[variant].setdefault(key, []).append(statistics.fmean(values))
    return result


# ---------------------------------------------------------------------------------------------
# Comparing.

def compare(values: dict[str, dict[str, list[float]]], baseline: str,
            keys: Sequence[tuple[str, bool | None]]) -> list[dict]:
    """One row per (key, variant other than the baseline) where both have values: the spreads,
    the difference, the difference in standard errors and the verdict."""
    rows = []
    for key, higher_is_better in keys:
        reference = values.get(baseline, {}).get(key)
        if not reference:
            continue
        for variant, by_key in values.items():
            if variant == baseline or not by_key.get(key):
                continue
            result = difference(reference, by_key[key])
            rows.append({"key": key, "variant": variant,
                         "better": {True: "higher", False: "lower", None: None}[higher_is_better],
                         "baseline_mean": result.baseline.mean, "baseline_sd": result.baseline.sd,
                         "baseline_n": result.baseline.n, "mean": result.variant.mean, "sd": result.variant.sd,
                         "n": result.variant.n, "difference": result.difference,
                         "standard_error": result.standard_error, "standard_errors": result.standard_errors,
                         "verdict": result.verdict(higher_is_better)})
    return rows


def judge_variants(score_rows: list[dict], variants: Sequence[str], baseline: str,
                   primary: Sequence[str]) -> list[dict]:
    """Each variant's verdict over all scores: "better" (better on a primary score, worse on
    none), "worse" (worse on some, better on none), "mixed", "within noise", or "too few seeds"."""
    judged = []
    for variant in variants:
        if variant == baseline:
            continue
        rows = [row for row in score_rows if row["variant"] == variant]
        better = [row["key"] for row in rows if row["verdict"] == "better"]
        worse = [row["key"] for row in rows if row["verdict"] == "worse"]
        if not rows or all(row["verdict"] == "too few seeds" for row in rows):
            verdict = "too few seeds"
        elif any(key in primary for key in better) and not worse:
            verdict = "better"
        elif worse and not better:
            verdict = "worse"
        elif worse and better:
            verdict = "mixed"
        else:
            verdict = "within noise"
        gain = sum(row["standard_errors"] * (1 if row["better"] == "higher" else -1) for row in rows
                   if row["key"] in primary and math.isfinite(row["standard_errors"]))
        judged.append({"variant": variant, "verdict": verdict, "better_on": better, "worse_on": worse,
                       "primary_gain": gain})
    return judged


def options_of(flags: Sequence[str]) -> dict[str, str | None]:
    """{"--upsample": "antialias", "--spectral-norm": None} from a variant's flags."""
    options: dict[str, str | None] = {}
    for index, token in enumerate(flags):
        if token.startswith("--"):
            following = flags[index + 1] if index + 1 < len(flags) else None
            options[token] = following if following is not None and not following.startswith("--") else None
    return options


def flags_of(options: dict[str, str | None]) -> list[str]:
    return [part for option, value in options.items() for part in ([option] if value is None else [option, value])]


def combinations(variant_flags: dict[str, list[str]], baseline: str) -> set[str]:
    """Variants that combine two or more of the others (every option of each in theirs): "all"."""
    options = {name: set(options_of(flags).items()) for name, flags in variant_flags.items() if name != baseline}
    return {name for name, mine in options.items()
            if sum(1 for other, theirs in options.items() if other != name and theirs and theirs <= mine) >= 2}


def recipe(judged: list[dict], variant_flags: dict[str, list[str]], baseline: str) -> dict:
    """The flags of a preset holding exactly the winning options: those of the single-option
    variants judged "better" (a combination variant is reported, never a source of options)."""
    combined = combinations(variant_flags, baseline)
    verdicts = {row["variant"]: row["verdict"] for row in judged}
    winners = [row for row in judged if row["verdict"] == "better" and row["variant"] not in combined]
    notes: list[str] = []
    kept: list[str] = []
    owners: dict[str, str] = {}  # option -> the winner that sets it
    for row in sorted(winners, key=lambda row: -row["primary_gain"]):  # the larger gain settles a conflict
        mine = options_of(variant_flags[row["variant"]])
        clash = [option for option, value in mine.items()
                 if option in owners and options_of(variant_flags[owners[option]])[option] != value]
        if clash:
            notes.append(f"'{row['variant']}' also wins but sets {', '.join(clash)} otherwise than "
                         f"'{owners[clash[0]]}', whose gain on the primary scores is larger: left out")
            continue
        kept.append(row["variant"])
        for option in mine:
            owners.setdefault(option, row["variant"])
    kept = [name for name in variant_flags if name in kept]  # in the suite's order
    chosen: dict[str, str | None] = {}
    for name in kept:
        for option, value in options_of(variant_flags[name]).items():
            chosen.setdefault(option, value)
    if len(kept) > 1:
        tested = [name for name, flags in variant_flags.items() if options_of(flags) == chosen]
        if tested:
            notes.append(f"this combination was trained as '{tested[0]}': {verdicts.get(tested[0], 'no runs')}")
        else:
            notes.append("this combination was not trained as one variant: compare it with the baseline before "
                         "adding the preset (options that win alone need not add up)")
    return {"flags": flags_of(chosen), "winners": kept, "notes": notes}


def recipe_line(result: dict, baseline: str) -> str:
    if not result["winners"]:
        return (f"recipe improved: none (no option beat '{baseline}' by more than {NOISE_LIMIT:g} standard errors on "
                f"a primary score without being worse on another): keep the preset out")
    return f"recipe improved: {shlex.join(result['flags'])}  (winners: {', '.join(result['winners'])})"


# ---------------------------------------------------------------------------------------------
# Tables and the plot.

def _number(value: float, spec: str = ".4f") -> str:
    return "nan" if value is None or math.isnan(value) else format(value, spec)


def comparison_table(values: dict[str, dict[str, list[float]]], rows: list[dict], baseline: str,
                     keys: Sequence[tuple[str, bool | None]], label: str) -> list[str]:
    """Markdown: per key, the baseline's spread, then every variant against it."""
    lines = [f"| {label} | variant | mean ± sd (n) | − baseline | in std. errors | verdict |",
             "|---|---|---|---|---|---|"]
    for key, higher_is_better in keys:
        reference = values.get(baseline, {}).get(key)
        these = [row for row in rows if row["key"] == key]
        if not reference or not these:
            continue
        base = spread(reference)
        lines.append(f"| {' '.join(filter(None, (key, arrow(higher_is_better))))} | {baseline} | {_number(base.mean)} ± {_number(base.sd)} "
                     f"({base.n}) | | | baseline |")
        for row in these:
            lines.append(f"| | {row['variant']} | {_number(row['mean'])} ± {_number(row['sd'])} ({row['n']}) | "
                         f"{_number(row['difference'], '+.4f')} | {_number(row['standard_errors'], '+.2f')} | "
                         f"{row['verdict']} |")
    return lines


def variants_table(judged: list[dict], variant_flags: dict[str, list[str]]) -> list[str]:
    lines = ["| variant | flags | verdict | better on | worse on |", "|---|---|---|---|---|"]
    for row in judged:
        lines.append(f"| {row['variant']} | `{shlex.join(variant_flags[row['variant']]) or '(none)'}` | "
                     f"{row['verdict']} | {', '.join(row['better_on']) or '–'} | {', '.join(row['worse_on']) or '–'} |")
    return lines


COLOUR_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan")


def plot_curves(curves: dict[str, list[list[dict]]], keys: Sequence[str], path: Path, title: str | None = None) -> None:
    """One panel per loss term; one colour per variant, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key in keys if any(key in records[0] for runs in curves.values() for records in runs if records)]
    if not keys:
        return
    columns = 4
    rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    colours = {variant: f"C{index % 10}" for index, variant in enumerate(curves)}
    for axis, key in zip(axes.flat, keys):
        for variant, runs in curves.items():
            for index, records in enumerate(runs):
                points = [(r["iteration"], r[key]) for r in records if key in r]
                if points:
                    x, y = zip(*points)
                    axis.plot(x, y, color=colours[variant], alpha=0.6, linewidth=1,
                              label=variant if index == 0 else None)
        axis.set_title(key)
        axis.set_xlabel("iteration")
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(title or ", ".join(f"{variant} ({COLOUR_NAMES[index % 10]})" for index, variant in enumerate(curves))
                    + "; one line per seed")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def seed_commands(out: Path, seed: int) -> list[str]:
    """The `cyclegan` lines of a seed's commands.sh (written by `cyclegan experiment`)."""
    path = seed_dir(out, seed) / "commands.sh"
    return [line for line in path.read_text().splitlines() if line.startswith("cyclegan")] if path.exists() else []


# ---------------------------------------------------------------------------------------------
# The study.

@dataclass
class Study:
    suite: str
    out: Path
    seeds: list[int]
    variants: list[str]          # the suite's variants compared, the baseline among them
    baseline: str
    primary: tuple[str, ...] = PRIMARY
    data: Path | None = None
    iterations: int | None = None
    minutes: float | None = None
    parallel: int = 1
    eval_flags: str = ""
    train_flags: list[str] = field(default_factory=list)
    warm_up: bool = True

    @property
    def variant_flags(self) -> dict[str, list[str]]:
        from cyclegan.studies.suites import SUITES

        return {variant.name: variant.flags for variant in SUITES[self.suite] if variant.name in self.variants}

    @property
    def proposes_preset(self) -> bool:
        """Whether the winners make a preset (the improvements suite), so the recipe line means something."""
        from cyclegan.studies.suites import PRESET_SUITES

        return self.suite in PRESET_SUITES


def experiment_command(study: Study, seed: int, only: Sequence[str], out: Path | None = None,
                       iterations: int | None = None) -> list[str]:
    """`cyclegan experiment` for some variants of one seed; --resume keeps what is finished."""
    if iterations is not None or study.minutes is None:
        budget = ["--iters", str(iterations or study.iterations)]
    else:
        budget = ["--minutes", str(study.minutes)]
    command = [sys.executable, "-m", "cyclegan", "experiment", study.suite, "--data", str(study.data),
               "--out", str(out or seed_dir(study.out, seed)), *budget, "--seed", str(seed), "--resume",
               "--only", ",".join(only)]
    if study.eval_flags:
        command.append(f"--eval-flags={study.eval_flags}")
    return command + (["--", *study.train_flags] if study.train_flags else [])


@functools.lru_cache(maxsize=None)
def evaluate_has_option(option: str) -> bool:
    """Whether this version of `cyclegan evaluate` takes `option` (--pick arrives with the best checkpoint)."""
    result = subprocess.run([sys.executable, "-m", "cyclegan", "evaluate", "--help"], capture_output=True, text=True)
    return option in result.stdout


def evaluate_best(study: Study, seed: int, variant: str, log: Path) -> str | None:
    """Evaluate the run's best checkpoint into evaluation_best.json; None where the run kept none."""
    run = run_folder(study.out, seed, variant)
    marker = run / "checkpoints" / "best.json"
    if not marker.exists():
        return None
    report = run / REPORTS["best"]
    if report.exists() and report.stat().st_mtime >= marker.stat().st_mtime:
        return "best checkpoint: evaluated before"
    if not evaluate_has_option("--pick"):
        return "best checkpoint: not evaluated (this `cyclegan evaluate` has no --pick)"
    command = [sys.executable, "-m", "cyclegan", "evaluate", str(run), "--pick", "best", "--data", str(study.data),
               "--out", str(report), *shlex.split(study.eval_flags)]
    code = _run_logged(command, log, mode="a")
    return "best checkpoint: evaluated" if code == 0 else f"best checkpoint: evaluation FAILED (exit {code}; see {log})"


def _run_logged(command: list[str], log: Path, mode: str = "w") -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, mode, encoding="utf-8") as handle:
        handle.write(shlex.join(command) + "\n")
        handle.flush()
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode


def run_study(study: Study) -> None:
    """Train and evaluate every (variant, seed) not finished yet, --parallel at a time, then write
    each seed's tables (results.md, results.csv, commands.sh) over all its finished variants."""
    from cyclegan.errors import CycleGANError
    from cyclegan.studies.suites import run_suite, variant_slug

    study.out.mkdir(parents=True, exist_ok=True)
    logs = study.out / "logs"
    if study.parallel > 1 and study.warm_up:
        # Evaluations started together each train the FCN-score segmenter when it is not cached yet
        # (and four at once stalled on a GPU: docs/PERFORMANCE.md); a 1-iteration run evaluated
        # first caches it, and the Inception weights, for all.
        started = time.perf_counter()
        code = _run_logged(experiment_command(study, study.seeds[0], [study.baseline], study.out / "warm_up", 1),
                           logs / "warm_up.log")
        print(f"warm-up (caches the evaluation's networks): {'ok' if code == 0 else f'FAILED (exit {code})'}, "
              f"{(time.perf_counter() - started) / 60:.1f} min", flush=True)

    def modified(path: Path) -> int | None:
        return path.stat().st_mtime_ns if path.exists() else None

    def run(job: tuple[str, int]) -> tuple[str, int, int, float, str | None]:
        variant, seed = job
        log = logs / f"seed_{seed}.{variant_slug(variant)}.log"
        report = run_folder(study.out, seed, variant) / REPORTS["final"]
        before = modified(report)
        started = time.perf_counter()
        code = _run_logged(experiment_command(study, seed, [variant]), log)
        kept = code == 0 and before is not None and modified(report) == before
        notes = ["kept from an earlier call"] if kept else []
        best = evaluate_best(study, seed, variant, log) if code == 0 else None
        return variant, seed, code, time.perf_counter() - started, "; ".join(notes + ([best] if best else [])) or None

    # Variant by variant, so that a study cut short compares its first variants over every seed.
    jobs = [(variant, seed) for variant in study.variants for seed in study.seeds]
    finished: dict[int, list[str]] = {seed: [] for seed in study.seeds}
    with ThreadPoolExecutor(max_workers=study.parallel) as pool:
        for variant, seed, code, seconds, best in pool.map(run, jobs):
            log = logs / f"seed_{seed}.{variant_slug(variant)}.log"
            status = "ok" if code == 0 else f"FAILED (exit {code}; see {log})"
            print(f"seed {seed}, {variant}: {status}, {seconds / 60:.1f} min" + (f"; {best}" if best else ""), flush=True)
            if code == 0:
                finished[seed].append(variant)
    for seed, variants in finished.items():
        if variants:  # every run is finished: this trains nothing, it only writes the seed's tables
            try:
                run_suite(study.suite, study.data, seed_dir(study.out, seed), iterations=study.iterations,
                          minutes=study.minutes, seed=seed, extra_train_flags=study.train_flags,
                          extra_eval_flags=shlex.split(study.eval_flags), only=variants, resume=True)
            except CycleGANError as error:
                print(f"seed {seed}: tables not written: {error}", file=sys.stderr)


def summarize(study: Study) -> dict | None:
    """Compare every variant with the baseline; write study.md, study.json and loss_curves.png.
    Returns the study's JSON, or None when no run has finished."""
    score_keys = [(score.key, score.higher_is_better) for score in SCORES]
    losses = loss_keys()
    flags = study.variant_flags
    sections: dict[str, dict] = {}
    values_of: dict[str, dict] = {}
    for report in REPORTS:
        values = read_scores(study.out, study.seeds, study.variants, report)
        rows = compare(values, study.baseline, score_keys)
        if not rows:
            continue
        present = {row["key"] for row in rows}
        primary = tuple(key for key in study.primary if key in present) or tuple(sorted(present))
        judged = judge_variants(rows, study.variants, study.baseline, primary)
        values_of[report] = values
        sections[report] = {"primary": list(primary), "scores": rows, "variants": judged,
                            "recipe": recipe(judged, flags, study.baseline)}
    curves = read_curves(study.out, study.seeds, study.variants)
    late = late_means(curves, losses)
    loss_rows = compare(late, study.baseline, [(key, None) for key in losses])
    if not sections and not loss_rows:
        print(f"no finished runs of {', '.join(study.variants)} under {study.out}", file=sys.stderr)
        return None
    expected = len(study.seeds) * len(study.variants)
    done = sum((run_folder(study.out, seed, variant) / REPORTS["final"]).exists()
               for seed in study.seeds for variant in study.variants)
    lines = [f"# Seeded study `{study.suite}`: {len(study.variants)} variants × {len(study.seeds)} seeds "
             f"({', '.join(map(str, study.seeds))}), baseline '{study.baseline}'", "",
             f"Runs finished: {done} of {expected}" + ("." if done == expected else
                                                        " (the study is not finished: the verdicts are provisional)."),
             ""]
    commands = seed_commands(study.out, study.seeds[0])
    if commands:
        lines += [f"Commands of seed {study.seeds[0]} (the other seeds differ only in `--seed`):", "", "```",
                  *commands, "```", ""]
    for report, section in sections.items():
        lines += [f"## {report.capitalize()} checkpoints", "",
                  f"Primary scores: {', '.join(section['primary'])}.", "",
                  *variants_table(section["variants"], flags), ""]
        if study.proposes_preset:
            lines += [("(provisional) " if done < expected else "") + recipe_line(section["recipe"], study.baseline), ""]
            lines += [f"- {note}" for note in section["recipe"]["notes"]]
        lines += ["", "Scores (↑ higher is better, ↓ lower is better):", "",
                  *comparison_table(values_of[report], section["scores"], study.baseline, score_keys, "score"), ""]
    if loss_rows:
        lines += ["## Loss terms", "", "Mean over the last quarter of each run's log (no direction is better):", "",
                  *comparison_table(late, loss_rows, study.baseline, [(key, None) for key in losses], "loss term"), ""]
    lines += [f"Verdicts: a difference counts only beyond {NOISE_LIMIT:g} standard errors, the standard error being "
              "sqrt(sd_baseline²/n_baseline + sd_variant²/n_variant) over seeds (sample standard deviations); else "
              "\"within noise\". A variant is \"better\" when it is better on a primary score and worse on none, "
              "\"worse\" when worse on some and better on none, \"mixed\" when both. With a few seeds and many scores "
              "a single 2-standard-error difference can be chance: a winner deserves a confirming run with new seeds."]
    (study.out / "study.md").write_text("\n".join(lines) + "\n")
    result = {"suite": study.suite, "baseline": study.baseline, "seeds": study.seeds, "variants": study.variants,
              "flags": flags, "runs": {"finished": done, "expected": expected}, "noise_limit": NOISE_LIMIT,
              "checkpoints": sections, "late_losses": loss_rows}
    (study.out / "study.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_curves(curves, losses, study.out / "loss_curves.png")
    print("\n".join(lines))
    for report, section in sections.items():
        if study.proposes_preset:
            print(f"[{report} checkpoints] " + recipe_line(section["recipe"], study.baseline))
    return result


def study_from_options(suite: str, out: Path, *, seeds: str = "0,1,2", baseline: str | None = None,
                       only: str | None = None, primary: str = ",".join(PRIMARY), data: Path | None = None,
                       iterations: int | None = None, minutes: float | None = None, parallel: int = 1,
                       eval_flags: str = "", train_flags: Sequence[str] = (), warm_up: bool = True,
                       summarize_only: bool = False) -> Study:
    """The study `cyclegan study` describes, its options checked; ConfigError says what is wrong."""
    from cyclegan.errors import ConfigError
    from cyclegan.studies.suites import SUITES, check_budget

    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'; choose one of {', '.join(SUITES)}")
    try:
        seed_list = [int(text) for text in seeds.split(",") if text.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {seeds!r}") from None
    if len(seed_list) < 2:
        raise ConfigError("--seeds needs at least two seeds: the comparison is against the spread between seeds")
    repeated = sorted({seed for seed in seed_list if seed_list.count(seed) > 1})
    if repeated:  # the same seed twice trains the same run twice, and that spread is no noise
        raise ConfigError(f"--seeds {seeds} repeats seed {repeated[0]}; give each seed once")
    names = [variant.name for variant in SUITES[suite]]
    baseline = baseline or names[0]
    chosen = [name.strip() for name in only.split(",")] if only else names
    unknown = [name for name in [baseline, *chosen] if name not in names]
    if unknown:
        raise ConfigError(f"suite {suite} has no variant {unknown[0]!r}; its variants: {', '.join(names)}")
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {parallel}")
    check_budget(iterations, minutes)
    primary_keys = tuple(key.strip() for key in primary.split(",") if key.strip())
    known = [score.key for score in SCORES]
    misspelt = [key for key in primary_keys if key not in known]
    if misspelt:  # it would be left out of the verdicts without a word
        raise ConfigError(f"--primary: no score {misspelt[0]!r}; the scores: {', '.join(known)}")
    if not summarize_only and (data is None or (iterations is None and minutes is None)):
        raise ConfigError("--data and a budget (--iters or --minutes) are required unless --summarize")
    return Study(suite=suite, out=Path(out), seeds=seed_list,
                 variants=[name for name in names if name in chosen or name == baseline], baseline=baseline,
                 primary=primary_keys,
                 data=None if data is None else Path(data), iterations=iterations, minutes=minutes,
                 parallel=parallel, eval_flags=eval_flags, train_flags=list(train_flags), warm_up=warm_up)


def run(study: Study, summarize_only: bool = False) -> int:
    """Train what is not finished (unless `summarize_only`), then write the comparison; 1 when no
    run has finished."""
    if not summarize_only:
        run_study(study)
    return 0 if summarize(study) is not None else 1
