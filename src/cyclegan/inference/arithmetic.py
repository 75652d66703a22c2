"""Choosing a translation's arithmetic by timing it (`cyclegan.tuning`) before a folder or a video.

`tune_translation(translator, inputs)` looks at what `translate_files` will be given: how many
generator calls it will make and at what size (the first readable image's, else the first video's).
For MIN_PROBED_ITERATIONS calls or more it times the candidates on the translator's own generator
at that size and batch (`cyclegan.tuning.translation_measure`), keyed by the network's layers, and
applies the fastest; for fewer it applies a cached decision, or keeps the translator's untuned
default (`untuned_arithmetic`).
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image

from cyclegan.device import translation_batch_size
from cyclegan.tuning import (DecisionCache, ProbeKey, ProbeResult, choose_arithmetic, translation_measure,
                             translation_side)


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None  # not a format PIL opens (.npy, some TIFFs), or unreadable: translate_files reports it


def _video_extent(path: Path) -> tuple[int, tuple[int, int]] | None:
    """(frames, (width, height)) of a video's first video stream, from its header."""
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = stream.frames
            if not frames and stream.duration and stream.time_base and stream.average_rate:
                frames = round(float(stream.duration * stream.time_base * stream.average_rate))
            return int(frames or 0), (stream.codec_context.width, stream.codec_context.height)
    except Exception:  # no PyAV, or damaged: translate_video reports it; the probe only skips it
        return None


def planned_work(translator, inputs: Iterable[str | Path], batch_size: int | None = None,
                 video_batch_size: int = 4) -> tuple[int, tuple[int, int] | None, int]:
    """(generator calls, (width, height) to time at, batch) that translating `inputs` will take."""
    from cyclegan.inference.translator import TranslationReport, expand_inputs
    from cyclegan.inference.video import is_video

    paths = expand_inputs(inputs, TranslationReport())
    kinds = {path: is_video(path) for path in paths}
    videos = [path for path in paths if kinds[path]]
    images = [path for path in paths if not kinds[path]]
    size, batch, calls = None, batch_size, 0
    for path in images:
        size = _image_size(path)
        if size is not None:
            break
    if images and size is not None:
        batch = batch or translation_batch_size(translator.device, size[0] * size[1], translator.spec.ngf)
        calls += math.ceil(len(images) / batch)
    for path in videos:
        extent = _video_extent(path)
        if extent is None:
            continue
        frames, frame_size = extent
        if size is None:
            size, batch = frame_size, batch_size or video_batch_size
        calls += math.ceil(frames / (batch_size or video_batch_size))
    return calls, size, batch or 1


def tune_translation(translator, inputs: Iterable[str | Path], batch_size: int | None = None,
                     video_batch_size: int = 4, may_probe: bool = True,
                     cache: DecisionCache | None = None, announce: Callable[[str], None] | None = None) -> ProbeResult:
    """Choose and apply `translator`'s arithmetic for translating `inputs` (files and folders, as
    `Translator.translate_files` takes them); returns the decision, for `describe()`.

    The probe times a square image of the first input's area, rounded to the network's size
    multiple. `may_probe` False (under torchrun, where every rank must compute alike) leaves the
    cached decision or the untuned default. `announce(line)` hears before anything is timed."""
    if not any(True for _ in translator.generator.parameters()):  # an ONNX session: runs as exported
        return ProbeResult(translator.arithmetic, "as asked", "translate", reason="runs as exported")
    calls, size, batch = planned_work(translator, inputs, batch_size, video_batch_size)
    if size is None:
        return ProbeResult(translator.arithmetic, "default", "translate", reason="nothing readable to measure on")
    side = translation_side(*size, translator.multiple)
    key = ProbeKey.for_network(translator.device, translator.generator, "translate", side, batch,
                               translator.user_flags)
    measure = translation_measure(translator.generator, translator.device, side, batch,
                                  translator.input_channels) if may_probe else None
    unit = "s/image" if batch == 1 else "s/batch"
    result = choose_arithmetic(translator.device, key, measure, calls, translator.user_flags, cache=cache, unit=unit,
                               announce=announce)
    if result.source == "default":  # nothing measured or cached: the translator's own default stands
        why = (f"{calls} generator call(s) are too few to be worth measuring" if may_probe
               else "not measured under torchrun")
        result = replace(result, chosen=translator.arithmetic, reason=f"{why}, and no decision is cached")
    translator.use(result.chosen)
    return result
