"""Reading, converting and writing single images, robust to the files found in real folders.

Every image enters the project through `load_image`, which returns a fully decoded 8-bit
"RGB" or "L" picture whatever the file held (EXIF rotation, palettes, alpha, CMYK, 16-bit or
float grayscale), or raises `UnreadableImageError` naming the file. Tensors use the
convention of the reference CycleGAN code: float32, (C, H, W), values in [-1, 1].
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cyclegan.errors import DatasetError, UnreadableImageError
from cyclegan.fileio import write_atomic

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)

# Decompression-bomb guard, checked from the header before any pixel is decoded.
# Pillow keeps its own hard limit (2 x Image.MAX_IMAGE_PIXELS, about 179 M pixels unless the
# application changed it); a file over that one is reported the same way.
MAX_IMAGE_PIXELS = 200_000_000

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH_DEPTH_GRAY_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Sorted image files of `folder`, chosen by extension (case-insensitive).

    Other files (labels.csv, README, ...) and sub-folders are ignored; with `recursive`
    sub-folders are searched too, following symbolic links but never one that leads back into
    a folder already visited. Broken links are ignored.
    """
    root = Path(folder)
    if not root.exists():
        raise DatasetError(
            f"{root}: folder not found. Check the path (it is resolved from {Path.cwd()})."
        )
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, not a folder. Pass the folder holding the images.")

    found: list[Path] = []
    visited: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        current = pending.pop()
        try:
            info = current.stat()
        except OSError:
            continue  # a broken link, or removed while we were listing
        if (info.st_dev, info.st_ino) in visited:
            continue  # a symbolic link loop
        visited.add((info.st_dev, info.st_ino))
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            if current == root:
                raise DatasetError(f"{root}: cannot list the folder ({exc}). Check permissions.")
            continue
        for entry in entries:
            try:
                if entry.is_dir():
                    if recursive:
                        pending.append(Path(entry.path))
                elif entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
                    found.append(Path(entry.path))
            except OSError:
                continue
    return sorted(found)


def open_image_header(path: str | os.PathLike) -> Image.Image:
    """Open `path` lazily (header only) and apply the size guard; pixels are not decoded.

    Raises UnreadableImageError if the file is not an image Pillow knows or is too large.
    The caller must close the returned image.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Our own size check below replaces Pillow's warning for mid-sized images.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError:
        raise UnreadableImageError(
            f"{path}: the header declares more pixels than Pillow's safety limit "
            f"({2 * (Image.MAX_IMAGE_PIXELS or 0):,}). Downscale the image or remove it from "
            "the folder."
        ) from None
    except FileNotFoundError:
        raise UnreadableImageError(f"{path}: file not found. Check the path.") from None
    except (Image.UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(
            f"{path}: not an image file Pillow can read ({_describe(exc)}). "
            "Remove it from the folder or re-save it as PNG or JPEG."
        ) from None
    except Exception as exc:
        raise UnreadableImageError(
            f"{path}: the file cannot be opened ({_describe(exc)}). Check that it is a readable "
            "image file, or remove it from the folder."
        ) from None
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        img.close()
        raise UnreadableImageError(
            f"{path}: the header declares {width}x{height} = {width * height:,} pixels, over "
            f"the limit of {MAX_IMAGE_PIXELS:,} (a decompression-bomb guard). Downscale the "
            "image or remove it from the folder."
        )
    if width == 0 or height == 0:
        img.close()
        raise UnreadableImageError(
            f"{path}: the header declares an empty {width}x{height} image. Remove the file."
        )
    return img


def load_image(path: str | os.PathLike, channels: int = 3) -> Image.Image:
    """Decode `path` fully into an 8-bit "RGB" (channels=3) or "L" (channels=1) image.

    EXIF orientation is applied. Transparent pixels (alpha, palette or colour-key
    transparency) are composited over white. CMYK is converted to RGB. 16-bit grayscale is
    scaled so that 65535 becomes 255; float grayscale in [0, 1] is scaled by 255 (other
    ranges are stretched from their minimum and maximum). Grayscale becomes RGB by
    replication, RGB becomes L by luminance (ITU-R 601-2).

    Raises UnreadableImageError, naming the file, for anything that cannot be decoded,
    including truncated files.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    with open_image_header(path) as img:
        try:
            img.load()  # full decode now, so that a truncated file fails here
            img = _apply_exif_orientation(img)
            out = _to_8bit(img, channels)
            out.load()
        except UnreadableImageError:
            raise
        except Exception as exc:
            raise UnreadableImageError(
                f"{path}: the image data cannot be decoded ({_describe(exc)}). The file is "
                "truncated, damaged or in an unsupported colour mode: re-download it, re-save it "
                "as an 8-bit PNG or JPEG, or remove it."
            ) from None
    return out


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _apply_exif_orientation(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        # Damaged EXIF metadata says nothing about the pixels, which decoded fine.
        return img


def _to_8bit(img: Image.Image, channels: int) -> Image.Image:
    if img.mode in _HIGH_DEPTH_GRAY_MODES:
        gray = Image.fromarray(_gray_to_uint8(np.asarray(img)))
        return gray if channels == 1 else gray.convert("RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    if channels == 1:
        # For gray pixels (R = G = B) Pillow's luminance weights sum to exactly 1.
        return img if img.mode == "L" else img.convert("RGB").convert("L")
    return img if img.mode == "RGB" else img.convert("RGB")


def _gray_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit integer or float grayscale to uint8.

    Integers in [0, 65535] are 16-bit samples: 65535 -> 255, 32768 -> 128. Floats in [0, 1]
    are multiplied by 255, floats in [0, 255] kept. Anything else is stretched from its
    minimum to its maximum, the only mapping that keeps the picture visible.
    """
    is_float = values.dtype.kind == "f"
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if not is_float and low >= 0.0 and high <= 65535.0:
        scaled = values * (255.0 / 65535.0)
    elif is_float and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif is_float and low >= 0.0 and high <= 255.0:
        scaled = values
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(values)
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


def save_image_atomic(img: Image.Image, path: str | os.PathLike) -> None:
    """Save `img` to `path` so that `path` never holds a partly written file.

    The image is written to a temporary file in the same folder, then renamed over `path`
    (os.replace). The format follows the extension of `path`; missing folders are created.
    """
    path = Path(path)
    extension = path.suffix.lower()
    image_format = Image.registered_extensions().get(extension)
    if image_format is None:
        raise ValueError(f"{path}: unknown image extension {extension!r}; use .png or .jpg")
    write_atomic(path, lambda temporary: img.save(temporary, format=image_format))
