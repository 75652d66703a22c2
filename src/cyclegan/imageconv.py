"""Pixels as the networks see them and as files hold them: the one place that converts.

The networks work in [-1, 1]: an 8-bit value v becomes v / 127.5 - 1, so 0 is -1 and 255 is 1,
and back, clamped and rounded to the nearest 8-bit value. Training data, translation, evaluation,
the FID network's input and the segmenter all go through these functions, so an image saved by
one part reads back the same in every other (8-bit -> [-1, 1] -> 8-bit is exact).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# Half the 8-bit range: the scale between 8-bit values and [-1, 1].
HALF_RANGE = 127.5


def to_unit_range(values: torch.Tensor) -> torch.Tensor:
    """8-bit values (uint8, or floats in [0, 255]) as float32 in [-1, 1]."""
    return values.float() / HALF_RANGE - 1.0


def to_8bit_values(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor in [-1, 1] as the 8-bit values a PNG would hold, as float32: clamped to [-1, 1],
    rounded, NaN as 0 (black)."""
    values = torch.nan_to_num(tensor.float(), nan=-1.0)
    return ((values.clamp(-1.0, 1.0) + 1.0) * HALF_RANGE).round()


def to_uint8(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor in [-1, 1] as uint8 (see `to_8bit_values`), same shape."""
    return to_8bit_values(tensor).to(torch.uint8)


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """An 8-bit "RGB" or "L" image as a float32 (C, H, W) tensor in [-1, 1]."""
    if img.mode not in ("RGB", "L"):
        raise ValueError(f"expected an 'RGB' or 'L' image, got mode {img.mode!r}; use load_image")
    array = np.array(img, dtype=np.uint8)  # a writable copy for torch.from_numpy
    if array.ndim == 2:
        array = array[:, :, None]
    return to_unit_range(torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))))


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """A (C, H, W) or (1, C, H, W) tensor in [-1, 1] as an 8-bit "RGB" (C=3) or "L" (C=1) image.

    Values outside [-1, 1] are clamped and NaN becomes -1 (black); values are rounded.
    """
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) tensor with C = 1 or 3, got {tuple(tensor.shape)}")
    values = to_uint8(tensor.detach().to("cpu", torch.float32))
    array = values.permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
