"""The official pretrained CycleGAN and pix2pix generators: catalogue, download and conversion.

The reference project publishes one generator per direction as a bare state dict,
`{base}/cyclegan/pretrained_models/{name}.pth` on http://efrosgans.eecs.berkeley.edu, and its
pix2pix generators (U-Net, batch norm) as `{base}/pix2pix/models-pytorch/{name}.pth`, here named
`pix2pix/{name}` (three of their names are also CycleGAN models'). A mirror
with the same layout can be used with `base_url=`, CLI `--base-url`, or the environment
variable CYCLEGAN_MODELS_URL). `download_model` fetches one with `download_file` (resumable,
atomic, size-checked) and converts it to a single-generator safetensors file in the cache
(`$CYCLEGAN_CACHE/models`, default `~/.cache/cyclegan/models`): weights under `G_AB.`, metadata
as our checkpoints have (format, model config, version), so `Translator.from_checkpoint(file)`
and `cyclegan translate NAME` use it directly.

Checksums: the reference project does not publish hashes of its model files, so none is
checked by default (`KNOWN_SHA256` is empty on purpose rather than filled with values we
could not verify). Pass `sha256=` (CLI `--sha256`) to pin a file; the hash of every download
is recorded in the converted file's metadata (`source_sha256`) and printed by the CLI.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from cyclegan import checkpoint as ckpt
from cyclegan.config import ModelConfig
from cyclegan.download import download_file, sha256_of
from cyclegan.errors import CheckpointError
from cyclegan.fileio import cache_root
from cyclegan.reference_format import load_reference_generator

DEFAULT_BASE_URL = "http://efrosgans.eecs.berkeley.edu"
BASE_URL_ENV = "CYCLEGAN_MODELS_URL"
# The architecture fields a converted model records (build_generator's arguments).
_ARCHITECTURE = ("net_g", "input_nc", "output_nc", "ngf", "norm", "use_dropout")


PIX2PIX_PREFIX = "pix2pix/"
# Where each family's files lie below the base URL, as the reference's download scripts fetch them.
_FOLDERS = {"cyclegan": "cyclegan/pretrained_models", "pix2pix": "pix2pix/models-pytorch"}


@dataclass(frozen=True)
class PretrainedModel:
    """One downloadable generator of the reference project's zoo: a CycleGAN one (ResNet-9, ngf 64)
    or, named `pix2pix/...`, a pix2pix one (U-Net, batch norm)."""

    name: str
    description: str

    @property
    def family(self) -> str:
        return "pix2pix" if self.name.startswith(PIX2PIX_PREFIX) else "cyclegan"

    @property
    def file_stem(self) -> str:
        """The name of its file on the server (a pix2pix model's without the `pix2pix/`)."""
        return self.name.removeprefix(PIX2PIX_PREFIX)

    def url(self, base_url: str = DEFAULT_BASE_URL) -> str:
        return f"{base_url.rstrip('/')}/{_FOLDERS[self.family]}/{self.file_stem}.pth"


OFFICIAL_MODELS: dict[str, PretrainedModel] = {
    model.name: model
    for model in [
        PretrainedModel("apple2orange", "apples -> oranges (ImageNet photos)"),
        PretrainedModel("orange2apple", "oranges -> apples (ImageNet photos)"),
        PretrainedModel("summer2winter_yosemite", "Yosemite in summer -> in winter (Flickr photos)"),
        PretrainedModel("winter2summer_yosemite", "Yosemite in winter -> in summer (Flickr photos)"),
        PretrainedModel("horse2zebra", "horses -> zebras (ImageNet photos)"),
        PretrainedModel("zebra2horse", "zebras -> horses (ImageNet photos)"),
        PretrainedModel("monet2photo", "Monet paintings -> photos"),
        PretrainedModel("style_monet", "photos -> paintings in the style of Monet"),
        PretrainedModel("style_cezanne", "photos -> paintings in the style of Cezanne"),
        PretrainedModel("style_ukiyoe", "photos -> Ukiyo-e prints"),
        PretrainedModel("style_vangogh", "photos -> paintings in the style of Van Gogh"),
        PretrainedModel("sat2map", "satellite photos -> Google Maps renderings"),
        PretrainedModel("map2sat", "Google Maps renderings -> satellite photos"),
        PretrainedModel("cityscapes_photo2label", "Cityscapes street photos -> label colours"),
        PretrainedModel("cityscapes_label2photo", "Cityscapes label colours -> street photos"),
        PretrainedModel("facades_photo2label", "building facade photos -> architectural labels (CMP)"),
        PretrainedModel("facades_label2photo", "architectural labels (CMP) -> facade photos"),
        PretrainedModel("iphone2dslr_flower", "iPhone flower photos -> DSLR-like shallow depth of field"),
        PretrainedModel("pix2pix/edges2shoes", "edge drawings -> shoe photos (UT Zappos50K)"),
        PretrainedModel("pix2pix/sat2map", "aerial photos -> Google Maps renderings"),
        PretrainedModel("pix2pix/map2sat", "Google Maps renderings -> aerial photos"),
        PretrainedModel("pix2pix/facades_label2photo", "architectural labels (CMP) -> facade photos"),
        PretrainedModel("pix2pix/day2night", "daytime scenes -> the same scenes at night"),
    ]
}

# name -> sha256 of the official .pth. Empty: the reference project publishes no hashes, and a
# hash we computed ourselves from one download would only prove that download. Add entries
# (or pass sha256=) once a hash has been checked against a trusted copy.
KNOWN_SHA256: dict[str, str] = {}


def get_model(name: str) -> PretrainedModel:
    """The catalogue entry for `name`; CheckpointError listing the valid names otherwise."""
    if name in OFFICIAL_MODELS:
        return OFFICIAL_MODELS[name]
    close = difflib.get_close_matches(name, list(OFFICIAL_MODELS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise CheckpointError(f"unknown pretrained model {name!r}.{hint} Known models (`cyclegan models list`): "
                          f"{', '.join(OFFICIAL_MODELS)}")


def resolve_base_url(base_url: str | None = None) -> str:
    return base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The folder of converted models: `cache`, else `models/` in the cache root
    ($CYCLEGAN_CACHE/models, default ~/.cache/cyclegan/models)."""
    return Path(cache).expanduser() if cache else cache_root() / "models"


def cached_model_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    entry = get_model(name)
    prefix = "pix2pix_" if entry.family == "pix2pix" else ""
    return cache_dir(cache) / f"{prefix}{entry.file_stem}.safetensors"


def resolve_model_argument(value: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """What a user typed as a model: an existing path as is, else the name of a downloaded
    official model (its cached file). A known name not yet downloaded says how to get it."""
    path = Path(value)
    if path.exists() or str(value) not in OFFICIAL_MODELS:
        return path
    cached = cached_model_path(str(value), cache)
    if not cached.is_file():
        raise CheckpointError(f"{value} is an official pretrained model that is not downloaded yet "
                              f"(looked in {cached.parent}); run `cyclegan models download {value}` first")
    return cached


def save_generator(path: str | os.PathLike, generator: torch.nn.Module, architecture: dict,
                   metadata: dict[str, str] | None = None) -> Path:
    """Write one generator as a single-generator checkpoint (`checkpoint.save_single_generator`),
    which `checkpoint.load_generator` reads; its model config is built from `architecture` (as
    from `reference_format.infer_generator_architecture`), `metadata` records its provenance.
    """
    known = set(ModelConfig.__dataclass_fields__)
    config = ModelConfig(**{key: value for key, value in architecture.items() if key in known})
    return ckpt.save_single_generator(path, generator, config, metadata)


def convert_reference_generator(source: str | os.PathLike, dest: str | os.PathLike,
                                metadata: dict[str, str] | None = None) -> dict:
    """Convert an official `*.pth` generator into a single-generator safetensors file.

    The architecture is inferred from the keys; old InstanceNorm running statistics and
    `module.` prefixes are dropped (`reference_format.clean_reference_state_dict`). Returns the
    architecture. Raises CheckpointError for anything that is not a generator state dict.
    """
    source, dest = Path(source), Path(dest)
    if dest.suffix != ".safetensors":
        raise CheckpointError(f"the converted model must be a .safetensors file, got {dest}")
    if not source.is_file():
        raise CheckpointError(f"{source} does not exist")
    generator, inferred = load_reference_generator(source)
    architecture = {key: inferred[key] for key in _ARCHITECTURE}
    provenance = {"source": source.name, "source_sha256": sha256_of(source), **(metadata or {})}
    save_generator(dest, generator, architecture, provenance)
    return architecture


def download_model(name: str, cache: str | os.PathLike | None = None, base_url: str | None = None,
                   sha256: str | None = None, progress: bool = True) -> Path:
    """Download and convert official model `name`; return its safetensors file in the cache.

    A model already converted is returned without network access (when a hash is given or
    known, only if it was converted from a file with that hash). The `.pth` is downloaded
    beside it (an interrupted download resumes on the next call) and removed once converted.
    Raises CheckpointError for unknown names or a download that is not a generator,
    DownloadError for network, HTTP, size and checksum failures.
    """
    entry = get_model(name)
    sha256 = (sha256 or KNOWN_SHA256.get(entry.name) or "").lower() or None
    dest = cached_model_path(entry.name, cache)
    if dest.is_file() and _is_converted(dest, sha256):
        return dest
    url = entry.url(resolve_base_url(base_url))
    original = download_file(url, dest.with_suffix(".pth"), sha256=sha256, progress=progress)
    try:
        convert_reference_generator(original, dest, {"source": url, "model": entry.name})
    except CheckpointError as error:
        original.unlink(missing_ok=True)
        raise CheckpointError(f"the file downloaded from {url} is not a usable generator ({error}); it was "
                              "deleted. Check --base-url / $" + BASE_URL_ENV + " and run the command again") from error
    original.unlink()
    return dest


def _is_converted(path: Path, sha256: str | None) -> bool:
    try:
        metadata = ckpt.read_metadata(path)
    except CheckpointError:
        return False  # damaged: download and convert again
    if metadata.get("format") != ckpt.FORMAT or metadata.get("networks") != ckpt.SINGLE_GENERATOR:
        return False
    return sha256 is None or metadata.get("source_sha256") == sha256


__all__ = ["OFFICIAL_MODELS", "KNOWN_SHA256", "PretrainedModel", "get_model", "cache_dir", "cached_model_path",
           "resolve_model_argument", "save_generator", "convert_reference_generator", "download_model"]
