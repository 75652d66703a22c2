"""Datasets: two unpaired image folders for training, one folder for translation/evaluation.

Reproducibility: every random choice of `UnalignedDataset` (which B image goes with an A
image, crops, flips) is drawn from `numpy.random.default_rng([seed, epoch, index])`, so a
sample depends only on those three numbers. Training can resume in the middle of an epoch,
and any number of DataLoader workers yields the same batches. No global RNG is touched.

Problem files are never fatal while at least one image of a domain is usable:
- files that are not images at all (wrong header, zero bytes, too many pixels) are dropped
  when the dataset is built, listed in `dataset.skipped` as (path, reason);
- files that fail later, while decoding pixels (e.g. truncated), are replaced by the next
  file of the same domain; the sample's "skipped" list names them.
Both cases also emit a `SkippedImageWarning` through the `warnings` module (filter it with
`warnings.simplefilter("ignore", SkippedImageWarning)`). Warnings raised inside DataLoader
worker processes are printed by those processes and cannot be caught in the main one, so
code that must act on skipped files should read the "skipped" entries of the batches.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cyclegan.data.images import IMAGE_EXTENSIONS, load_image
from cyclegan.config import MAX_CHANNELS
from cyclegan.data.sources import (DEFAULT_VOLUME_CACHE_BYTES, Source, SourceReader, expand_volumes, file_of,
                                   list_sources, needs_array_reader, parse_window, source_size)
from cyclegan.data.volumes import is_volume
from cyclegan.data.transforms import check_preprocess_options, preprocess, preprocess_array
from cyclegan.errors import ConfigError, DatasetError, UnreadableImageError
from cyclegan.imageconv import image_to_tensor


class SkippedImageWarning(UserWarning):
    """A file was left out of a dataset; the message names it and says why."""


def _check_channels(name: str, value: int, most: int = 3) -> None:
    if value not in (1, 3) and not 1 <= value <= most:
        more = f", or up to {most} channels from multi-page TIFF or .npy" if most > 3 else ""
        raise ConfigError(f"{name} must be 1 (grayscale) or 3 (RGB){more}, got {value}")


def prepared_tensor(loaded, rng: np.random.Generator | None, options: dict) -> torch.Tensor:
    """A loaded image (8-bit PIL, or a [-1, 1] float array) resized, cropped and flipped, as (C, H, W)."""
    if isinstance(loaded, np.ndarray):
        array = preprocess_array(loaded, rng=rng, **options)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return image_to_tensor(preprocess(loaded, rng=rng, **options))


def load_source(source: Source, channels: int, reader: SourceReader) -> tuple[object, int]:
    """An 8-bit file as `load_image` decodes it, anything else as a [-1, 1] array through the
    domain's window (`SourceReader`); and how many values the window clipped."""
    if isinstance(source, Path) and not needs_array_reader(source, channels):
        return load_image(source, channels), 0
    return reader.unit(source)


def _usable_images(
    paths: Sequence[Path], describe: str, preprocess: str = "resize_and_crop"
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Split `paths` into those whose header opens (and whose size suits `preprocess`) and
    (path, reason) for the others."""
    from cyclegan.data.check import size_problem

    usable: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for path in paths:
        try:
            problem = size_problem(source_size(path), preprocess)
            if problem:
                raise UnreadableImageError(f"{path}: {problem}")
        except UnreadableImageError as exc:
            skipped.append((str(path), str(exc)))
            warnings.warn(
                f"skipping {path} in {describe}: {exc}", SkippedImageWarning, stacklevel=3
            )
        else:
            usable.append(path)
    return usable, skipped


def _usable_sources(images: Sequence[Path], volumes: Sequence[Path], describe: str, preprocess: str,
                    reader: SourceReader | None, min_foreground: float) -> tuple[list[Source], list[tuple[str, str]]]:
    """The usable images of `images` and, with a `reader`, the slices of `volumes`; (path, reason)
    for the others, each also warned about."""
    usable: list[Source]
    usable, skipped = _usable_images(images, describe, preprocess)
    if reader is not None:
        reader.check_windows(usable)
    if reader is not None and volumes:
        slices, unusable = expand_volumes(list(volumes), reader, min_foreground, describe)
        for path, reason in unusable:
            warnings.warn(f"skipping {path} in {describe}: {reason}", SkippedImageWarning, stacklevel=4)
        usable, skipped = usable + slices, skipped + unusable
    return usable, skipped


def _scan_folder(folder: str | os.PathLike, role: str, preprocess: str = "resize_and_crop",
                 reader: SourceReader | None = None,
                 min_foreground: float = 0.0) -> tuple[list[Source], list[tuple[str, str]]]:
    """Usable images of `folder` and, with a `reader`, the slices of its volumes; DatasetError
    explaining why if there are none."""
    folder = Path(folder)
    candidates, volumes = list_sources(folder)
    usable, skipped = _usable_sources(candidates, volumes, f"{role} folder {folder}", preprocess, reader,
                                      min_foreground)
    if reader is not None:
        candidates = candidates + volumes
    if usable:
        return usable, skipped
    entries = sorted(os.listdir(folder))
    if not entries:
        why = "the folder is empty"
    elif not candidates:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        why = (
            f"it holds {len(entries)} entries ({shown}) but none has an image extension "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))}); images in sub-folders are not searched"
        )
    else:
        reasons = "; ".join(reason for _, reason in skipped[:3])
        why = (
            f"it holds {len(entries)} entries, {len(candidates)} with an image extension, "
            f"and none of those could be opened: {reasons}"
        )
    raise DatasetError(
        f"{folder}: no usable images for {role}: {why.rstrip('.')}. Point {role} at a folder of image files."
    )


class UnalignedDataset(Dataset):
    """Unpaired images from two folders: each sample is one A image and one B image.

    The A image of sample `index` is A[index % len(A)]. The B image is B[index % len(B)]
    when `serial_batches`, otherwise a random one. The length is max(len(A), len(B)), as in
    the reference code. Tensors are (input_nc, H, W) for A and (output_nc, H, W) for B, in
    [-1, 1]. Call `set_epoch` at the start of every epoch to get new random choices; with
    `persistent_workers=True` DataLoader workers keep their own copy of the dataset, so
    create a new iterator after `set_epoch` without that option. `keep`, when given, chooses
    the files used (a run's training images without those it holds out for validation), and for a
    volume's slices is asked about the volume. Each domain keeps up to `volume_cache_bytes` of
    decoded volumes (`SourceReader`), so that an epoch decodes each volume about once.
    """

    def __init__(
        self,
        dir_a: str | os.PathLike,
        dir_b: str | os.PathLike,
        input_nc: int = 3,
        output_nc: int = 3,
        preprocess: str = "resize_and_crop",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        serial_batches: bool = False,
        seed: int = 0,
        size_multiple: int = 4,
        keep: Callable[[Path], bool] | None = None,
        window_a: str | None = None,
        window_b: str | None = None,
        slice_axis: int | None = None,
        min_foreground: float = 0.0,
        volume_cache_bytes: int = DEFAULT_VOLUME_CACHE_BYTES,
    ) -> None:
        _check_channels("input_nc", input_nc, MAX_CHANNELS)
        _check_channels("output_nc", output_nc, MAX_CHANNELS)
        check_preprocess_options(preprocess, load_size, crop_size, size_multiple)
        # Readers of 16-bit, float, multi-channel and volume files, through each domain's window.
        self.readers = {"A": SourceReader(input_nc, parse_window(window_a), slice_axis, "--window-a",
                                          volume_cache_bytes),
                        "B": SourceReader(output_nc, parse_window(window_b), slice_axis, "--window-b",
                                          volume_cache_bytes)}
        self.paths_a, skipped_a = _scan_folder(dir_a, "domain A", preprocess, self.readers["A"], min_foreground)
        self.paths_b, skipped_b = _scan_folder(dir_b, "domain B", preprocess, self.readers["B"], min_foreground)
        if keep is not None:
            self.paths_a = _kept(self.paths_a, keep, dir_a)
            self.paths_b = _kept(self.paths_b, keep, dir_b)
        self.skipped: list[tuple[str, str]] = skipped_a + skipped_b
        self.input_nc, self.output_nc = input_nc, output_nc
        self.preprocess_options = dict(
            mode=preprocess, load_size=load_size, crop_size=crop_size, flip=flip,
            size_multiple=size_multiple,
        )
        self.serial_batches = serial_batches
        self.seed = int(seed)
        self.epoch = 0
        # Files found undecodable in this process, with the reason, so they are decoded and
        # reported by a warning only once; samples still list them every time.
        self._undecodable: dict[str, str] = {}

    def set_epoch(self, epoch: int) -> None:
        """Select the random choices of `epoch` for all following samples."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        if self.serial_batches:
            index_b = index % len(self.paths_b)
        else:
            index_b = int(rng.integers(len(self.paths_b)))
        skipped: list[str] = []
        path_a, img_a, clipped_a = self._load(self.paths_a, index % len(self.paths_a), "A", skipped)
        path_b, img_b, clipped_b = self._load(self.paths_b, index_b, "B", skipped)
        return {
            "A": prepared_tensor(img_a, rng, self.preprocess_options),
            "B": prepared_tensor(img_b, rng, self.preprocess_options),
            "A_path": str(path_a),
            "B_path": str(path_b),
            "skipped": skipped,
            "clipped": clipped_a + clipped_b,  # values outside the domains' windows (--window-a/-b)
        }

    def _load(self, paths: list[Source], start: int, domain: str, skipped: list[str]):
        """Decode paths[start], or the first decodable file after it (wrapping around)."""
        channels = self.input_nc if domain == "A" else self.output_nc
        for offset in range(len(paths)):
            path = paths[(start + offset) % len(paths)]
            if str(path) in self._undecodable:
                skipped.append(str(path))
                continue
            try:
                return (path, *load_source(path, channels, self.readers[domain]))
            except UnreadableImageError as exc:
                self._undecodable[str(path)] = str(exc)
                skipped.append(str(path))
                warnings.warn(
                    f"skipping {path}, using the next image of its folder instead: {exc}",
                    SkippedImageWarning,
                    stacklevel=3,
                )
        reasons = "; ".join(self._undecodable[str(p)] for p in paths[:3])
        raise DatasetError(
            f"{file_of(paths[0]).parent}: none of its {len(paths)} images can be decoded ({reasons}). "
            "Replace the damaged files."
        )


def _kept(paths: list[Path], keep: Callable[[Path], bool], folder) -> list[Path]:
    """The paths that `keep` accepts; DatasetError when it accepts none."""
    kept = [path for path in paths if keep(file_of(path))]
    if not kept:
        raise DatasetError(f"{folder}: none of its {len(paths)} usable images is left once the training and the "
                           "validation images are told apart (--val-fraction); add images or change --val-fraction")
    return kept


def collate_samples(samples: list[dict]) -> dict:
    """Batch samples for a DataLoader (`collate_fn=collate_samples`).

    Tensors are stacked, "skipped" lists concatenated, every other value collected in a list.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    batch: dict = {}
    for key, first in samples[0].items():
        values = [sample[key] for sample in samples]
        if isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values)
        elif key == "skipped":
            batch[key] = [path for value in values for path in value]
        else:
            batch[key] = values
    return batch


class SingleFolderDataset(Dataset):
    """Images of one folder (or an explicit list of files) for translation and evaluation.

    Preprocessing is deterministic (centre crop, no flip); the default mode "none" keeps each
    image's size up to rounding to `size_multiple`, so batch images of equal size only (or
    use batch size 1). Files that are not images are dropped when the dataset is built
    (`skipped`, with a SkippedImageWarning); a file that fails to decode later raises
    UnreadableImageError, as a translation cannot silently leave out an input. Volumes (NIfTI
    files, DICOM series folders; in the folder or listed) give their slices along `slice_axis`
    that `min_foreground` keeps, as in training, through `window`.
    Samples are {"image": tensor (channels, H, W) in [-1, 1], "path": str}.
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[str | os.PathLike],
        channels: int = 3,
        preprocess: str = "none",
        load_size: int = 256,
        crop_size: int = 256,
        size_multiple: int = 4,
        window: str | None = None,
        slice_axis: int | None = None,
        min_foreground: float = 0.0,
    ) -> None:
        _check_channels("channels", channels, MAX_CHANNELS)
        # The slices are read in their order, volume after volume: keeping the last volume is enough.
        self.reader = SourceReader(channels, parse_window(window), slice_axis, max_cache_bytes=0)
        if isinstance(source, (str, os.PathLike)):
            self.paths, self.skipped = _scan_folder(source, "the input", reader=self.reader,
                                                    min_foreground=min_foreground)
        else:
            listed = [Path(p) for p in source]
            volumes = [path for path in listed if is_volume(path)]
            self.paths, self.skipped = _usable_sources([path for path in listed if path not in volumes], volumes,
                                                       "the input list", "resize_and_crop", self.reader,
                                                       min_foreground)
            if not self.paths:
                raise DatasetError(
                    f"none of the {len(source)} listed files is a usable image"
                    + (f" ({self.skipped[0][1]})" if self.skipped else "")
                    + ". Pass image files (PNG, JPEG, ...)."
                )
        check_preprocess_options(preprocess, load_size, crop_size, size_multiple)
        self.channels = channels
        self.preprocess_options = dict(
            mode=preprocess, load_size=load_size, crop_size=crop_size, flip=False,
            size_multiple=size_multiple,
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        loaded, _clipped = load_source(path, self.channels, self.reader)
        return {"image": prepared_tensor(loaded, None, self.preprocess_options), "path": str(path)}


class AlignedDataset(Dataset):
    """Paired images for pix2pix: each sample is an A image and *its* B image.

    Pairs come either from two folders whose files share stems (`dir_a`, `dir_b`: e.g. the
    trainA/trainB of a paired set) or from one folder of A|B side-by-side images (`dir_b`
    None; A is the left half, as in the official pix2pix datasets). Both images of a pair
    get the very same crop and flip: the random draws of `[seed, epoch, index]` are replayed
    for each. Stems present in only one folder are left out with a warning naming them. `keep`,
    when given, chooses the pairs used by their A file (or A|B file).
    """

    def __init__(self, dir_a, dir_b=None, input_nc: int = 3, output_nc: int = 3,
                 preprocess: str = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                 flip: bool = True, seed: int = 0, size_multiple: int = 4, random: bool = True,
                 keep: Callable[[Path], bool] | None = None) -> None:
        _check_channels("input_nc", input_nc)
        _check_channels("output_nc", output_nc)
        check_preprocess_options(preprocess, load_size, crop_size, size_multiple)
        self.side_by_side = dir_b is None
        paths_a, skipped = _scan_folder(dir_a, "domain A" if dir_b is not None else "paired A|B images", preprocess)
        if self.side_by_side:
            self.pairs = [(path, None) for path in paths_a]
        else:
            paths_b, skipped_b = _scan_folder(dir_b, "domain B", preprocess)
            skipped += skipped_b
            by_stem_b = {path.stem: path for path in paths_b}
            self.pairs = [(path, by_stem_b[path.stem]) for path in paths_a if path.stem in by_stem_b]
            unmatched = sorted({p.stem for p in paths_a} ^ set(by_stem_b))
            if unmatched:
                warnings.warn(f"{len(unmatched)} file(s) have no partner with the same name in the other folder "
                              f"and are left out: {', '.join(unmatched[:5])}", SkippedImageWarning, stacklevel=2)
            if not self.pairs:
                raise DatasetError(f"{dir_a} and {dir_b} share no file names (stems), so they hold no pairs; "
                                   "paired training needs the same name for an image and its counterpart")
        if keep is not None:
            kept = set(_kept([path_a for path_a, _ in self.pairs], keep, dir_a))
            self.pairs = [pair for pair in self.pairs if pair[0] in kept]
        self.skipped = skipped
        self.input_nc, self.output_nc = input_nc, output_nc
        self.preprocess_options = dict(mode=preprocess, load_size=load_size, crop_size=crop_size, flip=flip,
                                       size_multiple=size_multiple)
        self.seed = int(seed)
        self.epoch = 0
        self.random = random  # False: centre crops, no flips (galleries, evaluation)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def _images(self, index: int):
        path_a, path_b = self.pairs[index]
        if self.side_by_side:
            combined = load_image(path_a, 3)
            if combined.width % 2:
                raise UnreadableImageError(f"{path_a}: width {combined.width} is odd, so it is not an A|B pair")
            half = combined.width // 2
            image_a = combined.crop((0, 0, half, combined.height))
            image_b = combined.crop((half, 0, combined.width, combined.height))
            convert = {1: "L", 3: "RGB"}
            return path_a, path_a, image_a.convert(convert[self.input_nc]), image_b.convert(convert[self.output_nc])
        return path_a, path_b, load_image(path_a, self.input_nc), load_image(path_b, self.output_nc)

    def __getitem__(self, index: int) -> dict:
        skipped: list[str] = []
        for offset in range(len(self.pairs)):
            candidate = (index + offset) % len(self.pairs)
            try:
                path_a, path_b, image_a, image_b = self._images(candidate)
                break
            except UnreadableImageError as exc:
                skipped.append(str(self.pairs[candidate][0]))
                warnings.warn(f"skipping the pair of {self.pairs[candidate][0]}: {exc}", SkippedImageWarning,
                              stacklevel=2)
        else:
            raise DatasetError("none of the image pairs can be decoded; replace the damaged files")
        draws = [self.seed, self.epoch, int(index)]

        def rng():
            return np.random.default_rng(draws) if self.random else None

        image_a = preprocess(image_a, rng=rng(), **self.preprocess_options)
        image_b = preprocess(image_b, rng=rng(), **self.preprocess_options)
        return {"A": image_to_tensor(image_a), "B": image_to_tensor(image_b), "A_path": str(path_a),
                "B_path": str(path_b), "skipped": skipped}
