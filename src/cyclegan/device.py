"""Choosing where to compute, and the pieces that apply an arithmetic there.

Which arithmetic is fastest is not decided here by CPU flags: `cyclegan.tuning` times the
candidates on the user's machine (docs/PERFORMANCE.md). The device's capabilities only decide
which candidates are tried (`has_native_bf16`); `autocast` (the precision, tf32 included),
`apply_layout` (channels-last and the NNPACK convolutions), `synchronize` and `device_name`
apply and time them.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
from pathlib import Path

import torch

from cyclegan.errors import ConfigError
from cyclegan.layers.nnpack import use_nnpack


def select_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; anything else is taken as asked, after
    checking it exists so that a typo fails here rather than deep inside the first convolution."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for but this PyTorch sees no CUDA GPU; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but MPS is not available here; use --device cpu or auto")
    return device


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Every precision `autocast` knows: tf32 is float32 storage with TensorFloat-32 products on a CUDA GPU.
ARITHMETIC_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read, so no claim of native bf16
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split())


@functools.cache
def _cpu_model_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: the platform's own, vaguer, name
        return platform.processor() or platform.machine() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                platform.machine() or "unknown CPU")


def device_name(device: torch.device) -> str:
    """The model of `device` (the CPU's or the GPU's name): what decides which arithmetic is
    fastest on it, so measured decisions are kept per name."""
    if device.type == "cpu":
        return _cpu_model_name()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def has_native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively: a CPU with AVX-512 BF16 or AMX, a CUDA GPU of
    compute capability 8.0 (Ampere) or newer. Elsewhere bf16 is emulated, and far slower."""
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return False


# Bytes of GPU memory one image of one pixel needs in a generator's forward pass, per filter of
# its first layer: a deliberately generous bound on the activations alive at once (the largest
# maps are the full-resolution ngf-channel ones, a few of them at a time), so that the batch
# chosen below leaves room for the allocator's slack.
_BYTES_PER_PIXEL_AND_FILTER = 64
# A batch larger than this gains nothing measurable: the GPU is already busy.
MAX_TRANSLATION_BATCH = 32
# Pixels in one batch at most: a batch is decoded before and encoded after its compute, so a batch
# of large images leaves the GPU idle during that file work (docs/PERFORMANCE.md, the H200 section,
# has the measurements behind this cap).
MAX_TRANSLATION_BATCH_PIXELS = 32 * 256 * 256


def translation_batch_size(device: torch.device, pixels: int, ngf: int | None = None) -> int:
    """How many images of `pixels` pixels to translate in one call on `device`.

    One on a CPU, whose NNPACK convolutions take images one at a time anyway; on a GPU as many as
    half of its free memory holds, up to MAX_TRANSLATION_BATCH images and MAX_TRANSLATION_BATCH_PIXELS."""
    if device.type != "cuda":
        return 1
    free, _total = torch.cuda.mem_get_info(device)
    per_image = pixels * (ngf if isinstance(ngf, int) else 64) * _BYTES_PER_PIXEL_AND_FILTER
    return max(1, min(MAX_TRANSLATION_BATCH, MAX_TRANSLATION_BATCH_PIXELS // max(1, pixels),
                      free // 2 // max(1, per_image)))


def translation_io_threads(device: torch.device, processes_on_host: int = 1) -> int:
    """How many threads decode and encode image files around the network in `translate`.

    Two on a CPU, whose cores the network's own threads keep busy. On a GPU the files are most of
    the work at ordinary sizes (docs/PERFORMANCE.md, the H200 section), so up to eight, as many as
    the host has cores; under `torchrun` the host's cores are shared by its `processes_on_host`,
    so each takes its share rather than all of them."""
    if device.type != "cuda":
        return 2
    return max(2, min(8, (os.cpu_count() or 1) // max(1, processes_on_host)))


def autocast(device: torch.device, precision: str, cache: bool = True):
    """A context in which eligible ops (convolutions, matmuls) run in reduced precision.

    fp32 is a no-op context, so exact-reproduction code paths stay bit-exact. tf32 lets CUDA's
    matmuls and convolutions use TensorFloat-32 inside the context only (the switches are the
    process's, so they are put back on leaving it). `cache` False keeps no cast copies of the
    weights between ops (needed inside a CUDA graph capture, whose memory they would outlive).
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "tf32":
        if device.type != "cuda":
            raise ConfigError("--precision tf32 needs a CUDA GPU; on this device use fp32 or bf16")
        return _tensor_float_32()
    if precision not in AUTOCAST_DTYPES:
        raise ConfigError(f"unknown precision '{precision}'; choose fp32, bf16 or fp16")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("--precision fp16 needs a GPU; on the CPU use bf16")
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision], cache_enabled=cache)


@contextlib.contextmanager
def _tensor_float_32():
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def apply_layout(network: torch.nn.Module, device: torch.device, channels_last: bool,
                 nnpack: bool) -> torch.memory_format:
    """Put `network`'s weights in the memory layout asked for and turn its NNPACK convolutions on
    or off (they only ever run on a CPU, in float32 and the contiguous layout); returns the memory
    format its inputs should be given in. Either switch can be undone by calling this again."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network.to(memory_format=memory_format)
    use_nnpack(network, nnpack and device.type == "cpu")
    return memory_format


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device`, so that a clock read next measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
