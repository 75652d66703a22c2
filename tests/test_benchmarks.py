"""The benchmark scripts run end to end at a tiny size and report every variant.

Smoke tests only: they check what is printed and written, never how fast anything is.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_module

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--ngf", "8", "--repeats", "1", "--warmup", "0", "--threads", "1"]


def run_script(name: str, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *arguments],
                          capture_output=True, text=True, timeout=timeout)


def load_benchmark(file_name: str, module_name: str):
    """A benchmarks/ script (e.g. "speed/common.py") imported as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / file_name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def load_common():
    return load_benchmark("speed/common.py", "benchmarks_common")


def table_rows(stdout: str, first_column: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.split()[:1] == [first_column]]


def test_train_step_reports_reference_and_each_variant_with_memory_and_floor(tmp_path):
    out = tmp_path / "train.json"
    result = run_script("speed/train_step.py", "--size", "32", *TINY, "--variants", "fp32,fp32+cl+nobatch",
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
    result = run_script("speed/train_step.py", "--size", "32", *TINY, "--precision", "bf16", "--channels-last",
                        "--no-batch-generator-calls", "--no-memory", "--floor-gflops", "100", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert list(report["variants"]) == ["reference", "bf16+cl+nobatch"]
    assert report["floor"]["bf16_gflops"] == 100.0
    assert "peak_rss" not in report["variants"]["reference"]


def test_the_fused_variant_trains_with_fused_adam_and_keeps_the_learning_rate(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS / "speed"))  # train_step.py imports its neighbours by name
    train_step = load_benchmark("speed/train_step.py", "benchmarks_train_step")
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
    result = run_script("speed/translate.py", "--sizes", "32,48x40", *TINY, "--variants", "fp32,bf16+cl,fp32+nonnpack",
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
    result = run_script("speed/conv_throughput.py", "--size", "32", *TINY, "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "G res block" in result.stdout and "mix G+D" in result.stdout
    report = json.loads(out.read_text())
    shapes = report["passes"]["training"]["shapes"]
    assert len(shapes) == 12 * 4  # 7 generator + 5 discriminator shapes, 2 dtypes x 2 layouts
    assert {s["dtype"] for s in shapes} == {"fp32", "bf16"}
    assert set(report["passes"]["forward"]["generator_mix_best_layout_gflops"]) == {"fp32", "bf16"}


def test_an_unknown_variant_token_is_rejected_with_the_valid_ones():
    result = run_script("speed/train_step.py", "--size", "32", "--variants", "fp8+cl")
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
    result = run_script("studies/precision_parity.py", "--out", str(tmp_path), "--seeds", "0,1", "--summarize")
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
    result = run_script("studies/precision_parity.py", "--out", "x", "--seeds", "0", "--summarize")
    assert result.returncode == 2 and "at least two seeds" in result.stderr


def test_nnpack_benchmark_reports_every_shape():
    pytest.importorskip("torch")
    import torch

    if not torch.backends.nnpack.is_available():
        pytest.skip("this PyTorch has no NNPACK")
    result = run_script("speed/nnpack.py", "--channels", "8", "--sides", "32", "--batches", "1,2", "--repeats", "1",
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
    result = run_script("speed/translate_folder.py", "--device", "cpu", "--size", "32", "--count", "3", "--netG",
                        "resnet_6blocks", *TINY, "--batches", "auto,2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert [row[0] for row in table_rows(result.stdout, "reference")] == ["reference"]
    assert [" ".join(row[:2]) for row in table_rows(result.stdout, "batch")] == ["batch auto", "batch 2"]
    report = json.loads(out.read_text())
    assert sorted(report["times"]) == ["batch 2", "batch auto", "reference"]
    assert all(len(values) == 1 for values in report["times"].values())


def test_translate_folder_crosses_batch_sizes_with_file_thread_counts(tmp_path):
    out = tmp_path / "folder.json"
    result = run_script("speed/translate_folder.py", "--device", "cpu", "--size", "32", "--count", "3", "--netG",
                        "resnet_6blocks", *TINY, "--batches", "auto,2", "--io-threads", "1,3", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(out.read_text())["times"]) == ["batch 2 io 1", "batch 2 io 3", "batch auto io 1",
                                                            "batch auto io 3", "reference"]


# --- seed_summary.py and improvements_study.sh (the seeded study itself: tests/test_studies.py) ----

def test_seed_summary_puts_the_seeds_beside_the_reference_codes_numbers(tmp_path):
    def write_seed(name, p2l, l2p):
        folder = tmp_path / name
        folder.mkdir()
        report = {"segmentation": {"photo_to_labels": dict(zip(("pixel_accuracy", "class_accuracy", "class_iou"), p2l)),
                                   "labels_to_photo": dict(zip(("pixel_accuracy", "class_accuracy", "class_iou"), l2p))}}
        (folder / "evaluation.json").write_text(json.dumps(report))

    write_seed("seed0", (0.569, 0.228, 0.169), (0.656, 0.217, 0.164))
    one = subprocess.run(["bash", str(BENCHMARKS / "studies" / "reference_parity.sh"), "summary", str(tmp_path)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert one.returncode == 0, one.stderr
    assert "Verdict: not yet: the band rule needs at least two project seeds." in one.stdout
    write_seed("seed1", (0.600, 0.236, 0.171), (0.640, 0.229, 0.170))
    result = run_script("studies/seed_summary.py", *(str(p) for p in sorted(tmp_path.glob("seed*/evaluation.json"))))
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
    result = run_script("studies/seed_summary.py", str(tmp_path / "cpu/seed1/evaluation.json"),
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
    result = subprocess.run(["bash", str(BENCHMARKS / "studies" / "improvements_study.sh")], capture_output=True, text=True,
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
    assert argv[:4] == ["-m", "cyclegan", "study", "improvements"]
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
    result = run_script("studies/seed_summary.py", str(tmp_path / "seed*" / "evaluation.json"))
    assert result.returncode == 1 and "no finished seeds" in result.stderr

def load_train_process(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS / "speed"))  # it imports its neighbour `common`
    return importlib.import_module("train_process")


def test_train_process_times_both_programs_whole_at_two_iteration_counts(tmp_path):
    from conftest import write_images

    for domain in ("trainA", "trainB"):
        write_images(tmp_path / "data" / domain, 3, size=(40, 40), seed=len(domain))
    out = tmp_path / "process.json"
    result = run_script("speed/train_process.py", "--data", str(tmp_path / "data"), "--size", "32", "--ngf", "4",
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
    result = run_script("speed/train_process.py", "--iterations", "12,2")
    assert result.returncode == 2 and "two counts N1,N2 with 1 <= N1 < N2" in result.stderr


def test_allocator_reports_both_iterations_under_both_malloc_settings(tmp_path):
    out = tmp_path / "allocator.json"
    result = run_script("speed/allocator.py", "--size", "32", "--netG", "resnet_6blocks", "--ngf", "8",
                        "--iterations", "2", "--threads", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = [line.split()[:2] for line in result.stdout.splitlines() if line.split()[:1] in (["default"], ["fixed"])]
    assert rows == [["default", "reference"], ["default", "fp32"], ["fixed", "reference"], ["fixed", "fp32"]]
    report = json.loads(out.read_text())["results"]
    assert sorted(report) == ["default fp32", "default reference", "fixed fp32", "fixed reference"]
    assert all(len(probe["probe_times"]) == 2 and probe["peak_rss"] > 0 for probes in report.values() for probe in probes)


def test_allocator_needs_a_warm_up_iteration_and_a_timed_one():
    result = run_script("speed/allocator.py", "--iterations", "1")
    assert result.returncode == 2
    assert "--iterations must be at least 2" in result.stderr


@pytest.mark.parametrize("old_path, usage", [
    ("train_step.py", "usage: train_step.py"), ("translate.py", "usage: translate.py"),
    ("precision_parity.py", "usage: precision_parity.py"),
])
def test_the_paths_other_people_run_still_run_the_moved_scripts(old_path, usage):
    result = run_script(old_path, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage)


def test_volume_cache_reports_seconds_and_decodes_per_epoch_of_each_variant(tmp_path):
    require_module("nibabel", "medical")
    out = tmp_path / "volumes.json"
    result = run_script("speed/volume_cache.py", "--volumes", "2", "--shape", "16,16,3", "--load-size", "20",
                        "--crop-size", "16", "--repeats", "1", "--threads", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert [row[0] for row in table_rows(result.stdout, "last") + table_rows(result.stdout, "kept")] == ["last", "kept"]
    report = json.loads(out.read_text())
    assert report["samples_per_epoch"] == 6
    assert report["variants"]["kept"]["decodes_per_epoch"] == [4]  # each of the 2 + 2 volumes once


def test_probe_under_load_runs_the_probe_with_each_clock_beside_busy_processes(tmp_path):
    out = tmp_path / "under_load.json"
    result = run_script("speed/probe_under_load.py", "--size", "32", "--netG", "resnet_6blocks", "--ngf", "8",
                        "--load", "1", "--bursts", "--repeats", "1", "--budget", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [entry["clock"] for entry in report["results"]] == ["wall", "cpu"]
    candidates = set(report["results"][0]["seconds"])
    assert "fp32" in candidates and all(set(entry["seconds"]) == candidates for entry in report["results"])
    assert "wall clock chose:" in result.stdout and "cpu clock chose:" in result.stdout
    assert "1 busy processes beside it (in bursts)" in result.stdout


def test_probe_under_load_summarises_choices_and_spread_per_clock(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS / "speed"))  # it imports its neighbour `common`
    module = importlib.import_module("probe_under_load")
    results = [{"clock": "wall", "chosen": "bf16", "seconds": {"fp32": 4.0, "bf16": 2.0}},
               {"clock": "wall", "chosen": "fp32", "seconds": {"fp32": 2.0, "bf16": 3.0}},
               {"clock": "wall", "chosen": "bf16", "seconds": {"fp32": 3.0, "bf16": 1.0}},
               {"clock": "cpu", "chosen": "bf16", "seconds": {"fp32": 2.0, "bf16": 1.0}}]
    assert module.summary(results) == [
        "wall clock chose: bf16 2x, fp32 1x",
        "  fp32         median 3.000 s, spread 67% over 3 probes",  # (4 - 2) / 3
        "  bf16         median 2.000 s, spread 100% over 3 probes",  # (3 - 1) / 2
        "cpu clock chose: bf16 1x",
        "  fp32         median 2.000 s, spread 0% over 1 probes",
        "  bf16         median 1.000 s, spread 0% over 1 probes",
    ]


def test_captured_check_compares_the_captured_step_with_the_ordinary_one_iteration_by_iteration():
    # On the CPU the captured step runs eagerly, so the two Trainers must agree to the last bit.
    result = run_script("speed/captured_check.py", "--device", "cpu", "--size", "32", "--ngf", "8", "--iterations", "6")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[2] for line in lines if line.startswith("iteration")] == ["ordinary"] * 3 + ["captured"] * 3
    assert all(line.endswith("largest relative difference 0.00e+00") for line in lines if line.startswith("iteration"))
    assert lines[-1] == ("captured: yes, eagerly (no CUDA graphs on this device); largest relative difference of a "
                         "logged value 0.00e+00; largest weight difference 0.00e+00")


def test_probe_stand_in_times_each_candidate_by_each_measure(tmp_path):
    out = tmp_path / "stand_in.json"
    result = run_script("speed/probe_stand_in.py", "--size", "32", "--netG", "resnet_6blocks", "--ngf", "8",
                        "--repeats", "2", "--shuffle", "7", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["args"]["shuffle"] == 7
    assert set(report["seconds"]) == {"iteration", "generator", "generator-half"}
    labels = set(report["seconds"]["iteration"])
    assert "fp32" in labels
    assert all(set(per) == labels and all(len(values) == 2 for values in per.values())
               for per in report["seconds"].values())
    assert report["summary"]["iteration"]["regret"] == 1.0
    assert "generator-half  ranks" in result.stdout
    # At 32 px there are no smaller images to time the stand-in's ratio on.
    assert report["stand_in_ratios"] == {label: [] for label in labels} and report["ratio_over_crop"] == {}
    assert "stand-in's ratio: none" in result.stdout


def test_probe_stand_in_records_the_stand_ins_ratio_where_the_crop_exceeds_its_side(tmp_path):
    out = tmp_path / "stand_in.json"
    result = run_script("speed/probe_stand_in.py", "--size", "64", "--netG", "resnet_6blocks", "--ngf", "4",
                        "--repeats", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert all(len(values) == 2 and all(value > 1 for value in values)
               for values in report["stand_in_ratios"].values())
    assert set(report["ratio_over_crop"]) == set(report["stand_in_ratios"])


def test_probe_stand_in_scores_a_stand_in_by_the_iteration_time_of_its_choice(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS / "speed"))  # it imports its neighbour `common`
    module = importlib.import_module("probe_stand_in")
    times = {"iteration": {"fp32": [10.0, 12.0, 11.0], "bf16": [6.0, 5.0, 13.0]},   # medians 11 and 6
             "generator": {"fp32": [1.0, 1.0, 1.0], "bf16": [0.5, 2.0, 0.6]},     # medians 1 and 0.6
             "generator-half": {"fp32": [0.2, 0.2, 0.2], "bf16": [0.3, 0.1, 0.3]}}  # medians 0.2 and 0.3
    summary = module.summarise(times)
    assert summary["iteration"] == {"ranking": ["bf16", "fp32"], "regret": 1.0, "single_sample_right": 2, "repeats": 3}
    assert summary["generator"] == {"ranking": ["bf16", "fp32"], "regret": 1.0, "single_sample_right": 2, "repeats": 3}
    assert summary["generator-half"] == {"ranking": ["fp32", "bf16"], "regret": 11.0 / 6.0,
                                         "single_sample_right": 1, "repeats": 3}
