"""The README's video still: a clip made from consecutive Cityscapes frames, and one frame of it
beside the same frame of its translation.

    python benchmarks/figures/video_demo.py clip ../shared/data/cityscapes/trainA aachen_000005 clip.mp4
    cyclegan translate runs/city clip.mp4 --out out/
    python benchmarks/figures/video_demo.py still clip.mp4 out/clip.mp4 docs/images/video_still.png

The shared Cityscapes frames are 256x256, squashed from 2048x1024; the clip restores the 2:1
aspect (256x128) at Cityscapes' 17 frames per second. Needs PyAV (the `video` extra).
"""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

CITYSCAPES_RATE = Fraction(17)


def make_clip(frames_dir: Path, prefix: str, out: Path, size=(256, 128)) -> None:
    frames = sorted(frames_dir.glob(f"{prefix}_*"))
    if not frames:
        raise SystemExit(f"no frames named {prefix}_* in {frames_dir}")
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=CITYSCAPES_RATE)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 6, 1  # BT.601, limited
        stream.codec_context.options = {"crf": "12"}
        for index, path in enumerate(frames):
            picture = Image.open(path).convert("RGB").resize(size, Image.BICUBIC)
            frame = av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU601", dst_color_range=1)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    print(f"{out}: {len(frames)} frames of {size[0]}x{size[1]} at {CITYSCAPES_RATE} fps")


def frame_of(path: Path, index: int) -> Image.Image:
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                return frame.to_image()
    raise SystemExit(f"{path} has no frame {index}")


def make_still(source: Path, translated: Path, out: Path, index: int, scale: float = 1.5) -> None:
    left, right = frame_of(source, index), frame_of(translated, index)
    width, height = left.size
    still = Image.new("RGB", (2 * width + 4, height), (255, 255, 255))
    still.paste(left, (0, 0))
    still.paste(right, (width + 4, 0))
    still = still.resize((round(still.width * scale), round(still.height * scale)), Image.BICUBIC)
    out.parent.mkdir(parents=True, exist_ok=True)
    still.save(out, optimize=True)
    print(f"{out}: frame {index}, {out.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    clip = commands.add_parser("clip", help="Make a clip from frames named PREFIX_* in a folder.")
    clip.add_argument("frames_dir", type=Path)
    clip.add_argument("prefix")
    clip.add_argument("out", type=Path)
    still = commands.add_parser("still", help="A frame of a clip beside the same frame of its translation.")
    still.add_argument("source", type=Path)
    still.add_argument("translated", type=Path)
    still.add_argument("out", type=Path)
    still.add_argument("--frame", type=int, default=15)
    args = parser.parse_args()
    if args.command == "clip":
        make_clip(args.frames_dir, args.prefix, args.out)
    else:
        make_still(args.source, args.translated, args.out, args.frame)


if __name__ == "__main__":
    main()
