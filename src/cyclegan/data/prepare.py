"""Turn folders of images into the layouts training expects.

- `prepare_unpaired`: two arbitrary folders -> trainA/trainB/testA/testB (CycleGAN).
- `split_aligned`: pix2pix A|B side-by-side images -> A/ and B/ halves with the same stem.
- `combine_pairs`: same-stem images in two folders -> A|B side-by-side images.
- `prepare_cityscapes`: the official Cityscapes downloads -> both layouts at 256x256.

Images written here are PNG, so splitting and combining are lossless and round-trip exactly.
"""
from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from cyclegan.data.images import list_images, load_image, open_image_header, save_image_atomic
from cyclegan.errors import ConfigError, DatasetError

UNPAIRED_FOLDERS = ("trainA", "trainB", "testA", "testB")


def _claim_output(out: Path, folders: tuple[str, ...], force: bool,
                  sources: tuple[str | os.PathLike, ...] = ()) -> None:
    """Create `out`/`folders`; a non-empty `out` needs `force`, which empties those folders."""
    for source in sources:
        if Path(out).resolve() in (Path(source).resolve(), *Path(source).resolve().parents):
            raise DatasetError(f"the output folder {out} contains the input {source}; "
                               "choose an output folder outside the inputs")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; the output must be a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise DatasetError(f"{out} is not empty; choose another output folder or pass "
                               "--force to replace what this command writes there")
        for name in folders:
            if name and ((out / name).is_symlink() or (out / name).is_file()):
                (out / name).unlink()
            elif name and (out / name).exists():
                shutil.rmtree(out / name)
    for name in folders:
        (out / name).mkdir(parents=True, exist_ok=True)


def _images_by_stem(folder: Path) -> dict[str, Path]:
    images = list_images(folder)
    if not images:
        raise DatasetError(f"{folder} holds no images")
    by_stem: dict[str, Path] = {}
    for path in images:
        if path.stem in by_stem:
            raise DatasetError(f"{folder} holds two images with the stem {path.stem!r} "
                               f"({by_stem[path.stem].name}, {path.name}); rename one")
        by_stem[path.stem] = path
    return by_stem


def preview_names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def prepare_unpaired(folder_a: str | os.PathLike, folder_b: str | os.PathLike,
                     out: str | os.PathLike, test_fraction: float = 0.1, seed: int = 0,
                     link: bool = False, force: bool = False) -> dict[str, int]:
    """Build trainA/trainB/testA/testB under `out` from two folders of images.

    Each domain is shuffled with `random.Random(seed)` and `round(n * test_fraction)` of its
    images (at most n - 1, so training always gets one) go to the test split; the result
    depends only on the file names and the seed. Files keep their names and are copied,
    or symlinked (absolute targets) with `link=True`. Returns the number of images per folder.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test fraction must be in [0, 1), got {test_fraction}")
    out = Path(out)
    sources = {"A": list_images(folder_a), "B": list_images(folder_b)}
    for domain, folder in (("A", folder_a), ("B", folder_b)):
        if not sources[domain]:
            raise DatasetError(f"{folder} (domain {domain}) holds no images")
    _claim_output(out, UNPAIRED_FOLDERS, force, (folder_a, folder_b))

    counts = {}
    for domain, images in sources.items():
        order = list(images)
        random.Random(seed).shuffle(order)
        n_test = min(round(len(order) * test_fraction), len(order) - 1)
        for split, chosen in (("test", order[:n_test]), ("train", order[n_test:])):
            folder = out / f"{split}{domain}"
            for source in chosen:
                if link:
                    os.symlink(source.resolve(), folder / source.name)
                else:
                    shutil.copy2(source, folder / source.name)
            counts[folder.name] = len(chosen)
    return counts


def split_aligned(folder: str | os.PathLike, out: str | os.PathLike,
                  force: bool = False) -> int:
    """Cut each A|B image of `folder` in half: left to `out`/A, right to `out`/B, as PNG.

    Both halves keep the source stem. Every width is checked before anything is written;
    an odd width raises DatasetError naming the file. Returns the number of images split.
    """
    folder, out = Path(folder), Path(out)
    sources = _images_by_stem(folder)
    for path in sources.values():
        with open_image_header(path) as header:
            if header.width % 2:
                raise DatasetError(f"{path}: width {header.width} is odd, so it cannot be cut "
                                   "into two equal A|B halves")
    _claim_output(out, ("A", "B"), force, (folder,))
    for stem, path in sources.items():
        image = load_image(path)
        half = image.width // 2
        save_image_atomic(image.crop((0, 0, half, image.height)), out / "A" / f"{stem}.png")
        save_image_atomic(image.crop((half, 0, image.width, image.height)),
                          out / "B" / f"{stem}.png")
    return len(sources)


@dataclass
class CombineReport:
    written: int = 0
    only_in_a: list[str] = field(default_factory=list)  # stems without a partner in B
    only_in_b: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)  # stems whose B was resized to A's size


def side_by_side(image_a: Image.Image, image_b: Image.Image) -> Image.Image:
    """A|B: `image_a` on the left, `image_b` (same size) on the right."""
    pair = Image.new("RGB", (image_a.width * 2, image_a.height))
    pair.paste(image_a, (0, 0))
    pair.paste(image_b, (image_a.width, 0))
    return pair


def combine_pairs(folder_a: str | os.PathLike, folder_b: str | os.PathLike,
                  out: str | os.PathLike, force: bool = False,
                  skip_unmatched: bool = False) -> CombineReport:
    """Write `out`/{stem}.png = A|B for every stem present in both folders.

    Stems found in only one folder raise DatasetError listing them, unless `skip_unmatched`,
    which combines the rest and reports them. When the two images of a pair differ in size,
    B is resized (bicubic) to A's size and the stem is listed in `resized`. With `force`,
    a non-empty `out` is allowed and same-named files in it are replaced.
    """
    out = Path(out)
    a, b = _images_by_stem(Path(folder_a)), _images_by_stem(Path(folder_b))
    report = CombineReport(only_in_a=sorted(a.keys() - b.keys()),
                           only_in_b=sorted(b.keys() - a.keys()))
    if (report.only_in_a or report.only_in_b) and not skip_unmatched:
        problems = []
        if report.only_in_a:
            problems.append(f"only in {folder_a}: {preview_names(report.only_in_a)}")
        if report.only_in_b:
            problems.append(f"only in {folder_b}: {preview_names(report.only_in_b)}")
        raise DatasetError(f"images without a same-stem partner ({'; '.join(problems)}); "
                           "rename them, or pass --skip-unmatched to combine the rest")
    stems = sorted(a.keys() & b.keys())
    if not stems:
        raise DatasetError(f"{folder_a} and {folder_b} share no file stems, so nothing "
                           "can be paired")
    _claim_output(out, ("",), force, (folder_a, folder_b))
    for stem in stems:
        image_a, image_b = load_image(a[stem]), load_image(b[stem])
        if image_b.size != image_a.size:
            image_b = image_b.resize(image_a.size, Image.Resampling.BICUBIC)
            report.resized.append(stem)
        save_image_atomic(side_by_side(image_a, image_b), out / f"{stem}.png")
        report.written += 1
    return report


CITYSCAPES_PHOTO_SUFFIX = "_leftImg8bit.png"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_color.png"


def _cityscapes_folder(folder: Path, inner: str) -> Path:
    # Accept both the folder that holds gtFine/ (or leftImg8bit/) and that folder itself.
    return folder / inner if (folder / inner / "train").is_dir() else folder


def _cityscapes_files(folder: Path, phase: str, suffix: str) -> dict[str, Path]:
    return {p.name.removesuffix(suffix): p for p in sorted((folder / phase).glob(f"*/*{suffix}"))}


def prepare_cityscapes(gtfine_dir: str | os.PathLike, leftimg_dir: str | os.PathLike,
                       out: str | os.PathLike, size: int = 256,
                       force: bool = False) -> dict[str, int]:
    """Build the Cityscapes translation dataset from the official downloads.

    `gtfine_dir` and `leftimg_dir` are the unzipped gtFine_trainvaltest.zip and
    leftImg8bit_trainvaltest.zip (`.../gtFine/{train,val}/{city}/..._gtFine_color.png`,
    `.../leftImg8bit/{train,val}/{city}/..._leftImg8bit.png`). Photos and label colours are
    paired by their shared stem (e.g. aachen_000000_000019) and resized to size x size
    (bicubic, like the reference script). As in the reference, Cityscapes train becomes our
    train and val becomes test. Written under `out`, as PNG named by stem:
    trainA/testA (photos), trainB/testB (label colours), and train/, test/ with A|B pairs.
    Returns the number of pairs per split.
    """
    gtfine = _cityscapes_folder(Path(gtfine_dir), "gtFine")
    leftimg = _cityscapes_folder(Path(leftimg_dir), "leftImg8bit")
    out = Path(out)
    pairs: dict[str, list[tuple[str, Path, Path]]] = {}
    for phase, split in (("train", "train"), ("val", "test")):
        photos = _cityscapes_files(leftimg, phase, CITYSCAPES_PHOTO_SUFFIX)
        labels = _cityscapes_files(gtfine, phase, CITYSCAPES_LABEL_SUFFIX)
        if not photos:
            raise DatasetError(f"no *{CITYSCAPES_PHOTO_SUFFIX} under {leftimg / phase}/*/; pass "
                               "the leftImg8bit folder from leftImg8bit_trainvaltest.zip")
        if not labels:
            raise DatasetError(f"no *{CITYSCAPES_LABEL_SUFFIX} under {gtfine / phase}/*/; pass "
                               "the gtFine folder from gtFine_trainvaltest.zip")
        unmatched = sorted(photos.keys() ^ labels.keys())
        if unmatched:
            raise DatasetError(f"Cityscapes {phase}: {len(unmatched)} photos/labels without a "
                               f"partner ({preview_names(unmatched)}); re-extract both archives")
        pairs[split] = [(stem, photos[stem], labels[stem]) for stem in sorted(photos)]

    _claim_output(out, ("trainA", "trainB", "testA", "testB", "train", "test"), force,
                  (gtfine, leftimg))
    for split, items in pairs.items():
        for stem, photo_path, label_path in items:
            photo = load_image(photo_path).resize((size, size), Image.Resampling.BICUBIC)
            label = load_image(label_path).resize((size, size), Image.Resampling.BICUBIC)
            save_image_atomic(photo, out / f"{split}A" / f"{stem}.png")
            save_image_atomic(label, out / f"{split}B" / f"{stem}.png")
            save_image_atomic(side_by_side(photo, label), out / split / f"{stem}.png")
    return {split: len(items) for split, items in pairs.items()}
