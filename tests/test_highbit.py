"""Image files at full precision: 16-bit PNG and TIFF, float TIFF, .npy, many channels; depths
written back, and refused before writing where a format cannot hold them."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cyclegan.data.highbit import (
    check_writable,
    match_channels,
    output_depth_of,
    read_array,
    reads_at_full_precision,
    unit_to_array,
    write_array,
)
from cyclegan.data.intensity import IntensityWindow, default_window
from cyclegan.errors import ConfigError, UnreadableImageError


def tifffile():
    return pytest.importorskip("tifffile", reason="TIFF at full precision needs tifffile: pip install 'cyclegan[medical]'")


def ramp(shape, dtype, low, high):
    """Every value of [low, high] spread over `shape`, both ends included."""
    return np.linspace(low, high, int(np.prod(shape))).round().astype(dtype).reshape(shape)


def through_the_network(array, window=None):
    """read -> window to [-1, 1] -> back to the input's depth, as an identity generator would."""
    window = (window or default_window(array.dtype)).resolved(array)
    unit, _ = window.to_unit(array)
    return unit_to_array(unit, window, array.dtype, output_depth_of(array))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_16bit_rgb_png(path, width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x12\x34" * 3 * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows))
                     + png_chunk(b"IEND", b""))


def test_16bit_grayscale_png_round_trip_keeps_every_value_within_one_level(tmp_path):
    original = ramp((64, 48), np.uint16, 0, 65535)
    Image.fromarray(original).save(tmp_path / "scan.png")

    read = read_array(tmp_path / "scan.png")
    write_array(tmp_path / "out.png", through_the_network(read))
    back = read_array(tmp_path / "out.png")

    assert read.dtype == np.uint16 and np.array_equal(read, original)
    assert back.dtype == np.uint16
    assert int(np.abs(back.astype(np.int64) - original).max()) <= 1


@pytest.mark.parametrize("shape", [(40, 30), (40, 30, 3)], ids=["gray", "rgb"])
def test_16bit_tiff_round_trip_keeps_every_value_within_one_level(tmp_path, shape):
    tiff = tifffile()
    original = ramp(shape, np.uint16, 0, 65535)
    tiff.imwrite(tmp_path / "scan.tif", original, photometric="rgb" if len(shape) == 3 else "minisblack")

    read = read_array(tmp_path / "scan.tif")
    write_array(tmp_path / "out.tif", through_the_network(read))
    back = read_array(tmp_path / "out.tif")

    assert read.shape == shape and read.dtype == np.uint16
    assert back.shape == shape and back.dtype == np.uint16
    assert int(np.abs(back.astype(np.int64) - original).max()) <= 1


def test_float_tiff_in_hounsfield_units_comes_back_in_hounsfield_units_within_half_a_unit(tmp_path):
    tiff = tifffile()
    hounsfield = np.linspace(-1000.0, 2000.0, 40 * 30, dtype=np.float32).reshape(40, 30)
    tiff.imwrite(tmp_path / "ct.tif", hounsfield)

    read = read_array(tmp_path / "ct.tif")
    write_array(tmp_path / "out.tif", through_the_network(read, IntensityWindow.parse("-1000,2000")))
    back = read_array(tmp_path / "out.tif")

    assert read.dtype == np.float32 and np.array_equal(read, hounsfield)
    assert back.dtype == np.float32
    assert float(np.abs(back - hounsfield).max()) <= 0.5


def test_npy_with_five_channels_round_trips_exactly(tmp_path):
    original = ramp((12, 10, 5), np.uint16, 0, 65535)
    np.save(tmp_path / "bands.npy", original)

    read = read_array(tmp_path / "bands.npy")
    write_array(tmp_path / "out.npy", through_the_network(read))

    assert read.shape == (12, 10, 5) and read.dtype == np.uint16
    assert np.array_equal(np.load(tmp_path / "out.npy"), original)


def test_multi_page_tiff_pages_become_channels(tmp_path):
    tiff = tifffile()
    bands = [np.full((8, 6), 1000 * (i + 1), dtype=np.uint16) for i in range(4)]
    with tiff.TiffWriter(tmp_path / "rgbn.tif") as writer:
        for band in bands:
            writer.write(band, photometric="minisblack")

    read = read_array(tmp_path / "rgbn.tif")

    assert read.shape == (8, 6, 4)
    assert read[0, 0].tolist() == [1000, 2000, 3000, 4000]


def test_many_channels_written_as_tiff_read_back_in_the_same_order(tmp_path):
    tifffile()
    original = ramp((9, 7, 6), np.float32, -5.0, 5.0) + np.arange(6, dtype=np.float32)

    write_array(tmp_path / "bands.tif", original)

    assert np.array_equal(read_array(tmp_path / "bands.tif"), original)


def test_eight_bit_png_is_read_as_it_is(tmp_path):
    rgb = ramp((5, 4, 3), np.uint8, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "photo.png")

    read = read_array(tmp_path / "photo.png")

    assert read.dtype == np.uint8 and np.array_equal(read, rgb)


def test_16bit_rgb_png_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "colour16.png"
    write_16bit_rgb_png(path, 3, 2)

    with pytest.raises(UnreadableImageError) as caught:
        read_array(path)

    assert str(caught.value) == (f"{path}: a 16-bit RGB PNG, which Pillow reads only as 8 bits; "
                                 "re-save it as a 16-bit TIFF or .npy")


def test_reads_at_full_precision_tells_from_the_header(tmp_path):
    tiff = tifffile()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "scan.png")
    tiff.imwrite(tmp_path / "photo.tif", np.zeros((4, 4, 3), np.uint8), photometric="rgb")
    tiff.imwrite(tmp_path / "scan.tif", np.zeros((4, 4), np.uint16))
    np.save(tmp_path / "bands.npy", np.zeros((4, 4, 3), np.uint8))
    write_16bit_rgb_png(tmp_path / "colour16.png", 2, 2)

    answers = {name: reads_at_full_precision(tmp_path / name) for name in
               ("photo.png", "scan.png", "photo.tif", "scan.tif", "bands.npy", "colour16.png")}

    assert answers == {"photo.png": False, "scan.png": True, "photo.tif": False, "scan.tif": True,
                       "bands.npy": True, "colour16.png": True}


def test_output_depth_of_an_input_is_its_own():
    assert [output_depth_of(np.zeros(1, dtype)) for dtype in (np.uint8, np.uint16, np.int16, np.float32, np.float64)] \
        == ["8", "16", "16", "float", "float"]


def test_another_integer_depth_spans_its_full_range():
    unit = np.array([-1.0, 0.0, 1.0], dtype=np.float32)

    assert unit_to_array(unit, default_window(np.uint16), np.uint16, "8").tolist() == [0, 128, 255]
    assert unit_to_array(unit, default_window(np.uint8), np.uint8, "16").tolist() == [0, 32768, 65535]
    assert unit_to_array(unit, IntensityWindow.parse("-1000,2000"), np.float32, "float").tolist() == [-1000.0, 500.0, 2000.0]


@pytest.mark.parametrize("suffix, depth, channels, message", [
    (".png", "float", 1, "PNG cannot hold float values; write .tif or .npy, or choose --output-depth 8 or 16"),
    (".png", "16", 3, "16-bit PNG is written for grayscale only, not 3 channels; write .tif or .npy, or choose --output-depth 8"),
    (".png", "8", 5, "PNG holds at most 4 channels (RGBA), not 5; write .tif or .npy"),
    (".jpg", "16", 1, ".jpg holds 8-bit grayscale or RGB only, not 1 channels at depth 16; write .png, .tif or .npy"),
    (".tif", "12", 1, "--output-depth must be one of 8, 16, float, got '12'"),
])
def test_check_writable_refuses_what_a_format_cannot_hold(suffix, depth, channels, message):
    with pytest.raises(ConfigError) as caught:
        check_writable(suffix, depth, channels)

    assert str(caught.value) == message


def test_check_writable_accepts_what_each_format_holds():
    for suffix, depth, channels in ((".png", "8", 1), (".PNG", "8", 3), (".png", "8", 4), (".png", "16", 1),
                                    (".tif", "float", 7), (".tiff", "16", 3), (".npy", "float", 16), (".jpg", "8", 3)):
        check_writable(suffix, depth, channels)


def test_a_refused_write_leaves_no_file(tmp_path):
    with pytest.raises(ConfigError):
        write_array(tmp_path / "out.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ConfigError, match="signed 16-bit"):
        write_array(tmp_path / "out.png", np.zeros((4, 4), np.int16))

    assert list(tmp_path.iterdir()) == []


def test_write_array_leaves_only_the_file(tmp_path):
    write_array(tmp_path / "out.png", np.zeros((4, 4), np.uint16))

    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_a_pickled_npy_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)

    with pytest.raises(UnreadableImageError, match=f"^{path}: not a readable .npy array"):
        read_array(path)


def test_an_npy_that_is_not_an_image_is_refused(tmp_path):
    path = tmp_path / "volume.npy"
    np.save(path, np.zeros((4, 4, 4, 4), np.float32))

    with pytest.raises(UnreadableImageError) as caught:
        read_array(path)

    assert str(caught.value) == f"{path}: an array of shape (4, 4, 4, 4) is not an H x W or H x W x C image"


def test_match_channels_repeats_one_channel_and_refuses_other_counts(tmp_path):
    gray = np.arange(6, dtype=np.uint16).reshape(2, 3)

    assert match_channels(gray, 3, tmp_path / "gray.png").shape == (2, 3, 3)
    with pytest.raises(UnreadableImageError) as caught:
        match_channels(np.zeros((2, 3, 5), np.uint16), 3, tmp_path / "bands.npy")
    assert str(caught.value) == (f"{tmp_path / 'bands.npy'}: holds 5 channels but the model takes 3; "
                                 "train with --input-nc 5 or convert the file")
