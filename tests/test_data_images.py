"""Loading real-world image files robustly, listing folders, tensors <-> images, atomic saves."""

import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.data import images
from cyclegan.data.images import list_images, load_image, save_image_atomic
from cyclegan.errors import DatasetError, UnreadableImageError
from cyclegan.imageconv import image_to_tensor, tensor_to_image


def pixels(img):
    return np.asarray(img).tolist()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_header_only(path, width, height):
    """A PNG whose IHDR declares width x height RGB pixels, with one tiny IDAT chunk."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    data += png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b"")
    path.write_bytes(data)


def test_exif_orientation_6_jpeg_loads_rotated_with_swapped_width_and_height(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, exif=exif)

    img = load_image(path)

    assert img.mode == "RGB"
    assert img.size == (20, 40)


def test_palette_png_with_transparency_is_composited_over_white(tmp_path):
    path = tmp_path / "palette.png"
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.save(path, transparency=0)

    assert pixels(load_image(path)) == [[[255, 255, 255], [10, 200, 30]]]


def test_rgba_png_is_composited_over_white(tmp_path):
    path = tmp_path / "rgba.png"
    img = Image.new("RGBA", (3, 1))
    img.putdata([(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)])
    img.save(path)

    loaded = load_image(path)

    assert loaded.mode == "RGB"
    assert pixels(loaded) == [[[255, 255, 255], [255, 0, 0], [127, 127, 127]]]


def test_la_png_is_composited_over_white_and_replicated_to_rgb(tmp_path):
    path = tmp_path / "la.png"
    img = Image.new("LA", (2, 1))
    img.putdata([(0, 0), (40, 255)])
    img.save(path)

    assert pixels(load_image(path)) == [[[255, 255, 255], [40, 40, 40]]]
    assert pixels(load_image(path, channels=1)) == [[255, 40]]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK

    loaded = load_image(path)

    assert loaded.mode == "RGB"
    red, green, blue = np.asarray(loaded)[4, 4].tolist()
    assert red > 240 and green < 15 and blue < 15


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[65535, 32768, 0]], dtype=np.uint16)).save(path)
    with Image.open(path) as raw:
        assert raw.mode == "I;16"

    assert pixels(load_image(path, channels=1)) == [[255, 128, 0]]
    assert pixels(load_image(path)) == [[[255] * 3, [128] * 3, [0] * 3]]


def test_32_bit_float_grayscale_in_unit_range_is_scaled_by_255(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(path)

    assert pixels(load_image(path, channels=1)) == [[0, 128, 255]]


def test_grayscale_loads_as_three_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 77, 255]], dtype=np.uint8)).save(path)

    loaded = load_image(path, channels=3)

    assert loaded.mode == "RGB"
    assert pixels(loaded) == [[[0] * 3, [77] * 3, [255] * 3]]


def test_rgb_loads_as_one_channel_by_luminance(tmp_path):
    path = tmp_path / "colour.png"
    Image.fromarray(np.array([[[255, 0, 0], [90, 90, 90], [255, 255, 255]]], dtype=np.uint8)).save(path)

    loaded = load_image(path, channels=1)

    assert loaded.mode == "L"
    assert pixels(loaded) == [[76, 90, 255]]  # 0.299 * 255 = 76.2


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.png", b""),
        ("notes.jpg", b"this is a text file, not a JPEG\n"),
    ],
)
def test_files_that_are_not_images_raise_unreadable_image_error_naming_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(UnreadableImageError, match=name):
        load_image(path)


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg"])
def test_truncated_files_raise_unreadable_image_error_naming_the_file(tmp_path, name):
    whole = tmp_path / ("whole" + os.path.splitext(name)[1])
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(whole)
    data = whole.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])

    with pytest.raises(UnreadableImageError, match=name):
        load_image(tmp_path / name)


def test_header_declaring_50000_by_50000_pixels_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    write_png_header_only(path, 50_000, 50_000)

    with pytest.raises(UnreadableImageError, match="bomb.png"):
        load_image(path)


def test_images_over_max_image_pixels_are_refused_with_the_declared_size(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 10)).save(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 199)

    with pytest.raises(UnreadableImageError, match=r"big.png: the header declares 20x10 = 200 pixels"):
        load_image(path)


def test_load_image_leaves_pillows_global_limit_unchanged(tmp_path):
    path = tmp_path / "bomb.png"
    write_png_header_only(path, 50_000, 50_000)
    before = Image.MAX_IMAGE_PIXELS

    with pytest.raises(UnreadableImageError):
        load_image(path)

    assert Image.MAX_IMAGE_PIXELS == before


def test_list_images_sorts_and_ignores_other_files_and_sub_folders(tmp_path):
    for name in ["b.png", "a.JPG", "c.webp", "labels.csv", "README.md"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()

    assert list_images(tmp_path) == [tmp_path / "a.JPG", tmp_path / "b.png", tmp_path / "c.webp"]


def test_list_images_recursive_finds_sub_folders_and_survives_symlink_loops(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "sub" / "b.png").write_bytes(b"x")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "broken.png").symlink_to(tmp_path / "missing.png")

    assert list_images(tmp_path, recursive=True) == [tmp_path / "a.png", tmp_path / "sub" / "b.png"]


def test_list_images_of_a_missing_folder_raises_dataset_error_naming_it(tmp_path):
    with pytest.raises(DatasetError, match="nowhere: folder not found"):
        list_images(tmp_path / "nowhere")


@pytest.mark.parametrize("mode, shape", [("RGB", (32, 32, 3)), ("L", (32, 32))])
def test_image_to_tensor_and_back_round_trips_uint8_images_exactly(mode, shape):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    array.flat[:2] = [0, 255]
    img = Image.fromarray(array)

    tensor = image_to_tensor(img)

    assert tensor.dtype == torch.float32
    assert tuple(tensor.shape) == ((3 if mode == "RGB" else 1), 32, 32)
    assert tensor.min().item() == -1.0 and tensor.max().item() == 1.0
    back = tensor_to_image(tensor.unsqueeze(0))
    assert back.mode == mode
    assert np.array_equal(np.asarray(back), array)


def test_tensor_to_image_clamps_out_of_range_values():
    tensor = torch.tensor([[[-3.0, 0.0, 7.0]]])

    assert pixels(tensor_to_image(tensor)) == [[0, 128, 255]]


def test_save_image_atomic_writes_the_file_and_leaves_no_temporary_file(tmp_path):
    img = Image.new("RGB", (4, 4), (1, 2, 3))
    path = tmp_path / "out" / "result.png"

    save_image_atomic(img, path)
    save_image_atomic(Image.new("RGB", (4, 4), (9, 9, 9)), path)

    assert os.listdir(tmp_path / "out") == ["result.png"]
    with Image.open(path) as saved:
        assert saved.getpixel((0, 0)) == (9, 9, 9)
