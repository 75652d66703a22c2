"""Image files as numpy arrays at their full precision, and arrays written back at a chosen depth.

`read_array(path)` gives (H, W) or (H, W, C) with the file's own dtype: 16-bit grayscale PNG
(Pillow), 8/16-bit and float TIFF with any number of channels, a multi-page TIFF's pages as
channels (tifffile), and `.npy` of H x W or H x W x C. `reads_at_full_precision(path)` says,
from the header, whether a file needs this reader; 8-bit PNG, JPEG and the rest keep going
through `images.load_image`, which composites alpha and applies EXIF rotation.

Output depth is one of `DEPTHS`: "8" (uint8), "16" (uint16, or int16 for a signed 16-bit input)
and "float" (float32). `check_writable(suffix, depth, channels)` refuses, before anything is
translated, what a format cannot hold; `unit_to_array` turns a [-1, 1] result back into stored
values; `write_array` writes atomically.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from cyclegan.data.images import MAX_IMAGE_PIXELS, open_image_header
from cyclegan.data.images import _describe as describe_exception
from cyclegan.data.intensity import IntensityWindow
from cyclegan.errors import ConfigError, UnreadableImageError
from cyclegan.fileio import write_atomic

DEPTHS = ("8", "16", "float")
PNG_SUFFIXES = frozenset({".png"})
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
NUMPY_SUFFIXES = frozenset({".npy"})
ARRAY_SUFFIXES = PNG_SUFFIXES | TIFF_SUFFIXES | NUMPY_SUFFIXES
MAX_CHANNELS = 64  # far above any multispectral camera; beyond it the file is a volume or a mistake
# As many values as the largest RGBA image load_image accepts: checked from the header.
MAX_IMAGE_VALUES = 4 * MAX_IMAGE_PIXELS

_TIFF_HINT = "install it with pip install tifffile (part of 'cyclegan[medical]')"
_PNG_BIT_DEPTH_OFFSET = 24  # the signature (8), IHDR length and type (8), width and height (8)
_PNG_GRAY = 0
_PNG_PALETTE = 3
_PNG_COLOUR_NAMES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale + alpha", 6: "RGBA"}
_CHANNEL_AXES = "IQCZS"  # tifffile's names for an axis beyond Y and X: pages, planes, samples


def depth_of_dtype(dtype: np.dtype | type) -> str:
    """The output depth that holds `dtype` without loss: uint8 -> "8", (u)int16 -> "16",
    anything else (floats, wider integers) -> "float"."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return "8"
    if dtype in (np.dtype(np.uint16), np.dtype(np.int16)):
        return "16"
    return "float"


def output_depth_of(array: np.ndarray) -> str:
    """The default output depth for a translation of `array`: its own."""
    return depth_of_dtype(array.dtype)


def dtype_of_depth(depth: str, input_dtype: np.dtype | type | None = None) -> np.dtype:
    """The stored type of `depth`; "16" keeps a signed 16-bit input signed."""
    if depth == "8":
        return np.dtype(np.uint8)
    if depth == "16":
        return np.dtype(np.int16) if input_dtype is not None and np.dtype(input_dtype) == np.int16 else np.dtype(np.uint16)
    if depth == "float":
        return np.dtype(np.float32)
    raise ConfigError(f"--output-depth must be one of {', '.join(DEPTHS)}, got {depth!r}")


def check_writable(suffix: str, depth: str, channels: int) -> None:
    """Raise ConfigError, saying what to choose instead, if a `suffix` file cannot hold
    `channels` channels at `depth`. Called before translation starts."""
    suffix = suffix.lower()
    dtype_of_depth(depth)
    if not 1 <= channels <= MAX_CHANNELS:
        raise ConfigError(f"cannot write {channels} channels; images hold 1 to {MAX_CHANNELS}")
    if suffix in TIFF_SUFFIXES or suffix in NUMPY_SUFFIXES:
        return
    if suffix in PNG_SUFFIXES:
        if depth == "float":
            raise ConfigError("PNG cannot hold float values; write .tif or .npy, or choose --output-depth 8 or 16")
        if depth == "16" and channels != 1:
            raise ConfigError(f"16-bit PNG is written for grayscale only, not {channels} channels; "
                              "write .tif or .npy, or choose --output-depth 8")
        if channels > 4:
            raise ConfigError(f"PNG holds at most 4 channels (RGBA), not {channels}; write .tif or .npy")
        return
    if depth != "8" or channels not in (1, 3):
        raise ConfigError(f"{suffix or 'a file without extension'} holds 8-bit grayscale or RGB only, not "
                          f"{channels} channels at depth {depth}; write .png, .tif or .npy")


def reads_at_full_precision(path: str | os.PathLike) -> bool:
    """Whether `path` holds more than 8-bit grayscale / RGB(A) Pillow reads without loss: any
    .npy, a 16-bit PNG, a TIFF that is not 8-bit or has other than 1, 3 or 4 channels in one page.
    Reads the header only; a file it cannot read answers False and fails in the reader."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in NUMPY_SUFFIXES:
        return True
    try:
        if suffix in PNG_SUFFIXES:
            return _png_bit_depth_and_colour(path)[0] == 16
        if suffix in TIFF_SUFFIXES:
            tifffile = _tifffile()
            with tifffile.TiffFile(path) as tiff:
                page = tiff.pages.first
                return (page.dtype != np.uint8 or len(tiff.pages) > 1
                        or page.samplesperpixel not in (1, 3, 4))
    except (OSError, ValueError, UnreadableImageError):
        return False
    except ConfigError:  # no tifffile: Pillow reads what it can, as before
        return False
    return False


def header_dtype(path: str | os.PathLike) -> np.dtype:
    """The stored type of `path`'s values, from its header: a .npy's dtype, 16-bit PNG uint16, a
    TIFF's first page's type, uint8 for everything else (what load_image decodes)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in NUMPY_SUFFIXES:
            return np.load(path, mmap_mode="r", allow_pickle=False).dtype.newbyteorder("=")
        if suffix in PNG_SUFFIXES:
            return np.dtype(np.uint16) if _png_bit_depth_and_colour(path)[0] == 16 else np.dtype(np.uint8)
        if suffix in TIFF_SUFFIXES:
            with _tifffile().TiffFile(path) as tiff:
                return np.dtype(tiff.pages.first.dtype).newbyteorder("=")
    except (OSError, ValueError, EOFError) as exc:
        raise UnreadableImageError(f"{path}: its header cannot be read ({describe_exception(exc)})") from None
    return np.dtype(np.uint8)


def read_array(path: str | os.PathLike) -> np.ndarray:
    """`path` decoded at full precision: (H, W) or (H, W, C), in the file's dtype.

    Raises UnreadableImageError, naming the file, for anything it cannot read losslessly.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in NUMPY_SUFFIXES:
        array = _read_npy(path)
    elif suffix in TIFF_SUFFIXES:
        array = _read_tiff(path)
    elif suffix in PNG_SUFFIXES:
        array = _read_png(path)
    else:
        raise UnreadableImageError(f"{path}: full-precision reading covers .png, .tif/.tiff and .npy; "
                                   "read other formats with load_image")
    return _checked_image_array(array, path)


def match_channels(array: np.ndarray, channels: int, path: str | os.PathLike) -> np.ndarray:
    """`array` as (H, W, `channels`): as it is, or one channel repeated. Other counts are refused
    rather than guessed (which three of five bands are "RGB"?)."""
    if array.ndim == 2:
        array = array[:, :, None]
    have = array.shape[2]
    if have == channels:
        return array
    if have == 1:
        return np.repeat(array, channels, axis=2)
    raise UnreadableImageError(f"{path}: holds {have} channels but the model takes {channels}; "
                               f"train with --input-nc {have} or convert the file")


def unit_to_array(unit: np.ndarray, window: IntensityWindow, input_dtype: np.dtype | type, depth: str) -> np.ndarray:
    """A [-1, 1] result as the stored values of `depth`.

    At the input's own depth, and at "float", values go back through the input's (resolved)
    `window`, so HU stay HU. At another integer depth (a 16-bit input written as 8-bit) the
    window spans that type's full range instead, the only way its values still fit.
    """
    out_dtype = dtype_of_depth(depth, input_dtype)
    if out_dtype.kind != "f" and out_dtype != np.dtype(input_dtype):
        info = np.iinfo(out_dtype)
        window = IntensityWindow(low=float(info.min), high=float(info.max))
    values = window.from_unit(unit)
    if out_dtype.kind == "f":
        return values.astype(out_dtype)
    info = np.iinfo(out_dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(out_dtype)


def write_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` ((H, W) or (H, W, C), uint8, (u)int16 or float32) to `path` exactly, in the
    format of its extension, atomically. Refuses (ConfigError) what the format cannot hold."""
    path = Path(path)
    suffix = path.suffix.lower()
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) array, got shape {array.shape}")
    channels = 1 if array.ndim == 2 else array.shape[2]
    depth = depth_of_dtype(array.dtype)
    if depth == "float" and array.dtype != np.float32:
        raise ValueError(f"float output is float32, got {array.dtype}; convert with unit_to_array")
    check_writable(suffix, depth, channels)
    if array.dtype == np.int16 and suffix not in TIFF_SUFFIXES | NUMPY_SUFFIXES:
        raise ConfigError(f"{suffix} holds unsigned values only, not signed 16-bit; write .tif or .npy")
    if suffix in NUMPY_SUFFIXES:
        write_atomic(path, lambda temporary: _save_npy(temporary, array))
    elif suffix in TIFF_SUFFIXES:
        write_atomic(path, lambda temporary: _save_tiff(temporary, array))
    else:
        write_atomic(path, lambda temporary: _save_with_pillow(temporary, array, suffix))


def _read_npy(path: Path) -> np.ndarray:
    try:
        header = np.load(path, mmap_mode="r", allow_pickle=False)
        _check_values(path, header.shape)
        return np.array(header)
    except (OSError, ValueError, EOFError) as exc:
        raise UnreadableImageError(f"{path}: not a readable .npy array ({describe_exception(exc)}); re-save it with "
                                   "numpy.save (no pickled objects)") from None


def _read_tiff(path: Path) -> np.ndarray:
    tifffile = _tifffile()
    try:
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series
            if len(series) > 1 and all(s.ndim == 2 and s.shape == series[0].shape for s in series):
                _check_values(path, (len(series),) + tuple(series[0].shape))
                # Pages written one at a time: each one is a channel (a band of a multispectral scan).
                return np.stack([s.asarray() for s in series], axis=-1)
            first = series[0]
            _check_values(path, first.shape)
            array, axes = first.asarray(), first.axes
    except UnreadableImageError:
        raise
    except Exception as exc:
        raise UnreadableImageError(f"{path}: not a TIFF tifffile can read ({describe_exception(exc)}); "
                                   "re-save it as an uncompressed TIFF or .npy") from None
    if array.ndim == 3 and axes[0] in _CHANNEL_AXES and axes[1:] == "YX":
        return np.moveaxis(array, 0, -1)
    if array.ndim == 3 and axes == "YXS" or array.ndim == 2:
        return array
    raise UnreadableImageError(f"{path}: a TIFF of shape {array.shape} (axes {axes}) is not one image; "
                               "save one image per file, channels as pages or samples")


def _read_png(path: Path) -> np.ndarray:
    bit_depth, colour = _png_bit_depth_and_colour(path)
    if bit_depth == 16 and colour != _PNG_GRAY:
        raise UnreadableImageError(f"{path}: a 16-bit {_PNG_COLOUR_NAMES.get(colour, 'colour')} PNG, which Pillow "
                                   "reads only as 8 bits; re-save it as a 16-bit TIFF or .npy")
    with open_image_header(path) as img:
        try:
            img.load()
            if colour == _PNG_PALETTE:
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            array = np.array(img)
        except Exception as exc:
            raise UnreadableImageError(f"{path}: the image data cannot be decoded ({describe_exception(exc)}); "
                                       "the file is truncated or damaged") from None
    if bit_depth == 16:
        # Older Pillow versions decode 16-bit grayscale as 32-bit "I"; the values are 16-bit.
        array = array.astype(np.uint16)
    return array


def _png_bit_depth_and_colour(path: Path) -> tuple[int, int]:
    with open(path, "rb") as file:
        header = file.read(_PNG_BIT_DEPTH_OFFSET + 2)
    if len(header) < _PNG_BIT_DEPTH_OFFSET + 2 or header[12:16] != b"IHDR":
        raise UnreadableImageError(f"{path}: not a PNG file (no IHDR header); re-save it as PNG or TIFF")
    return header[_PNG_BIT_DEPTH_OFFSET], header[_PNG_BIT_DEPTH_OFFSET + 1]


def _checked_image_array(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype.kind not in "uif" or array.dtype.itemsize > 8:
        raise UnreadableImageError(f"{path}: holds {array.dtype} values; images hold integers or floats")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or min(array.shape[:2]) == 0:
        raise UnreadableImageError(f"{path}: an array of shape {array.shape} is not an H x W or H x W x C image")
    if array.ndim == 3 and array.shape[2] > MAX_CHANNELS:
        raise UnreadableImageError(f"{path}: {array.shape[2]} channels, over {MAX_CHANNELS}; an H x W x C "
                                   "image has its channels last (a volume belongs in .nii)")
    return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))


def _check_values(path: Path, shape: tuple[int, ...]) -> None:
    values = int(np.prod(shape, dtype=np.int64))
    if values > MAX_IMAGE_VALUES:
        raise UnreadableImageError(f"{path}: declares {values:,} values, over the limit of {MAX_IMAGE_VALUES:,} "
                                   "(a decompression-bomb guard); downscale or tile it")


def _save_npy(temporary: Path, array: np.ndarray) -> None:
    # np.save given a name appends ".npy" to one that lacks it, as the temporary name does.
    with open(temporary, "wb") as file:
        np.save(file, array, allow_pickle=False)


def _save_tiff(temporary: Path, array: np.ndarray) -> None:
    tifffile = _tifffile()
    channels = 1 if array.ndim == 2 else array.shape[2]
    if channels == 1:
        tifffile.imwrite(temporary, array.reshape(array.shape[:2]), photometric="minisblack")
    elif channels == 3:
        tifffile.imwrite(temporary, array, photometric="rgb")
    else:
        # Planes rather than interleaved samples: tifffile reads (H, W, C) minisblack as C-wide pages.
        tifffile.imwrite(temporary, np.moveaxis(array, -1, 0), photometric="minisblack", planarconfig="separate")


def _save_with_pillow(temporary: Path, array: np.ndarray, suffix: str) -> None:
    from PIL import Image

    image_format = Image.registered_extensions().get(suffix)
    if image_format is None:
        raise ConfigError(f"unknown image extension {suffix!r}; write .png, .tif or .npy")
    planes = array.reshape(array.shape[:2]) if array.ndim == 3 and array.shape[2] == 1 else array
    # Pillow picks the mode from the type: uint16 becomes "I;16", saved as a 16-bit PNG.
    image = Image.fromarray(np.ascontiguousarray(planes))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    temporary.write_bytes(buffer.getvalue())


def _tifffile():
    try:
        import tifffile
    except ImportError:
        raise ConfigError(f"reading and writing TIFF at full precision needs tifffile: {_TIFF_HINT}") from None
    return tifffile
