"""`--precision auto` wired into training and translation: the fastest timed candidate is used, with
a fake timer; the cache, resume, the user's own flags and tiny runs; what config.json records."""
import json
import time

import pytest
import torch

from conftest import tiny_config, tiny_train_argv, write_images
from cyclegan import device as devices
from cyclegan import tuning
from cyclegan.checkpoint import GeneratorSpec
from cyclegan.cli import main
from cyclegan.device import has_native_bf16
from cyclegan.inference import Translator
from cyclegan.inference import arithmetic as translation_tuning
from cyclegan.networks import build_generator
from cyclegan.training import trainer as trainer_module
from cyclegan.training.trainer import Trainer
from cyclegan.tuning import Arithmetic

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
# One training iteration (or translation) of each CPU candidate on a fake machine where bf16 with
# channels-last is fastest: the proportions measured on the AMX CPU of docs/PERFORMANCE.md.
SECONDS = {"fp32": 3.67, "fp32+nnpack": 4.18, "bf16": 1.39, "bf16+cl": 1.05, "fp32+cl": 3.9}
# One generator pass of each, ranking them otherwise, so that a test can tell which measure decided.
PASS_SECONDS = {"fp32": 0.61, "fp32+nnpack": 0.52, "bf16": 0.55, "bf16+cl": 0.57}


@pytest.fixture
def cpu_flags(monkeypatch):
    def set_flags(*flags):
        monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset(flags))
    return set_flags


@pytest.fixture
def gpu_capability(monkeypatch):
    def set_capability(major, minor):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
    return set_capability


@pytest.fixture
def bf16_cpu(cpu_flags, monkeypatch):
    """A CPU with native bf16 and NNPACK: four candidates, fp32, fp32+nnpack, bf16, bf16+cl."""
    cpu_flags("avx2", "avx512_bf16")
    monkeypatch.setattr(tuning, "nnpack_available", lambda: True)


class TimedCalls(list):
    """The labels of the fake probe's calls; each whole call also takes `wall_seconds` of real time,
    each call of the stand-in `pass_wall_seconds`. `ratio`: how many stand-in calls the stand-in
    says a whole call costs (None: it cannot tell)."""

    wall_seconds = 0.0
    pass_wall_seconds = 0.0
    ratio: float | None = None


@pytest.fixture
def timed(monkeypatch):
    """The trainer's probe replaced by one that takes SECONDS per candidate (PASS_SECONDS per call
    of its stand-in, listed as "pass <label>"); its calls are listed."""
    calls = TimedCalls()

    class FakeTrainingProbe:
        def __init__(self, config, build, captured=False):
            # A CPU has no CUDA graphs: even a --cuda-graphs run times its ordinary step.
            assert build is Trainer and captured is False

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            pass

        def __call__(self, arithmetic: Arithmetic) -> float:
            calls.append(arithmetic.label)
            time.sleep(calls.wall_seconds)  # what the probe's budget is checked by
            return SECONDS[arithmetic.label]

        def stand_in(self) -> tuning.StandIn:
            def generator_pass(arithmetic: Arithmetic) -> float:
                calls.append(f"pass {arithmetic.label}")
                time.sleep(calls.pass_wall_seconds)
                return PASS_SECONDS[arithmetic.label]
            return tuning.StandIn(generator_pass, "s/generator pass", lambda arithmetic: calls.ratio)

    monkeypatch.setattr(trainer_module, "TrainingProbe", FakeTrainingProbe)
    return calls


def planned_run(tiny_dataset, tmp_path, name="auto", **run):
    """A tiny run planned for 4 x 6 iterations: 24, made 600 by more epochs, so that it probes, and
    by whole iterations: 2% of the run is the time of 12, more than the 8 that the warm-ups and one
    round of four candidates take (a shorter run is ranked by the stand-in)."""
    config = tiny_config(tiny_dataset, tmp_path / "runs", **run)
    config.run.name = name
    config.optim.epochs = 98
    return config


def test_native_bf16_is_read_from_the_cpu_flags_and_the_gpu_compute_capability(cpu_flags, gpu_capability):
    cpu_flags("fpu", "avx2")
    assert not has_native_bf16(CPU)
    cpu_flags("avx2", "avx512_bf16")
    assert has_native_bf16(CPU)
    cpu_flags("amx_bf16")
    assert has_native_bf16(CPU)
    gpu_capability(7, 5)
    assert not has_native_bf16(CUDA)
    gpu_capability(9, 0)
    assert has_native_bf16(CUDA)
    assert not has_native_bf16(torch.device("mps"))


def test_auto_trains_in_the_fastest_timed_candidate_and_config_json_records_it(bf16_cpu, timed, tiny_dataset,
                                                                               tmp_path):
    trainer = Trainer(planned_run(tiny_dataset, tmp_path))
    assert trainer.planned_iterations() == 600
    assert set(timed) == {"fp32", "fp32+nnpack", "bf16", "bf16+cl"}
    assert timed[:4] == ["fp32", "fp32+nnpack", "bf16", "bf16+cl"]  # the reference path first
    assert trainer.arithmetic.chosen == Arithmetic("bf16", channels_last=True)
    assert trainer.arithmetic.describe() == ("precision: bf16+cl (measured 1.05 s/it; fp32 3.67 s, fp32+nnpack "
                                             "4.18 s, bf16 1.39 s)")
    assert trainer.memory_format == torch.channels_last
    trainer.config.run.max_iters = 1
    trainer.train()
    saved = json.loads((tmp_path / "runs" / "auto" / "config.json").read_text())["run"]
    assert (saved["precision"], saved["channels_last"], saved["nnpack"]) == ("bf16", True, False)


def test_where_whole_iterations_overrun_the_probes_budget_one_generator_pass_each_decides(bf16_cpu, timed,
                                                                                        tiny_dataset, tmp_path,
                                                                                        monkeypatch):
    # A 20 ms budget, and a first whole iteration of 30 ms: alone it overruns it.
    monkeypatch.setattr(trainer_module, "MAX_PROBE_SECONDS", 0.02)
    timed.wall_seconds = 0.03
    trainer = Trainer(planned_run(tiny_dataset, tmp_path))
    assert timed == ["fp32", "pass fp32", "pass fp32+nnpack", "pass bf16", "pass bf16+cl",
                     "pass fp32", "pass fp32+nnpack", "pass bf16", "pass bf16+cl"]
    assert trainer.arithmetic.chosen == Arithmetic("fp32", nnpack=True)
    assert trainer.arithmetic.describe() == ("precision: fp32+nnpack (measured 0.52 s/generator pass; fp32 0.61 s, "
                                             "bf16 0.55 s, bf16+cl 0.57 s)")
    assert (trainer.config.run.precision, trainer.config.run.nnpack) == ("fp32", True)


def test_where_the_stand_ins_ratio_shows_whole_iterations_would_overrun_none_is_run(bf16_cpu, timed, tiny_dataset,
                                                                                  tmp_path, capsys):
    # The passes' warm-ups and round take at least 40 ms; whole iterations, 1000 times that: past
    # the 20 s budget, so the passes decide and not one whole iteration is timed.
    timed.ratio, timed.pass_wall_seconds = 1000.0, 0.005
    trainer = Trainer(planned_run(tiny_dataset, tmp_path))
    assert timed[:8] == ["pass fp32", "pass fp32+nnpack", "pass bf16", "pass bf16+cl"] * 2
    assert not any(call in SECONDS for call in timed)
    assert trainer.arithmetic.chosen == Arithmetic("fp32", nnpack=True)
    assert trainer.arithmetic.unit == "s/generator pass"


def test_a_second_run_starts_from_the_cached_decision_without_timing(bf16_cpu, timed, tiny_dataset, tmp_path):
    announced = []
    Trainer(planned_run(tiny_dataset, tmp_path, "first"), announce=announced.append)
    # Said before the probe's pause, which would otherwise be silent.
    assert announced == ["precision: timing fp32, fp32+nnpack, bf16, bf16+cl on this job (up to about 20 s, once: the "
                         "choice is cached)"]
    timed.clear()
    announced.clear()
    second = Trainer(planned_run(tiny_dataset, tmp_path, "second"), announce=announced.append)
    assert timed == [] and announced == []
    assert second.arithmetic.source == "cached"
    assert second.arithmetic.chosen == Arithmetic("bf16", channels_last=True)
    assert second.arithmetic.describe().startswith("precision: bf16+cl (cached measurement 1.05 s/it; fp32 3.67 s")
    assert (second.config.run.precision, second.config.run.channels_last) == ("bf16", True)


def test_the_users_flags_are_kept_and_only_the_free_ones_are_timed(bf16_cpu, timed, tiny_dataset, tmp_path):
    trainer = Trainer(planned_run(tiny_dataset, tmp_path, "fp32", precision="fp32"))
    assert set(timed) == {"fp32", "fp32+nnpack", "fp32+cl"}
    assert trainer.arithmetic.chosen == Arithmetic("fp32")  # 3.67 s: the fastest in fp32
    timed.clear()
    fixed = Trainer(planned_run(tiny_dataset, tmp_path, "fixed", precision="fp32", channels_last=False,
                                nnpack=True))
    assert timed == []
    assert fixed.arithmetic.chosen == Arithmetic("fp32", nnpack=True)
    assert fixed.arithmetic.describe() == "precision: fp32+nnpack (as asked)"


def test_a_run_of_fewer_than_fifty_iterations_trains_in_fp32_without_timing(bf16_cpu, timed, tiny_dataset,
                                                                           tmp_path, capsys):
    assert main(tiny_train_argv(tiny_dataset, tmp_path, "short", "--max-iters", "2")) == 0
    assert timed == []
    assert ("precision: fp32 (a run of 2 iterations is not worth measuring, and no decision is cached)"
            in capsys.readouterr().out)
    saved = json.loads((tmp_path / "short" / "config.json").read_text())["run"]
    assert (saved["precision"], saved["channels_last"], saved["nnpack"]) == ("fp32", False, False)


def test_resume_keeps_the_recorded_choice_without_timing(bf16_cpu, timed, tiny_dataset, tmp_path, capsys):
    trainer = Trainer(planned_run(tiny_dataset, tmp_path, "resumed"))
    trainer.config.run.max_iters = 1
    trainer.train()
    timed.clear()
    capsys.readouterr()
    # Even without the cached decision a resumed run keeps its own, untimed.
    tuning.DecisionCache().path.unlink()
    assert main(["train", "--resume", str(tmp_path / "runs" / "resumed"), "--precision", "auto", "--max-iters", "2",
                 "--no-progress"]) == 0
    assert timed == []
    assert "precision: bf16+cl (as recorded in the resumed run)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "runs" / "resumed" / "config.json").read_text())["run"]
    assert (saved["precision"], saved["channels_last"], saved["nnpack"]) == ("bf16", True, False)


# ----------------------------------------------------------------------------- translation
@pytest.fixture
def timed_translation(monkeypatch):
    """translation_measure replaced by one that takes SECONDS per candidate; (label, size, batch) listed."""
    calls: list[tuple[str, int, int]] = []

    def fake_measure(generator, device, size, batch=1, channels=3):
        def measure(arithmetic: Arithmetic) -> float:
            calls.append((arithmetic.label, size, batch))
            return SECONDS[arithmetic.label] / 10
        return measure

    monkeypatch.setattr(translation_tuning, "translation_measure", fake_measure)
    return calls


def tiny_translator(**options) -> Translator:
    torch.manual_seed(0)
    spec = GeneratorSpec("resnet_6blocks", 3, 3, 8, "instance", "random weights")
    return Translator(build_generator("resnet_6blocks", ngf=8), spec, device="cpu", **options)


def test_a_folder_of_fifty_images_is_translated_in_the_fastest_timed_candidate(bf16_cpu, timed_translation,
                                                                               tmp_path):
    write_images(tmp_path / "many", 50, size=(40, 36))
    translator = tiny_translator()
    result = translation_tuning.tune_translation(translator, [tmp_path / "many"])
    assert result.chosen == Arithmetic("bf16", channels_last=True) == translator.arithmetic
    assert translator.memory_format == torch.channels_last
    # 40 x 36 has the area of a 37.9 px square: timed at 36, the nearest multiple of 4.
    assert {(size, batch) for _label, size, batch in timed_translation} == {(36, 1)}
    assert result.describe().startswith("precision: bf16+cl (measured 0.105 s/image; fp32 0.367 s")
    timed_translation.clear()
    again = tiny_translator()
    assert translation_tuning.tune_translation(again, [tmp_path / "many"]).source == "cached"
    assert timed_translation == [] and again.arithmetic == Arithmetic("bf16", channels_last=True)


def test_a_few_images_keep_the_untuned_default_and_the_users_flags(bf16_cpu, timed_translation, tmp_path):
    write_images(tmp_path / "few", 3)
    translator = tiny_translator()
    result = translation_tuning.tune_translation(translator, [tmp_path / "few"])
    assert timed_translation == []
    assert translator.arithmetic == Arithmetic("fp32", nnpack=True)
    assert result.describe() == ("precision: fp32+nnpack (3 generator call(s) are too few to be worth measuring, "
                                 "and no decision is cached)")
    write_images(tmp_path / "many", 50)
    fixed = tiny_translator(precision="fp32", nnpack=False)
    translation_tuning.tune_translation(fixed, [tmp_path / "many"])
    assert {label for label, _size, _batch in timed_translation} == {"fp32", "fp32+cl"}
    assert fixed.arithmetic == Arithmetic("fp32")  # 0.367 s against 0.39 s


def test_cyclegan_translate_prints_the_measured_choice(bf16_cpu, timed_translation, tiny_dataset, tmp_path, capsys):
    assert main(tiny_train_argv(tiny_dataset, tmp_path, "model", "--max-iters", "1")) == 0
    write_images(tmp_path / "many", 50, size=(32, 32))
    capsys.readouterr()
    assert main(["translate", str(tmp_path / "model"), str(tmp_path / "many"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    timing = lines.index("precision: timing fp32, fp32+nnpack, bf16, bf16+cl on this job (up to about 20 s, once: "
                         "the choice is cached)")
    assert lines[timing + 1].startswith("precision: bf16+cl (measured 0.105 s/image;")
    assert len(list((tmp_path / "out").iterdir())) == 50


def test_a_precision_the_cpu_cannot_run_is_refused_before_anything_is_timed(timed, tiny_dataset, tmp_path):
    from cyclegan.errors import ConfigError

    for precision, message in (("fp16", "--precision fp16 needs a GPU"), ("tf32", "--precision tf32 needs a CUDA GPU")):
        with pytest.raises(ConfigError, match=message):
            Trainer(planned_run(tiny_dataset, tmp_path, precision, precision=precision, device="cpu"))
    assert timed == []


def test_a_video_counts_its_frames_in_calls_of_the_video_batch(bf16_cpu, timed_translation, tmp_path):
    from conftest import require_module

    require_module("av", "video")
    from test_video import make_clip

    make_clip(tmp_path / "long.mp4", frames=200, size=(48, 32), audio=False)
    make_clip(tmp_path / "short.mp4", frames=8, size=(48, 32), audio=False)
    assert translation_tuning.planned_work(tiny_translator(), [tmp_path / "long.mp4"], None, 4) == (50, (48, 32), 4)
    translator = tiny_translator()
    translation_tuning.tune_translation(translator, [tmp_path / "short.mp4"], video_batch_size=4)
    assert timed_translation == []
    translation_tuning.tune_translation(translator, [tmp_path / "long.mp4"], video_batch_size=4)
    # 48 x 32 has the area of a 39.2 px square: timed at 40, in batches of 4 frames.
    assert {(size, batch) for _label, size, batch in timed_translation} == {(40, 4)}
    assert translator.arithmetic == Arithmetic("bf16", channels_last=True)
