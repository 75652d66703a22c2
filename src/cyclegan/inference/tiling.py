"""Translating images of any size in overlapping tiles, with memory bounded by the tile size.

A generator run on a whole 4000x3000 photo needs gigabytes for its activations (a ResNet with
ngf 64 holds several 64-channel float maps of the full size). Tiled, only one `tile` x `tile`
crop goes through the network at a time; the results are blended into a float32 numpy canvas
of the output size, so the extra memory is the canvas (4 bytes per output sample plus 4 per
pixel of weights), independent of the network.

Tiles are spread evenly, so neighbours overlap by at least `overlap` pixels. In the middle of
each overlap the two tiles are cross-faded over `overlap` pixels with complementary
raised-cosine ramps (the weights add up to exactly 1); the borders of a tile, where the network
saw padding instead of the real neighbourhood, count least or not at all, and no seam is drawn.

Instance normalisation is the one part of the network that looks at the whole input: left
alone, each tile is normalised with its own statistics, and a tile of plain road or sky comes
out with a different look from its neighbours (visible patches, tens of 8-bit levels off the
untiled result). So a torch generator's InstanceNorm2d layers (and subclasses) are swapped for
`ImageStatisticsNorm`: a first, cheaper pass over non-overlapping tiles pools every layer's
per-tile statistics into statistics of the whole image, and the blended pass normalises every
tile with those. That costs about one more pass of the network and brings the result within a
few levels of the untiled one. (An ONNX model runs as exported, with per-tile statistics.)
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from cyclegan.errors import ConfigError
from cyclegan.imageconv import image_to_tensor, tensor_to_image
from cyclegan.layers.instance_norm import instance_norm

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


class ImageStatisticsNorm(nn.Module):
    """A stand-in for `nn.InstanceNorm2d` (without running statistics) that can normalise a
    tile with the statistics of the whole image.

    mode "tile": exactly InstanceNorm2d (`layers.instance_norm.instance_norm`, as in `FastInstanceNorm2d`).
    "record": the same, and the per-channel mean and variance of every input are pooled
    (weighted by pixel count, in float64 on the CPU).
    "image": inputs are normalised with the pooled statistics (see `use_recorded`).
    """

    def __init__(self, norm: nn.InstanceNorm2d) -> None:
        super().__init__()
        self.eps = norm.eps
        self.weight, self.bias = norm.weight, norm.bias  # shared with `norm` (None unless affine)
        self.mode = "tile"
        self._pixels = 0
        self._sums: torch.Tensor | None = None  # per channel: sum of means, sum of mean squares
        self._mean = self._scale = None

    def start_recording(self) -> None:
        self.mode, self._pixels, self._sums = "record", 0, None

    def use_recorded(self) -> None:
        if self._sums is None:
            raise RuntimeError("no statistics were recorded")
        mean = self._sums[0] / self._pixels
        variance = (self._sums[1] / self._pixels - mean * mean).clamp(min=0)
        self._mean = mean.float().view(1, -1, 1, 1)
        self._scale = torch.rsqrt(variance + self.eps).float().view(1, -1, 1, 1)
        self.mode = "image"

    def reset(self) -> None:
        self.mode, self._sums, self._mean, self._scale = "tile", None, None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "image":
            y = (x - self._mean.to(x.device)).mul_(self._scale.to(x.device))
        else:
            if self.mode == "record":
                self._record(x)
            y = instance_norm(x, self.eps)  # as the generator's FastInstanceNorm2d, to the bit
        if self.weight is not None:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y

    @torch.no_grad()
    def _record(self, x: torch.Tensor) -> None:
        values = x.float()
        pixels = values.shape[0] * values.shape[2] * values.shape[3]
        means = values.mean(dim=(0, 2, 3))
        squares = (values * values).mean(dim=(0, 2, 3))
        sums = torch.stack([means, squares]).double().cpu() * pixels
        self._sums = sums if self._sums is None else self._sums + sums
        self._pixels += pixels


def with_image_statistics(generator: nn.Module) -> tuple[nn.Module, list[ImageStatisticsNorm]]:
    """A copy of `generator` whose InstanceNorm2d layers (FastInstanceNorm2d included) are
    `ImageStatisticsNorm`s (sharing no state with the original, so the original stays safe to use
    meanwhile), and those layers.
    A network without such layers (batch norm, no norm, an ONNX session) is returned as is."""
    names = [name for name, module in generator.named_modules()
             if isinstance(module, nn.InstanceNorm2d) and not module.track_running_stats]
    if not names:
        return generator, []
    twin = copy.deepcopy(generator)
    norms = []
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = twin.get_submodule(parent_name) if parent_name else twin
        norms.append(ImageStatisticsNorm(getattr(parent, child)))
        setattr(parent, child, norms[-1])
    return twin, norms


def translate_tiled(image: Image.Image, translate: Callable[[torch.Tensor], torch.Tensor],
                    tile: int, overlap: int, norms: Sequence[ImageStatisticsNorm] = ()) -> Image.Image:
    """Translate `image` ("RGB" or "L") tile by tile and return the blended result, same size.

    `translate` maps a (1, C, h, w) tensor in [-1, 1] to (1, C', h, w) in [-1, 1] for any h, w
    up to `tile` (padding to the network's multiple is its business, as in
    `Translator.translate_tensor`). Tiles are `tile` px square, smaller only where the image is.
    `norms` are the `ImageStatisticsNorm` layers of the network behind `translate`: given, they
    first record statistics of the whole image, which every tile is then normalised with.
    """
    width, height = image.size

    def crop(left: int, top: int, right: int, bottom: int) -> torch.Tensor:
        return image_to_tensor(image.crop((left, top, right, bottom))).unsqueeze(0)

    canvas, total = _translated_canvas((height, width), crop, translate, tile, overlap, norms)
    channels = canvas.shape[0]
    result = np.empty((height, width) if channels == 1 else (height, width, channels), dtype=np.uint8)
    for top in range(0, height, _FINISH_ROWS):
        band = canvas[:, top:top + _FINISH_ROWS] / total[top:top + _FINISH_ROWS]
        result[top:top + _FINISH_ROWS] = np.asarray(tensor_to_image(torch.from_numpy(band)))
    return Image.fromarray(result)


def translate_tiled_array(unit: np.ndarray, translate: Callable[[torch.Tensor], torch.Tensor], tile: int,
                          overlap: int, norms: Sequence[ImageStatisticsNorm] = ()) -> np.ndarray:
    """`translate_tiled` for a float (H, W, C) array in [-1, 1] (16-bit, float and multi-channel
    images): the blended result as float32 (H, W, C'), unrounded, for the caller to map back."""
    height, width = unit.shape[:2]

    def crop(left: int, top: int, right: int, bottom: int) -> torch.Tensor:
        block = np.ascontiguousarray(unit[top:bottom, left:right].transpose(2, 0, 1), dtype=np.float32)
        return torch.from_numpy(block).unsqueeze(0)

    canvas, total = _translated_canvas((height, width), crop, translate, tile, overlap, norms)
    return (canvas / total).transpose(1, 2, 0)


def _translated_canvas(size: tuple[int, int], crop: Callable[[int, int, int, int], torch.Tensor],
                       translate: Callable, tile: int, overlap: int,
                       norms: Sequence[ImageStatisticsNorm]) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sum of the translated tiles, (C', H, W), and the sum of the weights, (H, W)."""
    try:
        if norms:
            _record_statistics(size, crop, translate, tile, norms)
        return _blend_tiles(size, crop, translate, tile, overlap)
    finally:
        for norm in norms:
            norm.reset()


def _tiles(size: tuple[int, int], crop: Callable, tile: int, overlap: int):
    """(top, left, row index, column index, crop as a (1, C, h, w) tensor) for every tile."""
    height, width = size
    tile_h, tile_w = min(tile, height), min(tile, width)
    for row_index, top in enumerate(tile_starts(height, tile, overlap)):
        for col_index, left in enumerate(tile_starts(width, tile, overlap)):
            yield top, left, row_index, col_index, crop(left, top, left + tile_w, top + tile_h)


def _record_statistics(size: tuple[int, int], crop: Callable, translate: Callable, tile: int,
                       norms: Sequence[ImageStatisticsNorm]) -> None:
    # Tiles that do not overlap: each pixel counts once, and the pass is cheaper.
    for norm in norms:
        norm.start_recording()
    for *_, batch in _tiles(size, crop, tile, 0):
        translate(batch)
    for norm in norms:
        norm.use_recorded()


def _blend_tiles(size: tuple[int, int], crop: Callable, translate: Callable, tile: int,
                 overlap: int) -> tuple[np.ndarray, np.ndarray]:
    height, width = size
    tile_h, tile_w = min(tile, height), min(tile, width)
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    canvas: np.ndarray | None = None
    total = np.zeros((height, width), dtype=np.float32)
    for top, left, row_index, col_index, batch in _tiles(size, crop, tile, overlap):
        output = translate(batch)[0].float().cpu().numpy()
        if canvas is None:
            canvas = np.zeros((output.shape[0], height, width), dtype=np.float32)
        weights = np.outer(blend_weights(rows, tile_h, row_index, overlap),
                           blend_weights(cols, tile_w, col_index, overlap))
        canvas[:, top:top + tile_h, left:left + tile_w] += output * weights
        total[top:top + tile_h, left:left + tile_w] += weights
    assert canvas is not None  # there is always at least one tile
    return canvas, total


__all__ = ["check_tiling", "tile_starts", "blend_weights", "translate_tiled", "translate_tiled_array",
           "ImageStatisticsNorm",
           "with_image_statistics"]
