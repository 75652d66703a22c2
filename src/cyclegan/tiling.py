"""Translating images of any size in overlapping tiles, with memory bounded by the tile size.

A generator run on a whole 4000x3000 photo needs gigabytes for its activations (a ResNet with
ngf 64 holds several 64-channel float maps of the full size). Tiled, only one `tile` x `tile`
crop goes through the network at a time; the results are blended into a float32 numpy canvas
of the output size, so the extra memory is the canvas (4 bytes per output sample plus 4 per
pixel of weights), independent of the network.

Tiles are spread evenly, so neighbours overlap by at least `overlap` pixels. In the middle of
each overlap the two tiles are cross-faded over `overlap` pixels with complementary
raised-cosine ramps (the weights add up to exactly 1); the borders of a tile, where the network
saw padding instead of the real neighbourhood, count least or not at all, and no seam is drawn. Instance normalisation still sees each tile's own statistics, so
a tiled result is close to, not identical with, the untiled one; a larger tile gets closer.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from PIL import Image

from cyclegan.data.images import image_to_tensor, tensor_to_image
from cyclegan.errors import ConfigError

# Rows converted to 8 bits at a time at the end, so the conversion's temporaries stay small.
_FINISH_ROWS = 256


def check_tiling(tile: int, overlap: int, multiple: int) -> None:
    """Raise ConfigError unless tiles of `tile` px overlapping by `overlap` px suit a
    generator whose input sides must be multiples of `multiple`."""
    if tile < 1 or tile % multiple:
        raise ConfigError(f"--tile {tile} must be a positive multiple of {multiple} for this generator "
                          f"(e.g. {max(multiple, 512 // multiple * multiple)})")
    # A quarter at most, so that the cross-fades at a tile's two ends never meet (see blend_weights).
    if overlap < 0 or 4 * overlap > tile:
        raise ConfigError(f"--overlap {overlap} must be between 0 and a quarter of the tile ({tile // 4})")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one side of `length` px: the first at 0, the last
    ending at `length`, evenly spread so that neighbours overlap by at least `overlap`."""
    if length <= tile:
        return [0]
    count = 1 + math.ceil((length - tile) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [round(index * step) for index in range(count)]


def _ramp(length: int) -> np.ndarray:
    """Raised-cosine weights rising over `length` samples, never 0; `_ramp(n) + _ramp(n)[::-1]`
    is 1 everywhere, which makes two tiles' ramps over the same overlap a perfect cross-fade."""
    positions = (np.arange(length, dtype=np.float64) + 0.5) / length
    return np.sin(0.5 * np.pi * positions) ** 2


def blend_weights(starts: list[int], size: int, index: int, overlap: int) -> np.ndarray:
    """The 1-D weights of tile `index` (of `size` px, placed at `starts`).

    Where the tile overlaps a neighbour, the hand-over is an `overlap`-px ramp centred in the
    shared span (the whole span if it is shorter); before the ramp the tile counts fully,
    after it not at all. The neighbour's ramp is the mirror image, so the sum is 1. With
    `overlap` at most a quarter of the tile, the ramps at the two ends never meet.
    """
    weights = np.ones(size, dtype=np.float64)
    if index > 0:
        shared = starts[index - 1] + size - starts[index]
        fade = min(overlap, shared)
        lead = (shared - fade) // 2
        weights[:lead] = 0.0
        weights[lead:lead + fade] = _ramp(fade)
    if index < len(starts) - 1:
        shared = starts[index] + size - starts[index + 1]
        fade = min(overlap, shared)
        begin = size - shared + (shared - fade) // 2
        weights[begin:begin + fade] = np.minimum(weights[begin:begin + fade], _ramp(fade)[::-1])
        weights[begin + fade:] = 0.0
    return weights.astype(np.float32)


def translate_tiled(image: Image.Image, translate: Callable[[torch.Tensor], torch.Tensor],
                    tile: int, overlap: int) -> Image.Image:
    """Translate `image` ("RGB" or "L") tile by tile and return the blended result, same size.

    `translate` maps a (1, C, h, w) tensor in [-1, 1] to (1, C', h, w) in [-1, 1] for any h, w
    up to `tile` (padding to the network's multiple is its business, as in
    `Translator.translate_tensor`). Tiles are `tile` px square, smaller only where the image is.
    """
    width, height = image.size
    tile_h, tile_w = min(tile, height), min(tile, width)
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    canvas: np.ndarray | None = None
    total = np.zeros((height, width), dtype=np.float32)
    for row_index, top in enumerate(rows):
        row_weights = blend_weights(rows, tile_h, row_index, overlap)
        for col_index, left in enumerate(cols):
            crop = image.crop((left, top, left + tile_w, top + tile_h))
            output = translate(image_to_tensor(crop).unsqueeze(0))[0].float().cpu().numpy()
            if canvas is None:
                canvas = np.zeros((output.shape[0], height, width), dtype=np.float32)
            weights = np.outer(row_weights, blend_weights(cols, tile_w, col_index, overlap))
            canvas[:, top:top + tile_h, left:left + tile_w] += output * weights
            total[top:top + tile_h, left:left + tile_w] += weights
    assert canvas is not None  # there is always at least one tile
    channels = canvas.shape[0]
    result = np.empty((height, width) if channels == 1 else (height, width, channels), dtype=np.uint8)
    for top in range(0, height, _FINISH_ROWS):
        band = canvas[:, top:top + _FINISH_ROWS] / total[top:top + _FINISH_ROWS]
        result[top:top + _FINISH_ROWS] = np.asarray(tensor_to_image(torch.from_numpy(band)))
    return Image.fromarray(result)


__all__ = ["check_tiling", "tile_starts", "blend_weights", "translate_tiled"]
