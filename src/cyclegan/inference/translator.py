"""Applying a trained generator to images of any size.

`Translator.from_checkpoint(value, pick=...)` takes anything `cyclegan.inference.resolve` does:
a downloaded official model's name (`horse2zebra`), a run folder (its latest or best checkpoint),
one of our checkpoints, an official reference-code generator (`*_net_G*.pth`) or an ONNX export
(run with onnxruntime); the architecture comes from the file, so no training flag is ever
repeated. `translate_images(images)` translates PIL images of any sizes into images of the same
sizes, batching those of one size and, with `tile` set, sending large ones through the network in
overlapping tiles (`cyclegan.inference.tiling`); folders and videos go through it too.
`load_translators(path)` gives one Translator per direction the file holds, as `cyclegan
serve`, `evaluate` and `demo` use them.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cyclegan.checkpoint import GeneratorSpec
from cyclegan.data.images import IMAGE_EXTENSIONS, load_image, save_image_atomic
from cyclegan.device import select_device, translation_batch_size, translation_io_threads
from cyclegan.directions import Direction
from cyclegan.errors import ConfigError, CycleGANError, UnreadableImageError
from cyclegan.imageconv import image_to_tensor, tensor_to_image
from cyclegan.data.sources import list_sources
from cyclegan.inference import scientific
from cyclegan.inference.memory import free_memory, is_out_of_memory, out_of_memory_error, plan_translation
from cyclegan.inference.pipeline import Pipeline
from cyclegan.inference.resolve import ResolvedModel, resolve
from cyclegan.inference.tiling import check_tiling, translate_tiled, translate_tiled_array, with_image_statistics
from cyclegan.inference.outputs import plan_outputs, stops_every_write, write_failure
from cyclegan.inference.video import (VIDEO_EXTENSIONS, VideoOptions, VideoResult, is_video, list_videos,
                                      translate_video)
from cyclegan.layers.nnpack import available as nnpack_available
from cyclegan.layers.test_time_norm import each_image_normalised
from cyclegan.tuning import Arithmetic, UserFlags

Item = TypeVar("Item")

log = logging.getLogger("cyclegan.inference")


def untuned_arithmetic(device: torch.device, user_flags: UserFlags = UserFlags()) -> Arithmetic:
    """What `auto` translates with where nothing was timed and no decision is cached (one image, a
    few, `serve`): fp32 with the NNPACK convolutions on a CPU that has them, else channels-last on
    a CPU (faster there without NNPACK); plain fp32 on a GPU. The dimensions in `user_flags` are
    the user's; the others follow from them."""
    on_cpu = device.type == "cpu"
    precision = user_flags.precision or "fp32"
    nnpack = user_flags.nnpack if user_flags.nnpack is not None else on_cpu and nnpack_available()
    channels_last = user_flags.channels_last
    if channels_last is None:  # NNPACK needs the contiguous layout, and applies to fp32 only
        channels_last = on_cpu and not (nnpack and nnpack_available() and precision == "fp32")
    return Arithmetic(precision, channels_last, nnpack)


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
    clipped: int = 0  # values of 16-bit, float and volume inputs outside the model's input window
    kept: list[Path] = field(default_factory=list)  # outputs that existed and were left (`skip_existing`)


class Translator:
    """A generator ready to translate images: any size and aspect ratio, never squashed.

    With `tile`, images larger than `tile` px on a side are translated in overlapping tiles
    (`overlap` px, blended) so memory stays bounded by the tile size. Without, images that the
    free memory would not hold go fewer at a time, or in tiles (`cyclegan.inference.memory`),
    which is said once; `memory_share` is the part of the free memory one call may plan for
    (`cyclegan serve` gives each of its workers an equal part).
    """

    def __init__(self, generator: torch.nn.Module, spec: GeneratorSpec, device: str = "auto",
                 precision: str = "auto", tile: int | None = None, overlap: int = 32,
                 channels_last: bool | None = None, nnpack: bool | None = None):
        self.device = select_device(device)
        # Batch norm as the pix2pix paper and the reference run it at test time (layers.test_time_norm).
        self.generator = each_image_normalised(generator).to(self.device).eval()
        self.spec = spec
        # What the user fixed ("auto" and None: free); `cyclegan.inference.arithmetic.tune_translation`
        # times the rest for a folder or a video, and `use` applies its choice.
        self.user_flags = UserFlags.from_options(precision, channels_last, nnpack)
        self.multiple = spec.size_multiple
        # Tiles are normalised with statistics of the whole image (see cyclegan.inference.tiling); those
        # layers hold per-image state, so tiled translations take turns.
        self._tiling_lock = threading.Lock()
        self._tiled_generator, self._tiled_norms = None, []
        if tile is not None:
            check_tiling(tile, overlap, self.multiple)
            self._tiled_generator, self._tiled_norms = with_image_statistics(self.generator)
        self.tile, self.overlap = tile, overlap
        self.memory_share = 1.0
        self._memory_noted = False
        self.use(self.user_flags.impose(untuned_arithmetic(self.device, self.user_flags)))

    def use(self, arithmetic: Arithmetic) -> None:
        """Translate in `arithmetic` from now on (the tiling copy of the generator too)."""
        self.arithmetic = arithmetic
        self.memory_format = arithmetic.apply(self.generator, self.device)
        if self._tiled_generator is not None and self._tiled_generator is not self.generator:
            arithmetic.apply(self._tiled_generator, self.device)

    @property
    def precision(self) -> str:
        return self.arithmetic.precision

    @classmethod
    def from_checkpoint(cls, value: str | os.PathLike | ResolvedModel, direction: str = "AtoB",
                        device: str = "auto", precision: str = "auto", backend: str = "auto",
                        tile: int | None = None, overlap: int = 32, channels_last: bool | None = None,
                        nnpack: bool | None = None, pick: str = "latest") -> "Translator":
        """The generator of `direction` in the model `value` names (see `cyclegan.inference.resolve`:
        a zoo name, a run folder with `pick` "latest" or "best", a checkpoint file, `.pth`, `.onnx`),
        or in a model already resolved; a file holding a single generator gives it whatever the
        direction. `backend` "auto" runs `.onnx` files with onnxruntime, everything else with torch."""
        model = value if isinstance(value, ResolvedModel) else resolve(value, pick, backend)
        direction = Direction.parse(direction)
        if model.is_onnx:
            if precision not in ("auto", "fp32"):
                raise ConfigError("--precision applies to the torch backend; an ONNX model runs as exported (fp32)")
            generator, spec = model.load_generator(direction, device)
            # onnxruntime places the work itself; torch only hands it contiguous CPU tensors.
            return cls(generator, spec, "cpu", "fp32", tile, overlap, channels_last=False, nnpack=False)
        generator, spec = model.load_generator(direction)
        return cls(generator, spec, device, precision, tile, overlap, channels_last, nnpack)

    @property
    def input_channels(self) -> int:
        return self.spec.input_nc

    def translate_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] -> (N, C', H, W) in [-1, 1]."""
        return self._run(self.generator, batch)

    def translate_array(self, unit: np.ndarray) -> np.ndarray:
        """A float32 (H, W, C) array in [-1, 1] (a 16-bit, float or multi-channel image, a volume's
        slice) -> (H, W, C') in [-1, 1], unrounded; in tiles when larger than `tile`."""
        if self.tile is not None and max(unit.shape[:2]) > self.tile:
            with self._tiling_lock:
                return translate_tiled_array(unit, lambda batch: self._run(self._tiled_generator, batch), self.tile,
                                             self.overlap, self._tiled_norms)
        batch = torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1), dtype=np.float32))[None]
        return self.translate_tensor(batch)[0].cpu().numpy().transpose(1, 2, 0)

    @torch.no_grad()
    def _run(self, generator: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        # Instance norm needs more than one value per channel at the bottleneck: tiny images
        # (1x1, 3x3) are padded to at least two bottleneck pixels.
        minimum = 2 * self.multiple if self.spec.net_g.startswith("resnet") else self.multiple
        padded, (height, width) = pad_to_multiple(batch.to(self.device), self.multiple, minimum)
        padded = padded.contiguous(memory_format=self.memory_format)
        try:
            with self.arithmetic.autocast(self.device):
                output = generator(padded)
        except Exception as error:  # MemoryError, torch.OutOfMemoryError and the allocators' RuntimeErrors
            if not is_out_of_memory(error):
                raise
            del error  # its traceback holds the frames, and with them the tensors that filled the memory
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise out_of_memory_error(batch, self.device, self.spec.ngf) from None
        return output[..., :height, :width].float()

    def __call__(self, image: Image.Image) -> Image.Image:
        """Translate one PIL image; the result has the same width and height."""
        return self.translate_images([image])[0]

    def translate_images(self, images: Sequence[Image.Image], batch_size: int | None = None) -> list[Image.Image]:
        """Translate PIL images of any sizes and modes; each result has its image's width and height.

        Images are converted to the generator's channels ("RGB" or "L"). Consecutive images of one
        size go through the network together, `batch_size` at a time (None: as many as
        `device.translation_batch_size` allows for the device); with `tile` set, an image larger
        than the tile goes through alone, in overlapping tiles."""
        converted = [self._as_input(image) for image in images]
        translated: list[Image.Image] = []
        for group in self.batches(converted, lambda image: image, batch_size):
            if self._is_tiled(group[0]):
                translated.append(self._translate_tiled(group[0], self.tile))
                continue
            plan = self._plan(group)
            if plan.tile is not None:
                translated.extend(self._translate_tiled(image, plan.tile) for image in group)
                continue
            for start in range(0, len(group), plan.batch):
                part = group[start:start + plan.batch]
                outputs = self.translate_tensor(torch.stack([image_to_tensor(image) for image in part])).cpu()
                translated.extend(tensor_to_image(output) for output in outputs)
        return translated

    def _plan(self, group: list[Image.Image]):
        """How the free memory takes `group` (images of one size); its note is said once."""
        width, height = group[0].size
        plan = plan_translation(width, height, len(group), self.spec.ngf, free_memory(self.device), self.multiple,
                                self.overlap, self.memory_share)
        if plan.note and not self._memory_noted:
            self._memory_noted = True
            log.warning("note: %s", plan.note)
        return plan

    def _translate_tiled(self, image: Image.Image, tile: int) -> Image.Image:
        with self._tiling_lock:
            if self._tiled_generator is None:
                self._tiled_generator, self._tiled_norms = with_image_statistics(self.generator)
                self.arithmetic.apply(self._tiled_generator, self.device)
            return translate_tiled(image, lambda batch: self._run(self._tiled_generator, batch), tile,
                                   self.overlap, self._tiled_norms)

    def batches(self, items: Iterable[Item], image_of: Callable[[Item], Image.Image],
                batch_size: int | None = None) -> Iterator[list[Item]]:
        """`items` in order, grouped as `translate_images` sends their images through the network:
        consecutive images of one size, at most `batch_size` (None: chosen for the device) at a
        time, and an image to be tiled alone. Lazy, so a stream of decoded files can be grouped
        as it arrives."""
        group: list[Item] = []
        for item in items:
            image = image_of(item)
            tiled = self._is_tiled(image)
            if group and (tiled or image_of(group[0]).size != image.size):
                yield group
                group = []
            if tiled:
                yield [item]
                continue
            group.append(item)
            if len(group) >= (batch_size or translation_batch_size(self.device, image.width * image.height,
                                                                   self.spec.ngf)):
                yield group
                group = []
        if group:
            yield group

    def _is_tiled(self, image: Image.Image) -> bool:
        return self.tile is not None and max(image.size) > self.tile

    def _as_input(self, image: Image.Image) -> Image.Image:
        mode = "L" if self.input_channels == 1 else "RGB"
        return image if image.mode == mode else image.convert(mode)

    def translate_video(self, src: str | Path, dst: str | Path, **options) -> VideoResult:
        """Translate the video `src` into the file `dst`, keeping its frame count, timestamps, size,
        sound and orientation; `options` are those of `cyclegan.inference.video.VideoOptions` (batch_size,
        codec, crf, start, duration, frames_dir, progress)."""
        return translate_video(self, src, dst, VideoOptions(**options))

    def translate_files(self, inputs: Iterable[str | Path], out_dir: str | Path,
                        progress: Callable[[Iterable], Iterable] | None = None,
                        video: VideoOptions | None = None, batch_size: int | None = None,
                        shard: tuple[int, int] = (0, 1), io_threads: int | None = None,
                        processes_on_host: int = 1, overwrite: bool = False,
                        output_depth: str | None = None, skip_existing: bool = False) -> TranslationReport:
        """Translate image files, videos and folders into `out_dir`, keeping file names and formats.

        Unreadable files, and files that cannot be written, are reported in the result and the rest
        are still translated. Two inputs with the same name (from different folders) get `_1`,
        `_2`... rather than overwriting. Before anything is written, an output that would replace an
        input, or (unless `overwrite`) an existing file, is refused with a ConfigError
        (`cyclegan.inference.outputs`). With `skip_existing`, an output file that exists is left as
        it is and its input not translated (`report.kept`): every output file is written whole or not
        at all, so this continues an interrupted translation; a DICOM series folder, written file by
        file, is translated again.
        Decoding the next images and encoding the finished ones run in `io_threads` worker threads
        while the network computes (PIL and torch release the GIL for their heavy parts; None: as
        many as `device.translation_io_threads` gives for the device and `processes_on_host`, the
        translating processes sharing this host's cores). Consecutive images
        of the same size go through the network together, `batch_size` at a time (None: as many as
        `device.translation_batch_size` allows for the device). Videos, recognised by content, go
        through `cyclegan.inference.video` with the `video` options, after the images.

        `shard=(rank, world_size)` translates every world_size-th file from the rank-th on, with
        the output names all shards agree on (under torchrun, each process its share); files that
        are missing altogether are reported by rank 0 only.

        16-bit, float and multi-channel images and volumes (NIfTI files, DICOM series folders) go
        through `cyclegan.inference.scientific`: written at the input's depth (or `output_depth`:
        "8", "16", "float"), values mapped back through the model's windows; an output its format
        cannot hold is refused (ConfigError) before anything is translated.
        """
        if overwrite and skip_existing:
            raise ConfigError("--overwrite replaces the outputs that exist and --skip-existing keeps them; give one")
        video = video or VideoOptions()
        rank, world_size = shard
        out_dir = Path(out_dir)
        report = TranslationReport()

        def unfinished(entries: list[tuple]) -> list[tuple]:
            """This process's share of (input, output, ...) entries, less those `skip_existing` keeps.
            Shared out first, so that every process takes the same files whatever the others wrote."""
            share = entries[rank::world_size]
            if not skip_existing:
                return share
            report.kept.extend(entry[1] for entry in share if os.path.isfile(entry[1]))
            return [entry for entry in share if not os.path.isfile(entry[1])]

        paths = expand_inputs(inputs, report if rank == 0 else TranslationReport())
        volumes = [path for path in paths if scientific.is_volume(path)]
        paths = [path for path in paths if path not in volumes]
        kinds = {path: is_video(path) for path in paths}
        videos = [path for path in paths if kinds[path]]
        images = [path for path in paths if not kinds[path]]
        if videos:
            video.check()  # before any image is translated
        plan = plan_outputs(images, videos, out_dir, video.codec, video.frames_dir, overwrite or skip_existing, shard,
                            volumes)
        if rank == 0:
            report.failed.extend(plan.failed)
            report.notes.extend(plan.notes)
        arrays = {path for path in images if scientific.is_array_input(path, self.spec, output_depth)}
        array_plan = [(path, target) for path, target in plan.images if path in arrays]
        # Before anything is translated: refuses what cannot be written, says what is written at 8 bits.
        depths, depth_notes = scientific.check_outputs(array_plan, plan.volumes, self.spec, output_depth)
        out_dir.mkdir(parents=True, exist_ok=True)
        self._translate_images(unfinished([(path, target) for path, target in plan.images if path not in arrays]),
                               report, progress, batch_size,
                               io_threads or translation_io_threads(self.device, processes_on_host))
        for kind, entries in (("image", array_plan), ("volume", plan.volumes)):
            for path, target in unfinished(entries):
                try:
                    if kind == "volume":
                        clipped = scientific.translate_volume_file(self.spec, self.translate_array, path, target)
                    else:
                        clipped = scientific.translate_array_file(self.spec, self.translate_array, path, target,
                                                                  depths[path])
                except UnreadableImageError as error:  # this file only
                    report.failed.append((path, str(error)))
                    continue
                except OSError as error:  # this file could not be written
                    if stops_every_write(error):
                        raise
                    report.failed.append((path, write_failure(target, error)))
                    continue
                report.written.append(target)
                if path in depth_notes:
                    report.notes.append(depth_notes[path])
                if clipped:
                    report.clipped += clipped
                    report.notes.append(f"{path}: {clipped} value(s) outside the model's intensity window were "
                                        "clipped")
        if report.clipped:
            report.notes.append(f"{report.clipped} value(s) clipped in all, outside the intensity windows the model "
                                "was trained with (--window-a/--window-b)")
        for path, target, frames_dir in unfinished(plan.videos):
            try:
                result = translate_video(self, path, target, replace(video, frames_dir=frames_dir))
            except CycleGANError as error:  # this video only (damaged, a part it does not have, out of memory)
                report.failed.append((path, str(error) if str(path) in str(error) else f"{path}: {error}"))
                continue
            report.written.append(target)
            report.notes.extend(result.notes)
        return report

    def _translate_images(self, plan: list[tuple[Path, Path]], report: TranslationReport,
                          progress: Callable[[Iterable], Iterable] | None, batch_size: int | None,
                          io_threads: int) -> None:
        # Up to one image decoded ahead and one encoding waiting per thread (beside the batch): enough
        # to keep the threads and the network busy, few enough that huge images do not pile up in memory.
        unwritten: dict[Path, tuple[Path, str]] = {}  # output -> (input, why), filled by the encoding threads

        def save(output: Image.Image, path: Path, target: Path) -> None:
            try:
                save_image_atomic(output, target)
            except OSError as error:
                if stops_every_write(error):  # a full or read-only disk: the next files would fail alike
                    raise
                unwritten[target] = (path, write_failure(target, error))  # a name too long there: this file only

        inputs = dict((target, path) for path, target in plan)
        with Pipeline(io_threads, io_threads, ahead=io_threads + 1, behind=io_threads, name="translate-io") as pipeline:
            decoded = pipeline.decoded(plan, lambda entry: _decode(entry[0], self.input_channels))
            readable = self._readable(zip(progress(plan) if progress and plan else plan, decoded), report)
            for group in self.batches(readable, lambda entry: entry[1], batch_size):
                for (target, _image), output in zip(group, self.translate_images([image for _t, image in group],
                                                                                 batch_size)):
                    pipeline.encode(save, output, inputs[target], target)
                    report.written.append(target)
        report.written[:] = [target for target in report.written if target not in unwritten]
        report.failed.extend(unwritten.values())

    @staticmethod
    def _readable(entries: Iterable[tuple[tuple[Path, Path], Image.Image | UnreadableImageError]],
                  report: TranslationReport) -> Iterator[tuple[Path, Image.Image]]:
        """(target, image) of the files that decoded; the others go to report.failed."""
        for (path, target), image in entries:
            if isinstance(image, UnreadableImageError):
                report.failed.append((path, str(image)))
            else:
                yield target, image


def _decode(path: Path, channels: int) -> Image.Image | UnreadableImageError:
    """The decoded image, or the reason it cannot be read (reported, while the rest go on)."""
    try:
        return load_image(path, channels)
    except UnreadableImageError as error:
        return error


def expand_inputs(inputs: Iterable[str | Path], report: TranslationReport) -> list[Path]:
    """Files as given, folders as their images and videos (sorted); missing paths, and folders
    without a single image or video, go to report.failed."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir() and scientific.is_volume(item):
            paths.append(item)  # a DICOM series
        elif item.is_dir():
            images, volumes = list_sources(item)
            found = sorted(images + list_videos(item) + volumes)
            if not found:
                report.failed.append((item, _nothing_to_translate(item)))
            paths.extend(found)
        elif item.is_file():
            paths.append(item)
        else:
            report.failed.append((item, f"{item}: no such file or folder"))
    return paths


def _nothing_to_translate(folder: Path) -> str:
    """Why `folder` gave no file: what it holds instead, and what would be translated."""
    kinds: Counter[str] = Counter()
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue  # .DS_Store and the like
        kinds["sub-folders (not searched)" if entry.is_dir() else Path(entry.name).suffix.lower() or "no extension"] += 1
    held = ", ".join(f"{kind} ({count})" for kind, count in sorted(kinds.items())) or "nothing"
    return (f"{folder}: no supported images or videos found (it holds: {held}); convert them to one of "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))} or a video ({', '.join(sorted(VIDEO_EXTENSIONS))})")


def load_translators(value: str | os.PathLike | ResolvedModel, directions: Iterable[str] | None = None,
                     device: str = "auto", precision: str = "auto", pick: str = "latest", backend: str = "auto",
                     **translator_options) -> dict[str, Translator]:
    """One Translator per direction of the model `value` names (see `cyclegan.inference.resolve`),
    in the order asked: by default every direction it holds.

    A CycleGAN checkpoint holds AtoB and BtoA, a pix2pix run AtoB only; a file holding a single
    generator (official `.pth`, converted zoo model, `.onnx` export) gives it as AtoB. Asking for
    a direction the file does not hold is a ConfigError naming the file. `translator_options` are
    those of `Translator.from_checkpoint` (tile, overlap, channels_last, nnpack).
    """
    wanted = [Direction.parse(direction) for direction in dict.fromkeys(directions or ())]
    model = value if isinstance(value, ResolvedModel) else resolve(value, pick, backend)
    model.check_directions(wanted)
    return {direction.value: Translator.from_checkpoint(model, direction, device, precision, **translator_options)
            for direction in wanted or model.available_directions}


__all__ = ["Translator", "load_translators", "pad_to_multiple", "expand_inputs", "TranslationReport",
           "untuned_arithmetic"]
