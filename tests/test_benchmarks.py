"""The benchmark scripts run end to end at a tiny size and report every variant.

Smoke tests only: they check what is printed and written, never how fast anything is.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--ngf", "8", "--repeats", "1", "--warmup", "0", "--threads", "1"]


def run_script(name: str, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *arguments],
                          capture_output=True, text=True, timeout=timeout)


def load_benchmark(file_name: str, module_name: str):
    """A benchmarks/ script imported as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / file_name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def load_common():
    return load_benchmark("common.py", "benchmarks_common")


def table_rows(stdout: str, first_column: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.split()[:1] == [first_column]]


def test_train_step_reports_reference_and_each_variant_with_memory_and_floor(tmp_path):
    out = tmp_path / "train.json"
    result = run_script("train_step.py", "--size", "32", *TINY, "--variants", "fp32,fp32+cl+nobatch",
                        "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "s/iter" in result.stdout and "bf16 floor" in result.stdout
    assert [row[0] for row in table_rows(result.stdout, "reference")] == ["reference"]
    assert len(table_rows(result.stdout, "fp32")) == 1
    assert len(table_rows(result.stdout, "fp32+cl+nobatch")) == 1
    report = json.loads(out.read_text())
    assert list(report["variants"]) == ["reference", "fp32", "fp32+cl+nobatch"]
    reference = report["variants"]["reference"]
    assert reference["speedup"] == 1.0 and reference["peak_vs_reference"] == 1.0
    assert reference["flops"] == report["reference_flops"] > 0
    for variant in report["variants"].values():
        assert len(variant["times"]) == 1 and variant["peak_rss"] >= variant["rss_after_setup"] > 0
    assert report["floor"]["bf16_gflops"] > 0


def test_train_step_builds_the_candidate_from_the_single_variant_flags(tmp_path):
    out = tmp_path / "train.json"
    result = run_script("train_step.py", "--size", "32", *TINY, "--precision", "bf16", "--channels-last",
                        "--no-batch-generator-calls", "--no-memory", "--floor-gflops", "100", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert list(report["variants"]) == ["reference", "bf16+cl+nobatch"]
    assert report["floor"]["bf16_gflops"] == 100.0
    assert "peak_rss" not in report["variants"]["reference"]


def test_the_fused_variant_trains_with_fused_adam_and_keeps_the_learning_rate(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # train_step.py imports its neighbours by name
    train_step = load_benchmark("train_step.py", "benchmarks_train_step")
    variant = train_step.Variant.parse("fp32+fused")
    assert variant.name == "fp32+fused" and variant.fused_adam
    args = train_step.parse_args(["--size", "32", "--netG", "resnet_6blocks", *TINY, "--device", "cpu"])
    args.device = train_step.common.resolve_device(args.device)
    train_step.write_dataset(tmp_path / "data", 32)
    fused, plain = (train_step.build_trainer(train_step.Variant.parse(name), args, tmp_path)
                    for name in ("fp32+fused", "fp32"))
    for name in ("optimizer_g", "optimizer_d"):
        assert getattr(fused, name).defaults["fused"] is True and not getattr(plain, name).defaults["fused"]
        assert getattr(fused, name).param_groups[0]["lr"] == 0.0002
        assert getattr(fused, name).param_groups[0]["betas"] == (0.5, 0.999)
    assert sum(p.numel() for p in fused.optimizer_g.param_groups[0]["params"]) == \
        sum(p.numel() for p in fused.model.generator_parameters())


def test_translate_reports_every_size_and_variant(tmp_path):
    out = tmp_path / "translate.json"
    result = run_script("translate.py", "--sizes", "32,48x40", *TINY, "--variants", "fp32,bf16+cl,fp32+nonnpack",
                        "--probe-iterations", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "images/s" in result.stdout
    assert len(table_rows(result.stdout, "32x32")) == 4 and len(table_rows(result.stdout, "48x40")) == 4
    report = json.loads(out.read_text())
    assert list(report["sizes"]) == ["32x32", "48x40"]
    for size in report["sizes"].values():
        assert list(size["variants"]) == ["reference", "fp32", "bf16+cl", "fp32+nonnpack"]
        assert all(v["images_per_second"] > 0 and v["peak_rss"] > 0 for v in size["variants"].values())


def test_conv_throughput_reports_every_shape_in_both_dtypes(tmp_path):
    out = tmp_path / "conv.json"
    result = run_script("conv_throughput.py", "--size", "32", *TINY, "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "G res block" in result.stdout and "mix G+D" in result.stdout
    report = json.loads(out.read_text())
    shapes = report["passes"]["training"]["shapes"]
    assert len(shapes) == 12 * 4  # 7 generator + 5 discriminator shapes, 2 dtypes x 2 layouts
    assert {s["dtype"] for s in shapes} == {"fp32", "bf16"}
    assert set(report["passes"]["forward"]["generator_mix_best_layout_gflops"]) == {"fp32", "bf16"}


def test_an_unknown_variant_token_is_rejected_with_the_valid_ones():
    result = run_script("train_step.py", "--size", "32", "--variants", "fp8+cl")
    assert result.returncode == 2
    assert "unknown variant token 'fp8'" in result.stderr and "fp16" in result.stderr and "+nobatch" in result.stderr


def test_alternate_rotates_the_order_every_round():
    common = load_common()
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "AB"}
    times = common.alternate(steps, repeats=3, warmup=1)
    assert calls == ["A", "B", "A", "B", "B", "A", "A", "B"]
    assert {name: len(values) for name, values in times.items()} == {"A": 3, "B": 3}


@pytest.mark.parametrize("times, median, q1, q3", [([3.0], 3.0, 3.0, 3.0), ([4.0, 1.0, 3.0, 2.0, 5.0], 3.0, 2.0, 4.0)])
def test_summarize_gives_median_and_quartiles(times, median, q1, q3):
    summary = load_common().summarize(times)
    assert (summary.median, summary.q1, summary.q3, summary.min, summary.max) == (median, q1, q3, min(times), max(times))


def test_precision_parity_compares_the_precisions_against_the_spread_between_seeds(tmp_path):
    # Finished runs written by hand: seed s, precision p. Class IoU: fp32 0.60/0.62, bf16
    # 0.61/0.63 (difference 0.01, well inside the spread); cycle L1: fp32 0.100/0.101, bf16
    # 0.200/0.201 (difference 0.1 against a spread of 0.0007: outside the noise).
    values = {("fp32", 0): (0.60, 0.100), ("fp32", 1): (0.62, 0.101),
              ("bf16", 0): (0.61, 0.200), ("bf16", 1): (0.63, 0.201)}
    for (precision, seed), (iou, cycle) in values.items():
        run = tmp_path / f"seed_{seed}" / "runs" / precision
        run.mkdir(parents=True)
        report = {"segmentation": {"photo_to_labels": {"class_iou": iou}}, "directions": {"AtoB": {"cycle_l1": cycle}}}
        (run / "evaluation.json").write_text(json.dumps(report))
        records = [{"iteration": 10 * i, "loss_cycle_A": cycle * 10 + i % 2} for i in range(1, 9)]
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run_script("precision_parity.py", "--out", str(tmp_path), "--seeds", "0,1", "--summarize")
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in (tmp_path / "parity.md").read_text().splitlines() if line.startswith("| ")}
    assert rows["segmentation.photo_to_labels.class_iou"][2] == "+0.0100"
    assert rows["segmentation.photo_to_labels.class_iou"][4] == "yes"
    assert rows["directions.AtoB.cycle_l1"][2] == "+0.1000"
    assert rows["directions.AtoB.cycle_l1"][4] == "NO"
    # The last quarter of each log: iterations 70 and 80, values cycle*10 + (1, 0) -> mean cycle*10 + 0.5.
    report = json.loads((tmp_path / "parity.json").read_text())
    (loss,) = [row for row in report["late_losses"] if row["key"] == "loss_cycle_A"]
    assert loss["fp32_mean"] == pytest.approx((1.0 + 1.01) / 2 + 0.5)
    assert (tmp_path / "loss_curves.png").stat().st_size > 0


def test_precision_parity_needs_two_seeds():
    result = run_script("precision_parity.py", "--out", "x", "--seeds", "0", "--summarize")
    assert result.returncode == 2 and "at least two seeds" in result.stderr


def test_nnpack_benchmark_reports_every_shape():
    pytest.importorskip("torch")
    import torch

    if not torch.backends.nnpack.is_available():
        pytest.skip("this PyTorch has no NNPACK")
    result = run_script("nnpack.py", "--channels", "8", "--sides", "32", "--batches", "1,2", "--repeats", "1",
                        "--warmup", "0", "--threads", "1")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["3x3"], ["7x7"])]
    # Printed as measured and again in the final table: 3 shapes x 2 batch sizes, twice.
    assert sorted({tuple(row[:4]) for row in rows}) == [
        ("3x3", "8->8", "32x32", "1"), ("3x3", "8->8", "32x32", "2"),
        ("7x7", "3->64", "32x32", "1"), ("7x7", "3->64", "32x32", "2"),
        ("7x7", "64->3", "32x32", "1"), ("7x7", "64->3", "32x32", "2")]


def test_translate_folder_times_the_reference_loop_and_each_batch_size(tmp_path):
    out = tmp_path / "folder.json"
    result = run_script("translate_folder.py", "--device", "cpu", "--size", "32", "--count", "3", "--netG",
                        "resnet_6blocks", *TINY, "--batches", "auto,2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert [row[0] for row in table_rows(result.stdout, "reference")] == ["reference"]
    assert [" ".join(row[:2]) for row in table_rows(result.stdout, "batch")] == ["batch auto", "batch 2"]
    report = json.loads(out.read_text())
    assert sorted(report["times"]) == ["batch 2", "batch auto", "reference"]
    assert all(len(values) == 1 for values in report["times"].values())


def test_translate_folder_crosses_batch_sizes_with_file_thread_counts(tmp_path):
    out = tmp_path / "folder.json"
    result = run_script("translate_folder.py", "--device", "cpu", "--size", "32", "--count", "3", "--netG",
                        "resnet_6blocks", *TINY, "--batches", "auto,2", "--io-threads", "1,3", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(out.read_text())["times"]) == ["batch 2 io 1", "batch 2 io 3", "batch auto io 1",
                                                            "batch auto io 3", "reference"]


# --- seeded_study.py (and the scripts built on it: precision_parity.py, seed_summary.py) -------------

def load_seeded_study():
    return load_benchmark("seeded_study.py", "seeded_study")


def write_run(out: Path, seed: int, variant: str, scores: dict, report: str = "evaluation.json",
              loss: float | None = None) -> Path:
    """A finished run written by hand: OUT/seed_S/runs/<slug>/ with an evaluation report and a log."""
    from cyclegan.experiments import variant_slug

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
    study = load_seeded_study()
    result = study.difference([0.20, 0.22, 0.24], [0.30, 0.32, 0.34])
    assert (result.baseline.mean, result.baseline.sd, result.baseline.n) == (pytest.approx(0.22), pytest.approx(0.02), 3)
    assert result.difference == pytest.approx(0.10)
    assert result.standard_error == pytest.approx((2 * 0.02 ** 2 / 3) ** 0.5)
    assert result.standard_errors == pytest.approx(6.1237, abs=1e-4)
    assert [result.verdict(True), result.verdict(False), result.verdict(None)] == ["better", "worse", "higher"]
    assert study.difference([0.20, 0.22, 0.24], [0.10, 0.12, 0.14]).verdict(False) == "better"  # e.g. KID down
    assert study.difference([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]).verdict(True) == "within noise"  # 0.61 std. errors
    assert study.difference([1.0], [2.0]).verdict(True) == "too few seeds"
    assert study.difference([1.0, 1.0], [2.0, 2.0]).verdict(True) == "better"  # no spread at all: any gap counts
    assert study.difference([1.0, 1.0], [1.0, 1.0]).verdict(True) == "within noise"


def test_seeded_study_compares_every_variant_with_the_baseline_and_prints_the_winning_flags(tmp_path):
    write_study(tmp_path)
    result = run_script("seeded_study.py", *STUDY_ARGS, "--out", str(tmp_path))
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


def test_a_best_checkpoint_is_compared_beside_the_final_one_where_the_runs_kept_one(tmp_path):
    write_study(tmp_path)
    for variant, seeds in STUDY.items():
        for seed, scores in enumerate(seeds):  # at its best, DiffAugment is as good as spectral norm
            best = {**scores, "kid": 0.11 + seed / 100, "iou": scores["iou"] + (0.10 if variant == "DiffAugment" else 0)}
            write_run(tmp_path, seed, variant, best, report="evaluation_best.json")
    result = run_script("seeded_study.py", *STUDY_ARGS, "--out", str(tmp_path))
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
    study = load_seeded_study()
    from cyclegan.experiments import SUITES

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
    study = load_seeded_study()
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
    study = load_seeded_study()
    plan = study.Study(suite="improvements", out=tmp_path, seeds=[3, 4], variants=["paper defaults", "all"],
                       baseline="paper defaults", data=Path("d"), iterations=1000, eval_flags="--no-fid",
                       train_flags=["--ngf", "16"])
    command = study.experiment_command(plan, 3, ["paper defaults"], tmp_path / "warm_up", 1)
    assert command[3:] == ["experiment", "improvements", "--data", "d", "--out", str(tmp_path / "warm_up"), "--iters",
                           "1", "--seed", "3", "--resume", "--only", "paper defaults", "--eval-flags=--no-fid", "--",
                           "--ngf", "16"]
    assert study.experiment_command(plan, 4, ["all"])[9:13] == ["--iters", "1000", "--seed", "4"]


def test_seeded_study_trains_every_variant_and_seed_and_writes_each_seeds_tables(tmp_path):
    from cyclegan.data.synth import generate_synthetic_dataset

    data = tmp_path / "synth"
    generate_synthetic_dataset(data, size=32, n_train=4, n_test=2, seed=0)
    out = tmp_path / "study"
    result = run_script("seeded_study.py", "lambda", "--only", "lambda=1", "--baseline", "lambda=10", "--data", str(data),
                        "--out", str(out), "--iters", "1", "--seeds", "0,1", "--parallel", "2", "--no-warm-up",
                        f"--eval-flags=--no-fid --segmenter-steps 2 --segmenter-size 32 --cache {tmp_path}",
                        "--", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "36",
                        "--crop-size", "32", "--num-workers", "0", "--no-tensorboard", "--lambda-identity", "0",
                        timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for seed in (0, 1):
        for variant in ("lambda=1", "lambda=10"):
            assert f"seed {seed}, {variant}: ok" in result.stdout
        rows = list(csv.DictReader(open(out / f"seed_{seed}" / "results.csv")))
        assert [row["variant"] for row in rows] == ["lambda=1", "lambda=10"]
    report = json.loads((out / "study.json").read_text())
    assert report["runs"] == {"finished": 4, "expected": 4} and report["variants"] == ["lambda=1", "lambda=10"]
    assert "recipe improved:" in result.stdout


def test_seed_summary_puts_the_seeds_beside_the_reference_codes_numbers(tmp_path):
    def write_seed(name, p2l, l2p):
        folder = tmp_path / name
        folder.mkdir()
        report = {"segmentation": {"photo_to_labels": dict(zip(("pixel_accuracy", "class_accuracy", "class_iou"), p2l)),
                                   "labels_to_photo": dict(zip(("pixel_accuracy", "class_accuracy", "class_iou"), l2p))}}
        (folder / "evaluation.json").write_text(json.dumps(report))

    write_seed("seed0", (0.569, 0.228, 0.169), (0.656, 0.217, 0.164))
    one = subprocess.run(["bash", str(BENCHMARKS / "reference_parity.sh"), "summary", str(tmp_path)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert one.returncode == 0, one.stderr
    assert "Verdict: not yet: the band rule needs at least two project seeds." in one.stdout
    write_seed("seed1", (0.600, 0.236, 0.171), (0.640, 0.229, 0.170))
    result = run_script("seed_summary.py", *(str(p) for p in sorted(tmp_path.glob("seed*/evaluation.json"))))
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("| ") and "." in line.split("|")[1]}
    # Pixel accuracy: 0.5845 ± 0.0219, so the band 0.541-0.628 holds both reference seeds (0.616, 0.614).
    assert rows["photo_to_labels.pixel_accuracy"] == ["0.585 ± 0.022 (2)", "0.569 / 0.600", "0.616 / 0.614", "yes",
                                                      "+1.96 (within noise)"]
    # Class IoU: 0.170 ± 0.0014 leaves the reference's 0.161 and 0.184 outside; the two-sample check
    # (one degree of freedom on the reference's side) sees no gap.
    assert rows["photo_to_labels.class_iou"][3:] == ["NO", "+0.22 (within noise)"]
    assert rows["labels_to_photo.class_iou"][2:] == ["0.177", "NO", "–"]  # one reference seed: band only
    assert "Verdict: outside the band on" in result.stdout


def test_seed_summary_keeps_two_runs_of_the_same_seed_name_from_two_machines_apart(tmp_path):
    for machine, pixel_accuracy in (("cpu", 0.589), ("gpu", 0.575)):
        folder = tmp_path / machine / "seed1"
        folder.mkdir(parents=True)
        scores = {"pixel_accuracy": pixel_accuracy, "class_accuracy": 0.2, "class_iou": 0.15}
        (folder / "evaluation.json").write_text(json.dumps({"segmentation": {"photo_to_labels": scores}}))
    result = run_script("seed_summary.py", str(tmp_path / "cpu/seed1/evaluation.json"),
                        str(tmp_path / "gpu/seed1/evaluation.json"))
    assert result.returncode == 0, result.stderr
    assert "2 seed(s) (cpu/seed1, gpu/seed1)" in result.stdout
    assert "| photo_to_labels.pixel_accuracy | 0.582 ± 0.010 (2) | 0.589 / 0.575 |" in result.stdout


def run_study_script(tmp_path, dataset: str | None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """benchmarks/improvements_study.sh with a `python` on PATH that records its arguments."""
    stand_in = tmp_path / "bin" / "python"
    stand_in.parent.mkdir()
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\n')
    stand_in.chmod(0o755)
    env = {**os.environ, "PATH": f"{stand_in.parent}:{os.environ['PATH']}", "RECORD": str(tmp_path / "argv"),
           "SHARED": "/data"}
    env.pop("DATASET", None)
    if dataset is not None:
        env["DATASET"] = dataset
    result = subprocess.run(["bash", str(BENCHMARKS / "improvements_study.sh")], capture_output=True, text=True,
                            timeout=60, env=env)
    record = tmp_path / "argv"
    return result, record.read_text().splitlines() if record.exists() else []


@pytest.mark.parametrize("dataset, data, out, identity", [
    (None, "/data/cityscapes", "experiments/improvements_cityscapes64", ["--lambda-identity", "0"]),
    ("photo2anime", "/data/photo2anime_animegan", "experiments/improvements_photo2anime64", []),
])
def test_the_improvements_study_script_runs_the_study_of_the_chosen_dataset_with_a_validation_split(
        tmp_path, dataset, data, out, identity):
    result, argv = run_study_script(tmp_path, dataset)
    assert result.returncode == 0, result.stderr
    assert argv[0].endswith("benchmarks/seeded_study.py") and argv[1] == "improvements"
    assert argv[argv.index("--data") + 1] == data and argv[argv.index("--out") + 1] == out
    assert argv[argv.index("--seeds") + 1] == "0,1,2" and argv[argv.index("--iters") + 1] == "1000"
    train_flags = argv[argv.index("--") + 1:]
    assert train_flags[train_flags.index("--val-fraction") + 1] == "0.1"  # a best checkpoint to score
    assert [flag for flag in train_flags if flag == "--lambda-identity"] == identity[:1]
    if identity:
        assert train_flags[train_flags.index("--lambda-identity") + 1] == identity[1]


def test_the_improvements_study_script_names_the_datasets_it_knows(tmp_path):
    result, argv = run_study_script(tmp_path, "horse2zebra")
    assert result.returncode == 2 and argv == []
    assert "DATASET must be cityscapes or photo2anime, got 'horse2zebra'" in result.stderr


def test_seed_summary_says_when_no_seed_has_finished(tmp_path):
    result = run_script("seed_summary.py", str(tmp_path / "seed*" / "evaluation.json"))
    assert result.returncode == 1 and "no finished seeds" in result.stderr

def load_train_process(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports its neighbour `common`
    return importlib.import_module("train_process")


def test_train_process_times_both_programs_whole_at_two_iteration_counts(tmp_path):
    from conftest import write_images

    for domain in ("trainA", "trainB"):
        write_images(tmp_path / "data" / domain, 3, size=(40, 40), seed=len(domain))
    out = tmp_path / "process.json"
    result = run_script("train_process.py", "--data", str(tmp_path / "data"), "--size", "32", "--ngf", "4",
                        "--ndf", "4", "--iterations", "1,2", "--repeats", "1", "--threads", "1", "--no-startup",
                        "--workdir", str(tmp_path), "--json", str(out))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "fixed CPU s" in result.stdout and "1st iter s" in result.stdout
    report = json.loads(out.read_text())
    assert report["benchmark"] == "train_process" and report["config"]["iterations"] == [1, 2]
    assert report["startup"] is None
    assert report["commands"]["project"][1:5] == ["-m", "cyclegan", "train", "--data"]
    assert set(report["runs"]) == set(report["variants"]) == {"project", "reference"}
    for program, by_count in report["runs"].items():
        assert list(by_count) == ["1", "2"]
        for count, (run,) in by_count.items():
            # Both log every iteration; each milestone is [wall s, CPU s] from the process start.
            assert len(run["logs"]) == int(count)
            assert 0 < run["ready"][0] <= run["logs"][0][0] <= run["wall"]
            assert 0 < run["cpu"] and run["peak_rss"] > 0 and run["output_bytes"] > 0
        variant = report["variants"][program]
        assert set(variant["fit"]) == {"wall", "cpu"} and len(variant["fit"]["cpu"]["per_round"]) == 1
        assert variant["milestones"]["first_iteration"]["wall"] > 0
    assert report["ratios"]["peak_rss"] > 0 and report["ratios"]["fixed_cpu"] is not None
    assert not list(tmp_path.glob("bench-process-*")), "the runs' folders are removed"


def test_train_process_splits_fixed_and_per_iteration_cost_from_hand_made_timings(monkeypatch):
    train_process = load_train_process(monkeypatch)

    def run(wall, cpu, peak=100):  # started at once, ready after 3 s, one iteration logged per 2 s, 1.5 s to exit
        logs = [[wall - 1.5 - 2 * i, cpu - 0.5 - i] for i in reversed(range(int((wall - 4.5) // 2)))]
        return {"wall": wall, "cpu": cpu, "peak_rss": peak, "ready": [3.0, 2.0], "logs": logs, "output_bytes": 7}

    # Project: medians 11 s at 2 iterations and 31 s at 12 -> 2 s/iteration, 7 s fixed. Per round:
    # (10, 30) -> 6 s + 2 s/it; (12, 33) -> 7.8 s + 2.1 s/it; (11, 31) -> 7 s + 2 s/it.
    # Reference: medians 8.5 s and 18.5 s -> 1 s/iteration, 6.5 s fixed.
    runs = {"project": {2: [run(10, 5, 300), run(12, 6, 300), run(11, 5.5, 320)],
                        12: [run(30, 15, 310), run(33, 16.5, 310), run(31, 15.5, 310)]},
            "reference": {2: [run(8, 4), run(9, 4.5), run(8.5, 4)], 12: [run(18, 9), run(19, 9.5), run(18.5, 9)]}}
    analysis = train_process.analyse(runs, (2, 12))
    project, reference = analysis["variants"]["project"], analysis["variants"]["reference"]
    assert project["fit"]["wall"]["fixed"] == pytest.approx(7.0)
    assert project["fit"]["wall"]["per_iteration"] == pytest.approx(2.0)
    assert [r["fixed"] for r in project["fit"]["wall"]["per_round"]] == pytest.approx([6.0, 7.8, 7.0])
    assert [r["per_iteration"] for r in project["fit"]["wall"]["per_round"]] == pytest.approx([2.0, 2.1, 2.0])
    assert project["fit"]["cpu"]["fixed"] == pytest.approx(5.5 - 2 * 1.0)  # CPU medians 5.5 and 15.5
    assert reference["fit"]["wall"]["fixed"] == pytest.approx(6.5)
    assert reference["fit"]["wall"]["per_iteration"] == pytest.approx(1.0)
    assert project["iterations"]["2"]["wall"]["median"] == 11 and project["peak_rss"] == 310
    assert project["milestones"]["ready"] == {"wall": 3.0, "cpu": 2.0}
    assert project["milestones"]["end"] == {"wall": pytest.approx(1.5), "cpu": pytest.approx(0.5)}
    ratios = analysis["ratios"]
    assert ratios["fixed_wall"] == pytest.approx(7.0 / 6.5) and ratios["per_iteration_wall"] == pytest.approx(2.0)
    assert ratios["wall_2"] == pytest.approx(11 / 8.5) and ratios["peak_rss"] == pytest.approx(3.1)
    assert ratios["end_wall"] == pytest.approx(1.0)


def test_train_process_sums_import_time_per_top_level_package(monkeypatch):
    train_process = load_train_process(monkeypatch)
    importtime = ("import time: self [us] | cumulative | imported package\n"
                  "import time:      1500 |       1500 |     torch._C\n"
                  "import time:       500 |       2000 |   torch\n"
                  "import time:       250 |        250 | cyclegan.cli\n"
                  "a warning that is no import line\n")
    assert train_process.imports_by_package(importtime) == {"torch": 0.002, "cyclegan": 0.00025}


def test_train_process_needs_two_increasing_iteration_counts():
    result = run_script("train_process.py", "--iterations", "12,2")
    assert result.returncode == 2 and "two counts N1,N2 with 1 <= N1 < N2" in result.stderr


def test_allocator_reports_both_iterations_under_both_malloc_settings(tmp_path):
    out = tmp_path / "allocator.json"
    result = run_script("allocator.py", "--size", "32", "--netG", "resnet_6blocks", "--ngf", "8",
                        "--iterations", "2", "--threads", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = [line.split()[:2] for line in result.stdout.splitlines() if line.split()[:1] in (["default"], ["fixed"])]
    assert rows == [["default", "reference"], ["default", "fp32"], ["fixed", "reference"], ["fixed", "fp32"]]
    report = json.loads(out.read_text())["results"]
    assert sorted(report) == ["default fp32", "default reference", "fixed fp32", "fixed reference"]
    assert all(len(probe["probe_times"]) == 2 and probe["peak_rss"] > 0 for probes in report.values() for probe in probes)


def test_allocator_needs_a_warm_up_iteration_and_a_timed_one():
    result = run_script("allocator.py", "--iterations", "1")
    assert result.returncode == 2
    assert "--iterations must be at least 2" in result.stderr
