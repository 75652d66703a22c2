"""Inputs beyond 8-bit pictures: full-precision image files and the slices of volumes.

A domain's folder may hold, besides 8-bit pictures (which keep going through `images.load_image`
exactly as before), 16-bit and float PNG / TIFF, `.npy` arrays and multi-channel TIFF
(`highbit.read_array`), and volumes: NIfTI files and DICOM series, one series per sub-folder
(`volumes.read_volume`), each cut into the 2-D slices a CycleGAN trains on. Such inputs map onto
the networks' [-1, 1] through the domain's `IntensityWindow` (`--window-a` / `--window-b`), never
through a per-image stretch; `SourceReader.unit` does that and counts what the window clipped.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cyclegan.config import DataConfig
from cyclegan.data.highbit import (NUMPY_SUFFIXES, TIFF_SUFFIXES, header_dtype, match_channels, read_array,
                                   reads_at_full_precision)
from cyclegan.data.images import list_images, open_image_header
from cyclegan.data.intensity import IntensityWindow, window_for
from cyclegan.data.volumes import NIFTI_SUFFIXES, Volume, is_volume, read_volume
from cyclegan.errors import ConfigError, DatasetError, UnreadableImageError


@dataclass(frozen=True)
class VolumeSlice:
    """Slice `index` along voxel axis `axis` of the volume at `path`; `size` is (width, height)."""

    path: Path
    index: int
    axis: int
    size: tuple[int, int]

    def __str__(self) -> str:
        return f"{self.path} (slice {self.index} along axis {self.axis})"


Source = Path | VolumeSlice


def file_of(source: Source) -> Path:
    """The file (or DICOM series folder) a source comes from."""
    return source.path if isinstance(source, VolumeSlice) else source


def list_sources(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(image files, volumes) of `folder`: the images `list_images` finds plus `.npy` arrays; NIfTI
    files and the sub-folders holding a DICOM series. Raises DatasetError as `list_images` does."""
    folder = Path(folder)
    images = list_images(folder)
    arrays, volumes = [], []
    for entry in sorted(folder.iterdir()):
        name = entry.name.lower()
        if entry.is_file() and name.endswith(tuple(NUMPY_SUFFIXES)):
            arrays.append(entry)
        elif (entry.is_file() and name.endswith(NIFTI_SUFFIXES)) or (entry.is_dir() and is_volume(entry)):
            volumes.append(entry)
    return sorted(images + arrays), volumes


def needs_array_reader(path: Path, channels: int) -> bool:
    """Whether `path` goes through `read_array` and a window rather than the 8-bit `load_image`:
    `.npy`, 16-bit or float files, multi-page TIFF, or a model of other than 1 or 3 channels."""
    return path.suffix.lower() in NUMPY_SUFFIXES or channels not in (1, 3) or reads_at_full_precision(path)


def source_size(source: Source) -> tuple[int, int]:
    """(width, height) of a source, from its header. Raises UnreadableImageError."""
    if isinstance(source, VolumeSlice):
        return source.size
    suffix = source.suffix.lower()
    if suffix in NUMPY_SUFFIXES:
        try:
            shape = np.load(source, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError, EOFError):
            shape = read_array(source).shape  # raises, saying what is wrong
        if len(shape) in (2, 3) and min(shape[:2]) > 0:
            return shape[1], shape[0]
    if suffix in NUMPY_SUFFIXES or (suffix in TIFF_SUFFIXES and reads_at_full_precision(source)):
        shape = read_array(source).shape
        return shape[1], shape[0]
    with open_image_header(source) as header:
        return header.size


def parse_window(text: str | None) -> IntensityWindow | None:
    return None if text is None else IntensityWindow.parse(text)


# The decoded volumes a `SourceReader` keeps unless told otherwise, in bytes of their float32
# values: training's default of --volume-cache-mb.
DEFAULT_VOLUME_CACHE_BYTES = DataConfig.volume_cache_mb * 2 ** 20


class SourceReader:
    """Reads one domain's full-precision files and volume slices as [-1, 1] float32 (H, W, C)
    arrays through its window (None: the default of each file's type, see `intensity`).

    Decoded volumes are kept, least recently used dropped first, up to `max_cache_bytes` of values
    (the most recent one always): a training epoch visits slices in random order, so keeping only
    the last volume decoded a `.nii.gz` or a DICOM series again for almost every slice. The kept
    volumes are not pickled: each DataLoader worker fills its own (workers start anew each epoch,
    so a volume is decoded about once per epoch and worker)."""

    def __init__(self, channels: int, window: IntensityWindow | None, slice_axis: int | None = None,
                 flag: str = "--window-a/--window-b", max_cache_bytes: int = DEFAULT_VOLUME_CACHE_BYTES):
        self.channels, self.window, self.slice_axis, self.flag = channels, window, slice_axis, flag
        self.max_cache_bytes = max_cache_bytes
        self._volumes: OrderedDict[Path, tuple[Volume, IntensityWindow]] = OrderedDict()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_volumes": OrderedDict()}

    @property
    def cached(self) -> list[Path]:
        """The volumes kept, least recently used first."""
        return list(self._volumes)

    @property
    def cached_bytes(self) -> int:
        return sum(volume.values.nbytes for volume, _window in self._volumes.values())

    def volume(self, path: Path) -> tuple[Volume, IntensityWindow]:
        """The volume at `path` and its window (a percentile window of scope "volume" resolved on it)."""
        if path in self._volumes:
            self._volumes.move_to_end(path)
            return self._volumes[path]
        volume = read_volume(path)
        window = window_for(volume.stored_dtype, self.window, self.flag)
        if window.is_percentile and window.scope == "volume":
            window = window.resolved(volume.values)
        self._volumes[path] = (volume, window)
        while len(self._volumes) > 1 and self.cached_bytes > self.max_cache_bytes:
            self._volumes.popitem(last=False)
        return volume, window

    def check_windows(self, paths: list[Path]) -> None:
        """Raise ConfigError naming the first of `paths` that needs a window the domain lacks (a
        float file), before training starts rather than in a data-loading worker."""
        for path in paths:
            if needs_array_reader(path, self.channels):
                try:
                    window_for(header_dtype(path), self.window, self.flag)
                except ConfigError as error:
                    raise ConfigError(f"{path}: {error}") from None

    def forget(self) -> None:
        """Drop the volumes kept (once a dataset has listed the slices of its volumes)."""
        self._volumes.clear()

    def slices_of(self, path: Path, min_foreground: float = 0.0) -> list[VolumeSlice]:
        """The slices of the volume at `path` worth training on (`Volume.foreground_slices`, above
        the window's low end when a window is given). Raises UnreadableImageError naming it."""
        volume, window = self.volume(path)
        axis = volume.check_slice_axis(self.slice_axis)
        if self.channels != 1:
            raise UnreadableImageError(f"{path}: a volume gives 1-channel slices, but the domain has "
                                       f"{self.channels} channels; train it with --input-nc 1 / --output-nc 1")
        threshold = None
        if self.window is not None:
            threshold = (window if not window.is_percentile else window.resolved(volume.values)).low
        other = [volume.shape[a] for a in range(3) if a != axis]
        size = (other[1], other[0])
        return [VolumeSlice(path, index, axis, size)
                for index in volume.foreground_slices(axis, min_foreground, threshold)]

    def unit(self, source: Source) -> tuple[np.ndarray, int]:
        """`source` as float32 (H, W, channels) in [-1, 1], and how many values the window clipped."""
        if isinstance(source, VolumeSlice):
            volume, window = self.volume(source.path)
            values = volume.slice(source.index, source.axis)
        else:
            values = match_channels(read_array(source), self.channels, source)
            window = window_for(values.dtype, self.window, self.flag)
        unit, clipped = window.to_unit(values)
        if unit.ndim == 2:
            unit = unit[:, :, None]
        return unit, clipped


def expand_volumes(volumes: list[Path], reader: SourceReader, min_foreground: float,
                   role: str) -> tuple[list[VolumeSlice], list[tuple[str, str]]]:
    """The slices of `volumes` and (volume, reason) for those that cannot be read or hold no slice."""
    slices: list[VolumeSlice] = []
    skipped: list[tuple[str, str]] = []
    for path in volumes:
        try:
            found = reader.slices_of(path, min_foreground)
        except UnreadableImageError as error:
            skipped.append((str(path), str(error)))
            continue
        if not found:
            skipped.append((str(path), f"{path}: no slice has foreground above the window's low end "
                                       "(--min-foreground); check the window or lower --min-foreground"))
        slices.extend(found)
    reader.forget()
    return slices, skipped


def first_usable_volume(folder: Path) -> tuple[bool, list[str]]:
    """Whether `folder` holds a readable volume, and why those it holds are not."""
    try:
        _images, volumes = list_sources(folder)
    except DatasetError:
        return False, []
    reasons = []
    for path in volumes:
        try:
            read_volume(path)
            return True, reasons
        except UnreadableImageError as error:
            reasons.append(str(error))
    return False, reasons
