"""The datasets published with CycleGAN and pix2pix, and a one-call download for each.

CycleGAN datasets (unpaired, trainA/trainB/testA/testB) are addressed by their plain name,
e.g. `horse2zebra` or `facades`. The pix2pix datasets (aligned A|B pairs side by side in
train/, val/, test/) share some names, so they are addressed with a prefix:
`pix2pix/facades` is the pix2pix one, plain `facades` the CycleGAN one.

Archives come from http://efrosgans.eecs.berkeley.edu as
`{base}/cyclegan/datasets/{name}.zip` and `{base}/pix2pix/datasets/{name}.tar.gz`.
A mirror with the same layout can be used with `base_url=` (CLI `--base-url`) or the
environment variable CYCLEGAN_DATASETS_URL.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from cyclegan.download import download_file, safe_extract
from cyclegan.errors import DatasetError, DownloadError
from cyclegan.fileio import staged_folder

DEFAULT_BASE_URL = "http://efrosgans.eecs.berkeley.edu"
BASE_URL_ENV = "CYCLEGAN_DATASETS_URL"
PIX2PIX_PREFIX = "pix2pix/"


@dataclass(frozen=True)
class OfficialDataset:
    """One downloadable dataset. `name` is how it is addressed (`pix2pix/` prefix included)."""

    name: str
    kind: str  # "cyclegan" (trainA/trainB/...) or "pix2pix" (A|B pairs in train/ ...)
    description: str
    approx_size: str
    manual: bool = False  # licence forbids redistribution: the user prepares it locally
    # Sub-folders that must hold images for the download to count as complete; empty means
    # "some image anywhere" (ae_photos is a test-only set of photos).
    required_folders: tuple[str, ...] = ("trainA", "trainB")

    @property
    def archive_name(self) -> str:
        stem = self.name.removeprefix(PIX2PIX_PREFIX)
        return f"{stem}.tar.gz" if self.kind == "pix2pix" else f"{stem}.zip"

    def url(self, base_url: str = DEFAULT_BASE_URL) -> str:
        return f"{base_url.rstrip('/')}/{self.kind}/datasets/{self.archive_name}"

    def folder(self, root: Path) -> Path:
        """Where the extracted dataset lives: root/horse2zebra, root/pix2pix/facades."""
        return Path(root) / self.name


def _cyclegan(name: str, description: str, approx_size: str, **kwargs) -> OfficialDataset:
    return OfficialDataset(name, "cyclegan", description, approx_size, **kwargs)


def _pix2pix(name: str, description: str, approx_size: str, **kwargs) -> OfficialDataset:
    return OfficialDataset(PIX2PIX_PREFIX + name, "pix2pix", description, approx_size,
                           required_folders=("train",), **kwargs)


CYCLEGAN_DATASETS: dict[str, OfficialDataset] = {
    d.name: d
    for d in [
        _cyclegan("apple2orange", "apples <-> oranges, ImageNet photos", "~75 MB"),
        _cyclegan("summer2winter_yosemite", "Yosemite in summer <-> winter, Flickr photos",
                  "~126 MB"),
        _cyclegan("horse2zebra", "horses <-> zebras, ImageNet photos", "~111 MB"),
        _cyclegan("monet2photo", "Monet paintings <-> landscape photos", "~291 MB"),
        _cyclegan("cezanne2photo", "Cezanne paintings <-> landscape photos", "~267 MB"),
        _cyclegan("ukiyoe2photo", "Ukiyo-e prints <-> landscape photos", "~279 MB"),
        _cyclegan("vangogh2photo", "Van Gogh paintings <-> landscape photos", "~292 MB"),
        _cyclegan("maps", "satellite photos <-> Google Maps, from the pix2pix maps set",
                  "~1.4 GB"),
        _cyclegan("cityscapes", "street photos <-> semantic label colours (Cityscapes)",
                  "~270 MB", manual=True),
        _cyclegan("facades", "building facade photos <-> architectural labels (CMP)", "~34 MB"),
        _cyclegan("iphone2dslr_flower", "iPhone flower photos <-> DSLR shallow depth of field",
                  "~324 MB"),
        _cyclegan("ae_photos", "Flickr photos for testing the style-transfer models",
                  "~10 MB", required_folders=()),
        _cyclegan("mini", "a handful of images, for smoke tests", "~1 MB"),
    ]
}

PIX2PIX_DATASETS: dict[str, OfficialDataset] = {
    d.name: d
    for d in [
        _pix2pix("facades", "400 CMP facade labels|photos", "~29 MB"),
        _pix2pix("cityscapes", "2975 Cityscapes photos|label colours", "~99 MB", manual=True),
        _pix2pix("maps", "1096 satellite photos|Google Maps tiles", "~239 MB"),
        _pix2pix("edges2shoes", "50k shoe edges|photos (UT Zappos50K)", "~2 GB"),
        _pix2pix("edges2handbags", "137k handbag edges|photos (iGAN project)", "~8 GB"),
        _pix2pix("night2day", "20k night|day webcam frames (Transient Attributes)", "~1.9 GB"),
    ]
}

OFFICIAL_DATASETS: dict[str, OfficialDataset] = {**CYCLEGAN_DATASETS, **PIX2PIX_DATASETS}


def get_dataset(name: str) -> OfficialDataset:
    """The catalogue entry for `name`; DatasetError listing the valid names otherwise."""
    try:
        return OFFICIAL_DATASETS[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name, list(OFFICIAL_DATASETS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DatasetError(f"unknown dataset {name!r}.{hint} Known datasets: "
                       f"{', '.join(OFFICIAL_DATASETS)}")


def cityscapes_instructions(entry: OfficialDataset, root: str | os.PathLike = "datasets") -> str:
    out = entry.folder(Path(root))
    return (
        f"{entry.name} cannot be downloaded from the CycleGAN/pix2pix servers: the Cityscapes "
        "licence requires every user to register and download it themselves. To prepare it:\n"
        "  1. register at https://www.cityscapes-dataset.com and download gtFine_trainvaltest.zip"
        " and leftImg8bit_trainvaltest.zip\n"
        "  2. unzip both, e.g. into cityscapes_raw/\n"
        "  3. cyclegan data prepare cityscapes --gtfine cityscapes_raw/gtFine "
        f"--leftimg cityscapes_raw/leftImg8bit --out {out}\n"
        "The result holds both layouts: trainA/trainB/testA/testB (photos A, label colours B) "
        "for CycleGAN and train/, test/ with A|B pairs for pix2pix."
    )


def resolve_base_url(base_url: str | None) -> str:
    return base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def download_dataset(name: str, root: str | os.PathLike = "datasets", base_url: str | None = None,
                     progress: bool = True) -> Path:
    """Download, extract and check an official dataset; return its folder under `root`.

    A folder that is already complete is returned without downloading. The archive is
    removed once the dataset is in place; a failed extraction leaves no dataset folder
    (and removes the archive, so the next call fetches it afresh), while an interrupted
    download keeps its partial file and resumes on the next call.

    Raises DatasetError for unknown names, the licence-restricted cityscapes sets (the
    message says how to prepare them) and archives without the expected layout;
    DownloadError for network, HTTP and unsafe-archive problems.
    """
    entry = get_dataset(name)
    root = Path(root)
    target = entry.folder(root)
    if entry.manual:
        raise DatasetError(cityscapes_instructions(entry, root))
    if target.exists():
        check_dataset_folder(entry, target)  # complete: nothing to do; else says to remove it
        return target

    url = entry.url(resolve_base_url(base_url))
    archive = download_file(url, target.parent / entry.archive_name, progress=progress)
    try:
        with staged_folder(target) as staged:
            safe_extract(archive, staged.path)
            staged.contents = _dataset_root(staged.path, archive_stem=target.name)
            check_dataset_folder(entry, staged.contents, source=url)
    except (DownloadError, DatasetError) as error:
        # A refused or damaged archive would be found again by the next call: remove it.
        archive.unlink(missing_ok=True)
        raise type(error)(f"{error} (the archive was removed; run the command again to "
                          "download it afresh)") from error
    archive.unlink()
    return target


def _dataset_root(staging: Path, archive_stem: str) -> Path:
    """The folder inside the extracted archive that holds the dataset."""
    named = staging / archive_stem
    if named.is_dir():
        return named
    entries = [p for p in staging.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


def check_dataset_folder(entry: OfficialDataset, folder: Path, source: str | None = None) -> None:
    """Raise DatasetError unless `folder` holds what training on `entry` needs."""
    from cyclegan.data.images import list_images

    origin = f"the archive from {source}" if source else str(folder)
    if not entry.required_folders:
        if not list_images(folder, recursive=True):
            raise DatasetError(f"{origin} holds no images")
        return
    for sub in entry.required_folders:
        if not (folder / sub).is_dir() or not list_images(folder / sub):
            layout = ("trainA/ and trainB/ folders of images" if entry.kind == "cyclegan"
                      else "a train/ folder of A|B images")
            fix = ("" if source else
                   f"; remove {folder} and run `cyclegan data download {entry.name}` again")
            raise DatasetError(f"{origin} is not a complete {entry.name} dataset: expected "
                               f"{layout}, but {sub}/ is missing or holds no images{fix}")
