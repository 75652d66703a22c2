"""Medical and scientific images end to end: 16-bit and float files, intensity windows saved with the
model, volumes sliced for training and translated back whole, more than three channels."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_module, tiny_train_argv
from cyclegan.checkpoint import GeneratorSpec, save_checkpoint
from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.data.check import check_dataset
from cyclegan.data.datasets import UnalignedDataset
from cyclegan.errors import ConfigError
from cyclegan.inference.translator import Translator
from cyclegan.training.model import CycleGAN

HU_WINDOW = "-1000,2000"


def identity_translator(channels=1, input_window=None, output_window=None) -> Translator:
    """A stand-in generator that returns its input: what comes out is the conversion alone."""
    spec = GeneratorSpec("resnet_6blocks", channels, channels, 8, "instance", "identity", "AtoB",
                         input_window=input_window, output_window=output_window)
    return Translator(torch.nn.Identity(), spec, device="cpu")


def nibabel():
    return require_module("nibabel", "medical")


def tifffile():
    return require_module("tifffile", "medical")


def write_nifti(path, raw, affine):
    nib = nibabel()
    image = nib.Nifti1Image(raw, affine)
    image.header.set_data_dtype(raw.dtype)
    nib.save(image, path)
    return path


def ct_volume(seed=0, shape=(32, 32, 4)):
    """int16 HU: a body of soft tissue and bone inside air, the last slice all air."""
    rng = np.random.default_rng(seed)
    raw = np.full(shape, -1000, np.int16)
    raw[4:28, 4:28, :-1] = rng.integers(-200, 1500, size=(24, 24, shape[2] - 1))
    return raw


AFFINE = np.array([[0.75, 0.0, 0.0, -10.0], [0.0, 0.875, 0.0, 20.0], [0.0, 0.0, 2.5, 5.0], [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory) -> Path:
    """A tiny 1-channel -> 1-channel CycleGAN checkpoint (untrained)."""
    folder = tmp_path_factory.mktemp("gray_model") / "run"
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8, input_nc=1, output_nc=1)
    torch.manual_seed(0)
    model = CycleGAN(config)
    save_checkpoint(folder / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A,
                                             "D_B": model.D_B}, config, None, epoch=0, iteration=0)
    return folder


# --- 16-bit and float images ------------------------------------------------------------------------

def test_a_16_bit_grayscale_png_translated_with_a_1_channel_model_comes_back_16_bit(gray_run, tmp_path):
    values = np.linspace(0, 65535, 40 * 36).astype(np.uint16).reshape(36, 40)
    Image.fromarray(values).save(tmp_path / "scan.png")

    assert main(["translate", str(gray_run), str(tmp_path / "scan.png"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 0

    with Image.open(tmp_path / "out" / "scan.png") as result:
        assert result.mode == "I;16" and result.size == (40, 36)
        back = np.array(result)
    assert back.dtype == np.uint16
    assert len(np.unique(back)) > 256  # more levels than 8 bits could hold


def test_16_bit_png_and_rgb_tiff_come_back_exactly_through_an_identity_generator(tmp_path):
    tifffile()
    gray = np.linspace(0, 65535, 32 * 28).round().astype(np.uint16).reshape(28, 32)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    rgb = np.random.default_rng(0).integers(0, 65536, size=(20, 24, 3)).astype(np.uint16)
    tifffile().imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")

    report_gray = identity_translator(1).translate_files([tmp_path / "gray.png"], tmp_path / "out")
    report_rgb = identity_translator(3).translate_files([tmp_path / "rgb.tif"], tmp_path / "out")

    assert report_gray.failed == [] and report_rgb.failed == []
    assert np.array_equal(np.array(Image.open(tmp_path / "out" / "gray.png")), gray)
    back = tifffile().imread(tmp_path / "out" / "rgb.tif")
    assert back.dtype == np.uint16 and np.array_equal(back, rgb)


def test_output_depth_8_writes_a_16_bit_input_as_8_bit(tmp_path):
    Image.fromarray(np.array([[0, 32896, 65535, 257]] * 4, np.uint16)).save(tmp_path / "gray.png")

    identity_translator(1).translate_files([tmp_path / "gray.png"], tmp_path / "out", output_depth="8")

    back = np.array(Image.open(tmp_path / "out" / "gray.png"))
    assert back.dtype == np.uint8 and back[0].tolist() == [0, 128, 255, 1]


def test_a_float_tiff_without_a_window_is_a_clear_error_before_anything_is_written(gray_run, tmp_path, capsys):
    tifffile().imwrite(tmp_path / "dose.tif", np.linspace(0, 3.5, 64, dtype=np.float32).reshape(8, 8))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "plain.png")

    code = main(["translate", str(gray_run), str(tmp_path / "plain.png"), str(tmp_path / "dose.tif"),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])

    assert code != 0
    error = capsys.readouterr().err
    assert f"{tmp_path / 'dose.tif'}: float images need a window (train with --window-a/--window-b)" in error
    assert "never stretched per image" in error
    assert not (tmp_path / "out" / "plain.png").exists()


def test_a_depth_the_output_format_cannot_hold_is_refused_before_translating(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(tmp_path / "a.png")

    with pytest.raises(ConfigError, match="a.png: PNG cannot hold float values; write .tif or .npy"):
        identity_translator(1).translate_files([tmp_path / "a.png"], tmp_path / "out", output_depth="float")
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


def test_a_ct_in_hounsfield_units_comes_back_in_hounsfield_units_and_clipped_values_are_counted(tmp_path):
    hu = np.linspace(-1000, 2000, 16 * 12).round().astype(np.int16).reshape(12, 16)
    hu[0, 0], hu[0, 1] = -2048, 3071  # outside the window: clipped to its ends
    np.save(tmp_path / "ct.npy", hu)

    report = identity_translator(1, HU_WINDOW, HU_WINDOW).translate_files([tmp_path / "ct.npy"], tmp_path / "out")

    back = np.load(tmp_path / "out" / "ct.npy")
    expected = hu.copy()
    expected[0, 0], expected[0, 1] = -1000, 2000
    assert back.dtype == np.int16 and np.array_equal(back, expected)
    assert report.clipped == 2
    assert report.notes == [f"{tmp_path / 'ct.npy'}: 2 value(s) outside the model's intensity window were clipped",
                            "2 value(s) clipped in all, outside the intensity windows the model was trained with "
                            "(--window-a/--window-b)"]


# --- volumes ---------------------------------------------------------------------------------------

def test_a_nifti_volume_translated_keeps_shape_affine_voxel_type_and_hu(tmp_path):
    nib = nibabel()
    raw = ct_volume()
    write_nifti(tmp_path / "ct.nii.gz", raw, AFFINE)

    report = identity_translator(1, HU_WINDOW, HU_WINDOW).translate_files([tmp_path], tmp_path / "out")

    assert report.failed == [] and report.written == [tmp_path / "out" / "ct.nii.gz"]
    back = nib.load(tmp_path / "out" / "ct.nii.gz")
    assert back.shape == raw.shape and back.get_data_dtype() == np.int16
    assert np.array_equal(back.affine, AFFINE)
    assert np.array_equal(np.asarray(back.dataobj), raw)


def test_nibabels_sample_scan_translated_by_a_model_keeps_its_geometry(gray_run, tmp_path):
    nib = nibabel()
    sample = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not sample.is_file():
        pytest.skip(f"nibabel's sample data is not installed ({sample})")

    assert main(["translate", str(gray_run), str(sample), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--no-progress"]) == 0

    original, back = nib.load(sample), nib.load(tmp_path / "out" / "anatomical.nii")
    assert back.shape == original.shape == (33, 41, 25)
    assert back.get_data_dtype() == original.get_data_dtype()
    assert np.array_equal(back.affine, original.affine)


def test_nibabels_sample_dicom_series_comes_back_as_a_derived_series_with_the_same_geometry(tmp_path):
    pydicom = require_module("pydicom", "medical")
    nib = nibabel()
    samples = [Path(nib.__file__).parent / "tests" / "data" / name for name in ("0.dcm", "1.dcm")]
    if not all(p.is_file() for p in samples):
        pytest.skip("nibabel's sample DICOM files are not installed")
    (tmp_path / "mr").mkdir()
    for sample in samples:
        (tmp_path / "mr" / sample.name).write_bytes(sample.read_bytes())

    report = identity_translator(1, "0,4095", "0,4095").translate_files([tmp_path / "mr"], tmp_path / "out")

    assert report.failed == [] and report.written == [tmp_path / "out" / "mr"]
    for name in ("0.dcm", "1.dcm"):
        original, derived = pydicom.dcmread(tmp_path / "mr" / name), pydicom.dcmread(tmp_path / "out" / "mr" / name)
        assert derived.ImageType[0] == "DERIVED"
        assert derived.SeriesInstanceUID != original.SeriesInstanceUID
        assert derived.ImagePositionPatient == original.ImagePositionPatient
        assert derived.PixelSpacing == original.PixelSpacing
        assert np.array_equal(derived.pixel_array, original.pixel_array)


def test_training_two_iterations_on_folders_of_nifti_volumes_records_the_windows(tmp_path, capsys):
    nibabel()
    for domain, seed in (("trainA", 1), ("trainB", 2)):
        (tmp_path / "data" / domain).mkdir(parents=True)
        for index in range(2):
            write_nifti(tmp_path / "data" / domain / f"ct{index}.nii.gz", ct_volume(seed + 10 * index), AFFINE)

    code = main(tiny_train_argv(tmp_path / "data", tmp_path / "runs", "ct", "--input-nc", "1", "--output-nc", "1",
                                f"--window-a={HU_WINDOW}", f"--window-b={HU_WINDOW}", "--max-iters", "2",
                                "--load-size", "32"))

    assert code == 0
    run = tmp_path / "runs" / "ct"
    saved = json.loads((run / "config.json").read_text())
    assert (saved["model"]["window_a"], saved["model"]["window_b"]) == (HU_WINDOW, HU_WINDOW)
    assert saved["model"]["slice_axis"] is None and saved["data"]["min_foreground"] == 0.0
    assert "iterations:  2" in capsys.readouterr().out
    translator = Translator.from_checkpoint(run, device="cpu")
    assert (translator.spec.input_window, translator.spec.output_window) == (HU_WINDOW, HU_WINDOW)


def test_volumes_are_cut_into_their_foreground_slices_along_the_slice_axis(tmp_path):
    nibabel()
    for domain in ("A", "B"):
        (tmp_path / domain).mkdir()
        write_nifti(tmp_path / domain / "ct.nii.gz", ct_volume(), AFFINE)

    dataset = UnalignedDataset(tmp_path / "A", tmp_path / "B", 1, 1, preprocess="none", flip=False,
                               window_a=HU_WINDOW, window_b=HU_WINDOW)
    across = UnalignedDataset(tmp_path / "A", tmp_path / "B", 1, 1, preprocess="none", flip=False,
                              window_a=HU_WINDOW, window_b=HU_WINDOW, slice_axis=0)

    assert [s.index for s in dataset.paths_a] == [0, 1, 2]  # the all-air slice 3 is skipped
    assert [s.index for s in across.paths_a] == list(range(4, 28))  # rows of air skipped
    sample = dataset[1]
    expected = (ct_volume()[:, :, 1].astype(np.float32) + 1000) / 1500 - 1
    assert sample["A"].shape == (1, 32, 32) and torch.equal(sample["A"][0], torch.from_numpy(expected))


def test_an_unreadable_volume_is_named_and_skipped_in_training(tmp_path):
    nibabel()
    for domain in ("A", "B"):
        (tmp_path / domain).mkdir()
        write_nifti(tmp_path / domain / "ct.nii.gz", ct_volume(), AFFINE)
    (tmp_path / "A" / "broken.nii.gz").write_bytes(b"not a volume")

    with pytest.warns(UserWarning, match="broken.nii.gz"):
        dataset = UnalignedDataset(tmp_path / "A", tmp_path / "B", 1, 1, preprocess="none", window_a=HU_WINDOW)

    assert [path for path, _reason in dataset.skipped] == [str(tmp_path / "A" / "broken.nii.gz")]
    assert "not a readable NIfTI volume" in dataset.skipped[0][1]


def test_data_check_reports_a_volume_and_its_geometry(tmp_path):
    nibabel()
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    write_nifti(tmp_path / "trainA" / "ct.nii.gz", ct_volume(), AFFINE)
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(tmp_path / "trainB" / "mr.png")

    report = check_dataset(tmp_path)

    assert report.ok
    lines = str(report).splitlines()
    assert "  trainA: 0 usable image(s) of 0 file(s), 1 volume(s)" in lines
    assert ("    volume: trainA/ct.nii.gz: NIfTI, 32x32x4 int16, spacing 0.75x0.875x2.5 mm, orientation RAS, "
            "4 slices along axis 2 (axial)") in lines
    assert "    modes: I;16 x1" in lines


# --- more than three channels ----------------------------------------------------------------------

def test_a_multispectral_npy_keeps_its_channels_and_every_band_gets_the_same_crop(tmp_path):
    bands = np.random.default_rng(0).integers(0, 65536, size=(40, 36, 5)).astype(np.uint16)
    for domain in ("A", "B"):
        (tmp_path / domain).mkdir()
        np.save(tmp_path / domain / "field.npy", bands)

    dataset = UnalignedDataset(tmp_path / "A", tmp_path / "B", 5, 5, preprocess="crop", crop_size=32, seed=3)
    sample = dataset[0]

    assert sample["A"].shape == (5, 32, 32)
    unit = torch.from_numpy(bands.astype(np.float32) / np.float32(32767.5) - 1).permute(2, 0, 1)
    offsets = [(top, left) for top in range(9) for left in range(5)
               if torch.equal(sample["A"][0], unit[0, top:top + 32, left:left + 32])
               or torch.equal(sample["A"][0], unit[0, top:top + 32, left:left + 32].flip(-1))]
    assert len(offsets) == 1
    top, left = offsets[0]
    window = unit[:, top:top + 32, left:left + 32]
    assert torch.equal(sample["A"], window) or torch.equal(sample["A"], window.flip(-1))


def test_data_check_refuses_a_dicom_series_of_mixed_geometry_naming_the_file(tmp_path):
    pydicom = require_module("pydicom", "medical")
    nib = nibabel()
    samples = [Path(nib.__file__).parent / "tests" / "data" / name for name in ("0.dcm", "1.dcm")]
    if not all(p.is_file() for p in samples):
        pytest.skip("nibabel's sample DICOM files are not installed")
    series = tmp_path / "trainA" / "mr"
    series.mkdir(parents=True)
    for sample in samples:
        (series / sample.name).write_bytes(sample.read_bytes())
    changed = pydicom.dcmread(series / "1.dcm")
    changed.PixelSpacing = [0.5, 0.5]
    changed.save_as(series / "1.dcm")
    (tmp_path / "trainB").mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "trainB" / "b.png")

    report = check_dataset(tmp_path)

    assert report.folders["trainA"].volumes == []
    [(path, reason)] = report.folders["trainA"].unreadable
    assert path == "trainA/mr"
    assert reason.startswith("1.dcm: pixel spacing [0.5, 0.5] differs from 0.dcm's")
    assert reason.endswith("mixed geometry in one series; keep one geometry per folder")
    assert "error: trainA/ has no usable image" in str(report)


def test_a_float_volume_without_a_window_is_refused_before_anything_is_translated(tmp_path):
    write_nifti(tmp_path / "dose.nii.gz", np.linspace(0, 2, 32 * 32 * 2, dtype=np.float32).reshape(32, 32, 2), AFFINE)
    np.save(tmp_path / "a.npy", np.zeros((8, 8), np.uint16))

    with pytest.raises(ConfigError, match=r"dose.nii.gz: float images need a window \(train with --window-a"):
        identity_translator(1).translate_files([tmp_path / "a.npy", tmp_path / "dose.nii.gz"], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


def test_a_16_bit_grayscale_png_through_an_rgb_model_is_written_as_8_bit_saying_so(tmp_path):
    Image.fromarray(np.array([[0, 32896, 65535, 257]] * 4, np.uint16)).save(tmp_path / "gray.png")

    report = identity_translator(3).translate_files([tmp_path / "gray.png"], tmp_path / "out")

    back = np.array(Image.open(tmp_path / "out" / "gray.png"))
    assert back.dtype == np.uint8 and back.shape == (4, 4, 3) and back[0, :, 0].tolist() == [0, 128, 255, 1]
    assert report.notes == [f"{tmp_path / 'gray.png'}: written as 8-bit, since 16-bit PNG is written for grayscale "
                            "only, not 3 channels; write .tif or .npy, or choose --output-depth 8"]


def test_training_on_float_files_without_a_window_is_refused_naming_the_file(tmp_path):
    for domain in ("A", "B"):
        (tmp_path / domain).mkdir()
        np.save(tmp_path / domain / "dose.npy", np.linspace(0, 2, 32 * 32, dtype=np.float32).reshape(32, 32))

    with pytest.raises(ConfigError) as caught:
        UnalignedDataset(tmp_path / "A", tmp_path / "B", 1, 1, preprocess="none", window_a="0,2")

    assert str(caught.value) == (f"{tmp_path / 'B' / 'dose.npy'}: float images need --window-b LOW,HIGH (or "
                                 "percentile:P_LOW,P_HIGH): their values are never stretched per image")


def test_a_16_bit_image_larger_than_the_tile_is_translated_in_tiles_without_seams_from_identity(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, size=(70, 90)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "big.png")
    spec = GeneratorSpec("resnet_6blocks", 1, 1, 8, "instance", "identity", "AtoB")
    tiled = Translator(torch.nn.Identity(), spec, device="cpu", tile=32, overlap=8)

    tiled.translate_files([tmp_path / "big.png"], tmp_path / "out")

    assert np.array_equal(np.array(Image.open(tmp_path / "out" / "big.png")), values)


def test_a_percentile_window_of_a_volume_is_taken_over_the_whole_volume(tmp_path):
    nibabel()
    for domain in ("A", "B"):
        (tmp_path / domain).mkdir()
        write_nifti(tmp_path / domain / "mr.nii.gz", ct_volume(), AFFINE)

    dataset = UnalignedDataset(tmp_path / "A", tmp_path / "B", 1, 1, preprocess="none", flip=False,
                               window_a="percentile:0,100", window_b=HU_WINDOW)

    raw = ct_volume().astype(np.float32)
    low, high = float(raw.min()), float(raw.max())
    expected = (raw[:, :, 2] - np.float32(low)) / np.float32((high - low) / 2) - np.float32(1)
    assert torch.equal(dataset[2]["A"][0], torch.from_numpy(expected))
    assert dataset[2]["clipped"] == 0


def test_min_foreground_skips_slices_with_too_little_tissue_and_names_a_volume_left_without_any(tmp_path):
    nibabel()
    for domain in ("A", "B"):
        (tmp_path / domain).mkdir()
        write_nifti(tmp_path / domain / "ct.nii.gz", ct_volume(), AFFINE)
    write_nifti(tmp_path / "A" / "small.nii.gz", ct_volume(shape=(64, 64, 3)), AFFINE)  # tissue: 24x24 of 64x64

    with pytest.warns(UserWarning, match="small.nii.gz"):
        dataset = UnalignedDataset(tmp_path / "A", tmp_path / "B", 1, 1, preprocess="none", window_a=HU_WINDOW,
                                   min_foreground=0.5)

    assert [(s.path.name, s.index) for s in dataset.paths_a] == [("ct.nii.gz", 0), ("ct.nii.gz", 1), ("ct.nii.gz", 2)]
    assert dataset.skipped == [(str(tmp_path / "A" / "small.nii.gz"),
                                f"{tmp_path / 'A' / 'small.nii.gz'}: no slice has foreground above the window's low "
                                "end (--min-foreground); check the window or lower --min-foreground")]


def test_a_window_starting_below_zero_needs_no_equals_sign():
    from cyclegan.cli import _attach_negative_values, build_parser
    from cyclegan.cli.options import config_from_args

    argv = ["train", "--data", "d", "--window-b", "-1000,2000", "--window-a", "percentile:0.5,99.5"]
    assert _attach_negative_values(argv)[3] == "--window-b=-1000,2000"
    config = config_from_args(build_parser().parse_args(_attach_negative_values(argv)))
    assert config.model.window_b == "-1000,2000" and config.model.window_a == "percentile:0.5,99.5"
