"""Resumable, verified downloads and archive extraction that refuses unsafe members.

Shared by the dataset catalogue (`cyclegan.data.official`) and the pretrained-model zoo.
Both functions either finish completely or leave a state the next call can continue from:
a download keeps its `.part` file for resuming, an extraction leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from cyclegan.errors import DownloadError
from cyclegan.fileio import staged_folder

__all__ = ["download_file", "safe_extract", "sha256_of"]

CHUNK_BYTES = 1 << 20
USER_AGENT = "cyclegan-downloader/1.0"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large archives do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    resume: bool = True,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Download `url` to `dest` and return `dest`.

    Bytes are streamed to `dest` + ".part"; when that file already exists (an earlier
    attempt was cut off) the download continues from its end with an HTTP Range request,
    or starts over if the server ignores Range. The size is checked against the server's
    Content-Length and `expected_size`, the content against `sha256`, and only a verified
    file is renamed to `dest`. A `dest` that already exists and passes the same checks is
    returned without any network access.

    Raises DownloadError: on HTTP errors (status and URL), an unreachable host, a transfer
    that stops early (the `.part` is kept; calling again resumes), or a size/checksum
    mismatch (the bad file is deleted).
    """
    dest = Path(dest)
    if dest.is_file() and _matches(dest, expected_size, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    if not resume:
        part.unlink(missing_ok=True)

    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if expected_size is None or offset < expected_size:
        try:
            _fetch(url, part, offset, expected_size, progress, timeout)
        except _RangeNotSatisfiable:
            # The .part does not fit what the server has now (file replaced or already
            # complete); a fresh download is the only way to be sure.
            part.unlink(missing_ok=True)
            _fetch(url, part, 0, expected_size, progress, timeout)

    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise DownloadError(
            f"{url} has {size} bytes but {expected_size} were expected; the file was deleted. "
            "The file on the server may have changed: check the URL or the expected size."
        )
    if sha256 is not None:
        actual = sha256_of(part)
        if actual.lower() != sha256.lower():
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                "the damaged file was deleted, run the command again to download it afresh"
            )
    os.replace(part, dest)
    return dest


class _RangeNotSatisfiable(Exception):
    """The server answered 416 to a resume request."""


def _matches(path: Path, expected_size: int | None, sha256: str | None) -> bool:
    if expected_size is not None and path.stat().st_size != expected_size:
        return False
    return sha256 is None or sha256_of(path).lower() == sha256.lower()


def _fetch(url: str, part: Path, offset: int, expected_size: int | None, progress: bool,
           timeout: float) -> None:
    """Append the bytes from `offset` on to `part`; restart from 0 if Range is ignored."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset > 0:
            raise _RangeNotSatisfiable() from error
        raise DownloadError(f"HTTP {error.code} {error.reason} for {url}") from error
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"cannot reach {url}: {reason}. Check the network connection (and HTTP(S)_PROXY "
            "if you are behind a proxy), or point to a mirror, then run the command again"
        ) from error

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(f"{url}: server resumed at byte {start}, asked for {offset}; "
                                    f"delete {part} and run the command again")
        else:
            offset = 0  # a plain 200: the server ignored Range and sends everything
        total = offset + length if length is not None else expected_size

        received = 0
        with open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress, leave=False,
        ) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException):
                    break  # a dropped connection: reported below as incomplete, resumable
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if length is not None and received < length:
        raise DownloadError(
            f"download of {url} stopped after {offset + received} of {total} bytes: the file is "
            f"incomplete. Run the command again to resume it (the partial file is kept at {part})"
        )


def _content_range_start(header: str) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(header.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def safe_extract(archive: Path, dest_dir: Path) -> Path:
    """Extract a zip or tar (optionally gzip/bzip2/xz-compressed) archive into `dest_dir`.

    Members with absolute paths, `..` components, links, or device/fifo types are refused
    with a DownloadError naming the member. Everything is written to a temporary sibling
    of `dest_dir`, which is renamed into place only after the last member, so a refused or
    damaged archive leaves neither `dest_dir` nor any partial files. `dest_dir` must not
    exist yet (an empty directory is replaced). Returns `dest_dir`.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise DownloadError(f"archive {archive} does not exist")
    if dest_dir.exists():
        if not dest_dir.is_dir() or any(dest_dir.iterdir()):
            raise DownloadError(f"cannot extract {archive.name}: {dest_dir} already exists; "
                                "remove it or choose another folder")
    if zipfile.is_zipfile(archive):
        extract = _extract_zip
    elif tarfile.is_tarfile(archive):
        extract = _extract_tar
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive; it may be damaged: "
                            "delete it and download it again")

    with staged_folder(dest_dir) as staged:
        try:
            extract(archive, staged.path)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise DownloadError(f"{archive} is damaged ({error}); delete it and download it "
                                "again") from error
    return dest_dir


def _safe_member_path(root: Path, name: str, archive: Path) -> Path:
    """Where member `name` goes under `root`; refuses names that would land elsewhere."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    drive_letter = len(name) > 1 and name[0].isalpha() and name[1] == ":"
    if name.startswith(("/", "\\")) or drive_letter or ".." in parts:
        raise DownloadError(f"refusing to extract {archive.name}: member {name!r} would be "
                            "written outside the target folder")
    return root.joinpath(*parts)  # "./" entries (parts == ()) name the root itself


def _refuse_type(archive: Path, name: str, kind: str) -> DownloadError:
    return DownloadError(f"refusing to extract {archive.name}: member {name!r} is a {kind}; "
                         "only regular files and folders are allowed")


def _extract_zip(archive: Path, root: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        # The central directory is at hand, so check every member before writing any.
        targets = []
        for info in members:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _refuse_type(archive, info.filename, "symbolic link")
            # No type bits at all (writers outside Unix, zipfile.writestr) means a plain file.
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _refuse_type(archive, info.filename, "special file")
            targets.append(_safe_member_path(root, info.filename, archive))
        for info, target in zip(members, targets):
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)


def _extract_tar(archive: Path, root: Path) -> None:
    # Stream mode reads a compressed tar once; checking member by member is enough
    # because a refusal discards the whole staging folder.
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
            if member.issym() or member.islnk():
                raise _refuse_type(archive, member.name, "link")
            if member.ischr() or member.isblk() or member.isfifo():
                raise _refuse_type(archive, member.name, "device or fifo")
            target = _safe_member_path(root, member.name, archive)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                with open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK_BYTES)
            else:
                raise _refuse_type(archive, member.name, "special file")
