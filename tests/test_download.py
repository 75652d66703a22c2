"""download_file, safe_extract and download_dataset against a real server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import io
import socket
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from cyclegan.data.official import (CYCLEGAN_DATASETS, OFFICIAL_DATASETS, PIX2PIX_DATASETS,
                                    download_dataset)
from cyclegan.download import download_file, safe_extract
from cyclegan.errors import DatasetError, DownloadError
from http_server import serve_files

PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes, every offset distinguishable


def png_bytes(color=(200, 30, 30), size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def make_tar_gz(members: dict[str, bytes], special: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in special:
            tf.addfile(info)
    return buffer.getvalue()


def cyclegan_zip(name: str) -> bytes:
    return make_zip({f"{name}/{split}/{i}.png": png_bytes()
                     for split in ("trainA", "trainB", "testA", "testB") for i in range(2)})


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- download_file ---------------------------------------------------------------------

def test_download_file_writes_the_served_bytes_and_no_part_file(tmp_path):
    with serve_files({"file.bin": PAYLOAD}) as server:
        dest = download_file(server.url_for("file.bin"), tmp_path / "file.bin", progress=False)
    assert dest == tmp_path / "file.bin"
    assert dest.read_bytes() == PAYLOAD
    assert tree(tmp_path) == ["file.bin"]


def test_truncated_transfer_raises_keeps_part_and_next_call_resumes_with_range(tmp_path):
    dest = tmp_path / "file.bin"
    with serve_files({"file.bin": PAYLOAD}) as server:
        server.truncate_next["file.bin"] = 70_000
        with pytest.raises(DownloadError, match="incomplete.*again to resume"):
            download_file(server.url_for("file.bin"), dest, progress=False, timeout=5)
        part = tmp_path / "file.bin.part"
        assert part.read_bytes() == PAYLOAD[:70_000]
        assert not dest.exists()

        download_file(server.url_for("file.bin"), dest, progress=False, timeout=5)
        seen = server.requests_for("file.bin")
    assert [r.headers.get("Range") for r in seen] == [None, "bytes=70000-"]
    assert dest.read_bytes() == PAYLOAD
    assert not part.exists()


def test_resume_starts_over_when_the_server_ignores_range(tmp_path):
    (tmp_path / "file.bin.part").write_bytes(b"stale bytes from another version")
    with serve_files({"file.bin": PAYLOAD}) as server:
        server.ignore_range = True
        download_file(server.url_for("file.bin"), tmp_path / "file.bin", progress=False)
        assert server.requests[0].headers["Range"] == "bytes=32-"
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_a_complete_part_file_is_fetched_again_after_416(tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)  # e.g. interrupted before the rename
    with serve_files({"file.bin": PAYLOAD}) as server:
        download_file(server.url_for("file.bin"), tmp_path / "file.bin", progress=False)
        assert [r.headers.get("Range") for r in server.requests] == [f"bytes={len(PAYLOAD)}-", None]
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert tree(tmp_path) == ["file.bin"]


def test_http_500_raises_download_error_with_status_and_url(tmp_path):
    with serve_files({"file.bin": PAYLOAD}) as server:
        server.status_for["file.bin"] = 500
        url = server.url_for("file.bin")
        with pytest.raises(DownloadError) as caught:
            download_file(url, tmp_path / "file.bin", progress=False)
    assert "HTTP 500" in str(caught.value) and url in str(caught.value)
    assert tree(tmp_path) == []


def test_wrong_sha256_raises_and_leaves_no_file(tmp_path):
    with serve_files({"file.bin": PAYLOAD}) as server:
        with pytest.raises(DownloadError, match="checksum mismatch"):
            download_file(server.url_for("file.bin"), tmp_path / "file.bin", sha256="0" * 64,
                          progress=False)
    assert tree(tmp_path) == []


def test_verified_existing_file_is_returned_without_a_request(tmp_path):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    with serve_files({"file.bin": PAYLOAD}) as server:
        url = server.url_for("file.bin")
        download_file(url, tmp_path / "file.bin", sha256=digest, expected_size=len(PAYLOAD),
                      progress=False)
        download_file(url, tmp_path / "file.bin", sha256=digest, progress=False)
        assert len(server.requests) == 1


def test_unreachable_host_raises_with_a_hint(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach.*network connection"):
        download_file(f"http://127.0.0.1:{port}/file.bin", tmp_path / "f.bin", progress=False,
                      timeout=5)


# --- safe_extract ----------------------------------------------------------------------

def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("data/ok.txt", b"fine")
        link = zipfile.ZipInfo("data/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return buffer.getvalue()


MALICIOUS = {
    "zip-dotdot": ("evil.zip", lambda tmp: make_zip({"data/ok.txt": b"fine",
                                                     "../evil.txt": b"owned"}), "../evil.txt"),
    "zip-symlink": ("evil.zip", lambda tmp: _symlink_zip(), "data/link"),
    "tar-absolute": ("evil.tar.gz", lambda tmp: make_tar_gz(
        {"data/ok.txt": b"fine", str(tmp / "absolute_evil.txt"): b"owned"}), "absolute_evil.txt"),
    "tar-symlink": ("evil.tar.gz", lambda tmp: make_tar_gz(
        {"data/ok.txt": b"fine"}, [_special("data/link", tarfile.SYMTYPE, "/etc/passwd")]),
        "data/link"),
    "tar-hardlink": ("evil.tar.gz", lambda tmp: make_tar_gz(
        {"data/ok.txt": b"fine"}, [_special("data/hard", tarfile.LNKTYPE, "/etc/passwd")]),
        "data/hard"),
    "tar-fifo": ("evil.tar.gz", lambda tmp: make_tar_gz(
        {"data/ok.txt": b"fine"}, [_special("data/pipe", tarfile.FIFOTYPE)]), "data/pipe"),
    "tar-device": ("evil.tar.gz", lambda tmp: make_tar_gz(
        {"data/ok.txt": b"fine"}, [_special("data/null", tarfile.CHRTYPE)]), "data/null"),
}


@pytest.mark.parametrize("case", list(MALICIOUS))
def test_malicious_archive_is_refused_and_nothing_is_written(tmp_path, case):
    file_name, build, member = MALICIOUS[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = work / file_name
    archive.write_bytes(build(tmp_path))
    with pytest.raises(DownloadError, match="refusing") as caught:
        safe_extract(archive, work / "dest")
    assert member in str(caught.value)
    assert tree(tmp_path) == ["work", f"work/{file_name}"]


def test_damaged_archive_leaves_no_partial_folder(tmp_path):
    data = make_zip({"d/first.txt": b"a" * 1000, "d/second.txt": b"b" * 1000}, zipfile.ZIP_STORED)
    data = data.replace(b"b" * 1000, b"c" * 1000)  # second member fails its CRC check
    archive = tmp_path / "broken.zip"
    archive.write_bytes(data)
    with pytest.raises(DownloadError, match="damaged"):
        safe_extract(archive, tmp_path / "dest")
    assert tree(tmp_path) == ["broken.zip"]


def test_safe_extract_writes_zip_and_tar_members(tmp_path):
    members = {"top/a.txt": b"A", "top/sub/b.txt": b"B"}
    (tmp_path / "x.zip").write_bytes(make_zip(members))
    (tmp_path / "x.tar.gz").write_bytes(make_tar_gz(members))
    for name in ("x.zip", "x.tar.gz"):
        out = safe_extract(tmp_path / name, tmp_path / f"out-{name}")
        assert (out / "top/a.txt").read_bytes() == b"A"
        assert (out / "top/sub/b.txt").read_bytes() == b"B"


def test_safe_extract_refuses_an_existing_non_empty_destination(tmp_path):
    (tmp_path / "x.zip").write_bytes(make_zip({"a.txt": b"A"}))
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest/keep.txt").write_text("mine")
    with pytest.raises(DownloadError, match="already exists"):
        safe_extract(tmp_path / "x.zip", tmp_path / "dest")
    assert tree(tmp_path / "dest") == ["keep.txt"]


# --- download_dataset ------------------------------------------------------------------

def test_catalogue_holds_every_official_name():
    assert list(CYCLEGAN_DATASETS) == [
        "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
        "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
        "ae_photos", "mini"]
    assert list(PIX2PIX_DATASETS) == [
        "pix2pix/facades", "pix2pix/cityscapes", "pix2pix/maps", "pix2pix/edges2shoes",
        "pix2pix/edges2handbags", "pix2pix/night2day"]
    assert OFFICIAL_DATASETS["horse2zebra"].url() == (
        "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip")
    assert OFFICIAL_DATASETS["pix2pix/facades"].url() == (
        "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz")


def test_cyclegan_zip_downloads_to_a_folder_with_trainA_and_trainB(tmp_path):
    root = tmp_path / "datasets"
    with serve_files({"cyclegan/datasets/horse2zebra.zip": cyclegan_zip("horse2zebra")}) as server:
        folder = download_dataset("horse2zebra", root=root, base_url=server.url, progress=False)
        again = download_dataset("horse2zebra", root=root, base_url=server.url, progress=False)
        assert len(server.requests) == 1  # the second call found the dataset complete
    assert folder == again == root / "horse2zebra"
    assert sorted(p.name for p in (folder / "trainA").iterdir()) == ["0.png", "1.png"]
    assert sorted(p.name for p in (folder / "trainB").iterdir()) == ["0.png", "1.png"]
    splits = ("testA", "testB", "trainA", "trainB")
    assert tree(root) == sorted(["horse2zebra"] + [f"horse2zebra/{s}" for s in splits]
                                + [f"horse2zebra/{s}/{i}.png" for s in splits for i in range(2)])


def test_pix2pix_tar_gz_downloads_to_root_pix2pix_name(tmp_path):
    pairs = make_tar_gz({f"facades/{split}/{i}.png": png_bytes(size=(16, 8))
                         for split in ("train", "val") for i in range(3)})
    with serve_files({"pix2pix/datasets/facades.tar.gz": pairs}) as server:
        folder = download_dataset("pix2pix/facades", root=tmp_path, base_url=server.url,
                                  progress=False)
    assert folder == tmp_path / "pix2pix" / "facades"
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["0.png", "1.png", "2.png"]
    assert not (tmp_path / "pix2pix" / "facades.tar.gz").exists()


def test_archive_without_trainB_leaves_no_dataset_folder(tmp_path):
    incomplete = make_zip({"mini/trainA/0.png": png_bytes()})
    with serve_files({"cyclegan/datasets/mini.zip": incomplete}) as server:
        with pytest.raises(DatasetError, match="trainB/ is missing.*archive was removed"):
            download_dataset("mini", root=tmp_path, base_url=server.url, progress=False)
    assert tree(tmp_path) == []


def test_damaged_dataset_archive_leaves_no_dataset_folder_and_is_removed(tmp_path):
    archive = cyclegan_zip("mini")
    damaged = archive[: len(archive) // 2] + bytes(len(archive) - len(archive) // 2)
    with serve_files({"cyclegan/datasets/mini.zip": damaged}) as server:
        with pytest.raises(DownloadError, match="archive was removed"):
            download_dataset("mini", root=tmp_path, base_url=server.url, progress=False)
    assert tree(tmp_path) == []


def test_unknown_dataset_raises_listing_known_names():
    with pytest.raises(DatasetError) as caught:
        download_dataset("horse2zebar")
    message = str(caught.value)
    assert "Did you mean 'horse2zebra'?" in message
    assert all(name in message for name in OFFICIAL_DATASETS)


@pytest.mark.parametrize("name", ["cityscapes", "pix2pix/cityscapes"])
def test_cityscapes_explains_how_to_prepare_it(tmp_path, name):
    with pytest.raises(DatasetError) as caught:
        download_dataset(name, root=tmp_path)
    message = str(caught.value)
    assert "gtFine_trainvaltest.zip" in message and "leftImg8bit_trainvaltest.zip" in message
    assert "cyclegan data prepare cityscapes --gtfine" in message
    assert tree(tmp_path) == []
