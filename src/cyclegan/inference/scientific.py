"""Translating 16-bit, float and multi-channel images and medical volumes without losing values.

Such a file is read at full precision (`data.highbit.read_array`, `data.volumes.read_volume`),
mapped onto [-1, 1] through the model's window of its input domain (saved with the weights,
`--window-a` / `--window-b`), translated, and mapped back through the window of the output
domain: a CT in Hounsfield units comes back in Hounsfield units. When the output domain has no
fixed window (none given, or a percentile one, which only the input can resolve) the input's
window, as resolved on the file, maps it back. Images are written at the input's depth and type
unless `--output-depth` says otherwise; volumes keep their shape, voxel type, scaling and
geometry (`volumes.write_volume`). Values the windows clip are counted.

`check_outputs` refuses, before anything is translated, an output its format cannot hold.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from cyclegan.data.highbit import (check_writable, depth_of_dtype, header_dtype, match_channels,
                                   read_array, unit_to_array, write_array)
from cyclegan.data.intensity import IntensityWindow, window_for
from cyclegan.data.sources import needs_array_reader, parse_window
from cyclegan.data.volumes import is_volume, nifti_dtype, read_volume, write_volume
from cyclegan.checkpoint import GeneratorSpec
from cyclegan.errors import ConfigError

# The generator, with its padding, precision and tiles: (H, W, C) in [-1, 1] -> (H, W, C') in [-1, 1].
ArrayTranslation = Callable[[np.ndarray], np.ndarray]

WINDOW_FLAGS = "a window (train with --window-a/--window-b)"


def is_array_input(path: Path, spec: GeneratorSpec, output_depth: str | None) -> bool:
    """Whether `path` is translated here rather than as an 8-bit picture."""
    return (needs_array_reader(path, spec.input_nc) or spec.output_nc not in (1, 3)
            or output_depth not in (None, "8"))


def check_outputs(arrays: list[tuple[Path, Path]], volumes: list[tuple[Path, Path]], spec: GeneratorSpec,
                  output_depth: str | None) -> tuple[dict[Path, str], dict[Path, str]]:
    """The depth each image of `arrays` is written at, and notes on those written at another depth
    than their own; before any file is translated. Raises ConfigError naming the first input that
    cannot be translated as asked: a float file without a window, or `output_depth` that its output
    format cannot hold. Without `output_depth` a file whose format cannot hold its own depth at the
    model's output channels (a 16-bit grayscale PNG through an RGB model) is written as 8-bit."""
    input_window = parse_window(spec.input_window)
    depths: dict[Path, str] = {}
    notes: dict[Path, str] = {}
    for path, target in arrays:
        try:
            stored = header_dtype(path)
            window_for(stored, input_window, WINDOW_FLAGS)  # float files need one
            depth = output_depth or depth_of_dtype(stored)
            try:
                check_writable(target.suffix, depth, spec.output_nc)
            except ConfigError as error:
                if output_depth is not None or depth == "8":
                    raise
                check_writable(target.suffix, "8", spec.output_nc)
                notes[path] = f"{path}: written as 8-bit, since {error}"
                depth = "8"
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
        depths[path] = depth
    for path, _target in volumes:
        if input_window is None and path.is_file():
            try:  # a float NIfTI needs a window, said before anything is translated (reads the header only)
                window_for(nifti_dtype(path), None, WINDOW_FLAGS)
            except ConfigError as error:
                raise ConfigError(f"{path}: {error}") from None
        if output_depth is not None:
            raise ConfigError(f"{path}: a volume is written with its own voxel type; leave out --output-depth")
        if spec.output_nc != 1:
            raise ConfigError(f"{path}: a volume holds one value per voxel, but the model gives {spec.output_nc} "
                              "channels; use a model with --output-nc 1")
    return depths, notes


def translate_array_file(spec: GeneratorSpec, translate: ArrayTranslation, path: Path, target: Path,
                         depth: str | None) -> int:
    """Translate one full-precision image file into `target` at `depth` ("8", "16", "float"; None:
    its own); returns how many values its window clipped."""
    values = match_channels(read_array(path), spec.input_nc, path)
    window = window_for(values.dtype, parse_window(spec.input_window), WINDOW_FLAGS).resolved(values)
    unit, clipped = window.to_unit(values)
    translated = translate(unit)
    depth = depth or depth_of_dtype(values.dtype)
    result = unit_to_array(translated, _output_window(spec.output_window, window), values.dtype, depth)
    write_array(target, result[:, :, 0] if result.shape[2] == 1 else result)
    return clipped


def translate_volume_file(spec: GeneratorSpec, translate: ArrayTranslation, path: Path, target: Path) -> int:
    """Translate a NIfTI file or DICOM series slice by slice into `target` (a file of the same
    name, or a series folder); returns how many values the window clipped."""
    volume = read_volume(path)
    axis = volume.check_slice_axis(spec.slice_axis)
    window = window_for(volume.stored_dtype, parse_window(spec.input_window), WINDOW_FLAGS)
    if window.is_percentile and window.scope == "volume":
        window = window.resolved(volume.values)
    output_window = parse_window(spec.output_window)
    clipped, slices = 0, []
    for index in range(volume.slice_count(axis)):
        values = volume.slice(index, axis)
        slice_window = window.resolved(values)
        unit, count = slice_window.to_unit(match_channels(values, spec.input_nc, path))
        clipped += count
        translated = translate(unit)
        slices.append(_output_window(output_window, slice_window).from_unit(translated[:, :, 0]))
    write_volume(volume, volume.assemble(slices, axis), target)
    return clipped


def volume_target(path: Path, out_dir: Path) -> Path:
    """Where the translation of a volume goes: a file (or series folder) of the same name."""
    return out_dir / path.name


__all__ = ["is_volume", "is_array_input", "check_outputs", "translate_array_file", "translate_volume_file",
           "volume_target"]


def _output_window(given: IntensityWindow | str | None, input_window: IntensityWindow) -> IntensityWindow:
    window = parse_window(given) if isinstance(given, str) else given
    return window if window is not None and not window.is_percentile else input_window
