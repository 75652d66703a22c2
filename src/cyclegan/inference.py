"""Applying a trained generator to images of any size.

`Translator.from_checkpoint(path)` takes a run folder, one of our checkpoints, a converted
pretrained generator (`cyclegan models`), an official reference-code generator (`*_net_G*.pth`)
or an ONNX export (run with onnxruntime); the architecture comes from the file, so no training
flag is ever repeated. Calling it on a PIL image returns a PIL image of the same size; with
`tile` set, large images go through the network in overlapping tiles (`cyclegan.tiling`).
`load_translators(path)` gives one Translator per direction the file holds, as `cyclegan
serve`, `evaluate` and `demo` use them.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from PIL import Image

from cyclegan.checkpoint import GeneratorSpec, generator_directions, load_generator
from cyclegan.config import BACKENDS, DIRECTIONS
from cyclegan.data.images import image_to_tensor, list_images, load_image, save_image_atomic, tensor_to_image
from cyclegan.device import (autocast, select_device, translation_batch_size, translation_io_threads,
                             translation_precision)
from cyclegan.errors import ConfigError, CycleGANError, UnreadableImageError
from cyclegan.export import load_onnx_generator
from cyclegan.layers.nnpack import available as nnpack_available
from cyclegan.layers.nnpack import use_nnpack
from cyclegan.tiling import check_tiling, translate_tiled, with_image_statistics
from cyclegan.video import VideoOptions, VideoResult, is_video, list_videos, output_name, translate_video


def pad_to_multiple(batch: torch.Tensor, multiple: int, minimum: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W up to a multiple, and to at least `minimum` (reflecting the border, which the
    networks were trained to see at crop edges; replicate where the image is too small to reflect)."""
    height, width = batch.shape[-2:]
    pad_h = max(height + (-height) % multiple, minimum) - height
    pad_w = max(width + (-width) % multiple, minimum) - width
    if pad_h == 0 and pad_w == 0:
        return batch, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(batch, (0, pad_w, 0, pad_h), mode=mode), (height, width)


@dataclass
class TranslationReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # written, but with something to know (see VideoResult)


def resolve_backend(path: str | Path, backend: str = "auto") -> str:
    """"torch" or "onnxruntime" for `path`: "auto" picks onnxruntime for `.onnx` files."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    is_onnx = Path(path).suffix.lower() == ".onnx"
    if backend == "auto":
        return "onnxruntime" if is_onnx else "torch"
    if backend == "torch" and is_onnx:
        raise ConfigError(f"{path} is an ONNX model, which runs with --backend onnxruntime (or auto)")
    if backend == "onnxruntime" and not is_onnx:
        raise ConfigError(f"--backend onnxruntime needs an .onnx file, got {path}; export one with "
                          f"`cyclegan export {path} --onnx model.onnx`")
    return backend


class Translator:
    """A generator ready to translate images: any size and aspect ratio, never squashed.

    With `tile`, images larger than `tile` px on a side are translated in overlapping tiles
    (`overlap` px, blended) so memory stays bounded by the tile size.
    """

    def __init__(self, generator: torch.nn.Module, spec: GeneratorSpec, device: str = "auto",
                 precision: str = "auto", tile: int | None = None, overlap: int = 32,
                 channels_last: bool | None = None, nnpack: bool = True):
        self.device = select_device(device)
        self.generator = generator.to(self.device).eval()
        self.spec = spec
        self.precision = precision
        # None: the layout measured faster for the device (benchmarks/translate.py, figures in
        # docs/PERFORMANCE.md). On a CPU the NNPACK convolutions, which need the contiguous
        # layout, beat channels-last; without them channels-last was the faster one there. On a
        # GPU channels-last was slower.
        if channels_last is None:
            # (Under bf16 autocast the NNPACK path does not apply; "auto" is fp32 on a CPU.)
            channels_last = self.device.type == "cpu" and not (nnpack and nnpack_available()
                                                               and precision in ("auto", "fp32"))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)
        # NNPACK's convolutions where they measured faster (CPU, float32, contiguous
        # layout, large enough feature maps; see cyclegan.layers.nnpack); a no-op elsewhere.
        use_nnpack(self.generator, nnpack)
        self.multiple = spec.size_multiple
        if tile is not None:
            check_tiling(tile, overlap, self.multiple)
            # Tiles are normalised with statistics of the whole image (see cyclegan.tiling); those
            # layers hold per-image state, so tiled translations take turns.
            self._tiled_generator, self._tiled_norms = with_image_statistics(self.generator)
            self._tiling_lock = threading.Lock()
        self.tile, self.overlap = tile, overlap

    @classmethod
    def from_checkpoint(cls, path: str | Path, direction: str = "AtoB", device: str = "auto",
                        precision: str = "auto", backend: str = "auto", tile: int | None = None,
                        overlap: int = 32, channels_last: bool | None = None,
                        nnpack: bool = True) -> "Translator":
        """The generator of `direction` in `path` (see `cyclegan.checkpoint.load_generator`); a file
        holding a single generator (`.pth`, converted zoo model, `.onnx`) gives it whatever the
        direction. `backend` "auto" runs `.onnx` files with onnxruntime, everything else with torch."""
        if resolve_backend(path, backend) == "onnxruntime":
            if precision not in ("auto", "fp32"):
                raise ConfigError("--precision applies to the torch backend; an ONNX model runs as exported (fp32)")
            generator, spec = load_onnx_generator(path, device)
            # onnxruntime places the work itself; torch only hands it contiguous CPU tensors.
            return cls(generator, spec, "cpu", precision, tile, overlap, channels_last=False)
        generator, spec = load_generator(path, direction)
        return cls(generator, spec, device, precision, tile, overlap, channels_last, nnpack)

    @property
    def input_channels(self) -> int:
        return self.spec.input_nc

    def translate_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] -> (N, C', H, W) in [-1, 1]."""
        return self._run(self.generator, batch)

    @torch.no_grad()
    def _run(self, generator: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        # Instance norm needs more than one value per channel at the bottleneck: tiny images
        # (1x1, 3x3) are padded to at least two bottleneck pixels.
        minimum = 2 * self.multiple if self.spec.net_g.startswith("resnet") else self.multiple
        padded, (height, width) = pad_to_multiple(batch.to(self.device), self.multiple, minimum)
        padded = padded.contiguous(memory_format=self.memory_format)
        precision = translation_precision(self.precision, self.device, height * width)
        with autocast(self.device, precision):
            output = generator(padded)
        return output[..., :height, :width].float()

    def __call__(self, image: Image.Image) -> Image.Image:
        """Translate one PIL image; the result has the same width and height."""
        channels = self.input_channels
        if image.mode != ("L" if channels == 1 else "RGB"):
            image = image.convert("L" if channels == 1 else "RGB")
        if self.tile is not None and max(image.size) > self.tile:
            with self._tiling_lock:
                return translate_tiled(image, lambda batch: self._run(self._tiled_generator, batch),
                                       self.tile, self.overlap, self._tiled_norms)
        output = self.translate_tensor(image_to_tensor(image).unsqueeze(0))
        return tensor_to_image(output[0].cpu())

    def translate_video(self, src: str | Path, dst: str | Path, **options) -> VideoResult:
        """Translate the video `src` into the file `dst`, keeping its frame count, timestamps, size,
        sound and orientation; `options` are those of `cyclegan.video.VideoOptions` (batch_size,
        codec, crf, start, duration, frames_dir, progress)."""
        return translate_video(self, src, dst, VideoOptions(**options))

    def translate_files(self, inputs: Iterable[str | Path], out_dir: str | Path,
                        progress: Callable[[Iterable], Iterable] | None = None,
                        video: VideoOptions | None = None, batch_size: int | None = None,
                        shard: tuple[int, int] = (0, 1), io_threads: int | None = None) -> TranslationReport:
        """Translate image files, videos and folders into `out_dir`, keeping file names and formats.

        Unreadable files are reported in the result and the rest are still translated. Two inputs
        with the same name (from different folders) get `_1`, `_2`... rather than overwriting.
        Decoding the next images and encoding the finished ones run in `io_threads` worker threads
        while the network computes (PIL and torch release the GIL for their heavy parts; None: as
        many as `device.translation_io_threads` gives for the device). Consecutive images
        of the same size go through the network together, `batch_size` at a time (None: as many as
        `device.translation_batch_size` allows for the device). Videos, recognised by content, go
        through `cyclegan.video` with the `video` options, after the images.

        `shard=(rank, world_size)` translates every world_size-th file from the rank-th on, with
        the output names all shards agree on (under torchrun, each process its share); files that
        are missing altogether are reported by rank 0 only.
        """
        video = video or VideoOptions()
        rank, world_size = shard
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        report = TranslationReport()
        paths = expand_inputs(inputs, report if rank == 0 else TranslationReport())
        kinds = {path: is_video(path) for path in paths}
        videos = [path for path in paths if kinds[path]]
        images = [path for path in paths if not kinds[path]]
        if videos:
            video.check()  # before any image is translated
        taken: list[Path] = []
        image_targets = [_claim(out_dir / path.name, taken) for path in images]
        video_targets = [_claim(out_dir / output_name(path, video.codec), taken) for path in videos]
        self._translate_images(list(zip(images, image_targets))[rank::world_size], report, progress, batch_size,
                               io_threads or translation_io_threads(self.device))
        for path, target in list(zip(videos, video_targets))[rank::world_size]:
            frames_dir = video.frames_dir and Path(video.frames_dir) / target.stem
            try:
                result = translate_video(self, path, target, replace(video, frames_dir=frames_dir))
            except CycleGANError as error:  # this video only (damaged, or a part it does not have)
                report.failed.append((path, str(error)))
                continue
            report.written.append(target)
            report.notes.extend(result.notes)
        return report

    def _translate_images(self, plan: list[tuple[Path, Path]], report: TranslationReport,
                          progress: Callable[[Iterable], Iterable] | None, batch_size: int | None,
                          io_threads: int) -> None:
        group: list[tuple[Image.Image, Path]] = []  # decoded images of one size, waiting for the network
        # Up to one image decoded ahead and one encoding waiting per thread (beside the batch): enough
        # to keep the threads and the network busy, few enough that huge images do not pile up in memory.

        with ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="translate-io") as pool:
            loading: dict[int, Future] = {}
            saving: deque[Future] = deque()

            def save(result: torch.Tensor | Image.Image, target: Path) -> None:
                saving.append(pool.submit(_write, result, target))
                report.written.append(target)
                while len(saving) > io_threads + len(group):
                    saving.popleft().result()  # re-raises a failed write (a full disk) here

            def flush() -> None:
                if group:
                    batch = torch.stack([image_to_tensor(image) for image, _target in group])
                    outputs = self.translate_tensor(batch).cpu()
                    for output, (_image, target) in zip(outputs, group):
                        save(output, target)
                    group.clear()

            for index, (path, target) in enumerate(progress(plan) if progress and plan else plan):
                for ahead in range(index, min(index + io_threads + 1, len(plan))):
                    if ahead not in loading:
                        loading[ahead] = pool.submit(load_image, plan[ahead][0], self.input_channels)
                try:
                    image = loading.pop(index).result()
                except UnreadableImageError as error:
                    report.failed.append((path, str(error)))
                    continue
                if self.tile is not None and max(image.size) > self.tile:
                    flush()
                    save(self(image), target)
                    continue
                if group and group[0][0].size != image.size:
                    flush()
                group.append((image, target))
                limit = batch_size or translation_batch_size(self.device, image.width * image.height,
                                                             self.spec.ngf)
                if len(group) >= limit:
                    flush()
            flush()
            for pending in saving:
                pending.result()


def _write(result: torch.Tensor | Image.Image, target: Path) -> None:
    """Encode one translated image (a network output, or a tiled translation's image) into `target`;
    runs in a worker thread, so the conversion too is off the network's thread."""
    save_image_atomic(tensor_to_image(result) if isinstance(result, torch.Tensor) else result, target)


def _claim(target: Path, taken: list[Path]) -> Path:
    """`target`, or `target` with `_1`, `_2`... if an earlier input took that name; recorded in `taken`."""
    candidate, counter = target, 0
    while candidate in taken:
        counter += 1
        candidate = target.with_name(f"{target.stem}_{counter}{target.suffix}")
    taken.append(candidate)
    return candidate


def expand_inputs(inputs: Iterable[str | Path], report: TranslationReport) -> list[Path]:
    """Files as given, folders as their images and videos (sorted); missing paths go to report.failed."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths.extend(sorted(list_images(item) + list_videos(item)))
        elif item.is_file():
            paths.append(item)
        else:
            report.failed.append((item, f"{item}: no such file or folder"))
    return paths


def load_translators(path: str | Path, directions: Iterable[str] | None = None, device: str = "auto",
                     precision: str = "auto", **translator_options) -> dict[str, Translator]:
    """One Translator per direction of `path`, in the order asked: by default every direction it holds.

    A CycleGAN checkpoint holds AtoB and BtoA, a pix2pix run AtoB only; a file holding a single
    generator (official `.pth`, converted zoo model, `.onnx` export) gives it as AtoB. Asking for
    a direction the file does not hold is a ConfigError naming the file. `translator_options` are
    those of `Translator.from_checkpoint` (backend, tile, overlap, channels_last, nnpack).
    """
    wanted = list(dict.fromkeys(directions or ()))
    unknown = [direction for direction in wanted if direction not in DIRECTIONS]
    if unknown:
        raise ConfigError(f"unknown direction '{unknown[0]}'; choose AtoB or BtoA")
    if resolve_backend(path, translator_options.get("backend", "auto")) == "onnxruntime":
        held = ()  # an export holds one generator
    else:
        held = generator_directions(path)
    available = held or ("AtoB",)
    missing = [direction for direction in wanted if direction not in available]
    if missing:
        what = ("holds a single generator, which is served as AtoB" if not held
                else f"holds no {missing[0]} generator, only {', '.join(held)}")
        raise ConfigError(f"{path} {what}; ask for {' and '.join(available)} or leave the direction out")
    return {direction: Translator.from_checkpoint(path, direction, device, precision, **translator_options)
            for direction in wanted or available}


__all__ = ["Translator", "load_translators", "pad_to_multiple", "resolve_backend", "expand_inputs",
           "TranslationReport"]
