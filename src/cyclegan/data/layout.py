"""Where a dataset's images are, what kind of dataset it is, and how long an epoch is.

The one place that knows the folder conventions; the trainer, `cyclegan experiment`, the demo and
the evaluation ask it rather than look for folders themselves:

    unpaired   trainA/ and trainB/ (CycleGAN), or two folders given with --domain-a/--domain-b
    paired     trainA/ and trainB/ whose files share names (pix2pix pairs an image with its
               namesake)
    aligned    train/ of A|B side-by-side images, the official pix2pix format, with val/ or test/
               beside it

testA/ and testB/ (for the aligned format: test/, else val/) hold the test images when present.

Validation images, which a run scores itself on while it trains, are valA/ and valB/ (for the
aligned format: val/) when both are present; else a run may hold out a fraction of its training
images (--val-fraction), chosen by its seed and then never trained on: image files, and volumes
whole (all the slices of a scan on one side). The test folders are never validation images, so
that test scores stay honest.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from cyclegan.config import TrainConfig
from cyclegan.data.datasets import AlignedDataset, SingleFolderDataset, UnalignedDataset
from cyclegan.data.images import list_images
from cyclegan.data.sources import file_of, list_sources, source_size
from cyclegan.data.transforms import preprocessed_size, varies_in_size
from cyclegan.errors import ConfigError, DatasetError
from cyclegan.networks import size_multiple

KINDS = ("unpaired", "paired", "aligned")


@dataclass(frozen=True)
class DatasetLayout:
    kind: str
    train_a: Path  # for "aligned": the folder of A|B images
    train_b: Path | None  # None for "aligned"
    test_a: Path | None  # for "aligned": the folder of A|B test images
    test_b: Path | None
    val_a: Path | None = None  # for "aligned": the folder of A|B validation images
    val_b: Path | None = None

    @property
    def has_test_set(self) -> bool:
        return self.test_a is not None and (self.test_b is not None or self.kind == "aligned")

    @property
    def has_validation_set(self) -> bool:
        return self.val_a is not None and (self.val_b is not None or self.kind == "aligned")


def find_layout(data: str | Path | None = None, domain_a: str | Path | None = None,
                domain_b: str | Path | None = None, paired: bool = False) -> DatasetLayout:
    """The layout of `data` (a dataset folder) or of two domain folders; `paired` for pix2pix,
    which also accepts the aligned A|B format."""
    if domain_a is not None and domain_b is not None:
        return DatasetLayout("paired" if paired else "unpaired", Path(domain_a), Path(domain_b), None, None)
    if data is None:
        raise DatasetError("no training data: give --data DIR (with trainA/ and trainB/) "
                           "or both --domain-a DIR and --domain-b DIR")
    root = Path(data)
    if not root.is_dir():
        if root.exists():
            raise DatasetError(f"--data {root} is a file; give the dataset folder that holds trainA/ and trainB/")
        raise DatasetError(f"dataset folder {root} does not exist")
    if paired and not (root / "trainA").is_dir() and (root / "train").is_dir():
        test = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
        val = root / "val" if (root / "val").is_dir() else None
        return DatasetLayout("aligned", root / "train", None, test, None, val, None)
    missing = [name for name in ("trainA", "trainB") if not (root / name).is_dir()]
    if missing:
        raise DatasetError(f"{root} has no {' or '.join(missing)}/ folder; a dataset needs trainA/ and trainB/ "
                           "(or give two folders with --domain-a and --domain-b)")
    val_a, val_b = root / "valA", root / "valB"
    validation = (val_a, val_b) if val_a.is_dir() and val_b.is_dir() else (None, None)
    return DatasetLayout("paired" if paired else "unpaired", root / "trainA", root / "trainB", *test_folders(root),
                         *validation)


def test_folders(data: str | Path) -> tuple[Path | None, Path | None]:
    """testA/ and testB/ of a dataset folder, each None where absent (evaluation needs no
    training folders)."""
    root = Path(data)
    return tuple(folder if folder.is_dir() else None for folder in (root / "testA", root / "testB"))


def is_paired(data: str | Path) -> bool:
    """Whether a dataset can train pix2pix as it is: A|B images in train/, or trainA/ and trainB/
    holding the same file names."""
    root = Path(data)
    if not (root / "trainA").is_dir() and (root / "train").is_dir():
        return True
    if not (root / "trainA").is_dir() or not (root / "trainB").is_dir():
        return False
    stems_a = {path.stem for path in list_images(root / "trainA")}
    return bool(stems_a) and stems_a == {path.stem for path in list_images(root / "trainB")}


def layout_of(config: TrainConfig) -> DatasetLayout:
    data = config.data
    return find_layout(data.data, data.domain_a, data.domain_b, paired=config.model.model == "pix2pix")


def training_dataset(config: TrainConfig, layout: DatasetLayout | None = None):
    """The dataset a run of `config` trains on (its length is the images per epoch): the training
    folders less the images held out for validation."""
    layout = layout or layout_of(config)
    data, model = config.data, config.model
    held_out = held_out_images(config, layout)
    common = dict(input_nc=model.input_nc, output_nc=model.output_nc, preprocess=data.preprocess,
                  load_size=data.load_size, crop_size=data.crop_size, flip=data.flip, seed=config.run.seed,
                  size_multiple=size_multiple(model.net_g),
                  keep=(lambda path: path not in held_out) if held_out else None)
    if layout.kind == "unpaired":
        return UnalignedDataset(layout.train_a, layout.train_b, serial_batches=data.serial_batches,
                                window_a=model.window_a, window_b=model.window_b, slice_axis=model.slice_axis,
                                min_foreground=data.min_foreground, volume_cache_bytes=data.volume_cache_mb * 2 ** 20,
                                **common)
    return AlignedDataset(layout.train_a, layout.train_b, **common)


def held_out_images(config: TrainConfig, layout: DatasetLayout | None = None) -> frozenset[Path]:
    """The training files a run holds out as validation images (--val-fraction; none when the
    dataset has validation folders): in each training folder (for pairs: of their A files), that
    fraction of its units, at least one and never all: those first in the order of a hash of each
    unit's name with the run's seed. A unit is an image file or, for unpaired data, a whole volume
    (a NIfTI file, a DICOM series folder, given here by that path): the slices of one scan are too
    alike to have some trained on and the others judge how the run does on new scans. So a resumed
    run holds out the very same files, and a unit added or removed in between moves at most itself
    and the one unit at the split's edge (an order drawn over all the units, as a permutation is,
    would reshuffle most of the split)."""
    layout = layout or layout_of(config)
    fraction = config.validation.val_fraction
    if fraction <= 0 or layout.has_validation_set:
        return frozenset()
    folders = {"A": layout.train_a, "B": layout.train_b} if layout.kind == "unpaired" else {"A": layout.train_a}
    held_out: set[Path] = set()
    for domain, folder in folders.items():
        paths = _split_units(folder, volumes=layout.kind == "unpaired")
        if len(paths) < 2:
            raise DatasetError(f"{folder} holds {len(paths)} image(s) or volume(s): too few to hold one out for "
                               "validation (--val-fraction); add images or leave the option out")
        count = min(len(paths) - 1, max(1, round(fraction * len(paths))))
        names = {path.relative_to(folder).as_posix(): path for path in paths}
        order = sorted(names, key=lambda name: (_split_position(config.run.seed, domain, name), name))
        held_out.update(names[name] for name in order[:count])
    return frozenset(held_out)


def _split_units(folder: Path, volumes: bool) -> list[Path]:
    """What --val-fraction holds out or keeps, one by one, of a training folder: its image files
    and, with `volumes` (the unpaired datasets, which read them), its volumes, sorted."""
    if not volumes:
        return list_images(folder)
    images, found = list_sources(folder)
    return sorted(images + found)


def _split_position(seed: int, domain: str, name: str) -> int:
    """A file's place in the validation split's order: depends on its own name only, never on the
    other files."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{domain}/{name}".encode()).digest()[:8], "big")


@dataclass(frozen=True)
class ValidationImages:
    """The images a run scores itself on while it trains, prepared as the training images are but
    centre-cropped and never flipped: `domains` ("A", "B") for unpaired data, `pairs` for paired
    data. `source` says where they come from."""

    source: str
    domains: dict[str, SingleFolderDataset] | None = None
    pairs: AlignedDataset | None = None


def validation_images(config: TrainConfig, layout: DatasetLayout | None = None) -> ValidationImages | None:
    """The validation images of a run (see the module's docstring), or None when it has none.
    Raises ConfigError for --val-fraction on a dataset that has validation folders."""
    layout = layout or layout_of(config)
    fraction = config.validation.val_fraction
    if layout.has_validation_set and fraction > 0:
        folders = "val/" if layout.kind == "aligned" else "valA/ and valB/"
        raise ConfigError(f"the dataset has {folders}, which the run scores itself on; leave out --val-fraction")
    if not layout.has_validation_set and fraction <= 0:
        return None
    data, model = config.data, config.model
    preparation = dict(preprocess=data.preprocess, load_size=data.load_size, crop_size=data.crop_size,
                       size_multiple=size_multiple(model.net_g))
    if layout.has_validation_set:
        folders = [layout.val_a, layout.val_b]
        source = "val/" if layout.kind == "aligned" else "valA/ and valB/"
        keep = None
    else:
        held_out = held_out_images(config, layout)
        folders = [layout.train_a, layout.train_b]
        source = f"{fraction * 100:g}% of the training images (held out)"
        keep = held_out.__contains__
    if layout.kind == "unpaired":
        domains = {}
        for domain, folder, channels, window in (("A", folders[0], model.input_nc, model.window_a),
                                                 ("B", folders[1], model.output_nc, model.window_b)):
            files = folder if keep is None else [path for path in _split_units(folder, volumes=True) if keep(path)]
            domains[domain] = SingleFolderDataset(files, channels, window=window, slice_axis=model.slice_axis,
                                                  min_foreground=data.min_foreground, **preparation)
        return ValidationImages(source, domains=domains)
    pairs = AlignedDataset(folders[0], folders[1], model.input_nc, model.output_nc, flip=False, random=False,
                           keep=keep, **preparation)
    return ValidationImages(source, pairs=pairs)


def iterations_per_epoch(images: int, batch_size: int, world_size: int = 1) -> int:
    """Iterations of one epoch over `images` samples: each of `world_size` processes takes its
    share (rounded up), in batches of `batch_size` (the last one may be short)."""
    return math.ceil(math.ceil(images / world_size) / batch_size)


def check_batchable(dataset, batch_size: int) -> None:
    """Raise DatasetError when batches of `batch_size` would have to stack images of different
    sizes (--preprocess none or scale_width with images of several sizes): said before training,
    rather than failing at the first such batch. Reads image headers only."""
    options = dataset.preprocess_options
    if batch_size == 1 or not varies_in_size(options["mode"]):
        return
    if isinstance(dataset, UnalignedDataset):
        folders = {"A": dataset.paths_a, "B": dataset.paths_b}
    else:
        folders = {"A": [a for a, _b in dataset.pairs]}
    for domain, paths in folders.items():
        sizes: dict[tuple[int, int], Path] = {}
        for path in paths:
            width, height = source_size(path)
            if isinstance(dataset, AlignedDataset) and dataset.side_by_side:
                width //= 2
            size = preprocessed_size((width, height), options["mode"], options["load_size"], options["crop_size"],
                                     options["size_multiple"])
            sizes.setdefault(size, file_of(path))
            if len(sizes) > 1:
                (first, first_path), (second, second_path) = sizes.items()
                raise DatasetError(
                    f"--batch-size {batch_size} needs images of one size, but with --preprocess {options['mode']} "
                    f"domain {domain} has {first[0]}x{first[1]} ({first_path.name}) and {second[0]}x{second[1]} "
                    f"({second_path.name}); use --batch-size 1, or a --preprocess mode that crops")
