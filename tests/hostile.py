"""A corpus of hostile and broken image files, built on demand in a temporary folder.

`build_hostile_corpus(folder)` writes every file below and returns a `HostileCorpus` that says,
for each, whether the project must use it ("good": it decodes, perhaps after conversion) or
reject it ("bad", with a word its error message must contain). Tests of training, translation
and `data check` share it so that all three face exactly the same files.

Tiny images (1x1, 3x3) are "good": under every preprocess mode except "none" they are
resized or enlarged to the crop size before the networks see them, so they are usable (if
useless); `data check` warns about them. Under "none" they keep their size, which the networks
cannot process, so `tiny_names` lets a test treat them separately.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

GOOD_SIZE = (40, 36)


@dataclass
class HostileCorpus:
    folder: Path
    good: list[str] = field(default_factory=list)  # file names the project must use
    bad: dict[str, str] = field(default_factory=dict)  # file name -> a word its error must contain
    tiny: list[str] = field(default_factory=list)  # good names smaller than any crop size

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def decodable(self) -> list[str]:
        """Bad files whose header opens, so they are found only when their pixels are decoded."""
        return [name for name, reason in self.bad.items() if reason == "decoded"]


def smooth_rgb(size=GOOD_SIZE, seed: int = 0) -> Image.Image:
    """A smooth random RGB picture (JPEG-friendly, unlike noise)."""
    base = np.random.default_rng(seed).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.BILINEAR)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG signature and IHDR declaring width x height RGB pixels, with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def gradient_16bit(size=GOOD_SIZE, seed: int = 0) -> Image.Image:
    width, height = size
    values = np.linspace(seed, 65535, width * height).reshape(height, width).astype(np.uint16)
    return Image.fromarray(values)  # mode "I;16"


def palette_with_transparency(size=GOOD_SIZE, seed: int = 0) -> Image.Image:
    image = smooth_rgb(size, seed=seed).quantize(colors=8)
    image.info["transparency"] = 0
    return image


def build_hostile_corpus(folder: Path, seed: int = 0) -> HostileCorpus:
    """Write the corpus into `folder` (created) and describe it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = HostileCorpus(folder)

    def good(name: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        corpus.good.append(name)

    def bad(name: str, data: bytes, reason: str) -> None:
        (folder / name).write_bytes(data)
        corpus.bad[name] = reason

    for index in range(3):
        good(f"good_{index}.png", encoded(smooth_rgb(seed=seed + index), "PNG"))
    good("good_3.jpg", encoded(smooth_rgb(seed=seed + 3), "JPEG", quality=90))
    good("zèbre été 01.png", encoded(smooth_rgb(seed=seed + 4), "PNG"))
    good("日本 語.png", encoded(smooth_rgb(seed=seed + 5), "PNG"))
    good("png_named.jpg", encoded(smooth_rgb(seed=seed + 6), "PNG"))  # readable by content
    good("sixteen_bit.png", encoded(gradient_16bit(seed=seed), "PNG"))
    good("sixteen_bit.tif", encoded(gradient_16bit(seed=seed + 1), "TIFF"))
    good("cmyk.jpg", encoded(smooth_rgb(seed=seed + 8).convert("CMYK"), "JPEG"))
    good("palette_transparent.png", encoded(palette_with_transparency(seed=seed + 7), "PNG"))
    good("one_pixel.png", encoded(Image.new("RGB", (1, 1), (200, 30, seed % 256)), "PNG"))
    good("three_pixels.png", encoded(smooth_rgb((3, 3), seed=seed + 9), "PNG"))
    corpus.tiny += ["one_pixel.png", "three_pixels.png"]
    try:  # a name that is not UTF-8, as found in old zip archives; some file systems refuse it
        good(os.fsdecode(b"caf\xe9 latin-1.png"), encoded(smooth_rgb(seed=seed + 10), "PNG"))
    except (OSError, UnicodeError):
        pass

    noise = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole_jpeg, whole_png = (encoded(Image.fromarray(noise), kind) for kind in ("JPEG", "PNG"))
    bad("empty.png", b"", "not an image")
    bad("truncated.jpg", whole_jpeg[: len(whole_jpeg) // 2], "decoded")
    bad("truncated.png", whole_png[: len(whole_png) // 2], "decoded")
    bad("notes.jpg", "just some text, not a JPEG\n".encode(), "not an image")
    bad("bomb.png", decompression_bomb_png(), "pixels")
    # A symbolic link loop: each name points at the other, so neither can be opened.
    os.symlink("loop_b.png", folder / "loop_a.png")
    os.symlink("loop_a.png", folder / "loop_b.png")
    corpus.bad["loop_a.png"] = corpus.bad["loop_b.png"] = "link"
    return corpus
