"""The project reproduces the reference implementation's own output.

../shared/data/reference_outputs/ holds a generator saved by the reference code (resnet_6blocks, ngf 8),
an input image and the reference's output for it, as a float array and as the PNG the reference saves.
Loaded the way a user loads it (`cyclegan translate`, `Translator.from_checkpoint`, or converted with
`cyclegan models convert`), the generator must give that output: within 1e-4 as floats, within one grey
level as a PNG. These numbers come from the reference code, so agreeing with ourselves cannot pass.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_dataset
from cyclegan.cli import main
from cyclegan.inference import Translator

SRC = Path(__file__).resolve().parents[1] / "src"
GENERATOR, INPUT = "r6_ngf8_net_G_A.pth", "input_176x216.png"
FLOAT_TOLERANCE, GREY_LEVELS = 1e-4, 1


@pytest.fixture(scope="module")
def reference():
    return shared_dataset("reference_outputs")


def reference_input(folder: Path) -> torch.Tensor:
    """The input as the reference's test script feeds it: RGB, /255, then (x - 0.5) / 0.5, float32."""
    pixels = np.asarray(Image.open(folder / INPUT).convert("RGB"), dtype=np.float32) / np.float32(255)
    return torch.from_numpy((pixels - np.float32(0.5)) / np.float32(0.5)).permute(2, 0, 1).unsqueeze(0)


def expected_float(folder: Path) -> np.ndarray:
    return np.load(folder / "r6_ngf8_output.npy")


def grey_level_difference(png: Path | Image.Image, folder: Path) -> int:
    ours = np.asarray(png if isinstance(png, Image.Image) else Image.open(png), dtype=np.int16)
    theirs = np.asarray(Image.open(folder / "r6_ngf8_output.png"), dtype=np.int16)
    assert ours.shape == theirs.shape == (216, 176, 3)
    return int(np.abs(ours - theirs).max())


def float_difference(translator: Translator, folder: Path) -> float:
    output = translator.translate_tensor(reference_input(folder))[0].numpy()
    expected = expected_float(folder)
    assert output.shape == expected.shape == (3, 216, 176)
    return float(np.abs(output - expected).max())


def test_the_reference_output_is_a_real_image_not_a_constant(reference):
    expected = expected_float(reference)
    assert expected.dtype == np.float32 and expected.std() > 0.1 and -1 <= expected.min() < expected.max() <= 1


def test_the_translate_command_reproduces_the_reference_png(reference, tmp_path):
    result = subprocess.run([sys.executable, "-m", "cyclegan", "translate", str(reference / GENERATOR),
                             str(reference / INPUT), "--out", str(tmp_path), "--device", "cpu", "--no-progress"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert grey_level_difference(tmp_path / INPUT, reference) <= GREY_LEVELS


def test_translator_from_checkpoint_reproduces_the_reference_float_output_and_png(reference):
    translator = Translator.from_checkpoint(reference / GENERATOR, device="cpu")
    assert float_difference(translator, reference) <= FLOAT_TOLERANCE
    assert grey_level_difference(translator(Image.open(reference / INPUT)), reference) <= GREY_LEVELS


def test_the_generator_converted_to_safetensors_reproduces_it_too(reference, tmp_path, capsys):
    converted = tmp_path / "r6_ngf8.safetensors"
    assert main(["models", "convert", str(reference / GENERATOR), str(converted)]) == 0
    assert float_difference(Translator.from_checkpoint(converted, device="cpu"), reference) <= FLOAT_TOLERANCE
    assert main(["translate", str(converted), str(reference / INPUT), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 0
    assert grey_level_difference(tmp_path / "out" / INPUT, reference) <= GREY_LEVELS


@pytest.mark.parametrize("nnpack, channels_last", [
    (True, False),
    (False, False),
    # Without NNPACK a CPU translator defaults to channels-last.
    (False, None),
], ids=["nnpack", "no-nnpack contiguous", "no-nnpack channels-last"])
def test_every_cpu_path_reproduces_the_reference_float_output(reference, nnpack, channels_last):
    translator = Translator.from_checkpoint(reference / GENERATOR, device="cpu", nnpack=nnpack,
                                            channels_last=channels_last)
    assert float_difference(translator, reference) <= FLOAT_TOLERANCE
