"""Videos: one command translates a clip and keeps its frame count, timestamps, size, sound and
orientation; damaged files are reported like unreadable images. The clips are made here with PyAV."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.errors import ConfigError, UnreadableVideoError
from cyclegan.inference import Translator
from cyclegan.checkpoint import save_checkpoint
from cyclegan.training.model import CycleGAN
from cyclegan.inference.video import VideoOptions, is_video, output_name, parse_time, translate_video

from conftest import require_module, write_images

av = require_module("av", "video")

NTSC = Fraction(30000, 1001)


# --- making test clips -----------------------------------------------------------------------------

def picture(index: int, size: tuple[int, int]) -> np.ndarray:
    """A smooth frame that changes from frame to frame, with a bright marker in the top-left corner."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    frame = np.stack([(x * 255 // max(width - 1, 1) + 9 * index) % 256,
                      y * 255 // max(height - 1, 1),
                      np.full_like(x, (40 + 23 * index) % 256)], axis=-1).astype(np.uint8)
    frame[:6, :6] = 255
    return frame


def make_clip(path: Path, frames: int = 24, rate: Fraction | int = NTSC, size=(48, 32), audio: bool = True,
              container: str | None = None, codec: str = "libx264", pix_fmt: str = "yuv420p",
              times: list[int] | None = None, time_base: Fraction | None = None, rotation: int | None = None,
              colorspace: str | None = None, faststart: bool = False, lossless: bool = False,
              quick: bool = False) -> Path:
    """A clip written with PyAV: `frames` pictures at `rate` (or at `times`, in `time_base`), with a
    stereo AAC track as long as the video when `audio`."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=options) as output:
        video = output.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = *size, pix_fmt
        if lossless or quick:
            video.codec_context.options = {"crf": "0"} if lossless else {"preset": "ultrafast"}
        if time_base is not None:
            video.codec_context.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        if colorspace == "ITU709":
            video.codec_context.colorspace, video.codec_context.color_range = 1, 1
        sound = None
        if audio:
            sound = output.add_stream("aac", rate=48000)
            sound.layout = "stereo"
        noise = np.random.default_rng(0)
        samples = 0
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(picture(index, size), format="rgb24")
            if colorspace is not None:
                frame = frame.reformat(format=pix_fmt, dst_colorspace=colorspace, dst_color_range=1,
                                       interpolation=ACCURATE)
            frame.pts = times[index] if times is not None else index
            for packet in video.encode(frame):
                output.mux(packet)
            while sound is not None and samples < (index + 1) / rate * 48000:
                chunk = av.AudioFrame.from_ndarray((0.1 * noise.standard_normal((2, 1024))).astype(np.float32),
                                                   format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 48000, samples
                samples += 1024
                for packet in sound.encode(chunk):
                    output.mux(packet)
        for stream in (video, sound):
            if stream is not None:
                for packet in stream.encode(None):
                    output.mux(packet)
    return path


def decoded_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


# swscale's default YUV -> RGB path is biased (about a level darker); this one is not.
_flags = av.video.reformatter.Interpolation
ACCURATE = _flags.BILINEAR | _flags.ACCURATE_RND | _flags.FULL_CHR_H_INT | _flags.FULL_CHR_H_INP


def rgb(frame: av.VideoFrame, matrix: str | None = None) -> np.ndarray:
    """PyAV's conversion, following the frame's colour tags unless `matrix` is given."""
    return frame.to_ndarray(format="rgb24", src_colorspace=matrix, interpolation=ACCURATE).astype(int)


def audio_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


def as_yuv420(image: Image.Image, matrix: str) -> np.ndarray:
    """The limited-range 4:2:0 planes of `image` (PyAV's conversion), as a lossless (CRF 0) encode of
    it decodes to; compared in YUV, so that no choice of the decoder's RGB conversion enters."""
    frame = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace=matrix, dst_color_range=1,
                          interpolation=ACCURATE).to_ndarray().astype(int)


def planes(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray().astype(int)


def luma(planes_: np.ndarray, height: int) -> np.ndarray:
    """The Y plane: a random tiny generator draws colour noise that 4:2:0 chroma cannot keep, so
    lossy comparisons look at brightness."""
    return planes_[:height]


def translated(translator, frame: av.VideoFrame | np.ndarray) -> Image.Image:
    pixels = rgb(frame) if isinstance(frame, av.VideoFrame) else frame
    return translator(Image.fromarray(np.ascontiguousarray(pixels).astype(np.uint8)))


def level_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean())


class Identity:
    """A stand-in translator that returns its input: what comes out is the pipeline alone."""

    input_channels, tile = 3, None

    def translate_images(self, images, batch_size=None):
        return [image.convert("RGB") for image in images]


# --- a tiny model ----------------------------------------------------------------------------------

def save_tiny_model(folder: Path) -> Path:
    """`folder` as a run holding an untrained ResNet-6 CycleGAN with ngf = ndf = 8."""
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8)
    torch.manual_seed(0)
    model = CycleGAN(config)
    save_checkpoint(folder / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A,
                                             "D_B": model.D_B}, config, None, epoch=0, iteration=0)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("video_model") / "run")


@pytest.fixture(scope="module")
def translator(run) -> Translator:
    return Translator.from_checkpoint(run, device="cpu")


# --- the contract ----------------------------------------------------------------------------------

def test_a_clip_keeps_frame_count_rate_size_duration_and_its_sound_unchanged(run, tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", frames=24, rate=NTSC, size=(48, 32), audio=True)
    assert main(["translate", str(run), str(clip), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--no-progress"]) == 0
    result = tmp_path / "out" / "clip.mp4"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["clip.mp4"]
    with av.open(str(clip)) as source, av.open(str(result)) as output:
        video, original = output.streams.video[0], source.streams.video[0]
        assert video.codec_context.name == "h264"
        assert video.average_rate == NTSC
        assert (video.codec_context.width, video.codec_context.height) == (48, 32)
        assert video.duration * video.time_base == original.duration * original.time_base == Fraction(24 * 1001, 30000)
        assert [stream.codec_context.name for stream in output.streams.audio] == ["aac"]
        assert output.duration == source.duration
    assert len(decoded_frames(result)) == 24
    assert audio_payloads(result) == audio_payloads(clip)  # copied, not re-encoded
    assert "translated 1 file(s)" in capsys.readouterr().out


def test_a_clip_without_sound_stays_without_sound(translator, tmp_path):
    clip = make_clip(tmp_path / "silent.mp4", frames=12, rate=25, audio=False)
    result = translator.translate_video(clip, tmp_path / "out.mp4")
    assert result.frames == 12 and result.size == (48, 32)
    with av.open(str(result.path)) as output:
        assert len(output.streams.audio) == 0 and output.streams.video[0].average_rate == 25
        assert output.duration == 12 / 25 * 1_000_000


def test_variable_frame_rate_timestamps_are_kept_exactly(translator, tmp_path):
    times = [0, 3, 4, 9, 10, 11, 20, 21, 22, 30]  # in 1/90 s: irregular gaps
    clip = make_clip(tmp_path / "vfr.mkv", frames=len(times), times=times, time_base=Fraction(1, 90), audio=False)
    result = translator.translate_video(clip, tmp_path / "vfr_out.mkv")
    seconds = [frame.pts * frame.time_base for frame in decoded_frames(result.path)]
    assert seconds == [frame.pts * frame.time_base for frame in decoded_frames(clip)]
    assert seconds == [Fraction(round(Fraction(t, 90) * 1000), 1000) for t in times]  # Matroska keeps ms


def test_an_output_frame_matches_the_frame_translated_as_an_image(translator, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=10, rate=25, size=(64, 48), audio=False, colorspace="ITU709")
    # Lossless H.264 (CRF 0): the codec's only loss is 4:2:0 chroma, which through_420 applies too.
    result = translator.translate_video(clip, tmp_path / "out.mp4", batch_size=3, crf=0)
    source, output = decoded_frames(clip), decoded_frames(result.path)
    assert np.abs(planes(output[7]) - as_yuv420(translated(translator, source[7]), "ITU709")).max() <= 1
    assert level_difference(planes(output[7]), as_yuv420(translated(translator, source[3]), "ITU709")) > 10
    # At the default quality the frame stays close to the image translation.
    default = translator.translate_video(clip, tmp_path / "default.mp4", batch_size=3)
    expected = as_yuv420(translated(translator, source[7]), "ITU709")
    other = as_yuv420(translated(translator, source[3]), "ITU709")
    frame = luma(planes(decoded_frames(default.path)[7]), 48)
    assert level_difference(frame, luma(expected, 48)) < 5 < 10 < level_difference(frame, luma(other, 48))


@pytest.mark.parametrize("colorspace, matrix, tag, wrong", [("ITU709", "ITU709", 1, "ITU601"),
                                                            (None, "ITU601", 6, "ITU709")])
def test_colours_survive_the_trip_through_yuv_with_the_right_matrix(tmp_path, colorspace, matrix, tag, wrong):
    # An untagged small video is BT.601, as players assume (PyAV wrote it so); the output is tagged
    # with its matrix (1 = BT.709, 6 = SMPTE 170M, i.e. BT.601) and limited range.
    clip = make_clip(tmp_path / "clip.mp4", frames=4, rate=25, size=(64, 48), audio=False, colorspace=colorspace,
                     lossless=True)
    result = translate_video(Identity(), clip, tmp_path / "out.mp4", VideoOptions(crf=0))
    first = decoded_frames(result.path)[0]
    assert (int(first.colorspace), int(first.color_range)) == (tag, 1)
    truth = picture(0, (64, 48)).astype(int)[8:-8, 8:-8]  # away from the marker
    signed = rgb(first, matrix)[8:-8, 8:-8] - truth  # two trips through 4:2:0 since the picture was drawn
    assert abs(signed.mean()) < 1 and np.abs(signed).mean() < 2.5
    assert np.abs(rgb(first, wrong)[8:-8, 8:-8] - truth).mean() > 4  # what a wrong matrix costs


def test_a_rotated_phone_clip_is_translated_upright_and_written_upright(tmp_path):
    # Stored 48x32, displayed turned clockwise (a portrait phone clip): the marker stored at the
    # top-left is displayed at the top-right of a 32x48 picture.
    clip = make_clip(tmp_path / "phone.mp4", frames=6, rate=30, size=(48, 32), rotation=-90)
    assert decoded_frames(clip)[0].rotation == -90
    result = translate_video(Identity(), clip, tmp_path / "upright.mp4")
    assert result.size == (32, 48)
    frame = decoded_frames(result.path)[0]
    assert (frame.width, frame.height, frame.rotation) == (32, 48, 0)
    marker = np.argwhere(rgb(frame).min(axis=-1) > 200).mean(axis=0)  # row, column
    assert marker[0] < 8 and marker[1] > 24


def test_a_translated_rotated_clip_matches_its_upright_frames_translated_as_images(translator, tmp_path):
    clip = make_clip(tmp_path / "phone.mp4", frames=4, rate=30, size=(48, 32), rotation=90, audio=False)
    result = translator.translate_video(clip, tmp_path / "out.mp4", crf=0)
    upright = np.rot90(rgb(decoded_frames(clip)[2]), 1)  # 90 degrees counterclockwise, as the display matrix says
    expected = as_yuv420(translated(translator, upright), "ITU601")
    assert np.abs(planes(decoded_frames(result.path)[2]) - expected).max() <= 1


def test_odd_sizes_lose_the_last_column_and_row_in_the_video_only_and_say_so(translator, tmp_path):
    clip = make_clip(tmp_path / "odd.mkv", frames=5, rate=25, size=(33, 25), audio=False, pix_fmt="yuv444p")
    result = translator.translate_video(clip, tmp_path / "odd_out.mkv", frames_dir=tmp_path / "frames")
    assert result.size == (32, 24) and len(decoded_frames(result.path)) == 5
    assert any("33x25" in note and "32x24" in note for note in result.notes)
    pngs = sorted((tmp_path / "frames").iterdir())
    assert [png.name for png in pngs] == [f"{index:06d}.png" for index in range(1, 6)]
    assert Image.open(pngs[0]).size == (33, 25)


def test_start_and_duration_translate_a_part_that_begins_at_zero(run, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=50, rate=25, audio=True)
    assert main(["translate", str(run), str(clip), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress",
                 "--start", "0.4", "--duration", "1.2", "--frames-dir", str(tmp_path / "frames")]) == 0
    result = tmp_path / "out" / "clip.mp4"
    frames = decoded_frames(result)
    assert len(frames) == 30  # frames 10 to 39
    assert frames[0].pts * frames[0].time_base == 0
    with av.open(str(result)) as output:
        video, sound = output.streams.video[0], output.streams.audio[0]
        assert video.duration * video.time_base == Fraction(6, 5)
        assert abs(sound.duration * sound.time_base - Fraction(6, 5)) <= Fraction(1024, 48000)
    pngs = sorted((tmp_path / "frames" / "clip").iterdir())
    assert len(pngs) == 30 and pngs[0].name == "000001.png"
    # The first PNG is frame 10 of the source translated, as is the video's first frame.
    assert level_difference(luma(as_yuv420(Image.open(pngs[0]), "ITU601"), 32), luma(planes(frames[0]), 32)) < 5


def test_a_folder_mixes_images_and_videos_found_by_content_and_reports_a_broken_one(run, tmp_path, capsys):
    folder = tmp_path / "in"
    images = write_images(folder, 2, size=(40, 36))
    make_clip(folder / "clip.mp4", frames=8, rate=25)
    (folder / "phone_clip.dat").write_bytes(make_clip(tmp_path / "x.mp4", frames=6, rate=25).read_bytes())
    (folder / "notes.txt").write_text("not a video")
    (folder / "broken.mp4").write_bytes((folder / "clip.mp4").read_bytes()[:2000])
    code = main(["translate", str(run), str(folder), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    assert code == 1
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(
        [image.name for image in images] + ["clip.mp4", "phone_clip.mp4"])
    assert len(decoded_frames(tmp_path / "out" / "phone_clip.mp4")) == 6
    error = capsys.readouterr().err
    assert "broken.mp4" in error and "Traceback" not in error and "notes.txt" not in error


@pytest.mark.parametrize("cut", ["index lost", "data cut", "matroska cut"])
def test_damaged_and_truncated_videos_are_reported_by_name_and_leave_no_output(translator, tmp_path, cut):
    container, faststart = {"index lost": ("mp4", False), "data cut": ("mp4", True),
                            "matroska cut": ("matroska", False)}[cut]
    whole = make_clip(tmp_path / f"whole.{container}", frames=48, rate=25, container=container, faststart=faststart)
    data = whole.read_bytes()
    damaged = tmp_path / f"damaged.{'mkv' if container == 'matroska' else 'mp4'}"
    damaged.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnreadableVideoError, match=damaged.name):
        translator.translate_video(damaged, out / damaged.name)
    assert list(out.iterdir()) == []


def test_a_stream_without_a_decoder_names_the_missing_codec(translator, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=4, rate=25, audio=False)
    # The same file claiming MPEG-5 EVC, a codec FFmpeg knows but has no built-in decoder for.
    evc = tmp_path / "evc.mp4"
    evc.write_bytes(clip.read_bytes().replace(b"avc1", b"evc1"))
    with pytest.raises(UnreadableVideoError, match=r"evc\.mp4: its video is evc, .* no decoder"):
        translator.translate_video(evc, tmp_path / "out.mp4")


def test_without_pyav_a_video_is_reported_with_the_extra_to_install(translator, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    write_images(folder, 1, size=(40, 36))
    make_clip(folder / "clip.mp4", frames=4, rate=25, audio=False)
    monkeypatch.setitem(sys.modules, "av", None)  # as if not installed
    report = translator.translate_files([folder], tmp_path / "out")
    assert [path.name for path in report.written] == ["img_000.png"]
    [(path, reason)] = report.failed
    assert path.name == "clip.mp4" and "pip install 'cyclegan[video]'" in reason and "\n" not in reason


def test_ctrl_c_leaves_no_file_under_the_final_name_and_no_thread_behind(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=40, rate=25)
    out = tmp_path / "out"
    out.mkdir()

    class InterruptingBar:
        seen = 0

        def update(self, frames):
            self.seen += frames
            if self.seen >= 8:
                raise KeyboardInterrupt

        def close(self):
            pass

    with pytest.raises(KeyboardInterrupt):
        translate_video(Identity(), clip, out / "clip.mp4",
                        VideoOptions(batch_size=4, progress=lambda total, name: InterruptingBar()))
    assert list(out.iterdir()) == []
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("video-")]


def test_tiles_work_for_frames_larger_than_the_tile(run, tmp_path):
    tiled = Translator.from_checkpoint(run, device="cpu", tile=32, overlap=8)
    clip = make_clip(tmp_path / "wide.mp4", frames=3, rate=25, size=(80, 48), audio=False)
    result = tiled.translate_video(clip, tmp_path / "out.mp4", crf=0)
    expected = as_yuv420(translated(tiled, decoded_frames(clip)[1]), "ITU601")
    assert result.size == (80, 48)
    assert np.abs(planes(decoded_frames(result.path)[1]) - expected).max() <= 1


def test_a_grayscale_model_translates_a_colour_clip_into_a_gray_one(tmp_path):
    config = ModelConfig(net_g="resnet_6blocks", ngf=4, ndf=4, input_nc=1, output_nc=1)
    model = CycleGAN(config)
    save_checkpoint(tmp_path / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A,
                                               "D_B": model.D_B}, config, None, epoch=0, iteration=0)
    clip = make_clip(tmp_path / "clip.mp4", frames=5, rate=25, audio=False)
    result = Translator.from_checkpoint(tmp_path, device="cpu").translate_video(clip, tmp_path / "out.mp4", crf=0)
    frame = decoded_frames(result.path)[2]
    assert result.frames == 5 and np.abs(planes(frame)[32:] - 128).max() <= 1  # no colour left


@pytest.mark.parametrize("name, container, codec, expected_name, expected_codec", [
    ("clip.mov", "mov", "libx264", "clip.mov", "h264"),
    ("clip.mkv", "matroska", "libx264", "clip.mkv", "h264"),
    ("clip.webm", "webm", "libvpx-vp9", "clip.webm", "vp9"),
    ("clip.avi", "avi", "mpeg4", "clip.mp4", "h264"),  # AVI has no timestamps for reordered frames
])
def test_the_container_is_kept_and_avi_becomes_mp4(run, tmp_path, name, container, codec, expected_name,
                                                   expected_codec):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / name, frames=6, rate=25, container=container, codec=codec, audio=container != "webm")
    assert main(["translate", str(run), str(folder), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--no-progress"]) == 0
    result = tmp_path / "out" / expected_name
    with av.open(str(result)) as output:
        assert output.streams.video[0].codec_context.name == expected_codec
        assert len(output.streams.audio) == (0 if container == "webm" else 1)
    assert len(decoded_frames(result)) == 6


def test_video_detection_and_output_names(tmp_path):
    assert output_name("trip.MOV") == "trip.MOV" and output_name("a/clip.avi") == "clip.mp4"
    mp4_named_mov = make_clip(tmp_path / "android.mov", frames=2, rate=25, audio=False, container="mp4")
    assert output_name(mp4_named_mov) == "android.mov"  # a relative: the name decides
    mkv_named_mp4 = make_clip(tmp_path / "odd.mp4", frames=2, rate=25, audio=False, container="matroska")
    assert output_name(mkv_named_mp4) == "odd.mkv"  # content, not the name
    assert output_name("talk.webm", codec="libx264") == "talk.mkv"  # WebM cannot hold H.264
    assert is_video("missing.mp4") and not is_video("photo.png")
    assert parse_time("90") == 90 and parse_time("1:30") == 90 and parse_time("0:01:30.5") == 90.5
    with pytest.raises(ValueError):
        parse_time("1::2")


def test_options_that_cannot_work_are_refused_before_anything_is_written(translator, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=2, rate=25, audio=False)
    for options, message in [({"codec": "no-such-codec"}, "no such encoder"), ({"codec": "mpeg4", "crf": 20}, "no CRF"),
                             ({"batch_size": 0}, "--batch-size"), ({"start": -1.0}, "--start")]:
        with pytest.raises(ConfigError, match=message):
            translator.translate_video(clip, tmp_path / "out.mp4", **options)
    with pytest.raises(ConfigError, match="WebM cannot hold"):
        translator.translate_video(clip, tmp_path / "out.webm", codec="libx264")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak resident memory from /proc/self/status")
def test_memory_stays_bounded_for_a_long_clip(tmp_path):
    # Peak resident memory after the first 100 frames, and at the end of a clip 4.5 times longer:
    # holding every frame, even only as 8-bit RGB, would add 66 MB.
    script = textwrap.dedent(f"""
        import re, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_video import Identity, make_clip
        from cyclegan.inference.video import VideoOptions, translate_video

        clip = make_clip(Path({str(tmp_path)!r}) / "long.mp4", frames=450, rate=30, size=(256, 192), audio=True,
                         quick=True)
        peaks = {{}}

        def peak_kb():
            # VmHWM, this process's own peak: ru_maxrss would start at the test session's peak
            # (Linux keeps it across fork and exec) and could hide any growth here.
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))

        class Bar:
            done = 0
            def update(self, frames):
                self.done += frames
                if self.done >= 100 and "early" not in peaks:
                    peaks["early"] = peak_kb()
            def close(self):
                pass

        result = translate_video(Identity(), clip, Path({str(tmp_path)!r}) / "out.mp4",
                                 VideoOptions(batch_size=8, progress=lambda total, name: Bar()))
        late = peak_kb()
        print(result.frames, peaks["early"], late)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    frames, early_kb, late_kb = map(int, done.stdout.split())
    assert frames == 450
    assert (late_kb - early_kb) / 1024 < 30
