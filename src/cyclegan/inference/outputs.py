"""Where each translation goes, decided for every file before anything is written.

`plan_outputs` gives each input its output in one folder: the input's name (a video's may change
with its container), `_1`, `_2`... for a second input of the same name, shortened where the output
folder's file system allows no name that long (with a note). It refuses with a ConfigError, before
a single file is written, an output that would replace an input (the same path, reached through a
link, or a hard link to it) and, unless `overwrite`, an output that exists already. A name the
translation cannot be saved under (no image extension) fails that file alone.
"""
from __future__ import annotations

import errno
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from PIL import Image

from cyclegan.errors import ConfigError
from cyclegan.fileio import shorten_to_bytes, unwritable_reason, write_advice
from cyclegan.inference.video import output_name

# What POSIX file systems allow (ext4, XFS, APFS, NTFS in UTF-16 units); used where the folder
# cannot tell.
DEFAULT_NAME_LIMIT = 255


@dataclass
class OutputPlan:
    images: list[tuple[Path, Path]] = field(default_factory=list)  # input, output
    videos: list[tuple[Path, Path, Path | None]] = field(default_factory=list)  # input, output, frames folder
    volumes: list[tuple[Path, Path]] = field(default_factory=list)  # input, output (a file or a DICOM series folder)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # inputs that get no output, and why
    notes: list[str] = field(default_factory=list)


def plan_outputs(images: Iterable[Path], videos: Iterable[Path], out_dir: Path, codec: str | None = None,
                 frames_dir: Path | None = None, overwrite: bool = False,
                 shard: tuple[int, int] = (0, 1), volumes: Iterable[Path] = ()) -> OutputPlan:
    """Outputs in `out_dir` for the image files and videos given, and with `frames_dir` a folder of
    frames per video, named after its output; `volumes` (NIfTI files, DICOM series folders) keep
    their names. Raises ConfigError for an output that would replace
    an input, and unless `overwrite` for one that exists; `shard=(rank, world_size)` checks the
    existing outputs of that process's share only (the others may be writing theirs already)."""
    images, videos, volumes, out_dir = list(images), list(videos), list(volumes), Path(out_dir)
    _refuse_an_unwritable_folder(out_dir, "--out")
    if frames_dir is not None:
        _refuse_an_unwritable_folder(Path(frames_dir), "--frames-dir")
    plan = OutputPlan()
    limit = name_limit(out_dir)
    taken: set[str] = set()  # case-folded: "A.png" and "a.png" are one file on macOS and Windows
    for path in images:
        problem = unsavable_name(path)
        if problem:
            plan.failed.append((path, problem))
        else:
            plan.images.append((path, out_dir / _claim(path, path.name, taken, limit, plan.notes)))
    plan.volumes = [(path, out_dir / _claim(path, path.name, taken, limit, plan.notes)) for path in volumes]
    targets = [out_dir / _claim(path, output_name(path, codec), taken, limit, plan.notes) for path in videos]
    folders: list[Path | None] = [None] * len(videos)
    if frames_dir is not None:
        # Named after the output's stem, or after the whole output name where two outputs share a stem
        # (clip.mp4 and clip.mov), so that two videos never write frames into one folder.
        stems = Counter(target.stem.casefold() for target in targets)
        claimed: set[str] = set()
        folders = [Path(frames_dir) / _claim(path, target.stem if stems[target.stem.casefold()] == 1 else target.name,
                                             claimed, limit, plan.notes)
                   for path, target in zip(videos, targets)]
    plan.videos = list(zip(videos, targets, folders))
    _refuse_replacing_inputs(plan, images + videos + volumes, out_dir)
    if not overwrite:
        rank, world_size = shard
        _refuse_existing(plan.images[rank::world_size] + plan.volumes[rank::world_size], plan.videos[rank::world_size])
    return plan


def name_limit(folder: Path) -> int:
    """The longest file name, in bytes, that `folder` (or the nearest folder above it that exists) allows."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        return min(os.pathconf(existing, "PC_NAME_MAX"), DEFAULT_NAME_LIMIT)
    except (OSError, ValueError, AttributeError):  # not known for this file system, or no pathconf (Windows)
        return DEFAULT_NAME_LIMIT


def unsavable_name(path: Path) -> str | None:
    """Why the translation of the image `path` cannot be saved under its name (the extension
    chooses the format), or None."""
    extension = path.suffix.lower()
    if extension == ".npy":  # arrays are written back as arrays (cyclegan.data.highbit)
        return None
    image_format = Image.registered_extensions().get(extension)
    if image_format is not None and image_format in Image.SAVE:
        return None
    inner = Path(path.stem).suffix.lower()
    example = path.stem if Image.registered_extensions().get(inner) in Image.SAVE else f"{path.name}.png"
    ending = f"ends in {path.suffix!r}, which is not" if path.suffix else "has no extension, so it has not"
    return (f"{path}: the name {ending} an image format the translation can be saved in; rename the file with its "
            f"format's extension (e.g. {example})")


def stops_every_write(error: BaseException) -> bool:
    """Whether a failed write means the output folder takes no more files (full disk, quota,
    read-only file system), so that translating on would only fail again."""
    return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def write_failure(target: Path, error: BaseException) -> str:
    """One line saying that `target` could not be written, why, and what to do."""
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    advice = write_advice(error) or "check the output folder (free space, permissions) or choose another (--out)"
    return f"{target}: cannot be written ({reason}); {advice}"


def _claim(path: Path, name: str, taken: set[str], limit: int, notes: list[str]) -> str:
    """`name`, or with `_1`, `_2`... where an earlier input took it; the stem cut to fit `limit`
    bytes (noted). Recorded in `taken`."""
    stem, suffix = (name[:-len(Path(name).suffix)], Path(name).suffix) if Path(name).suffix else (name, "")
    counter = 0
    while True:
        tail = (f"_{counter}" if counter else "") + suffix
        candidate = shorten_to_bytes(stem, limit - len(os.fsencode(tail))) + tail
        if candidate.casefold() not in taken:
            break
        counter += 1
    taken.add(candidate.casefold())
    if len(os.fsencode(f"{stem}{tail}")) > limit:
        notes.append(f"{path}: written as {candidate}, since {stem}{tail} is longer than the {limit} bytes "
                     "a file name may have there")
    return candidate


def _refuse_an_unwritable_folder(folder: Path, flag: str) -> None:
    """ConfigError for an output folder that cannot be created (a file or a link to nothing in its
    place or above it): it would otherwise fail only after the model is loaded, with the bare
    "File exists" of the operating system."""
    reason = unwritable_reason(folder)
    if reason:
        raise ConfigError(f"cannot write into {flag} {folder}: {reason}; choose another {flag} folder")


def _refuse_replacing_inputs(plan: OutputPlan, inputs: list[Path], out_dir: Path) -> None:
    """ConfigError, whatever `overwrite` says, for an output that is one of the inputs."""
    paths = {os.path.realpath(path) for path in inputs}
    files = {(info.st_dev, info.st_ino) for info in map(_stat, inputs) if info is not None}
    input_folders = {os.path.dirname(path) for path in paths}
    suggestion = _another_folder(out_dir)
    for path, target in plan.images + plan.volumes + [(p, t) for p, t, _ in plan.videos]:
        info = _stat(target)
        if os.path.realpath(target) in paths or (info is not None and (info.st_dev, info.st_ino) in files):
            whose = "its translation" if os.path.realpath(target) == os.path.realpath(path) else f"the translation of {path}"
            raise ConfigError(f"{target}: {whose} would replace this input file; choose another output folder, "
                              f"e.g. --out {suggestion}")
    for path, _target, folder in plan.videos:
        if folder is not None and os.path.realpath(folder) in input_folders:
            raise ConfigError(f"{folder}: the frames of {path} would be written into a folder of inputs; choose "
                              "another --frames-dir")


def _refuse_existing(images: list[tuple[Path, Path]], videos: list[tuple[Path, Path, Path | None]]) -> None:
    existing = [target for _path, target in images + [(path, target) for path, target, _ in videos]
                if os.path.lexists(target)]
    if existing:
        more = f" (and {len(existing) - 1} more output(s))" if len(existing) > 1 else ""
        raise ConfigError(f"{existing[0]} already exists{more}; pass --overwrite to replace "
                          f"{'them' if more else 'it'}, or choose another --out folder")
    frames = [folder for _path, _target, folder in videos if folder is not None and _holds_files(folder)]
    if frames:
        raise ConfigError(f"{frames[0]} already holds frames; pass --overwrite to replace them, or choose another "
                          "--frames-dir")


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _holds_files(folder: Path) -> bool:
    try:
        return any(os.scandir(folder))
    except OSError:
        return False


def _another_folder(out_dir: Path) -> Path:
    name = out_dir.name or Path.cwd().name
    parent = out_dir.parent if out_dir.name else Path("..")
    return parent / f"{name}_translated"


__all__ = ["OutputPlan", "plan_outputs", "name_limit", "unsavable_name", "write_failure", "DEFAULT_NAME_LIMIT"]
