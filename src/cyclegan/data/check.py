"""`cyclegan data check`: what is in a dataset folder, and what in it would hurt training.

`check_dataset(folder)` reads every file of trainA/trainB/testA/testB (whichever exist) or of
a plain folder of images, decodes each image through `load_image` exactly as training will,
and returns a `DatasetReport`: counts, size and mode histograms, and every problem found.
Problems come in two kinds:

- fatal (`report.fatal`): training cannot start: trainA/ or trainB/ missing, or a folder
  without a single usable image;
- warnings (`report.warnings`): training runs but skips or degrades something: unreadable
  files, files that are not images at all, duplicates, train/test leaks, tiny images, images
  whose extension training does not read.

`fatal_problems(dir_a, dir_b)` is the fast subset the trainer runs before building a model: it
reads headers only and stops at the first usable image of each folder.

Tiny images, per preprocess mode: every mode except "none" resizes or enlarges an image to
cover the crop before the networks see it, so a 1x1 image is usable there (as a flat colour)
and only warned about when a side is smaller than `crop_size`. Mode "none" keeps each image's
own size, and the default networks cannot process a side below `MIN_SIDE_WITHOUT_RESIZE`
(the 70x70 PatchGAN's three stride-2 layers leave no output below 24 px), so such images are
not usable in that mode.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from cyclegan.data.highbit import NUMPY_SUFFIXES, read_array, reads_at_full_precision
from cyclegan.data.images import IMAGE_EXTENSIONS, load_image, open_image_header
from cyclegan.data.sources import first_usable_volume, list_sources, source_size
from cyclegan.data.transforms import check_preprocess_options
from cyclegan.data.volumes import NIFTI_SUFFIXES, describe, is_volume, read_volume
from cyclegan.errors import ConfigError, DatasetError, UnreadableImageError

DATASET_FOLDERS = ("trainA", "trainB", "testA", "testB")
TRAIN_FOLDERS = ("trainA", "trainB")
MIN_SIDE_WITHOUT_RESIZE = 24
_SHOWN = 5  # items listed per problem in the text rendering; --json has them all
_READ_WORKERS = 4  # decoding threads (Pillow releases the GIL while decoding)


@dataclass
class FolderReport:
    """What one folder holds. Paths are relative to the checked folder."""

    name: str
    images: int = 0  # files training will use
    files: int = 0  # every entry seen (images, other files, links)
    subfolders: int = 0  # training does not search them
    sizes: Counter = field(default_factory=Counter)  # "WxH" (as decoded, EXIF applied) -> count
    modes: Counter = field(default_factory=Counter)  # Pillow mode as stored ("RGB", "P", "I;16") -> count
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # image content that fails to open/decode
    not_images: list[tuple[str, str]] = field(default_factory=list)  # named like an image, content is not
    misnamed: list[tuple[str, str]] = field(default_factory=list)  # usable, but content != extension
    wrong_extension: list[tuple[str, str]] = field(default_factory=list)  # images training ignores by extension
    tiny: list[tuple[str, str]] = field(default_factory=list)  # smaller than the crop (enlarged) or unusable
    other_files: list[str] = field(default_factory=list)  # not images, not named like images (README, labels)
    volumes: list[tuple[str, str]] = field(default_factory=list)  # NIfTI files, DICOM series: (path, geometry)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "images": self.images, "files": self.files, "subfolders": self.subfolders,
            "sizes": dict(self.sizes.most_common()), "modes": dict(self.modes.most_common()),
            **{key: [{"path": path, "reason": reason} for path, reason in getattr(self, key)]
               for key in ("unreadable", "not_images", "misnamed", "wrong_extension", "tiny")},
            "other_files": list(self.other_files),
            "volumes": [{"path": path, "geometry": geometry} for path, geometry in self.volumes],
        }

    @property
    def usable(self) -> int:
        """Images and volumes training will use."""
        return self.images + len(self.volumes)


@dataclass
class DatasetReport:
    """The result of `check_dataset`; `str(report)` is the text `cyclegan data check` prints."""

    folder: Path
    preprocess: str
    load_size: int
    crop_size: int
    layout: str  # "dataset" (trainA/trainB/...) or "folders" (plain folders of images)
    folders: dict[str, FolderReport] = field(default_factory=dict)
    duplicates: list[list[str]] = field(default_factory=list)  # groups of files with the same bytes
    leaks: list[tuple[str, str]] = field(default_factory=list)  # (train file, test file) with the same bytes
    fatal: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.fatal

    def to_dict(self) -> dict:
        return {
            "folder": str(self.folder), "layout": self.layout, "preprocess": self.preprocess,
            "load_size": self.load_size, "crop_size": self.crop_size, "ok": self.ok,
            "fatal": list(self.fatal), "warnings": list(self.warnings),
            "folders": {name: report.to_dict() for name, report in self.folders.items()},
            "duplicates": [list(group) for group in self.duplicates],
            "leaks": [{"train": train, "test": test} for train, test in self.leaks],
        }

    def __str__(self) -> str:
        return render_text(self)


@dataclass
class _FileResult:
    """What reading one file found; exactly one of the outcome fields is set."""

    path: Path
    digest: str | None = None
    size: tuple[int, int] | None = None  # as decoded, when usable
    stored_mode: str | None = None
    content: str | None = None  # Pillow format recognised from the first bytes
    problem: str | None = None  # why it cannot be used


def check_dataset(folder: str | os.PathLike, crop_size: int = 256, load_size: int = 286,
                  preprocess: str = "resize_and_crop") -> DatasetReport:
    """Read and decode every file under `folder` and report what training would make of it.

    Raises ConfigError for preprocess options that cannot work together and DatasetError if
    `folder` is not a folder; everything else is reported, never raised.
    """
    check_preprocess_options(preprocess, load_size, crop_size)
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root}: {'is a file, not a folder' if root.exists() else 'folder not found'}. "
                           "Pass a dataset folder (with trainA/ and trainB/) or a folder of images.")
    names = [name for name in DATASET_FOLDERS if (root / name).is_dir()]
    layout = "dataset" if names else "folders"
    if not names:
        with os.scandir(root) as scan:
            entries = list(scan)
        has_files = any(not _is_dir(entry) for entry in entries)
        names = ["."] if has_files else sorted(entry.name for entry in entries
                                               if _is_dir(entry) and not entry.name.startswith("."))
    report = DatasetReport(root, preprocess, load_size, crop_size, layout)
    digests: dict[str, list[str]] = {}
    for name in names:
        folder_report, found = _check_folder(root, name, preprocess, crop_size)
        report.folders[name] = folder_report
        for relative, digest in found:
            digests.setdefault(digest, []).append(relative)
    report.duplicates = [group for group in digests.values() if len(group) > 1]
    report.leaks = _leaks(report.duplicates)
    report.fatal, report.warnings = _judge(report)
    return report


def fatal_problems(dir_a: str | os.PathLike, dir_b: str | os.PathLike | None,
                   preprocess: str = "resize_and_crop") -> list[str]:
    """Why training on `dir_a` and `dir_b` (None: one folder of A|B pairs) cannot start; empty when it can.

    Reads image headers only, and stops at the first usable image of each folder.
    """
    problems = []
    folders = [("domain A", dir_a)] + ([("domain B", dir_b)] if dir_b is not None else [])
    for role, folder in ((role, Path(folder)) for role, folder in folders):
        try:
            candidates, volumes = list_sources(folder)
        except DatasetError as error:
            problems.append(f"{role}: {error}")
            continue
        reasons = []
        for path in candidates:
            try:
                if path.suffix.lower() in NUMPY_SUFFIXES or reads_at_full_precision(path):
                    size = source_size(path)
                else:
                    with open_image_header(path) as image:
                        size = image.size
            except UnreadableImageError as error:
                reasons.append(str(error))
                continue
            too_small = size_problem(size, preprocess)
            if too_small is None:
                break
            reasons.append(f"{path}: {too_small}")
        else:
            has_volume, volume_reasons = first_usable_volume(folder) if volumes else (False, [])
            if not has_volume:
                problems.append(f"{role}: {folder} has no usable image: "
                                + _why_empty(folder, candidates + volumes, reasons + volume_reasons))
    return problems


def _why_empty(folder: Path, candidates: list[Path], reasons: list[str]) -> str:
    if candidates:
        shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
        return f"none of its {len(candidates)} image files can be used ({shown})"
    entries = sorted(os.listdir(folder))
    if not entries:
        return "the folder is empty"
    return (f"none of its {len(entries)} entries has an image extension "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))}); sub-folders are not searched")


def size_problem(size: tuple[int, int], preprocess: str) -> str | None:
    """Why an image of `size` cannot be trained on in mode `preprocess`, or None."""
    if preprocess == "none" and min(size) < MIN_SIDE_WITHOUT_RESIZE:
        return (f"{size[0]}x{size[1]} is too small for --preprocess none, which keeps each image's size "
                f"(the networks need at least {MIN_SIDE_WITHOUT_RESIZE}x{MIN_SIDE_WITHOUT_RESIZE})")
    return None


def _check_folder(root: Path, name: str, preprocess: str, crop_size: int) -> tuple[FolderReport, list[tuple[str, str]]]:
    folder = root / name
    report = FolderReport(name)
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        report.unreadable.append((name, f"cannot list the folder ({error.strerror or error})"))
        return report, []
    volumes = [Path(entry.path) for entry in entries
               if entry.name.lower().endswith(NIFTI_SUFFIXES) or (_is_dir(entry) and is_volume(entry.path))]
    files = [Path(entry.path) for entry in entries if not _is_dir(entry) and Path(entry.path) not in volumes]
    report.files, report.subfolders = len(files), len(entries) - len(files) - len(volumes)
    for path in volumes:
        relative = path.relative_to(root).as_posix()
        try:
            report.volumes.append((relative, describe(read_volume(path)).removeprefix(f"{path.name}: ")))
        except (UnreadableImageError, ConfigError) as error:
            # A series names its own file that is wrong: shown relative to the series folder.
            report.unreadable.append((relative, _without_path(str(error), path).removeprefix(f"{path}{os.sep}")))
    with ThreadPoolExecutor(max_workers=_READ_WORKERS) as pool:
        results = list(pool.map(_read_file, files))
    found = []  # (relative path, sha256) of the images training uses
    for result in results:
        relative = result.path.relative_to(root).as_posix()
        if _classify(report, relative, result, preprocess, crop_size):
            found.append((relative, result.digest))
    return report, found


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False  # a link loop: reported as an unreadable file


def _read_file(path: Path) -> _FileResult:
    result = _FileResult(path)
    digest, prefix = hashlib.sha256(), b""
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                prefix = prefix or chunk[:16]
                digest.update(chunk)
    except OSError as error:
        result.problem = f"cannot be read ({error.strerror or error})"
        return result
    result.digest = digest.hexdigest()
    result.content = _content_format(prefix)
    if not prefix:
        result.problem = "empty file (0 bytes)"
        return result
    if path.suffix.lower() in NUMPY_SUFFIXES or (result.content in ("PNG", "TIFF") and reads_at_full_precision(path)):
        # 16-bit, float and multi-channel files: read as training reads them, at full precision.
        result.content = result.content or "NPY"
        try:
            array = read_array(path)
        except (UnreadableImageError, ConfigError) as error:
            result.problem = _without_path(str(error), path)
            return result
        result.size = (array.shape[1], array.shape[0])
        channels = array.shape[2] if array.ndim == 3 else 1
        try:  # Pillow's name of the mode where it has one ("I;16"), else the type and channels
            with open_image_header(path) as header:
                result.stored_mode = header.mode
        except UnreadableImageError:
            result.stored_mode = array.dtype.name + (f" x{channels}" if channels > 1 else "")
        return result
    if result.content is None and path.suffix.lower() in IMAGE_EXTENSIONS:
        result.problem = "not an image: its content matches no image format"
        return result
    if result.content is None:
        return result  # an ordinary other file (README, labels.csv)
    try:
        with open_image_header(path) as header:
            result.stored_mode = header.mode
        result.size = load_image(path).size
    except UnreadableImageError as error:
        result.problem = _without_path(str(error), path)
    return result


def _without_path(message: str, path: Path) -> str:
    """An UnreadableImageError message without its leading "PATH: ", which the report shows already."""
    return message.removeprefix(f"{path}: ")


def _content_format(prefix: bytes) -> str | None:
    """The image format whose signature `prefix` (a file's first 16 bytes) carries, if any.

    Uses Pillow's own signature tests; formats Pillow recognises only by trying to decode
    them (no signature) are not considered.
    """
    Image.init()
    for name, (_factory, accept) in Image.OPEN.items():
        if accept is None:
            continue
        try:
            if accept(prefix):
                return name
        except Exception:  # some signature tests fail on prefixes shorter than they expect
            continue
    return None


_EXTENSION_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
                      ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".ppm": "PPM", ".pgm": "PPM",
                      ".npy": "NPY"}


def _classify(report: FolderReport, relative: str, result: _FileResult, preprocess: str, crop_size: int) -> bool:
    """File `result` under its heading of `report`; True if training uses it."""
    named_as_image = result.path.suffix.lower() in IMAGE_EXTENSIONS | NUMPY_SUFFIXES
    if result.problem is not None:
        if result.content is None and result.digest is not None:
            if named_as_image:
                report.not_images.append((relative, result.problem))
            else:
                report.other_files.append(relative)
        else:
            report.unreadable.append((relative, result.problem))
        return False
    if result.size is None:
        report.other_files.append(relative)
        return False
    if not named_as_image:
        report.wrong_extension.append(
            (relative, f"a {result.content} image, but training only reads files named "
                       f"{', '.join(sorted(IMAGE_EXTENSIONS))}: rename it"))
        return False
    expected = _EXTENSION_FORMATS.get(result.path.suffix.lower())
    if expected is not None and expected != result.content:
        report.misnamed.append((relative, f"named {result.path.suffix} but holds {result.content}; used by content"))
    width, height = result.size
    too_small = size_problem(result.size, preprocess)
    if too_small is not None:
        report.tiny.append((relative, too_small + "; skipped"))
        return False
    if preprocess != "none" and min(width, height) < crop_size:
        scale = crop_size / min(width, height)
        report.tiny.append((relative, f"{width}x{height} is smaller than the {crop_size} px crop and will be "
                                      f"enlarged {scale:.3g} times"))
    report.images += 1
    report.sizes[f"{width}x{height}"] += 1
    report.modes[result.stored_mode] += 1
    return True


def _leaks(duplicates: list[list[str]]) -> list[tuple[str, str]]:
    """(trainX file, testX file) pairs with the same bytes, for X in A and B."""
    leaks = []
    for group in duplicates:
        for domain in "AB":
            train = [path for path in group if path.startswith(f"train{domain}/")]
            test = [path for path in group if path.startswith(f"test{domain}/")]
            leaks.extend((train[0], path) for path in test if train)
    return leaks


def _judge(report: DatasetReport) -> tuple[list[str], list[str]]:
    fatal, warnings = [], []
    if report.layout == "dataset":
        for name in TRAIN_FOLDERS:
            if name not in report.folders:
                fatal.append(f"{name}/ is missing: a dataset needs trainA/ and trainB/ "
                             "(point --domain-a/--domain-b at plain folders instead)")
    elif not report.folders:
        fatal.append(f"{report.folder} holds neither files nor sub-folders")
    elif len(report.folders) > 1 and not any(folder.usable for folder in report.folders.values()):
        fatal.append(f"none of the {len(report.folders)} sub-folders of {report.folder} holds a usable image")
    for name, folder in report.folders.items():
        label = "the folder" if name == "." else f"{name}/"
        if folder.usable == 0 and (name in TRAIN_FOLDERS or len(report.folders) == 1):
            fatal.append(f"{label} has no usable image ({_summary(folder)})")
        elif folder.usable == 0:
            warnings.append(f"{label} has no usable image ({_summary(folder)})")
        for key, what in (("unreadable", "unreadable file(s), skipped by training"),
                          ("not_images", "file(s) named like images that are not images, skipped by training"),
                          ("wrong_extension", "image(s) ignored by training because of their extension"),
                          ("tiny", "image(s) smaller than the crop size" if report.preprocess != "none"
                                   else "image(s) too small for --preprocess none, skipped")):
            items = getattr(folder, key)
            if items:
                warnings.append(f"{label}: {len(items)} {what}: {_preview(path for path, _ in items)}")
        if folder.misnamed:
            warnings.append(f"{label}: {len(folder.misnamed)} image(s) whose extension does not match their "
                            f"content (used by content): {_preview(path for path, _ in folder.misnamed)}")
        if report.preprocess == "none" and len(folder.sizes) > 1:
            warnings.append(f"{label}: {len(folder.sizes)} different image sizes; --preprocess none keeps them, "
                            "so train with --batch-size 1")
    leaked = {test for _, test in report.leaks}
    for train, test in report.leaks:
        warnings.append(f"train/test leak: {test} is identical to {train}")
    for group in report.duplicates:
        if len(set(group) - leaked) > 1:
            warnings.append(f"{len(group)} identical files: {_preview(group)}")
    return fatal, warnings


def _summary(folder: FolderReport) -> str:
    parts = [f"{folder.files} file(s)" if folder.files or folder.subfolders else "the folder is empty"]
    if folder.subfolders:
        parts.append(f"{folder.subfolders} sub-folder(s), which training does not search")
    for key in ("unreadable", "not_images", "wrong_extension", "tiny"):
        if getattr(folder, key):
            parts.append(f"{len(getattr(folder, key))} {key.replace('_', ' ')}")
    return ", ".join(parts)


def _shown(text: str) -> str:
    """`text` printable on any terminal: undecodable bytes of file names become \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _preview(paths) -> str:
    paths = list(paths)
    shown = ", ".join(_shown(path) for path in paths[:_SHOWN])
    return shown + (f", ... ({len(paths) - _SHOWN} more)" if len(paths) > _SHOWN else "")


def render_text(report: DatasetReport) -> str:
    """The human-readable report: one block per folder, then problems, then the verdict."""
    lines = [f"{_shown(str(report.folder))}: {report.layout} layout, checked for --preprocess {report.preprocess} "
             f"--load-size {report.load_size} --crop-size {report.crop_size}"]
    for name, folder in report.folders.items():
        lines.append(f"  {name}: {folder.images} usable image(s) of {folder.files} file(s)"
                     + (f", {len(folder.volumes)} volume(s)" if folder.volumes else ""))
        for path, geometry in folder.volumes:
            lines.append(f"    volume: {_shown(path)}: {geometry}")
        if folder.sizes:
            common = ", ".join(f"{size} x{count}" for size, count in folder.sizes.most_common(_SHOWN))
            others = len(folder.sizes) - _SHOWN
            lines.append(f"    sizes: {common}" + (f", and {others} other size(s)" if others > 0 else ""))
            areas = sorted(folder.sizes, key=lambda size: _area(size))
            if len(areas) > 1:
                lines.append(f"    smallest {areas[0]}, largest {areas[-1]}")
        if folder.modes:
            lines.append("    modes: " + ", ".join(f"{mode} x{count}" for mode, count in folder.modes.most_common()))
        for key in ("unreadable", "not_images", "wrong_extension", "tiny", "misnamed"):
            for path, reason in getattr(folder, key):
                lines.append(f"    {key.replace('_', ' ')}: {_shown(path)}: {_shown(reason)}")
    if report.fatal or report.warnings:
        lines.append("")
    lines += [f"error: {_shown(text)}" for text in report.fatal]
    lines += [f"warning: {_shown(text)}" for text in report.warnings]
    verdict = ("not usable for training" if report.fatal
               else f"usable for training, with {len(report.warnings)} warning(s)" if report.warnings
               else "usable for training, no problems found")
    lines.append(f"{_shown(str(report.folder))}: {verdict}")
    return "\n".join(lines)


def _area(size: str) -> int:
    width, height = size.split("x")
    return int(width) * int(height)
