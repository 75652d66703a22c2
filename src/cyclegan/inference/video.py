"""Translating videos frame by frame, keeping what makes them the same clip: the number of frames,
their timestamps (so variable and fractional rates such as 30000/1001 survive), the size, the
sound and the orientation.

Videos are read and written with PyAV (`pip install 'cyclegan[video]'`), which brings its own
FFmpeg; it is imported only when a video is translated. Whether a file is a video is decided
from its first bytes (MP4/MOV, Matroska/WebM, AVI), so `clip.dat` is recognised too; without
PyAV a video is reported as one, with the extra to install.

Three threads share the work, and memory stays bounded whatever the length: one decodes upright
RGB frames, the caller's thread translates them `batch_size` at a time, one encodes and writes.
They hand frames over through a bounded `cyclegan.inference.pipeline.Pipeline`, so only a few batches exist at any time.

Choices a user would otherwise meet as surprises:

- Timestamps: every output frame keeps its source frame's timestamp and duration, in the source
  stream's time base; the encoder is told the durations, so the last frame lasts as long as in
  the source. With `start`, the output begins at 0.
- Sound: audio packets are copied unchanged (no re-encoding); other streams (subtitles, phone
  metadata tracks) are left out.
- Orientation: phones store sensor-oriented frames plus a rotation for the player. A generator
  trained on upright photos translates sideways ones badly, so frames are turned upright before
  translation and written upright without the rotation: the output shows the same in every
  player, with the displayed width and height. (A mirroring display matrix is not applied.)
- Colours: YUV becomes RGB with the matrix and range the stream is tagged with; an untagged
  stream gets what players assume (BT.709 from 1280 px wide or 577 lines, BT.601 below). RGB
  becomes limited-range YUV with the same matrix, and the output is tagged with it. HDR is not
  tone-mapped: its coded values are translated as they are.
- Sizes: 4:2:0 video (H.264, VP9) needs even sides; an odd width or height loses its last column
  or row in the video (reported). Frames written to `frames_dir` keep every pixel.
- Containers: the output keeps the source's (MP4, MOV, Matroska, WebM), except AVI, which has no
  timestamps for H.264's reordered frames and becomes MP4, and WebM with a codec WebM cannot
  hold, which becomes Matroska. H.264 (libx264) is the default codec, VP9 for WebM.
- Failures: a file FFmpeg cannot read, one that ends early and a stream without a decoder raise
  `UnreadableVideoError` naming the file; an output that cannot be written (the muxer refuses a
  packet, a full disk) raises `OutputError` naming the output. The output is written under a temporary name and
  renamed when complete, so an error or Ctrl-C leaves nothing under the final name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
from PIL import Image

from cyclegan.data.images import IMAGE_EXTENSIONS, save_image_atomic
from cyclegan.errors import ConfigError, OutputError, UnreadableVideoError
from cyclegan.fileio import atomic_path, write_advice
from cyclegan.inference.pipeline import Pipeline

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})

# File extension -> FFmpeg muxer (and container family, the same names).
_EXTENSION_FORMAT = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
                     ".avi": "avi"}
_FORMAT_EXTENSION = {"mp4": ".mp4", "mov": ".mov", "matroska": ".mkv", "webm": ".webm"}
_RELATIVES = {"mp4": "iso", "mov": "iso", "matroska": "ebml", "webm": "ebml", "avi": "avi"}
# WebM holds only these video encoders' codecs; for any other, Matroska (its superset).
_WEBM_ENCODERS = frozenset({"libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1", "librav1e"})
# ISO base media brands of still images and sound, which share MP4's first bytes.
_NOT_VIDEO_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
                               b"avif", b"avis", b"M4A ", b"M4B ", b"M4P "})
# Quality without --video-crf: visually near-lossless for H.264 and H.265, the VP9 encoder's
# recommended setting; other encoders keep their own defaults.
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 31}
# Frames per generator call without --batch-size (fewer when the free memory would not hold them,
# see `cyclegan.inference.memory`).
VIDEO_BATCH_SIZE = 4

# AVColorSpace (libavutil/pixfmt.h) -> the swscale matrix it names, and back for the output's tag.
_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
_MATRIX_TAG = {"ITU709": 1, "FCC": 4, "ITU601": 6, "SMPTE240M": 7, "BT2020": 9}
_RGB_TAG, _LIMITED_RANGE, _FULL_RANGE = 0, 1, 2
# swscale's default 4:2:0 -> RGB path darkens by about a level per conversion (a round trip through
# the codec would compound it); full chroma interpolation with accurate rounding is unbiased.
_SCALE_FLAGS = ("BILINEAR", "ACCURATE_RND", "FULL_CHR_H_INT", "FULL_CHR_H_INP")


class ProgressBar(Protocol):
    def update(self, frames: int) -> Any: ...
    def close(self) -> Any: ...


@dataclass(frozen=True)
class VideoOptions:
    """How videos are translated. `start` and `duration` are seconds from the first frame
    (`parse_time` reads 90, 1:30 or 0:01:30.5). `progress(total frames or None, name)` returns a
    bar with `update(frames)` and `close()` (tqdm fits)."""

    batch_size: int | None = None  # None: VIDEO_BATCH_SIZE
    codec: str | None = None  # None: libx264, libvpx-vp9 for WebM
    crf: int | None = None  # None: DEFAULT_CRF for the encoder
    start: float = 0.0
    duration: float | None = None
    frames_dir: Path | None = None
    progress: Callable[[int | None, str], ProgressBar] | None = None

    @property
    def frames_per_batch(self) -> int:
        return self.batch_size or VIDEO_BATCH_SIZE

    def check(self) -> None:
        """Raise ConfigError for options that cannot work, before any file is touched."""
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.start < 0:
            raise ConfigError(f"--start must be 0 or later, got {self.start:g}")
        if self.duration is not None and self.duration <= 0:
            raise ConfigError(f"--duration must be positive, got {self.duration:g}")
        if self.crf is not None and self.crf < 0:
            raise ConfigError(f"--video-crf must be 0 or more, got {self.crf}")
        if self.codec is not None or self.crf is not None:
            _check_codec(_import_av(None), self.codec or "libx264", self.crf)


@dataclass(frozen=True)
class VideoResult:
    path: Path
    frames: int
    size: tuple[int, int]  # width, height of the written video
    notes: tuple[str, ...] = ()  # what the user should know (an odd side cropped, a dropped stream)


def parse_time(text: str) -> float:
    """Seconds from "90", "1:30" or "0:01:30.5" (an argparse type)."""
    parts = text.strip().split(":")
    try:
        if len(parts) > 3 or "" in parts:
            raise ValueError
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + float(part)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use seconds, MM:SS or HH:MM:SS)") from None
    return seconds


def sniff_container(path: str | Path) -> str | None:
    """The container family of `path` from its first bytes ("mp4", "mov", "matroska", "webm",
    "avi"), or None when it is none of them or cannot be read."""
    try:
        with open(path, "rb") as file:
            head = file.read(64)
    except OSError:
        return None
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _NOT_VIDEO_BRANDS:
            return None
        return "mov" if brand == b"qt  " else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"  # QuickTime files from before the ftyp box
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head else "matroska"  # the EBML header's DocType
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def is_video(path: str | Path) -> bool:
    """True when `path` holds a video by its first bytes, or is named like one (so that a damaged
    `clip.mp4` is reported as a video rather than as an image)."""
    return sniff_container(path) is not None or Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_videos(folder: str | Path) -> list[Path]:
    """Sorted videos of `folder` (not recursive) that `list_images` leaves out: files with a video
    extension or a video's first bytes. (An image-named file holding a video is listed by
    `list_images`, and `is_video` sends it here.)"""
    found = []
    for path in Path(folder).iterdir():
        try:
            if path.suffix.lower() not in IMAGE_EXTENSIONS and path.is_file() and is_video(path):
                found.append(path)
        except OSError:
            continue
    return sorted(found)


def output_name(src: str | Path, codec: str | None = None) -> str:
    """The name the translation of `src` gets in an output folder: the source's own name when its
    container is kept, else its stem with the extension of the container written."""
    src = Path(src)
    named, sniffed = _EXTENSION_FORMAT.get(src.suffix.lower()), sniff_container(src)
    # The name decides between close relatives (an MP4-branded .mov stays a .mov), the content otherwise.
    family = named if named and (sniffed is None or _RELATIVES[named] == _RELATIVES[sniffed]) else sniffed or "mp4"
    output_format = "mp4" if family == "avi" else family
    if output_format == "webm" and codec is not None and _encoder_name(codec) not in _WEBM_ENCODERS:
        output_format = "matroska"
    return src.name if named == output_format else src.stem + _FORMAT_EXTENSION[output_format]


def translate_video(translator, src: str | Path, dst: str | Path,
                    options: VideoOptions | None = None) -> VideoResult:
    """Translate the video `src` into the file `dst` (whose extension chooses the container) with a
    `cyclegan.inference.Translator`. Raises UnreadableVideoError, naming the file and the reason,
    for a video that cannot be read, and ConfigError for options that cannot work."""
    options = options or VideoOptions()
    options.check()
    src, dst = Path(src), Path(dst)
    av = _import_av(src)
    output_format = _EXTENSION_FORMAT.get(dst.suffix.lower())
    if output_format is None:
        raise ConfigError(f"{dst}: name the output .mp4, .mov, .mkv, .webm or .avi")
    codec = options.codec or ("libvpx-vp9" if output_format == "webm" else "libx264")
    _check_codec(av, codec, options.crf)
    if output_format == "webm" and _encoder_name(codec) not in _WEBM_ENCODERS:
        raise ConfigError(f"{dst}: WebM cannot hold {codec} video; name the output .mkv or choose "
                          "--video-codec libvpx-vp9")
    with _FFmpegErrors(av) as errors, _Source(av, src, options.start, options.duration) as source:
        try:
            with atomic_path(dst) as temporary:
                with _Sink(av, temporary, output_format, source, codec, options.crf) as sink:
                    frames = _pipeline(translator, source, sink, options, name=src.name)
                source.check_complete(errors)
                if frames == 0:
                    raise UnreadableVideoError(f"{src}: no frame in the requested part; check --start and --duration"
                                               if source.partial else
                                               f"{src}: no frame could be decoded; the file is damaged: re-copy it "
                                               "or remove it")
        # The source turns its own FFmpeg errors into UnreadableVideoError: what is left came from
        # writing (the muxer, the encoder past its first frame, the disk, the frames' PNGs).
        except (av.error.FFmpegError, OSError) as error:
            raise OutputError(_write_failure(dst, codec, output_format, error)) from None
    notes = tuple(f"{src.name}: {note}" for note in source.notes + sink.notes)
    return VideoResult(dst, frames, (sink.width, sink.height), notes)


def _write_failure(dst: Path, codec: str, output_format: str, error: Exception) -> str:
    filename = getattr(error, "filename", None)
    where = f" writing {filename}" if filename and not Path(str(filename)).name.startswith(f".{dst.name}") else ""
    # Without a telling error number, what is left is the encoder or the container refusing the data.
    advice = write_advice(error) or (f"the {codec} encoder or the {output_format} container cannot take these "
                                     "frames: choose another --video-codec (libx264 fits every container but WebM) "
                                     "or output container")
    return f"{dst}: the video cannot be written{where} ({_reason(error)}); {advice}"


def _import_av(path: Path | None):
    try:
        import av
    except ImportError:
        subject = f"{path}: is a video; reading" if path is not None else "Reading and writing"
        raise UnreadableVideoError(f"{subject} videos needs PyAV: pip install 'cyclegan[video]'") from None
    return av


def _encoder_name(codec: str) -> str:
    try:
        import av

        return av.codec.Codec(codec, "w").name  # "h264" -> "libx264"
    except Exception:  # no PyAV, or no such encoder: _check_codec says which
        return codec


def _check_codec(av, codec: str, crf: int | None) -> None:
    try:
        encoder = av.codec.Codec(codec, "w")
    except Exception:
        raise ConfigError(f"--video-codec {codec}: this PyAV has no such encoder; use libx264 (H.264), "
                          "libvpx-vp9 or libsvtav1") from None
    if encoder.type != "video":
        raise ConfigError(f"--video-codec {codec} is not a video encoder; use libx264")
    if crf is not None:
        options = av.codec.CodecContext.create(encoder.name, "w").supported_options.private
        if "crf" not in {option.name for option in options}:
            raise ConfigError(f"--video-crf: the {encoder.name} encoder has no CRF quality setting; "
                              "leave it out or choose libx264")


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    log = getattr(error, "log", None)  # (level, component, FFmpeg's last message)
    if log and len(log) >= 3 and str(log[2]).strip():
        text = f"{text}: {str(log[2]).strip()}"
    return text


class _FFmpegErrors:
    """FFmpeg's error messages from every thread while a video is translated (PyAV keeps them
    quiet by default); a truncated file is only reported there, by the demuxer."""

    def __init__(self, av):
        self._logging = av.logging

    def __enter__(self) -> "_FFmpegErrors":
        self._level = self._logging.get_level()
        self._logging.set_level(self._logging.ERROR)
        self._capture = self._logging.Capture(local=False)
        self._messages = self._capture.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._capture.__exit__(*exc_info)
        self._logging.set_level(self._level)

    def from_component(self, name: str) -> list[str]:
        return [message.strip() for level, component, message in list(self._messages)
                if component == name and level <= self._logging.ERROR and message.strip()]


def _scale_flags(av):
    flags = av.video.reformatter.Interpolation
    combined = flags[_SCALE_FLAGS[0]]
    for name in _SCALE_FLAGS[1:]:
        combined |= flags[name]
    return combined


def _codec_name(av, stream) -> str | None:
    """The codec of a stream PyAV has no decoder for (PyAV then names none): FFmpeg names it when a
    bitstream filter made for one other codec refuses the stream."""
    with av.logging.Capture(local=True) as logs:
        try:
            av.bitstream.BitStreamFilterContext("vp9_superframe", stream)
        except Exception:
            pass
    for _level, _component, message in logs:
        found = re.search(r"Codec '([^']+)'", str(message))
        if found:
            return found.group(1)
    return None


@dataclass
class _Frame:
    image: Image.Image  # upright RGB
    pts: int  # in the source video stream's time base, shifted by --start
    duration: int


class _Source:
    """The decoding side: the video stream's frames in the requested span, as upright RGB images,
    and the audio packets of that span, in the order the file holds them."""

    def __init__(self, av, path: Path, start: float, duration: float | None):
        self.av, self.path, self.notes = av, path, []
        try:
            self.container = av.open(str(path), metadata_errors="ignore")
        except av.error.FFmpegError as error:
            raise UnreadableVideoError(f"{path}: not a video FFmpeg can read ({_reason(error)}); the file is "
                                       "damaged, truncated or not a video: re-copy it or remove it") from None
        try:
            self._choose_streams()
            self._plan_span(start, duration)
        except BaseException:
            self.container.close()
            raise
        self.matrix: str | None = None  # set from the first frame, as are the rest below
        self.colour_range, self.colour_tags, self.turns, self.size = _LIMITED_RANGE, {}, 0, (0, 0)
        self.shift = 0  # subtracted from every timestamp (in the video's time base)

    def __enter__(self) -> "_Source":
        return self

    def __exit__(self, *exc_info) -> None:
        self.container.close()

    def _choose_streams(self) -> None:
        self.video = self.container.streams.best("video")
        if self.video is None:
            raise UnreadableVideoError(f"{self.path}: holds no video stream")
        if self.video.codec_context is None:
            codec = _codec_name(self.av, self.video)
            raise UnreadableVideoError(
                f"{self.path}: its video is {codec or 'in a codec FFmpeg does not know'}, and this PyAV's FFmpeg "
                "has no decoder for it; convert the file first (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
        self.video.thread_type = "AUTO"
        self.audio = list(self.container.streams.audio)
        self.time_base: Fraction = self.video.time_base
        self.rate: Fraction | None = self.video.average_rate or self.video.guessed_rate
        self.first_pts: int = self.video.start_time or 0

    def _plan_span(self, start: float, duration: float | None) -> None:
        self.partial = start > 0 or duration is not None
        start_s = Fraction(start).limit_denominator(10**6)
        self.start_pts = self.first_pts + round(start_s / self.time_base)
        self.end_pts = None if duration is None else self.start_pts + round(
            Fraction(duration).limit_denominator(10**6) / self.time_base)
        # Frames to expect, for the progress bar's ETA.
        if not self.partial and self.video.frames:
            self.expected_frames: int | None = self.video.frames
            return
        length = (self.video.duration * self.time_base if self.video.duration
                  else Fraction(self.container.duration or 0, 1_000_000))
        length = max(length - start_s, Fraction(0))
        if duration is not None:
            length = min(length, Fraction(duration).limit_denominator(10**6))
        self.expected_frames = round(length * self.rate) if self.rate and length else None

    def events(self) -> Iterator[_Frame | Any]:
        """`_Frame`s and audio packets (av.Packet) of the span, in file order."""
        if self.start_pts > self.first_pts:
            self.container.seek(self.start_pts, stream=self.video, backward=True)
        started, previous = False, None
        try:
            for packet in self.container.demux(self.video, *self.audio):
                if packet.stream.type == "audio":
                    if packet.dts is not None and self._audio_in_span(packet):
                        yield packet
                    continue
                for frame in packet.decode():  # the last, empty packet flushes the decoder
                    pts = frame.pts if frame.pts is not None else self._following(previous)
                    previous = (pts, frame.duration)
                    if pts < self.start_pts:
                        continue
                    if self.end_pts is not None and pts >= self.end_pts:
                        return
                    if not started:
                        started = True
                        self._describe(frame)
                        if self.start_pts > self.first_pts:
                            self.shift = pts  # the part begins at 0
                    yield _Frame(self._upright_rgb(frame), pts - self.shift, frame.duration or self._frame_ticks())
        except self.av.error.FFmpegError as error:
            raise UnreadableVideoError(f"{self.path}: the video cannot be decoded ({_reason(error)}); the file "
                                       "is damaged or truncated: re-copy it or remove it") from None

    def _frame_ticks(self) -> int:
        return max(1, round(1 / (self.rate * self.time_base))) if self.rate else 1

    def _following(self, previous: tuple[int, int] | None) -> int:
        if previous is None:
            return self.first_pts
        return previous[0] + (previous[1] or self._frame_ticks())

    def _audio_in_span(self, packet) -> bool:
        if not self.partial:
            return True
        if packet.pts is None:
            return False
        begins = packet.pts * packet.time_base
        return (begins >= self.start_pts * self.time_base
                and (self.end_pts is None or begins < self.end_pts * self.time_base))

    def _describe(self, frame) -> None:
        """Colours, orientation and size, from the first frame of the span."""
        matrix = _MATRIX.get(int(frame.colorspace))
        if matrix is None:  # untagged: as players assume
            matrix = "ITU709" if frame.width >= 1280 or frame.height > 576 else "ITU601"
        self.matrix = matrix
        full = int(frame.color_range) == _FULL_RANGE or frame.format.name.startswith("yuvj")
        self.colour_range = _FULL_RANGE if full else _LIMITED_RANGE
        self.colour_tags = {"colorspace": _MATRIX_TAG[matrix], "color_primaries": int(frame.color_primaries),
                            "color_trc": int(frame.color_trc)}
        rotation = frame.rotation or 0
        if rotation % 90:
            self.notes.append(f"its display rotation of {rotation} degrees is not a multiple of 90 and was "
                              "not applied")
        self.turns = round(rotation / 90) % 4 if rotation % 90 == 0 else 0
        self.size = (frame.width, frame.height)

    def _upright_rgb(self, frame) -> Image.Image:
        # A stream whose size changes midway is scaled to its first size, so every batch stacks.
        rgb = frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1],
                               src_colorspace=self.matrix, src_color_range=self.colour_range,
                               interpolation=_scale_flags(self.av))
        if self.turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, self.turns))  # counterclockwise, as the rotation says
        return Image.fromarray(rgb)

    def check_complete(self, errors: _FFmpegErrors) -> None:
        """Raise UnreadableVideoError if the demuxer found the file ending early (truncated)."""
        messages = errors.from_component(self.container.format.name)
        if messages:
            raise UnreadableVideoError(f"{self.path}: the file ends early or is damaged ({messages[0]}); "
                                       "re-copy it or remove it")


class _Sink:
    """The encoding side: translated frames become the output video; audio packets are copied."""

    def __init__(self, av, path: Path, output_format: str, source: _Source, codec: str, crf: int | None):
        self.av, self.source, self.output_format, self.codec, self.crf = av, source, output_format, codec, crf
        self.notes: list[str] = []
        self.width = self.height = 0
        self.stream = None  # opened with the first frame, whose size and colours it takes
        self._encoded = False
        # MP4 and MOV with the index first, so that players can start before the end has arrived.
        options = {"movflags": "+faststart"} if output_format in ("mp4", "mov") else {}
        self.container = av.open(str(path), "w", format=output_format, options=options)
        self.audio = {}  # source stream index -> output stream
        # Audio that arrives before the first translated frame waits: the header, written with the
        # first packet, must list every stream, the video stream needs that frame's size, and the
        # source knows its --start shift once it has decoded that frame.
        self._early_audio: list = []

    def __enter__(self) -> "_Sink":
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is not None:
            try:
                self.container.close()
            except Exception:
                pass  # the half-written file is removed anyway
            return
        try:
            if self.stream is not None:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
        except BaseException:
            self.__exit__(Exception)  # closed, so that the half-written file can be removed
            raise
        self.container.close()

    def _open_video_stream(self, width: int, height: int) -> None:
        source = self.source
        encoder = self.av.codec.Codec(self.codec, "w")
        formats = [video_format.name for video_format in encoder.video_formats or ()]
        pix_fmt = "yuv420p" if "yuv420p" in formats or not formats else formats[0]
        layout = self.av.video.format.VideoFormat(pix_fmt)
        self.width = width - width % 2 if layout.chroma_width(2) == 1 else width
        self.height = height - height % 2 if layout.chroma_height(2) == 1 else height
        if (self.width, self.height) != (width, height):
            self.notes.append(f"{width}x{height} has an odd side, which {pix_fmt} cannot hold: the video is "
                              f"{self.width}x{self.height} (last column or row left out)")
        self.pix_fmt, self.is_rgb = pix_fmt, layout.is_rgb
        try:
            stream = self.container.add_stream(encoder.name, rate=source.rate or Fraction(30))
        except ValueError:
            raise ConfigError(f"{self.output_format} cannot hold {encoder.name} video; choose another "
                              "--video-codec (libx264 fits every container but WebM)") from None
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, pix_fmt
        stream.time_base = source.time_base
        context = stream.codec_context
        context.time_base = source.time_base
        context.thread_type = "AUTO"
        if self.output_format == "avi":
            context.max_b_frames = 0  # AVI has no presentation timestamps for reordered frames
        sar = source.video.sample_aspect_ratio
        if sar and sar != 1:  # anamorphic pixels; turned sideways, their aspect is the inverse
            context.sample_aspect_ratio = 1 / sar if source.turns % 2 else sar
        for name, value in source.colour_tags.items():
            setattr(context, name, _RGB_TAG if name == "colorspace" and self.is_rgb else value)
        context.color_range = _FULL_RANGE if self.is_rgb else _LIMITED_RANGE
        encoder_options = {"flags": "+frame_duration"}  # packets take the frames' durations
        crf = self.crf if self.crf is not None else DEFAULT_CRF.get(encoder.name)
        if crf is not None:
            encoder_options["crf"] = str(crf)
            if encoder.name in ("libvpx", "libvpx-vp9"):
                encoder_options["b"] = "0"  # constant quality, without the default bitrate cap
        context.options = encoder_options
        self.stream = stream
        for audio in source.audio:
            try:
                self.audio[audio.index] = self.container.add_stream_from_template(audio)
            except ValueError:  # a codec this container cannot hold
                codec_name = audio.codec_context.name if audio.codec_context else "an unknown codec"
                self.notes.append(f"its audio stream #{audio.index} ({codec_name}) cannot be stored in "
                                  f"{self.output_format} without re-encoding and was left out")
        early, self._early_audio = self._early_audio, []
        for packet in early:
            self.copy_audio(packet)

    def write(self, frame: _Frame, translated: Image.Image) -> None:
        rgb = translated if translated.mode == "RGB" else translated.convert("RGB")
        if self.stream is None:
            self._open_video_stream(*rgb.size)
        array = np.asarray(rgb)
        if array.shape[:2] != (self.height, self.width):
            array = np.ascontiguousarray(array[:self.height, :self.width])
        picture = self.av.VideoFrame.from_ndarray(array, format="rgb24")
        if not self.is_rgb:
            picture = picture.reformat(format=self.pix_fmt, dst_colorspace=self.source.matrix,
                                       dst_color_range=_LIMITED_RANGE, interpolation=_scale_flags(self.av))
        picture.pts, picture.time_base, picture.duration = frame.pts, self.source.time_base, frame.duration
        try:
            packets = self.stream.encode(picture)  # the first call opens the encoder
        except self.av.error.FFmpegError as error:
            if self._encoded:
                raise
            raise ConfigError(f"the {self.stream.codec_context.name} encoder refused this video ({_reason(error)}); "
                              "choose another --video-codec, e.g. libx264") from None
        self._encoded = True
        for packet in packets:
            self.container.mux(packet)

    def copy_audio(self, packet) -> None:
        if self.stream is None:
            self._early_audio.append(packet)
            return
        stream = self.audio.get(packet.stream.index)
        if stream is None:
            return
        if self.source.shift:
            offset = round(self.source.shift * self.source.time_base / packet.time_base)
            packet.pts -= offset
            packet.dts -= offset
        packet.stream = stream
        self.container.mux(packet)


def _pipeline(translator, source: _Source, sink: _Sink, options: VideoOptions, name: str) -> int:
    """Decode, translate and encode the whole span; the number of frames written. Decoding and
    encoding are one thread each (frames are read and muxed in order), the network is the caller's."""
    written = 0

    def write(audio: list, frames: list[_Frame], outputs: list[Image.Image]) -> None:
        nonlocal written
        for packet in audio:
            sink.copy_audio(packet)
        for frame, image in zip(frames, outputs):
            sink.write(frame, image)
            written += 1
            if options.frames_dir is not None:
                save_image_atomic(image, Path(options.frames_dir) / f"{written:06d}.png")

    bar = options.progress(source.expected_frames, name) if options.progress else None
    try:
        batch_size = options.frames_per_batch
        with Pipeline(decode_threads=1, encode_threads=1, ahead=2 * batch_size, behind=2,
                      name="video") as pipeline:
            for frames, audio in _batches(pipeline.decoded(source.events()), batch_size):
                outputs = translator.translate_images([frame.image for frame in frames], batch_size)
                pipeline.encode(write, audio, frames, outputs)
                if bar is not None and frames:
                    bar.update(len(frames))
        return written
    finally:
        if bar is not None:
            bar.close()


def _batches(events: Iterator[_Frame | Any], batch_size: int) -> Iterator[tuple[list[_Frame], list]]:
    """Up to `batch_size` frames at a time, with the audio packets that came among them."""
    frames: list[_Frame] = []
    audio: list = []
    for event in events:
        (frames if isinstance(event, _Frame) else audio).append(event)
        if len(frames) >= batch_size:
            yield frames, audio
            frames, audio = [], []
    if frames or audio:
        yield frames, audio


__all__ = ["VIDEO_EXTENSIONS", "DEFAULT_CRF", "VIDEO_BATCH_SIZE", "VideoOptions", "VideoResult", "translate_video", "is_video",
           "list_videos", "sniff_container", "output_name", "parse_time"]
