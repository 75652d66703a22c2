"""Training-time resizing, cropping and flipping, as in the reference CycleGAN code.

One function, `preprocess`, does it all on a PIL image. Randomness comes only from the
`numpy.random.Generator` passed in, so a caller controls reproducibility completely; with
no generator the result is deterministic (centre crop, no flip) for translation and
evaluation.

Where we differ from the reference code (documented choices):
- Every mode ends by resizing both sides to a multiple of `size_multiple` (the reference
  does this only in mode "none"), so that any output fits generators that downsample twice.
  Sides are rounded to the *nearest* multiple as the reference's `__make_power_2` does, but
  ties (a side 2 px from both neighbours when the multiple is 4) round up, never down, and a
  side never becomes smaller than one multiple.
- In mode "crop" an image smaller than `crop_size` is first enlarged, keeping its aspect
  ratio, just enough for its shorter side to equal `crop_size` (the reference would fail or
  pad with black).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cyclegan.config import PREPROCESS_MODES
from cyclegan.errors import ConfigError


_RESAMPLE = Image.Resampling.BICUBIC


def check_preprocess_options(
    mode: str, load_size: int, crop_size: int, size_multiple: int = 4
) -> None:
    """Raise ConfigError if the options cannot work together; called before any image is read."""
    if mode not in PREPROCESS_MODES:
        raise ConfigError(
            f"unknown preprocess mode {mode!r}; choose one of {', '.join(PREPROCESS_MODES)}"
        )
    if size_multiple < 1:
        raise ConfigError(f"size_multiple must be at least 1, got {size_multiple}")
    if mode != "none" and (load_size < 1 or crop_size < 1):
        raise ConfigError(
            f"load_size and crop_size must be positive, got {load_size} and {crop_size}"
        )
    if mode in ("resize_and_crop", "scale_width_and_crop") and crop_size > load_size:
        raise ConfigError(
            f"crop_size {crop_size} is larger than load_size {load_size} in mode {mode!r}; "
            "set load_size >= crop_size (the paper uses load_size 286, crop_size 256)"
        )


def preprocess(
    img: Image.Image,
    mode: str = "resize_and_crop",
    load_size: int = 286,
    crop_size: int = 256,
    flip: bool = True,
    rng: np.random.Generator | None = None,
    size_multiple: int = 4,
) -> Image.Image:
    """Resize / crop / flip `img` for training (rng given) or evaluation (rng None).

    Modes: "resize_and_crop" resizes to load_size x load_size (bicubic) then crops crop_size
    x crop_size; "crop" only crops; "scale_width" scales so that the width is load_size,
    keeping the aspect ratio but never letting the height drop below crop_size;
    "scale_width_and_crop" does that then crops; "none" keeps the size. Every mode then makes
    both sides multiples of `size_multiple`. With `rng`, crops are random and the image is
    mirrored with probability 0.5 when `flip`; without, crops are centred and never flipped.
    """
    check_preprocess_options(mode, load_size, crop_size, size_multiple)
    if mode == "resize_and_crop":
        img = _resize(img, load_size, load_size)
    elif mode in ("scale_width", "scale_width_and_crop"):
        img = _scale_width(img, load_size, crop_size)
    elif mode == "crop":
        img = _enlarge_to_cover(img, crop_size)
    if mode.endswith("crop"):
        img = _crop(img, crop_size, rng)
    img = _round_to_multiple(img, size_multiple)
    if flip and rng is not None and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def preprocess_array(unit: np.ndarray, mode: str = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                     flip: bool = True, rng: np.random.Generator | None = None, size_multiple: int = 4) -> np.ndarray:
    """`preprocess` for a float32 (H, W, C) array in [-1, 1] (16-bit, float, multi-channel images
    and volume slices): every channel, as a 32-bit float image, gets the very same resize, crop
    and flip, and `rng` advances as one `preprocess` call would. Bicubic overshoot is clipped."""
    state = rng.bit_generator.state if rng is not None else None
    planes = []
    for channel in range(unit.shape[2]):
        if rng is not None:
            rng.bit_generator.state = state  # each channel draws the same crop and flip
        plane = Image.fromarray(np.ascontiguousarray(unit[:, :, channel], dtype=np.float32))
        planes.append(np.asarray(preprocess(plane, mode, load_size, crop_size, flip, rng, size_multiple)))
    return np.clip(np.stack(planes, axis=-1), -1.0, 1.0)


def varies_in_size(mode: str) -> bool:
    """Whether images of different sizes come out of `mode` in different sizes."""
    return mode in ("none", "scale_width")


def preprocessed_size(size: tuple[int, int], mode: str, load_size: int, crop_size: int,
                      size_multiple: int = 4) -> tuple[int, int]:
    """The (width, height) that `preprocess` gives an image of `size`, without reading it."""
    width, height = size
    if mode == "resize_and_crop" or mode.endswith("crop"):
        width = height = crop_size
    elif mode == "scale_width":
        width, height = load_size, int(max(load_size * height / width, crop_size))
    return _nearest_multiple(width, size_multiple), _nearest_multiple(height, size_multiple)


def _resize(img: Image.Image, width: int, height: int) -> Image.Image:
    if img.size == (width, height):
        return img
    return img.resize((width, height), _RESAMPLE)


def _scale_width(img: Image.Image, target_width: int, min_height: int) -> Image.Image:
    width, height = img.size
    # As the reference: the height follows the aspect ratio but is kept >= crop_size.
    new_height = int(max(target_width * height / width, min_height))
    return _resize(img, target_width, new_height)


def _enlarge_to_cover(img: Image.Image, crop_size: int) -> Image.Image:
    width, height = img.size
    if width >= crop_size and height >= crop_size:
        return img
    scale = crop_size / min(width, height)
    new_width = max(crop_size, int(np.ceil(width * scale - 1e-9)))
    new_height = max(crop_size, int(np.ceil(height * scale - 1e-9)))
    return _resize(img, new_width, new_height)


def _crop(img: Image.Image, crop_size: int, rng: np.random.Generator | None) -> Image.Image:
    width, height = img.size
    if width == crop_size and height == crop_size:
        return img
    spare_x, spare_y = max(0, width - crop_size), max(0, height - crop_size)
    if rng is None:
        left, top = spare_x // 2, spare_y // 2
    else:
        left, top = int(rng.integers(0, spare_x + 1)), int(rng.integers(0, spare_y + 1))
    return img.crop((left, top, left + min(crop_size, width), top + min(crop_size, height)))


def _nearest_multiple(side: int, multiple: int) -> int:
    return max(multiple, (side + multiple // 2) // multiple * multiple)


def _round_to_multiple(img: Image.Image, multiple: int) -> Image.Image:
    width, height = img.size
    return _resize(img, _nearest_multiple(width, multiple), _nearest_multiple(height, multiple))
