"""A domain's test images, read for evaluation as training reads that domain.

8-bit pictures are read as they always were (`image_metrics.read_image_tensor`) and kept as the
8-bit values a saved image holds. Everything else a training folder may hold (16-bit and float
PNG / TIFF, `.npy`, multi-channel TIFF, NIfTI volumes and DICOM series cut into slices along the
model's slice axis, empty slices skipped as `--min-foreground` says) goes through
`data.sources.SourceReader` with the model's intensity window of that domain and is kept as
float32 in [-1, 1]: every score of such data is computed after the window, as training saw it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cyclegan.data.intensity import SIXTEEN_BIT_WINDOW
from cyclegan.data.sources import Source, SourceReader, VolumeSlice, expand_volumes, list_sources, needs_array_reader, parse_window
from cyclegan.data.transforms import preprocess_array
from cyclegan.data.volumes import volume_stem
from cyclegan.evaluation.image_metrics import read_image_tensor
from cyclegan.imageconv import to_uint8, to_unit_range


@dataclass
class DomainImages:
    """The test images of one domain: `images[i]` (C, H, W) read from `sources[i]`, uint8 for an
    8-bit picture, float32 in [-1, 1] after the window otherwise."""

    domain: str
    window: str | None  # the model's window of the domain, as given to training (None: each file's default)
    sources: list[Source] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)
    clipped: int = 0  # values outside the window, clipped to its ends
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (volume, why) of volumes that gave no slice

    @property
    def full_precision(self) -> int:
        """How many images were read through the window rather than as 8-bit pictures."""
        return sum(image.dtype != torch.uint8 for image in self.images)


def read_domain(folder: Path, domain: str, channels: int, window: str | None, slice_axis: int | None,
                min_foreground: float, size: int | None) -> DomainImages:
    """The images of `folder` (testA or testB) as the model of `channels` channels, `window` and
    `slice_axis` reads domain `domain`, resized to size x size when `size` is given (bicubic, as
    training resizes). Raises ConfigError naming a float file when the domain has no window."""
    reader = SourceReader(channels, parse_window(window), slice_axis,
                          f"a window (train with --window-{domain.lower()})")
    files, volumes = list_sources(folder)
    reader.check_windows(files)
    slices, skipped = expand_volumes(volumes, reader, min_foreground, f"test{domain}")
    result = DomainImages(domain, window, skipped=skipped)
    for source in [*files, *slices]:
        if isinstance(source, Path) and not needs_array_reader(source, channels):
            image = to_uint8(read_image_tensor(source, channels, size))
        else:
            unit, clipped = reader.unit(source)
            result.clipped += clipped
            if size is not None and unit.shape[:2] != (size, size):
                unit = preprocess_array(unit, "resize_and_crop", size, size, flip=False, size_multiple=1)
            image = torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1), dtype=np.float32))
        result.sources.append(source)
        result.images.append(image)
    reader.forget()
    return result


def pair_key(source: Source) -> tuple:
    """What a source is matched by across testA and testB: a file's stem; a volume's name, axis
    and slice index (slice 12 of testA/p01.nii.gz pairs with slice 12 of testB/p01.nii.gz)."""
    if isinstance(source, VolumeSlice):
        return (volume_stem(source.path), source.axis, source.index)
    return (source.stem,)


def as_unit(image: torch.Tensor) -> torch.Tensor:
    """An evaluation image in [-1, 1] float32: 8-bit values mapped as everywhere, float as it is."""
    return to_unit_range(image) if image.dtype == torch.uint8 else image.float()


def describe_window(images: DomainImages) -> str:
    """How the domain's full-precision images were mapped, for a note."""
    if images.window is not None:
        return f"test{images.domain} through window {images.window}"
    return f"test{images.domain} through each file type's full range (16-bit: {SIXTEEN_BIT_WINDOW})"


__all__ = ["DomainImages", "read_domain", "pair_key", "as_unit", "describe_window"]
