"""How `cyclegan translate` translates, as one typed value: the flags are generated from these
fields (`cyclegan.cli.options.add_option_arguments`), and Python callers build the same value.

A field left at None takes the default chosen where it is used, once: the images per generator
call in `Translator.batches` (`device.translation_batch_size`), the frames per call in
`cyclegan.inference.video` (`VIDEO_BATCH_SIZE`), the file threads in `Translator.translate_files`
(`device.translation_io_threads`), the layout in `Translator`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cyclegan.config import option
from cyclegan.errors import ConfigError
from cyclegan.inference.video import DEFAULT_CRF, VIDEO_BATCH_SIZE, ProgressBar, VideoOptions, parse_time

VIDEO_GROUP = "videos"


@dataclass(frozen=True)
class TranslateOptions:
    """Options of `cyclegan translate` beyond the model, the inputs and the output folder."""

    tile: int | None = option(
        None, "Translate images larger than SIZE px in overlapping SIZE x SIZE tiles, so memory is bounded by "
              "the tile rather than the image (e.g. 512; default: whole images, tiled only when one would not "
              "fit in the free memory).", metavar="SIZE")
    overlap: int = option(32, "Overlap of neighbouring tiles, blended smoothly", metavar="PX")
    nnpack: bool | None = option(
        None, "On the CPU, run the generator's stride-1 3x3 and 7x7 convolutions through NNPACK (Winograd / FFT) "
              "where they measured faster (float32, large enough images); the same convolutions up to float "
              "rounding (default: chosen by --precision auto's timing; on for fp32 on a CPU where nothing was "
              "timed).")
    channels_last: bool | None = option(
        None, "Channels-last memory layout (default: the faster one measured for the device: contiguous, except "
              "on a CPU without the NNPACK path).")
    batch_size: int | None = option(
        None, "Images of one size, and video frames, per generator call (default: for images, chosen for the "
              "device: 1 on a CPU, whose convolutions take one image at a time, as many as half the free memory "
              f"holds on a GPU, at most 32 images and 32 x 256^2 pixels; {VIDEO_BATCH_SIZE} video frames; fewer "
              "when the free memory would not hold them).", aliases=("--batch_size",), metavar="N")
    io_threads: int | None = option(
        None, "Threads decoding and encoding image files around the network (default: 2 on a CPU, whose cores "
              "the network uses; on a GPU up to 8, as many as the host has cores).", metavar="N")
    output_depth: str | None = option(
        None, "Depth of translated 16-bit, float and multi-channel images (default: the input's own); values go "
              "back through the model's intensity windows. Volumes keep their voxel type.",
        choices=("8", "16", "float"))
    overwrite: bool = option(False, "Replace output files that exist already (inputs are never replaced).",
                             shown_default="")
    skip_existing: bool = option(False, "Leave output files that exist already and translate only the inputs "
                                        "without one: continues an interrupted translation (each output file is "
                                        "written whole or not at all; a DICOM series folder is translated again).",
                                 shown_default="")
    video_codec: str | None = option(
        None, "Encoder of the translated videos (default: libx264, i.e. H.264; libvpx-vp9 for WebM).",
        metavar="CODEC", group=VIDEO_GROUP)
    video_crf: int | None = option(
        None, "Constant quality of the encoder, lower is better and larger (default: "
              + ", ".join(f"{crf} for {codec}" for codec, crf in DEFAULT_CRF.items()) + ").",
        metavar="CRF", group=VIDEO_GROUP)
    frames_dir: Path | None = option(
        None, "Also write every translated frame as PNG, to DIR/<video name>/000001.png...", metavar="DIR",
        group=VIDEO_GROUP)
    start: float = option(
        0.0, "Translate from TIME (seconds, MM:SS or HH:MM:SS) into the video; the output starts there",
        parse=parse_time, metavar="TIME", group=VIDEO_GROUP, shown_default="0")
    duration: float | None = option(
        None, "Translate only TIME (seconds, MM:SS or HH:MM:SS) of each video.", parse=parse_time, metavar="TIME",
        group=VIDEO_GROUP)

    def check(self) -> None:
        """Raise ConfigError for values that cannot work, before any file is read (--overwrite with
        --skip-existing: `Translator.translate_files`, for callers of the library too)."""
        for name in ("batch_size", "io_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")

    @property
    def translator_options(self) -> dict:
        """The keyword arguments of `Translator` these options set."""
        return {"tile": self.tile, "overlap": self.overlap, "channels_last": self.channels_last,
                "nnpack": self.nnpack}

    def video_options(self, progress: Callable[[int | None, str], ProgressBar] | None = None) -> VideoOptions:
        """The options of `cyclegan.inference.video.translate_video` these set, with a progress bar factory."""
        return VideoOptions(batch_size=self.batch_size, codec=self.video_codec, crf=self.video_crf,
                            start=self.start, duration=self.duration,
                            frames_dir=None if self.frames_dir is None else Path(self.frames_dir), progress=progress)


__all__ = ["TranslateOptions", "VIDEO_GROUP"]
