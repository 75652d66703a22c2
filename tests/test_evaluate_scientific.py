"""`cyclegan evaluate` on 16-bit, float, multi-channel and volume test folders: the scores are
computed on the values the run's intensity windows give, checked against hand computations on
files written by Pillow, tifffile and nibabel."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_module
from cyclegan.checkpoint import GeneratorSpec, save_checkpoint
from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.errors import ConfigError
from cyclegan.evaluation.evaluate import describe_dataset, evaluate_translators
from cyclegan.inference.translator import Translator
from cyclegan.training.model import CycleGAN

HU_WINDOW = "-1000,2000"
TWELVE_BIT = "0,4095"
AFFINE = np.array([[0.75, 0.0, 0.0, -10.0], [0.0, 0.875, 0.0, 20.0], [0.0, 0.0, 2.5, 5.0], [0.0, 0.0, 0.0, 1.0]])


class Scale(torch.nn.Module):
    """A stand-in generator multiplying by a constant: its cycle error can be worked out by hand."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def translators(window_a=None, window_b=None, channels=1, back=0.5, slice_axis=None) -> dict[str, Translator]:
    """AtoB returns its input, BtoA scales it by `back`, with the windows a run would record."""
    def spec(direction, windows):
        return GeneratorSpec("resnet_6blocks", channels, channels, 8, "instance", "stand-in", direction,
                             input_window=windows[0], output_window=windows[1], slice_axis=slice_axis)
    return {"AtoB": Translator(torch.nn.Identity(), spec("AtoB", (window_a, window_b)), device="cpu"),
            "BtoA": Translator(Scale(back), spec("BtoA", (window_b, window_a)), device="cpu")}


def windowed(values, low: float, high: float) -> np.ndarray:
    """The window's definition: [low, high] linearly onto [-1, 1], clipped."""
    return np.clip((np.asarray(values, np.float64) - low) / ((high - low) / 2) - 1, -1, 1)


def tifffile():
    return require_module("tifffile", "medical")


def nibabel():
    return require_module("nibabel", "medical")


def write_nifti(path, raw):
    nib = nibabel()
    image = nib.Nifti1Image(raw, AFFINE)
    image.header.set_data_dtype(raw.dtype)
    nib.save(image, path)


def ct_volume(seed: int) -> np.ndarray:
    """int16 HU, 32 x 32 x 4: tissue and bone inside air, the last slice all air."""
    raw = np.full((32, 32, 4), -1000, np.int16)
    raw[4:28, 4:28, :-1] = np.random.default_rng(seed).integers(-200, 1500, size=(24, 24, 3))
    return raw


@pytest.fixture
def sixteen_bit_split(tmp_path):
    """testA: a 16-bit PNG (Pillow) and a 16-bit TIFF (tifffile) of 12-bit data with a few values
    above 4095; testB: a 16-bit TIFF and a float32 TIFF in HU. scan1 is in both."""
    rng = np.random.default_rng(0)
    (tmp_path / "testA").mkdir()
    (tmp_path / "testB").mkdir()
    a = {"scan1": rng.integers(0, 5000, (20, 24)).astype(np.uint16), "scan2": rng.integers(0, 4096, (20, 24)).astype(np.uint16)}
    b = {"scan1": rng.integers(-1000, 2500, (20, 24)).astype(np.int16), "dose": rng.uniform(-1200, 2000, (20, 24)).astype(np.float32)}
    Image.fromarray(a["scan1"]).save(tmp_path / "testA" / "scan1.png")
    tifffile().imwrite(tmp_path / "testA" / "scan2.tif", a["scan2"])
    tifffile().imwrite(tmp_path / "testB" / "scan1.tif", b["scan1"])
    tifffile().imwrite(tmp_path / "testB" / "dose.tif", b["dose"])
    return tmp_path, a, b


def test_scores_of_16_bit_and_float_files_are_computed_after_the_runs_windows(sixteen_bit_split):
    root, a, b = sixteen_bit_split

    result = evaluate_translators(translators(TWELVE_BIT, HU_WINDOW), describe_dataset(root), fid=False)

    unit_a = [windowed(a[name], 0, 4095) for name in ("scan1", "scan2")]
    unit_b = [windowed(b[name], -1000, 2000) for name in ("dose", "scan1")]  # sorted by name
    forward, backward = result["directions"]["AtoB"], result["directions"]["BtoA"]
    # AtoB is the identity and BtoA halves: x - F(G(x)) = x / 2 either way round.
    assert forward["images"] == 2 and forward["cycle_l1"] == pytest.approx(np.mean(np.abs(unit_a)) / 2, rel=1e-6)
    assert backward["images"] == 2 and backward["cycle_l1"] == pytest.approx(np.mean(np.abs(unit_b)) / 2, rel=1e-6)
    # scan1 is in both folders: PSNR of the windowed A image against the windowed B image, data range 2.
    mse = np.mean((unit_a[0] - unit_b[1]) ** 2)
    assert forward["paired_images"] == 1 and forward["psnr"] == pytest.approx(10 * math.log10(4 / mse), rel=1e-6)
    halved_mse = np.mean((unit_b[1] / 2 - unit_a[0]) ** 2)
    assert backward["psnr"] == pytest.approx(10 * math.log10(4 / halved_mse), rel=1e-6)
    assert result["windows"] == {"A": TWELVE_BIT, "B": HU_WINDOW}
    clipped_a = int(np.count_nonzero(a["scan1"] > 4095))
    clipped_b = int(np.count_nonzero(b["scan1"] > 2000) + np.count_nonzero((b["dose"] < -1000) | (b["dose"] > 2000)))
    assert clipped_a > 0 and clipped_b > 0
    assert result["notes"] == [f"2 image(s) of testA through window {TWELVE_BIT}; {clipped_a} value(s) outside it clipped",
                               f"2 image(s) of testB through window {HU_WINDOW}; {clipped_b} value(s) outside it clipped"]


def test_identical_16_bit_test_sets_through_identity_generators_have_no_cycle_error_and_no_fid(
        sixteen_bit_split, fake_inception):
    root, a, _b = sixteen_bit_split
    for name in ("scan1.tif", "dose.tif"):
        (root / "testB" / name).unlink()
    for name in ("scan1.png", "scan2.tif"):
        (root / "testB" / name).write_bytes((root / "testA" / name).read_bytes())

    result = evaluate_translators(translators(TWELVE_BIT, TWELVE_BIT, back=1.0), describe_dataset(root),
                                  inception_weights=fake_inception, device="cpu", fid=True)

    for scores in result["directions"].values():  # 1-channel: the Inception network sees gray repeated to RGB
        assert scores["cycle_l1"] == 0.0 and scores["psnr"] is None  # identical: PSNR infinite, written as null
        assert scores["fid"] == pytest.approx(0.0, abs=1e-6) and scores["kid"] is not None


def test_a_float_test_file_without_the_domains_window_is_refused_naming_it(sixteen_bit_split):
    root, _a, _b = sixteen_bit_split
    with pytest.raises(ConfigError, match="dose.tif: float images need a window \\(train with --window-b\\)"):
        evaluate_translators(translators(TWELVE_BIT, None), describe_dataset(root), fid=False)


def test_nifti_test_volumes_are_scored_slice_by_slice_through_the_window_and_paired_by_slice(tmp_path):
    nibabel()
    for domain, seed in (("testA", 1), ("testB", 2)):
        (tmp_path / domain).mkdir()
        write_nifti(tmp_path / domain / "p01.nii.gz", ct_volume(seed))

    result = evaluate_translators(translators(HU_WINDOW, HU_WINDOW, slice_axis=2), describe_dataset(tmp_path),
                                  fid=False)

    # The all-air last slice is skipped, as training skips it; slices 0-2 of p01 pair across A and B.
    unit_a, unit_b = (windowed(ct_volume(seed)[:, :, :3], -1000, 2000) for seed in (1, 2))
    forward, backward = result["directions"]["AtoB"], result["directions"]["BtoA"]
    assert forward["images"] == backward["images"] == 3
    assert forward["cycle_l1"] == pytest.approx(np.mean(np.abs(unit_a)) / 2, rel=1e-6)
    assert backward["cycle_l1"] == pytest.approx(np.mean(np.abs(unit_b)) / 2, rel=1e-6)
    psnr = [10 * math.log10(4 / np.mean((unit_a[:, :, i] - unit_b[:, :, i]) ** 2)) for i in range(3)]
    assert forward["paired_images"] == 3 and forward["psnr"] == pytest.approx(np.mean(psnr), rel=1e-6)


def test_multichannel_data_gets_no_fid_with_a_note_and_asking_for_it_is_refused(tmp_path, fake_inception):
    for domain, seed in (("testA", 0), ("testB", 1)):
        (tmp_path / domain).mkdir()
        for index in range(2):
            values = np.random.default_rng(seed * 10 + index).integers(0, 65536, (16, 16, 4)).astype(np.uint16)
            np.save(tmp_path / domain / f"bands{index}.npy", values)
    four = translators(channels=4)

    result = evaluate_translators(four, describe_dataset(tmp_path), inception_weights=fake_inception, device="cpu")

    assert result["directions"]["AtoB"]["fid"] is None and result["directions"]["AtoB"]["cycle_l1"] > 0
    assert ("FID/KID of AtoB not computed: the Inception network takes 1- or 3-channel images, testB has 4"
            in result["notes"])
    with pytest.raises(ConfigError, match="domain A has 4 channels; evaluate it with --no-fid"):
        evaluate_translators(four, describe_dataset(tmp_path), inception_weights=fake_inception, fid=True)


def test_cyclegan_evaluate_reads_a_windowed_runs_test_volumes_through_its_windows(tmp_path, capsys):
    nibabel()
    for domain, seed in (("testA", 1), ("testB", 2)):
        (tmp_path / "data" / domain).mkdir(parents=True)
        write_nifti(tmp_path / "data" / domain / "p01.nii.gz", ct_volume(seed))
    torch.manual_seed(0)
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8, input_nc=1, output_nc=1, window_a=HU_WINDOW,
                         window_b="-500,1500", slice_axis=2)
    model = CycleGAN(config).eval()
    run = tmp_path / "runs" / "ct"
    save_checkpoint(run / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A, "D_B": model.D_B},
                    config, None, epoch=1, iteration=2)

    code = main(["evaluate", str(run), "--data", str(tmp_path / "data"), "--no-fid", "--device", "cpu",
                 "--out", str(tmp_path / "scores.json")])

    assert code == 0
    result = json.loads((tmp_path / "scores.json").read_text())
    assert result["windows"] == {"A": HU_WINDOW, "B": "-500,1500"}
    # By hand: the slices through each domain's window, through the networks, compared in [-1, 1].
    slices = {"A": torch.from_numpy(windowed(ct_volume(1)[:, :, :3], -1000, 2000)).float(),
              "B": torch.from_numpy(windowed(ct_volume(2)[:, :, :3], -500, 1500)).float()}
    with torch.no_grad():
        for direction, (there, back, domain) in {"AtoB": (model.G_AB, model.G_BA, "A"),
                                                 "BtoA": (model.G_BA, model.G_AB, "B")}.items():
            batch = slices[domain].permute(2, 0, 1)[:, None]  # the 3 slices as (3, 1, 32, 32)
            expected = float((back(there(batch)) - batch).abs().mean())
            assert result["directions"][direction]["images"] == 3
            assert result["directions"][direction]["cycle_l1"] == pytest.approx(expected, rel=1e-5)
    assert "cycle L1" in capsys.readouterr().out
