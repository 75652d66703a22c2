"""How much memory a translation needs, how much is free, and what to do when it does not fit.

A generator's activations grow with the pixels it is given: a ResNet with ngf 64 holds several
64-channel float maps of the full size at once, so one 4000x3000 photo asks for gigabytes and a
batch of 4K video frames for tens of them. Before each generator call `plan_translation` compares
`activation_bytes` with the free memory (`free_memory`: /proc/meminfo's MemAvailable, or the
cgroup's limit when lower, on a Linux CPU; `torch.cuda.mem_get_info` on a GPU) and sends fewer
images at a time, or the image in tiles, when the estimate would not fit. The per-pixel constants
were measured on the CPU (peak resident memory of one forward, docs/PERFORMANCE.md "Memory").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from cyclegan.errors import InsufficientMemoryError

# Bytes one pixel of the input needs in a generator's forward pass at its peak, per filter of the
# first layer (ngf) and on top of that: an upper bound of the peaks measured on the CPU, with and
# without NNPACK, for ResNet and U-Net generators of ngf 8 to 64 (figures in docs/PERFORMANCE.md).
ACTIVATION_BYTES_PER_PIXEL_AND_FILTER = 32
ACTIVATION_BYTES_PER_PIXEL = 128
# The filters assumed when a file does not record them (some ONNX exports): the paper's.
ASSUMED_NGF = 64
# Only this part of the free memory is planned for: the estimate's own slack, the allocator's,
# decoded images and the rest of the process live in the other part.
USABLE_FRACTION = 0.5
# A tiled image is blended into a float32 canvas of its full size: samples and weights.
CANVAS_BYTES_PER_PIXEL = 16
# The smallest tile planned: smaller tiles see too little context and cost many network passes.
MIN_TILE = 128

_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def activation_bytes(pixels: int, ngf: int | None) -> int:
    """Estimated peak bytes of one generator call on images totalling `pixels` pixels."""
    filters = ngf if isinstance(ngf, int) and ngf > 0 else ASSUMED_NGF
    return pixels * (ACTIVATION_BYTES_PER_PIXEL_AND_FILTER * filters + ACTIVATION_BYTES_PER_PIXEL)


def free_memory(device: torch.device) -> int | None:
    """Bytes free for a translation on `device` now; None where it cannot be told (MPS, not Linux)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    available = _mem_available()
    limit = _cgroup_free()
    if available is None:
        return limit
    return available if limit is None else min(available, limit)


def _mem_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_free() -> int | None:
    """The cgroup v2 memory limit minus its use, for a process in a container with a limit."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((_CGROUP / "memory.current").read_text()))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class MemoryPlan:
    """How to send `count` images of one size through the network: `batch` at a time, or each in
    `tile` px tiles; `note` says why, when that is not what was asked."""

    batch: int
    tile: int | None = None
    note: str | None = None


def plan_translation(width: int, height: int, count: int, ngf: int | None, free: int | None,
                     multiple: int = 4, overlap: int = 32, share: float = 1.0) -> MemoryPlan:
    """How `count` images of `width` x `height` px fit into `share` of `free` bytes (None: unknown,
    every image at once): all at once, fewer at a time, or one at a time in tiles (a multiple of
    `multiple`, at least MIN_TILE and four overlaps) when even one image would not fit."""
    if free is None or count < 1:
        return MemoryPlan(max(1, count))
    budget = free * USABLE_FRACTION * share
    one = activation_bytes(width * height, ngf)
    if count * one <= budget:
        return MemoryPlan(count)
    needed = f"{_size(count * one)} for {count} image(s) of {width}x{height} px, {_size(free)} free"
    if one <= budget:
        batch = int(budget // one)
        return MemoryPlan(batch, note=f"the network would need about {needed}: translating {batch} at a time")
    per_pixel = activation_bytes(1, ngf)
    room = max(0.0, budget - CANVAS_BYTES_PER_PIXEL * width * height)
    side = int(math.sqrt(room / per_pixel)) // multiple * multiple
    side = max(side, _ceil_to(max(MIN_TILE, 4 * overlap), multiple))
    if side >= max(width, height):  # the floor is no smaller than the image: tiles would not help
        return MemoryPlan(1, note=f"the network would need about {needed}; it may run out of memory "
                                  "(use a smaller image, or free memory)")
    return MemoryPlan(1, tile=side, note=f"the network would need about {needed}: translating in {side} px "
                                         "tiles (--tile sets the size)")


def is_out_of_memory(error: BaseException) -> bool:
    """True for the ways torch and Python say that memory ran out."""
    if isinstance(error, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        marker in text for marker in ("not enough memory", "DefaultCPUAllocator", "out of memory"))


def out_of_memory_error(batch: torch.Tensor, device: torch.device, ngf: int | None) -> InsufficientMemoryError:
    """The one-line error for a generator call on `batch` that ran out of memory on `device`."""
    count, height, width = batch.shape[0], batch.shape[-2], batch.shape[-1]
    free = free_memory(device)
    available = f", {_size(free)} free now" if free is not None else ""
    images = f"{count} images" if count > 1 else "an image"
    advice = "use --tile 512 (or smaller tiles)" + (", or a smaller --batch-size" if count > 1 else "")
    return InsufficientMemoryError(
        f"out of memory translating {images} of {width}x{height} px on {device} (the network needs about "
        f"{_size(activation_bytes(count * width * height, ngf))}{available}); {advice}",
        width=width, height=height, count=count)


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _size(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count / 1e3:.0f} kB"


__all__ = ["MemoryPlan", "activation_bytes", "free_memory", "plan_translation", "is_out_of_memory",
           "out_of_memory_error", "ACTIVATION_BYTES_PER_PIXEL_AND_FILTER", "ACTIVATION_BYTES_PER_PIXEL"]
