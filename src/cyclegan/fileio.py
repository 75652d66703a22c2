"""Crash-safe file writing (a reader sees either the old file or the complete new one, never
half; a folder appears whole or not at all), and where the project caches what it downloads or
trains once."""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

CACHE_ENV = "CYCLEGAN_CACHE"
TEMPORARY_NAME_LIMIT = 255  # bytes; what ext4, XFS and APFS allow
DEFAULT_CACHE_ROOT = Path("~/.cache/cyclegan")


def cache_root() -> Path:
    """The root of every cache: $CYCLEGAN_CACHE, else ~/.cache/cyclegan. Each kind of cached
    file has its own folder in it: `models/` (the zoo), `segmenters/` (evaluation)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT).expanduser()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    On any failure (a full disk, an exception, a signal) the temporary file is removed and the
    previous `path`, if any, is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = f".{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # A name near the file system's limit (255 bytes) must still leave room for the marker.
    temporary = path.with_name(f".{shorten_to_bytes(path.name, TEMPORARY_NAME_LIMIT - 1 - len(marker))}{marker}")
    # Created with mode 0o666 so the umask decides the permissions, as for a plain open();
    # mkstemp would make every checkpoint, config and image private (0600).
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    mode = os.stat(temporary).st_mode & 0o777
    try:
        yield temporary
        # A writer that replaces the file rather than writing into it (safetensors does, with
        # 0600) would otherwise decide the permissions.
        os.chmod(temporary, mode)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    finally:
        if temporary.exists():
            temporary.unlink()


@dataclass
class StagedFolder:
    """The folder being written by `staged_folder`: write into `path`. `contents` is what becomes
    the destination: `path` itself, unless the writer points it at a folder inside `path` (an
    archive's single top folder, say); whatever else `path` holds is then removed."""
    path: Path
    contents: Path


@contextlib.contextmanager
def staged_folder(destination: Path) -> Iterator[StagedFolder]:
    """Yield a new empty folder beside `destination` to write into; on success rename it (or the
    `contents` chosen inside it) to `destination`, on any failure (an exception, an interrupt)
    remove it, so an interrupted write never leaves a partial `destination`.

    `destination` must be absent or an empty folder; an empty one is replaced.
    """
    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise FileExistsError(f"{destination} already exists and is not an empty folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir, not tempfile.mkdtemp: the umask decides the permissions, as for a plain folder
    # (mkdtemp's 0700 would make a downloaded dataset private).
    path = destination.with_name(f".{destination.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    path.mkdir()
    staged = StagedFolder(path, path)
    try:
        yield staged
        if staged.contents != path and path not in staged.contents.parents:
            raise ValueError(f"the contents to move into place, {staged.contents}, are not inside {path}")
        if destination.exists():
            destination.rmdir()
        os.replace(staged.contents, destination)
        _fsync_directory(destination.parent)
    finally:
        shutil.rmtree(path, ignore_errors=True)  # the leftovers beside `contents`, or all of a failed write


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def shorten_to_bytes(text: str, size: int) -> str:
    """`text` cut to at most `size` bytes as the file system stores it, never inside a character
    (a name that is not UTF-8 keeps its undecodable bytes, as `os.fsencode` gives them back)."""
    if len(os.fsencode(text)) <= size:
        return text
    kept, used = [], 0
    for character in text:
        length = len(os.fsencode(character))
        if used + length > size:
            break
        kept.append(character)
        used += length
    return "".join(kept)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary_path)` and move the result to `path` atomically."""
    with atomic_path(path) as temporary:
        write(temporary)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda temporary: temporary.write_bytes(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def unwritable_reason(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (or in the folders that would hold it), or None."""
    existing = Path(folder).absolute()
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        return f"{existing} is a link to nothing"
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable (permission denied or a read-only file system)"
    return None


def unwritable_file_reason(path: Path) -> str | None:
    """Why the file `path` cannot be written (a folder in its place, or no folder that can hold it),
    or None."""
    path = Path(path)
    if path.is_dir():
        return f"{path.absolute()} is a folder"
    return unwritable_reason(path.parent)


def write_advice(error: BaseException) -> str | None:
    """What to do about a failed write, from its error number; None where the number says nothing."""
    number = getattr(error, "errno", None)
    if number == errno.ENOSPC:
        return "free some disk space or choose another output folder (--out)"
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a writable output folder (--out)"
    if number == errno.ENAMETOOLONG:
        return "rename the input to a shorter name or choose an output folder with a shorter path"
    return None
