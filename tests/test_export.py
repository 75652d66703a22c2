"""ONNX export with dynamic sizes, checked against PyTorch, and translation with onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.checkpoint import load_generator, save_checkpoint
from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.errors import CheckpointError, ConfigError
from cyclegan.inference.onnx import TOLERANCE, export_onnx, load_onnx_generator
from cyclegan.inference import Translator
from cyclegan.networks import build_generator
from cyclegan.inference.tiling import translate_tiled

from conftest import require_module

onnx = require_module("onnx", "onnx")
ort = require_module("onnxruntime", "onnx")


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory):
    """A checkpoint of a tiny ResNet-6 CycleGAN between RGB (A) and grayscale (B) images."""
    folder = tmp_path_factory.mktemp("run") / "checkpoints"
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8, input_nc=3, output_nc=1)
    torch.manual_seed(0)
    generators = {"G_AB": build_generator("resnet_6blocks", 3, 1, 8), "G_BA": build_generator("resnet_6blocks", 1, 3, 8)}
    for generator in generators.values():  # away from the N(0, 0.02) init, so outputs are not all near 0
        with torch.no_grad():
            for parameter in generator.parameters():
                parameter.mul_(10)
    return save_checkpoint(folder, generators, config, None, epoch=1, iteration=1).weights


@pytest.fixture(scope="module")
def exported(run_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "g_ab.onnx"
    return export_onnx(run_checkpoint, out, "AtoB")


def test_export_checks_the_model_against_pytorch_at_an_untraced_size(exported):
    assert exported.path.is_file()
    assert exported.check_shape == (2, 3, 68, 72)  # traced at 1x3x64x64
    assert exported.max_abs_diff < TOLERANCE and exported.ok


def test_the_onnx_file_carries_what_translation_needs_in_its_metadata(exported):
    props = {p.key: p.value for p in onnx.load(str(exported.path)).metadata_props}
    assert props["format"] == "cyclegan-onnx/1"
    assert (props["net_g"], props["input_nc"], props["output_nc"], props["size_multiple"]) == \
        ("resnet_6blocks", "3", "1", "4")
    assert props["direction"] == "AtoB" and props["ngf"] == "8"
    model = onnx.load(str(exported.path))
    assert model.opset_import[0].version >= 17


@pytest.mark.parametrize("shape", [(1, 3, 36, 52), (3, 3, 64, 20), (2, 3, 8, 100)])
def test_onnxruntime_matches_pytorch_on_non_square_sizes_and_any_batch(exported, run_checkpoint, shape):
    generator, _ = load_generator(run_checkpoint, "AtoB")
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    image = torch.rand(*shape) * 2 - 1
    with torch.no_grad():
        expected = generator(image).numpy()
    actual = session.run(None, {"image": image.numpy()})[0]
    assert actual.shape == (shape[0], 1, shape[2], shape[3])
    assert np.abs(actual - expected).max() < 1e-4


def test_the_other_direction_exports_its_own_generator(run_checkpoint, tmp_path, capsys):
    out = tmp_path / "g_ba.onnx"
    assert main(["export", str(run_checkpoint), "--onnx", str(out), "--direction", "BtoA"]) == 0
    printed = capsys.readouterr().out
    assert "max abs difference from PyTorch on a random 2x1x68x72 input" in printed
    generator, spec = load_onnx_generator(out, "cpu")
    assert (spec.input_nc, spec.output_nc, spec.exported_direction) == (1, 3, "BtoA")
    assert generator(torch.zeros(1, 1, 12, 16)).shape == (1, 3, 12, 16)


def test_translate_runs_an_onnx_file_with_onnxruntime_at_any_image_size(exported, run_checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("wide.png", (37, 21)), ("tall.jpg", (18, 45))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(inputs / name)
    assert main(["translate", str(exported.path), str(inputs), "--out", str(tmp_path / "onnx"),
                 "--backend", "onnxruntime", "--no-progress"]) == 0
    assert "onnxruntime" in capsys.readouterr().out
    assert main(["translate", str(run_checkpoint), str(inputs), "--out", str(tmp_path / "torch"),
                 "--device", "cpu", "--no-progress"]) == 0
    for name, size in (("wide.png", (37, 21)), ("tall.jpg", (18, 45))):
        by_onnx = Image.open(tmp_path / "onnx" / name)
        assert (by_onnx.size, by_onnx.mode) == (size, "L")
        if name.endswith(".png"):  # lossless: compare with the PyTorch translation, in 8-bit levels
            by_torch = np.asarray(Image.open(tmp_path / "torch" / name), dtype=int)
            assert np.abs(np.asarray(by_onnx, dtype=int) - by_torch).max() <= 1


def test_onnx_translation_can_be_tiled_with_each_tile_normalised_on_its_own(exported, run_checkpoint):
    # The exported graph normalises what it is given, so its tiles keep their own instance-norm
    # statistics (the torch backend uses statistics of the whole image instead).
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 70, 3), dtype=np.uint8))
    by_onnx = Translator.from_checkpoint(exported.path, tile=32, overlap=8)(image)
    torch_translator = Translator.from_checkpoint(run_checkpoint, device="cpu")
    by_torch = translate_tiled(image, torch_translator.translate_tensor, 32, 8)
    assert (by_onnx.size, by_onnx.mode) == ((70, 40), "L")
    assert np.abs(np.asarray(by_onnx, dtype=int) - np.asarray(by_torch, dtype=int)).max() <= 1


def test_backend_and_file_type_must_agree(exported, run_checkpoint):
    with pytest.raises(ConfigError, match="runs with --backend onnxruntime"):
        Translator.from_checkpoint(exported.path, backend="torch")
    with pytest.raises(ConfigError, match="needs an .onnx file.*cyclegan export"):
        Translator.from_checkpoint(run_checkpoint, backend="onnxruntime")
    with pytest.raises(ConfigError, match="--precision"):
        Translator.from_checkpoint(exported.path, precision="bf16")


def test_an_onnx_file_without_our_metadata_is_refused(exported, tmp_path):
    model = onnx.load(str(exported.path))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    with pytest.raises(CheckpointError, match="lacks cyclegan metadata"):
        load_onnx_generator(tmp_path / "foreign.onnx", "cpu")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="cannot be loaded by onnxruntime"):
        load_onnx_generator(tmp_path / "broken.onnx", "cpu")


# ------------------------------------------------------------------------ intensity windows in the file
@pytest.fixture(scope="module")
def windowed_checkpoint(tmp_path_factory):
    """A tiny 1-channel CycleGAN trained with windows: CT in HU (A) and a 12-bit scanner's values (B)."""
    folder = tmp_path_factory.mktemp("windowed") / "checkpoints"
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8, input_nc=1, output_nc=1, window_a="-1000,2000",
                         window_b="0,4095", slice_axis=2)
    torch.manual_seed(0)
    generators = {"G_AB": build_generator("resnet_6blocks", 1, 1, 8),
                  "G_BA": build_generator("resnet_6blocks", 1, 1, 8)}
    for generator in generators.values():
        with torch.no_grad():
            for parameter in generator.parameters():
                parameter.mul_(10)
    return save_checkpoint(folder, generators, config, None, epoch=1, iteration=1).weights


def metadata_of(path):
    return {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}


def test_the_onnx_file_of_a_windowed_run_records_the_windows_of_its_input_and_output_domains(windowed_checkpoint,
                                                                                             tmp_path):
    a_to_b = metadata_of(export_onnx(windowed_checkpoint, tmp_path / "ab.onnx", "AtoB").path)
    b_to_a = metadata_of(export_onnx(windowed_checkpoint, tmp_path / "ba.onnx", "BtoA").path)

    assert {key: a_to_b[key] for key in ("input_window", "output_window", "slice_axis", "input_values",
                                         "output_values")} == {
        "input_window": "-1000,2000", "output_window": "0,4095", "slice_axis": "2",
        "input_values": "1 channel, window -1000..2000 (mapped to [-1, 1], clipped)",
        "output_values": "1 channel, window 0..4095 (mapped to [-1, 1], clipped)"}
    assert (b_to_a["input_window"], b_to_a["output_window"]) == ("0,4095", "-1000,2000")
    assert b_to_a["input_values"] == "1 channel, window 0..4095 (mapped to [-1, 1], clipped)"


def test_the_onnx_file_of_a_run_without_windows_says_8_bit(exported):
    props = metadata_of(exported.path)
    assert (props["input_window"], props["output_window"], props["slice_axis"]) == ("", "", "")
    assert props["input_values"] == "3 channels, 8-bit images, [0, 255] → [-1, 1]"
    assert props["output_values"] == "1 channel, 8-bit images, [0, 255] → [-1, 1]"


def test_translating_hounsfield_units_with_the_onnx_file_maps_them_through_its_windows(windowed_checkpoint, tmp_path):
    out = export_onnx(windowed_checkpoint, tmp_path / "ab.onnx", "AtoB").path
    _generator, spec = load_onnx_generator(out, "cpu")
    assert (spec.input_window, spec.output_window, spec.slice_axis) == ("-1000,2000", "0,4095", 2)
    inputs = tmp_path / "in"
    inputs.mkdir()
    hounsfield = np.random.default_rng(0).integers(-1000, 2000, (24, 20)).astype(np.int16)
    np.save(inputs / "ct.npy", hounsfield)

    for name, model in (("onnx", out), ("torch", windowed_checkpoint)):
        report = Translator.from_checkpoint(model, device="cpu").translate_files([inputs / "ct.npy"], tmp_path / name)
        assert report.written == [tmp_path / name / "ct.npy"]
    by_onnx, by_torch = np.load(tmp_path / "onnx" / "ct.npy"), np.load(tmp_path / "torch" / "ct.npy")

    assert by_onnx.dtype == np.int16 and by_onnx.shape == (24, 20)
    assert 0 <= by_onnx.min() and by_onnx.max() <= 4095 and np.ptp(by_onnx) > 100  # B's values, not A's or 8-bit
    assert np.abs(by_onnx.astype(int) - by_torch.astype(int)).max() <= 1  # a stored level at most


def test_an_onnx_file_with_a_damaged_window_is_refused(windowed_checkpoint, tmp_path):
    model = onnx.load(str(export_onnx(windowed_checkpoint, tmp_path / "ab.onnx", "AtoB").path))
    for prop in model.metadata_props:
        if prop.key == "input_window":
            prop.value = "2000,-1000"
    onnx.save(model, str(tmp_path / "damaged.onnx"))
    with pytest.raises(CheckpointError, match="damaged.onnx has damaged cyclegan metadata"):
        load_onnx_generator(tmp_path / "damaged.onnx", "cpu")


@pytest.mark.parametrize("opset, message", [
    # 0 used to mean the default, and one past the exporter's newest ended in a RuntimeError traceback.
    ("0", "opset 0 is too old; use 17 or newer"),
    ("999", "opset 999 is newer than this PyTorch's ONNX exporter writes; use 17 to "),
])
def test_an_opset_the_exporter_cannot_write_is_one_line_before_anything_is_written(run_checkpoint, tmp_path, capsys,
                                                                                   opset, message):
    assert main(["export", str(run_checkpoint), "--onnx", str(tmp_path / "g.onnx"), "--opset", opset]) == 2
    assert capsys.readouterr().err.startswith(f"cyclegan export: error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_an_onnx_path_that_is_a_folder_or_lies_below_a_file_is_refused_by_name(run_checkpoint, tmp_path, capsys):
    # These used to end in "Is a directory (.g.onnx.PID.HEX.tmp)", naming a temporary file, and "File exists".
    folder = tmp_path / "g.onnx"
    folder.mkdir()
    (tmp_path / "notes.txt").write_text("kept")
    assert main(["export", str(run_checkpoint), "--onnx", str(folder)]) == 2
    assert capsys.readouterr().err == (f"cyclegan export: error: cannot write {folder}: {folder} is a folder; "
                                       "give another file path as --onnx\n")
    below = tmp_path / "notes.txt" / "g.onnx"
    assert main(["export", str(run_checkpoint), "--onnx", str(below)]) == 2
    assert capsys.readouterr().err == (f"cyclegan export: error: cannot write {below}: {tmp_path / 'notes.txt'} is "
                                       "not a folder; give another file path as --onnx\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["g.onnx", "notes.txt"]
    assert list(folder.iterdir()) == [] and (tmp_path / "notes.txt").read_text() == "kept"


def test_an_existing_onnx_file_is_kept_unless_overwrite_is_given(run_checkpoint, tmp_path, capsys):
    out = tmp_path / "g.onnx"
    out.write_bytes(b"an earlier export")
    assert main(["export", str(run_checkpoint), "--onnx", str(out)]) == 2
    assert (f"{out} already exists; pass --overwrite to replace it, or give another file path as --onnx"
            in capsys.readouterr().err)
    assert out.read_bytes() == b"an earlier export"
    assert main(["export", str(run_checkpoint), "--onnx", str(out), "--overwrite"]) == 0
    _, spec = load_onnx_generator(out, "cpu")
    assert (spec.input_nc, spec.output_nc) == (3, 1)


def test_overwrite_does_not_apply_to_a_hub_folder(run_checkpoint, tmp_path, capsys):
    folder = tmp_path / "hub"
    assert main(["export", str(run_checkpoint), "--hub-folder", str(folder), "--overwrite"]) == 2
    assert "a --hub-folder is never replaced: give a new or empty folder" in capsys.readouterr().err
    assert not folder.exists()
