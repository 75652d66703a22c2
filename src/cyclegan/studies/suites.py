"""Experiment suites (`cyclegan experiment`): train several variants under one budget, evaluate each, write the tables.

Every variant is trained and evaluated by running the very `cyclegan train` and
`cyclegan evaluate` command lines that the tables print, so a row of a table can be
reproduced by copying its commands. Variants of a suite share the data, the seed, the budget
(iterations or minutes) and every flag given after `--`.
"""
from __future__ import annotations

import csv
import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cyclegan.data.layout import is_paired, iterations_per_epoch, training_dataset
from cyclegan.errors import ConfigError, CycleGANError, DatasetError
from cyclegan.fileio import unwritable_reason, write_text_atomic


@dataclass
class Variant:
    name: str
    flags: list[str] = field(default_factory=list)
    paired: bool = False  # trains on paired data (pix2pix)


SUITES: dict[str, list[Variant]] = {
    # The paper's Table 4 ablation, plus pix2pix trained on pairs as the upper bound (Tables 1-2).
    "ablation": [
        Variant("Cycle alone", ["--no-gan"]),
        Variant("GAN alone", ["--cycle", "none"]),
        Variant("GAN + forward cycle", ["--cycle", "forward"]),
        Variant("GAN + backward cycle", ["--cycle", "backward"]),
        Variant("CycleGAN", []),
        Variant("pix2pix", ["--model", "pix2pix"], paired=True),
    ],
    "lambda": [Variant(f"lambda={value}", ["--lambda-A", str(value), "--lambda-B", str(value)])
               for value in (1, 5, 10, 20)],
    "d_ratio": [Variant(f"d_ratio={value}", ["--d-ratio", str(value)]) for value in (1, 2, 4)],
    "lr": [Variant(f"lr={value}", ["--lr", str(value)]) for value in ("1e-4", "2e-4", "4e-4")],
    "pix2pix": [Variant("CycleGAN", []), Variant("pix2pix", ["--model", "pix2pix"], paired=True)],
    # Does reduced precision change results? (bf16 autocast against float32; see
    # benchmarks/studies/precision_parity.py for the study over several seeds.)
    "precision": [Variant("fp32", ["--precision", "fp32"]), Variant("bf16", ["--precision", "bf16"])],
    # Issue #13's optional improvements, each alone and all together, against the paper's defaults
    # (`cyclegan study` compares them over seeds; docs/RESULTS.md (e)). Only one
    # up-sampling can be on, so "all" takes the anti-aliased one, as CUT does.
    "improvements": [
        Variant("paper defaults", []),
        Variant("resize-conv up-sampling", ["--upsample", "resize_conv"]),
        Variant("anti-aliased sampling", ["--antialias", "--upsample", "antialias"]),
        Variant("spectral norm", ["--spectral-norm"]),
        Variant("DiffAugment", ["--diff-augment", "color,translation,cutout"]),
        Variant("all", ["--antialias", "--upsample", "antialias", "--spectral-norm",
                        "--diff-augment", "color,translation,cutout"]),
    ],
    # Issue #23: CUT and FastCUT (Park et al. 2020) beside CycleGAN. A CUT run learns one direction,
    # so each is trained both ways to meet CycleGAN's two (benchmarks/studies/cut_study.sh).
    "cut": [
        Variant("CycleGAN", []),
        Variant("CUT", ["--model", "cut"]),
        Variant("FastCUT", ["--model", "fastcut"]),
        Variant("CUT BtoA", ["--model", "cut", "--direction", "BtoA"]),
        Variant("FastCUT BtoA", ["--model", "fastcut", "--direction", "BtoA"]),
    ],
}


# The suites whose winners make a preset: `cyclegan study` prints the `--recipe` line only for these
# (a comparison of models, as "cut", has no options to add up).
PRESET_SUITES = frozenset({"improvements"})


def variant_slug(name: str) -> str:
    """The folder name of a variant's run: runs/<slug>, and <slug>.train.log beside it."""
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def iterations_per_epoch_of(train_argv: list[str]) -> int:
    """Iterations per epoch of the run that `cyclegan train` with these flags would make: the
    dataset layout and the batch size decide, as in the trainer."""
    from cyclegan.cli import build_parser
    from cyclegan.cli.options import config_from_args

    config = config_from_args(build_parser().parse_args(["train", *train_argv]))
    return iterations_per_epoch(len(training_dataset(config)), config.data.batch_size)


def train_command(data: Path, runs_dir: Path, name: str, seed: int, iterations: int | None, minutes: float | None,
                  flags: list[str]) -> list[str]:
    """The `cyclegan train` command line of one variant, with the suite's budget."""
    run_flags = ["--data", str(data), "--runs-dir", str(runs_dir), "--name", name, "--seed", str(seed), "--no-progress"]
    budget = budget_flags(iterations, minutes, iterations_per_epoch_of(run_flags + flags))
    return [sys.executable, "-m", "cyclegan", "train", *run_flags, *budget, *flags]


def budget_flags(iterations: int | None, minutes: float | None, epoch_iterations: int) -> list[str]:
    """Same budget for every variant. With iterations the schedule is the paper's shape squeezed
    into the budget (constant for the first half, then linear decay); with minutes the rate
    stays constant, since the number of iterations is not known in advance."""
    if iterations is not None:
        total_epochs = max(2, math.ceil(iterations / epoch_iterations))
        constant = max(1, total_epochs // 2)
        return ["--max-iters", str(iterations), "--epochs", str(constant), "--epochs-decay", str(total_epochs - constant)]
    return ["--max-minutes", str(minutes), "--epochs", "100000", "--epochs-decay", "0"]


def paired_training_data(data: Path, out: Path) -> Path | None:
    """Where pix2pix finds pairs: the synthetic set gets paired training scenes generated beside it
    (same scenes as its trainA); a set whose trainA/trainB share file names is paired already."""
    description = data / "classes.json"
    if description.exists():
        from cyclegan.data.synth import generate_paired_training_set

        info = json.loads(description.read_text())
        paired = out / "paired_train"
        if not (paired / "trainB").is_dir():
            generate_paired_training_set(paired, size=info["size"], n_train=info["n_train"], seed=info["seed"])
        return paired
    return data if is_paired(data) else None


def flatten(report: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested report as {"a.b.c": value}."""
    flat = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def _run(command: list[str], log_path: Path) -> float:
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise CycleGANError(f"`{shlex.join(command)}` failed (exit {result.returncode}); see {log_path}")
    return time.perf_counter() - started


def check_budget(iterations: int | None, minutes: float | None) -> None:
    """ConfigError for a training budget that trains nothing."""
    if iterations is not None and iterations < 1:
        raise ConfigError(f"--iters must be at least 1, got {iterations}")
    if minutes is not None and not 0 < minutes < math.inf:
        raise ConfigError(f"--minutes must be a positive number, got {minutes:g}")


def run_suite(suite: str, data: Path, out: Path, *, iterations: int | None = None, minutes: float | None = None,
              seed: int = 0, extra_train_flags: list[str] | None = None, extra_eval_flags: list[str] | None = None,
              only: list[str] | None = None, columns: list[str] | None = None, resume: bool = False) -> list[dict]:
    """Train and evaluate every variant of `suite`; write results.csv, results.md and commands.sh.

    With `resume`, a variant already trained and evaluated in `out` by the same commands is kept
    as it is (and listed in the tables even when `only` leaves it out), and a training that was
    interrupted continues from its last checkpoint; without it every selected variant starts
    afresh. What a variant ran is recorded in `out/<slug>.run.json`."""
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'; choose one of {', '.join(SUITES)}")
    if (iterations is None) == (minutes is None):
        raise ConfigError("give exactly one budget: --iters N or --minutes M")
    check_budget(iterations, minutes)  # here, not in each variant's `train`, which would fail after --out is made
    data, out = Path(data), Path(out)
    unwritable = unwritable_reason(out)
    if unwritable:
        raise ConfigError(f"cannot write into --out {out}: {unwritable}; choose another --out folder")
    if not (data / "trainA").is_dir() or not (data / "trainB").is_dir():
        raise DatasetError(f"{data} needs trainA/ and trainB/ (and testA/ testB/ for the evaluation)")
    unknown = sorted(set(only or []) - {v.name for v in SUITES[suite]})
    if unknown:
        raise ConfigError(f"suite '{suite}' has no variant {', '.join(map(repr, unknown))}; "
                          f"its variants: {', '.join(v.name for v in SUITES[suite])}")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    commands = ["#!/usr/bin/env bash", f"# suite {suite}: the exact commands of every row of results.md", "set -e"]
    for variant in SUITES[suite]:
        selected = not only or variant.name in only
        slug = variant_slug(variant.name)
        record = _read_record(out / f"{slug}.run.json")
        if not selected and not (resume and record.get("row")):
            continue
        train_data = paired_training_data(data, out) if variant.paired else data
        if train_data is None:
            rows.append({"variant": variant.name, "status": "skipped: no paired training data"})
            continue
        run_dir = out / "runs" / slug
        train = train_command(train_data, out / "runs", slug, seed, iterations, minutes,
                              [*(extra_train_flags or []), *variant.flags])
        evaluate = [sys.executable, "-m", "cyclegan", "evaluate", str(run_dir), "--data", str(data),
                    "--out", str(run_dir / "evaluation.json"), *(extra_eval_flags or [])]
        planned = {"variant": variant.name, "train": _display(train), "evaluate": _display(evaluate)}
        same = resume and all(record.get(key) == value for key, value in planned.items())
        if same and record.get("row") and (run_dir / "evaluation.json").exists():
            rows.append(record["row"])
            commands += [f"# {variant.name}", planned["train"], planned["evaluate"]]
            continue
        if not selected:
            continue  # finished by other commands: neither kept nor run
        commands += [f"# {variant.name}", planned["train"], planned["evaluate"]]
        if same and (run_dir / "checkpoints" / "latest.json").exists():
            train = [sys.executable, "-m", "cyclegan", "train", "--resume", str(run_dir), "--no-progress"]
        elif run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / f"{slug}.run.json", json.dumps(planned, indent=2) + "\n")
        train_seconds = _run(train, out / f"{slug}.train.log")
        eval_seconds = _run(evaluate, out / f"{slug}.evaluate.log")
        iterations_done = _iterations(run_dir)
        report = json.loads((run_dir / "evaluation.json").read_text())
        row = {"variant": variant.name, "status": "ok", "iterations": iterations_done,
               "train_minutes": round(train_seconds / 60, 2), "eval_minutes": round(eval_seconds / 60, 2),
               **flatten(report)}
        rows.append(row)
        write_text_atomic(out / f"{slug}.run.json", json.dumps({**planned, "row": row}, indent=2) + "\n")
    (out / "commands.sh").write_text("\n".join(commands) + "\n")
    write_tables(rows, out, suite, columns, iterations, minutes, seed, extra_train_flags or [])
    return rows


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _display(command: list[str]) -> str:
    shown = ["cyclegan" if part == "cyclegan" and command[index - 1] == "-m" else part
             for index, part in enumerate(command)]
    return shlex.join(shown[2:] if shown[:2] == [sys.executable, "-m"] else shown)


def _iterations(run_dir: Path) -> int | None:
    latest = run_dir / "checkpoints" / "latest.json"
    return json.loads(latest.read_text())["iteration"] if latest.exists() else None


def write_tables(rows: list[dict], out: Path, suite: str, columns: list[str] | None, iterations, minutes, seed,
                 extra_flags: list[str]) -> None:
    keys = ["variant", "status", "iterations", "train_minutes", "eval_minutes"]
    metric_keys = sorted({key for row in rows for key in row if key not in keys})
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys + metric_keys)
        writer.writeheader()
        writer.writerows(rows)
    shown = columns or metric_keys
    budget = f"{iterations} iterations" if iterations is not None else f"{minutes} minutes"
    lines = [f"Suite `{suite}`: budget {budget} per variant, seed {seed}, common flags "
             f"`{shlex.join(extra_flags) or '(none)'}`. Exact commands: `commands.sh`.", "",
             "| variant | iterations | train min | " + " | ".join(shown) + " |",
             "|---|---|---|" + "---|" * len(shown)]
    for row in rows:
        cells = [_cell(row.get(key)) for key in shown]
        lines.append(f"| {row['variant']} | {row.get('iterations', '')} | {row.get('train_minutes', '')} | "
                     + " | ".join(cells) + " |")
        if row.get("status", "ok") != "ok":
            lines[-1] += f" {row['status']}"
    (out / "results.md").write_text("\n".join(lines) + "\n")


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
