"""`--precision auto`: what it picks per device and job, what a run records, and what resume keeps."""
import json

import pytest
import torch

from cyclegan import device as devices
from cyclegan.cli import main
from cyclegan.device import (BF16_TRANSLATION_PIXELS, describe_translation_precision, has_native_bf16,
                             training_precision, translation_precision)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


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


def test_auto_trains_in_fp32_everywhere_and_says_why(cpu_flags):
    cpu_flags("avx2")
    assert training_precision("auto", CPU) == ("fp32", "auto: measured fastest for training on CPU")
    cpu_flags("avx512_bf16")
    precision, why = training_precision("auto", CPU)
    assert precision == "fp32" and "awaits its quality study" in why
    assert training_precision("bf16", CPU) == ("bf16", "as asked")


def test_auto_translates_large_images_in_bf16_only_on_a_gpu_with_native_bf16(cpu_flags, gpu_capability):
    cpu_flags("avx512_bf16")
    assert translation_precision("auto", CPU, 4000 * 3000) == "fp32"
    gpu_capability(9, 0)
    assert translation_precision("auto", CUDA, 512 * 512) == "fp32"
    assert translation_precision("auto", CUDA, BF16_TRANSLATION_PIXELS) == "bf16"
    gpu_capability(7, 0)
    assert translation_precision("auto", CUDA, 4000 * 3000) == "fp32"
    assert translation_precision("fp16", CPU, 10) == "fp16"
    assert describe_translation_precision("auto", CPU) == "auto: fp32 with NNPACK convolutions"


def test_a_run_records_the_precision_it_chose_and_resume_keeps_it(tiny_dataset, tmp_path, capsys):
    flags = ["--data", str(tiny_dataset), "--runs-dir", str(tmp_path), "--name", "auto", "--netG", "resnet_6blocks",
             "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32", "--num-workers", "0",
             "--no-progress", "--no-tensorboard"]
    assert main(["train", *flags, "--max-iters", "2"]) == 0
    assert "precision:   fp32 (auto: " in capsys.readouterr().out
    saved = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert saved["run"]["precision"] == "fp32"
    assert main(["train", "--resume", str(tmp_path / "auto"), "--precision", "auto", "--max-iters", "3",
                 "--no-progress"]) == 0
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["run"]["precision"] == "fp32"
