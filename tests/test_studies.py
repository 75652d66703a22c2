"""`cyclegan study`: a suite over seeds, every variant compared with a baseline beyond the noise.

The runs are written by hand (OUT/seed_S/runs/<variant>/ with evaluation.json and log.jsonl) except
in the last test, which trains a tiny suite end to end.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cyclegan.cli import main
from cyclegan.studies import comparison, seeded as study


class Finished:
    """What a `cyclegan study` call returned and printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_study(capsys, *arguments: str) -> Finished:
    """`cyclegan study ARGUMENTS` in this process; flags after a bare `--` go to training."""
    capsys.readouterr()
    code = main(["study", *arguments])
    captured = capsys.readouterr()
    return Finished(code, captured.out, captured.err)



def write_run(out: Path, seed: int, variant: str, scores: dict, report: str = "evaluation.json",
              loss: float | None = None) -> Path:
    """A finished run written by hand: OUT/seed_S/runs/<slug>/ with an evaluation report and a log."""
    from cyclegan.studies.suites import variant_slug

    run = out / f"seed_{seed}" / "runs" / variant_slug(variant)
    run.mkdir(parents=True, exist_ok=True)
    report_json = {"segmentation": {"photo_to_labels": {"class_iou": scores["iou"]}, "ceiling": {"class_iou": 0.9}},
                   "directions": {"AtoB": {"kid": {"mean": scores["kid"], "std": 0.01}, "cycle_l1": scores["l1"]}}}
    (run / report).write_text(json.dumps(report_json))
    if loss is not None:
        records = [{"iteration": 10 * i, "loss_cycle_A": loss + i % 2} for i in range(1, 9)]
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


# Three seeds each. Class IoU (higher is better): paper defaults 0.20/0.22/0.24; spectral norm +0.10
# (6.1 standard errors: better); DiffAugment +0.01 (0.6: within noise); all +0.20 (better). KID
# (lower is better): DiffAugment +0.10 (12.2 standard errors: worse), the rest equal. Cycle L1
# (lower is better): DiffAugment -0.10 (better).
STUDY = {
    "paper defaults": [{"iou": 0.20, "kid": 0.10, "l1": 0.30}, {"iou": 0.22, "kid": 0.11, "l1": 0.31},
                       {"iou": 0.24, "kid": 0.12, "l1": 0.32}],
    "spectral norm": [{"iou": 0.30, "kid": 0.10, "l1": 0.30}, {"iou": 0.32, "kid": 0.11, "l1": 0.31},
                      {"iou": 0.34, "kid": 0.12, "l1": 0.32}],
    "DiffAugment": [{"iou": 0.21, "kid": 0.20, "l1": 0.20}, {"iou": 0.23, "kid": 0.21, "l1": 0.21},
                    {"iou": 0.25, "kid": 0.22, "l1": 0.22}],
    "all": [{"iou": 0.40, "kid": 0.10, "l1": 0.30}, {"iou": 0.42, "kid": 0.11, "l1": 0.31},
            {"iou": 0.44, "kid": 0.12, "l1": 0.32}],
}
STUDY_ARGS = ["improvements", "--only", "spectral norm,DiffAugment,all", "--baseline", "paper defaults",
              "--seeds", "0,1,2", "--summarize"]


def write_study(out: Path) -> None:
    for variant, seeds in STUDY.items():
        for seed, scores in enumerate(seeds):
            write_run(out, seed, variant, scores, loss=1.0 + seed / 10 + (0.5 if variant == "all" else 0.0))


def test_the_statistics_give_the_spread_the_standard_errors_and_a_verdict_in_the_scores_good_direction():
    result = comparison.difference([0.20, 0.22, 0.24], [0.30, 0.32, 0.34])
    assert (result.baseline.mean, result.baseline.sd, result.baseline.n) == (pytest.approx(0.22), pytest.approx(0.02), 3)
    assert result.difference == pytest.approx(0.10)
    assert result.standard_error == pytest.approx((2 * 0.02 ** 2 / 3) ** 0.5)
    assert result.standard_errors == pytest.approx(6.1237, abs=1e-4)
    assert [result.verdict(True), result.verdict(False), result.verdict(None)] == ["better", "worse", "higher"]
    assert comparison.difference([0.20, 0.22, 0.24], [0.10, 0.12, 0.14]).verdict(False) == "better"  # e.g. KID down
    assert comparison.difference([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]).verdict(True) == "within noise"  # 0.61 std. errors
    assert comparison.difference([1.0], [2.0]).verdict(True) == "too few seeds"
    assert comparison.difference([1.0, 1.0], [2.0, 2.0]).verdict(True) == "better"  # no spread at all: any gap counts
    assert comparison.difference([1.0, 1.0], [1.0, 1.0]).verdict(True) == "within noise"


def test_seeded_study_compares_every_variant_with_the_baseline_and_prints_the_winning_flags(tmp_path, capsys):
    write_study(tmp_path)
    result = run_study(capsys, *STUDY_ARGS, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "study.json").read_text())
    assert list(report["checkpoints"]) == ["final"]  # no run kept a best checkpoint
    assert report["runs"] == {"finished": 12, "expected": 12}
    final = report["checkpoints"]["final"]
    rows = {(row["key"], row["variant"]): row for row in final["scores"]}
    iou = rows["segmentation.photo_to_labels.class_iou", "spectral norm"]
    assert (iou["baseline_mean"], iou["baseline_sd"], iou["mean"], iou["n"]) == (
        pytest.approx(0.22), pytest.approx(0.02), pytest.approx(0.32), 3)
    assert iou["standard_errors"] == pytest.approx(6.1237, abs=1e-4) and iou["verdict"] == "better"
    assert rows["segmentation.photo_to_labels.class_iou", "DiffAugment"]["verdict"] == "within noise"
    assert rows["directions.AtoB.kid.mean", "DiffAugment"]["verdict"] == "worse"
    assert rows["directions.AtoB.cycle_l1", "DiffAugment"]["verdict"] == "better"
    assert rows["directions.AtoB.kid.mean", "spectral norm"]["verdict"] == "within noise"
    assert not any(row["key"].startswith("segmentation.ceiling") for row in final["scores"])  # not a model's score
    assert final["primary"] == ["segmentation.photo_to_labels.class_iou", "directions.AtoB.kid.mean"]
    assert [(v["variant"], v["verdict"]) for v in final["variants"]] == [
        ("spectral norm", "better"), ("DiffAugment", "mixed"), ("all", "better")]
    # "all" combines the others, so it is never a source of options: the preset is spectral norm alone.
    assert final["recipe"] == {"flags": ["--spectral-norm"], "winners": ["spectral norm"], "notes": []}
    assert "[final checkpoints] recipe improved: --spectral-norm  (winners: spectral norm)" in result.stdout
    # Loss terms: the mean of the last quarter (values loss + 1, loss + 0 -> loss + 0.5) per seed.
    (loss,) = [row for row in report["late_losses"] if row["key"] == "loss_cycle_A" and row["variant"] == "all"]
    assert (loss["baseline_mean"], loss["mean"], loss["verdict"]) == (pytest.approx(1.6), pytest.approx(2.1), "higher")
    markdown = (tmp_path / "study.md").read_text()
    assert "| segmentation.photo_to_labels.class_iou ↑ | paper defaults | 0.2200 ± 0.0200 (3) | | | baseline |" in markdown
    assert "| | spectral norm | 0.3200 ± 0.0200 (3) | +0.1000 | +6.12 | better |" in markdown
    assert "| directions.AtoB.kid.mean ↓ |" in markdown and "## Best checkpoints" not in markdown
    assert (tmp_path / "loss_curves.png").stat().st_size > 0


def test_a_best_checkpoint_is_compared_beside_the_final_one_where_the_runs_kept_one(tmp_path, capsys):
    write_study(tmp_path)
    for variant, seeds in STUDY.items():
        for seed, scores in enumerate(seeds):  # at its best, DiffAugment is as good as spectral norm
            best = {**scores, "kid": 0.11 + seed / 100, "iou": scores["iou"] + (0.10 if variant == "DiffAugment" else 0)}
            write_run(tmp_path, seed, variant, best, report="evaluation_best.json")
    result = run_study(capsys, *STUDY_ARGS, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    checkpoints = json.loads((tmp_path / "study.json").read_text())["checkpoints"]
    assert list(checkpoints) == ["final", "best"]
    assert checkpoints["final"]["recipe"]["flags"] == ["--spectral-norm"]
    assert checkpoints["best"]["recipe"]["flags"] == ["--spectral-norm", "--diff-augment", "color,translation,cutout"]
    assert checkpoints["best"]["recipe"]["notes"] == [
        "this combination was not trained as one variant: compare it with the baseline before adding the preset "
        "(options that win alone need not add up)"]
    assert "[best checkpoints] recipe improved: --spectral-norm --diff-augment color,translation,cutout" in result.stdout
    assert "## Best checkpoints" in (tmp_path / "study.md").read_text()


def test_the_recipe_is_none_when_nothing_wins_and_one_up_sampling_when_two_win(tmp_path):
    from cyclegan.studies.suites import SUITES

    flags = {variant.name: variant.flags for variant in SUITES["improvements"]}

    def judged(**verdicts):
        return [{"variant": name, "verdict": verdicts.get(name, ("within noise", 0))[0], "better_on": [],
                 "worse_on": [], "primary_gain": verdicts.get(name, ("within noise", 0))[1]}
                for name in flags if name != "paper defaults"]

    nothing = study.recipe(judged(), flags, "paper defaults")
    assert nothing == {"flags": [], "winners": [], "notes": []}
    assert study.recipe_line(nothing, "paper defaults") == (
        "recipe improved: none (no option beat 'paper defaults' by more than 2 standard errors on a primary score "
        "without being worse on another): keep the preset out")
    clash = study.recipe(judged(**{"resize-conv up-sampling": ("better", 3.0), "anti-aliased sampling": ("better", 5.0)}),
                         flags, "paper defaults")
    assert clash["flags"] == ["--antialias", "--upsample", "antialias"]
    assert clash["notes"] == ["'resize-conv up-sampling' also wins but sets --upsample otherwise than "
                              "'anti-aliased sampling', whose gain on the primary scores is larger: left out"]
    everything = study.recipe(judged(**{"anti-aliased sampling": ("better", 3.0), "spectral norm": ("better", 3.0),
                                        "DiffAugment": ("better", 3.0), "all": ("worse", -4.0)}), flags, "paper defaults")
    assert everything["flags"] == ["--antialias", "--upsample", "antialias", "--spectral-norm", "--diff-augment",
                                   "color,translation,cutout"]
    assert everything["notes"] == ["this combination was trained as 'all': worse"]


def test_only_a_run_that_kept_a_best_checkpoint_has_it_evaluated(tmp_path, monkeypatch):
    plan = study.Study(suite="improvements", out=tmp_path, seeds=[0, 1], variants=["paper defaults"],
                       baseline="paper defaults", data=tmp_path / "data", iterations=10)
    run = write_run(tmp_path, 0, "paper defaults", STUDY["paper defaults"][0])
    assert study.evaluate_best(plan, 0, "paper defaults", tmp_path / "log") is None  # final checkpoint only
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.json").write_text('{"iteration": 5}')
    monkeypatch.setattr(study, "evaluate_has_option", lambda option: False)
    assert study.evaluate_best(plan, 0, "paper defaults", tmp_path / "log") == (
        "best checkpoint: not evaluated (this `cyclegan evaluate` has no --pick)")
    monkeypatch.setattr(study, "evaluate_has_option", lambda option: True)
    monkeypatch.setattr(study, "_run_logged", lambda command, log, mode="w": calls.append(command) or 0)
    calls = []
    assert study.evaluate_best(plan, 0, "paper defaults", tmp_path / "log") == "best checkpoint: evaluated"
    assert calls[0][3:] == ["evaluate", str(run), "--pick", "best", "--data", str(tmp_path / "data"),
                            "--out", str(run / "evaluation_best.json")]


def test_the_warm_up_trains_the_baseline_one_iteration_with_the_studys_flags(tmp_path):
    plan = study.Study(suite="improvements", out=tmp_path, seeds=[3, 4], variants=["paper defaults", "all"],
                       baseline="paper defaults", data=Path("d"), iterations=1000, eval_flags="--no-fid",
                       train_flags=["--ngf", "16"])
    command = study.experiment_command(plan, 3, ["paper defaults"], tmp_path / "warm_up", 1)
    assert command[3:] == ["experiment", "improvements", "--data", "d", "--out", str(tmp_path / "warm_up"), "--iters",
                           "1", "--seed", "3", "--resume", "--only", "paper defaults", "--eval-flags=--no-fid", "--",
                           "--ngf", "16"]
    assert study.experiment_command(plan, 4, ["all"])[9:13] == ["--iters", "1000", "--seed", "4"]


def test_seeded_study_trains_every_variant_and_seed_and_writes_each_seeds_tables(tmp_path, capsys):
    from cyclegan.data.synth import generate_synthetic_dataset

    data = tmp_path / "synth"
    generate_synthetic_dataset(data, size=32, n_train=4, n_test=2, seed=0)
    out = tmp_path / "study"
    result = run_study(capsys, "lambda", "--only", "lambda=1", "--baseline", "lambda=10", "--data", str(data),
                       "--out", str(out), "--iters", "1", "--seeds", "0,1", "--parallel", "2", "--no-warm-up",
                       f"--eval-flags=--no-fid --segmenter-steps 2 --segmenter-size 32 --cache {tmp_path}",
                       "--", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "36",
                       "--crop-size", "32", "--num-workers", "0", "--no-tensorboard", "--lambda-identity", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    for seed in (0, 1):
        for variant in ("lambda=1", "lambda=10"):
            assert f"seed {seed}, {variant}: ok" in result.stdout
        rows = list(csv.DictReader(open(out / f"seed_{seed}" / "results.csv")))
        assert [row["variant"] for row in rows] == ["lambda=1", "lambda=10"]
    report = json.loads((out / "study.json").read_text())
    assert report["runs"] == {"finished": 4, "expected": 4} and report["variants"] == ["lambda=1", "lambda=10"]
    assert "recipe improved:" not in result.stdout  # a sweep of one option proposes no preset


@pytest.mark.parametrize("arguments, message", [
    (["--seeds", "0"], "--seeds needs at least two seeds"),
    (["--seeds", "0,x"], "--seeds takes comma-separated integers, got '0,x'"),
    (["--baseline", "lambda=3"], "suite lambda has no variant 'lambda=3'; its variants: lambda=1, lambda=5"),
    ([], "--data and a budget (--iters or --minutes) are required unless --summarize"),
    # Two runs of one seed are the same run: their spread is no noise, and every difference looked significant.
    (["--seeds", "1,1", "--iters", "1"], "--seeds 1,1 repeats seed 1; give each seed once"),
    (["--iters", "0"], "--iters must be at least 1, got 0"),
    (["--minutes", "0"], "--minutes must be a positive number, got 0"),
    (["--parallel", "0", "--iters", "1"], "--parallel must be at least 1, got 0"),
    # A misspelt primary score used to drop out of the verdicts without a word.
    (["--primary", "segmentation.photo_to_labels.class_io"],
     "--primary: no score 'segmentation.photo_to_labels.class_io'; the scores: segmentation.photo_to_labels."
     "pixel_accuracy, "),
])
def test_a_study_with_bad_options_stops_with_one_line_saying_what_to_change(tmp_path, capsys, arguments, message):
    result = run_study(capsys, "lambda", "--out", str(tmp_path), *arguments)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("cyclegan study: error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "study.md").exists()
