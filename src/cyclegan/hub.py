"""Models on the Hugging Face Hub: `hf://owner/name` (or `hf://owner/name@revision`) wherever a
model is accepted.

The repository is a folder written by `cyclegan export RUN --hub-folder DIR` (config.json,
model.safetensors, README.md). It is downloaded once with `huggingface_hub.snapshot_download` into
`hub/` of the cache root, its weights checked against the sha256 that its config.json records,
then loaded like a local folder. With HF_HUB_OFFLINE=1 the cached copy is used; without one, that is said in one line.
HF_ENDPOINT points the client at another Hub (a mirror, a test server). Needs the `hub` extra.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from cyclegan.errors import CheckpointError, ConfigError
from cyclegan.fileio import cache_root

HF_PREFIX = "hf://"
INSTALL = "pip install 'cyclegan[hub]'"
# The license field of an exported model card unless told: the weights' terms follow from the data
# they learnt from, which only the exporter knows.
DEFAULT_LICENSE = "other"


def is_hub_name(value: str | os.PathLike) -> bool:
    return str(value).startswith(HF_PREFIX)


def parse_hub_name(value: str) -> tuple[str, str | None]:
    """(repo id, revision or None) of "hf://owner/name[@revision]"; ConfigError for another shape."""
    name = str(value)[len(HF_PREFIX):]
    repo_id, _, revision = name.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or (revision == "" and "@" in name):
        raise ConfigError(f"{value} is not a Hub model name; write hf://owner/name (or hf://owner/name@revision)")
    return repo_id, revision or None


def pinned_hub_name(value: str, folder: Path) -> str:
    """hf://owner/name@<commit> of the snapshot `folder` that `value` was downloaded to, so that a
    record names exactly the weights used even after the model's main branch moves on; `value`
    unchanged where the folder is not a client snapshot (whose name is its commit)."""
    repo_id, _revision = parse_hub_name(value)
    commit = Path(folder).name
    if Path(folder).parent.name != "snapshots" or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return value
    return f"{HF_PREFIX}{repo_id}@{commit}"


def hub_cache_dir() -> Path:
    """Where Hub models are kept: `hub/` in the cache root ($CYCLEGAN_CACHE, else ~/.cache/cyclegan)."""
    return cache_root() / "hub"


def is_offline() -> bool:
    """HF_HUB_OFFLINE as set now (the client reads it once, when it is imported)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_hub_model(value: str) -> Path:
    """The local folder of the Hub model `value` names: downloaded the first time, then the cached
    copy. Raises CheckpointError, in one line, for what cannot be had."""
    repo_id, revision = parse_hub_name(value)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
    except ImportError as error:
        raise ConfigError(f"{value} is a Hub model, which needs huggingface_hub: {INSTALL}") from error
    offline = is_offline()
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=str(hub_cache_dir()),
                                   local_files_only=offline, endpoint=os.environ.get("HF_ENDPOINT") or None)
    except GatedRepoError as error:
        raise CheckpointError(f"{value} is gated on the Hub: accept its terms there and log in with "
                              "`hf auth login`") from error
    except RepositoryNotFoundError as error:
        raise CheckpointError(f"{value}: no such model on the Hub (or it is private: log in with "
                              "`hf auth login`)") from error
    except RevisionNotFoundError as error:
        raise CheckpointError(f"{value}: the Hub model has no revision {revision!r}") from error
    except LocalEntryNotFoundError as error:
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise CheckpointError(f"{value} is not in the cache ({hub_cache_dir()}) and {why}; download it once "
                              "while online") from error
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot download {value} from the Hub: {reason}") from error
    from cyclegan.checkpoint import HUB_WEIGHTS

    folder = Path(folder)
    if not (folder / HUB_WEIGHTS).is_file():
        raise CheckpointError(f"{value} holds no {HUB_WEIGHTS}, so it is not a model written by `cyclegan export "
                              "--hub-folder`")
    _verify(value, folder, folder / HUB_WEIGHTS)
    return folder


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(value: str, folder: Path, weights: Path) -> None:
    """CheckpointError unless the weights hash to what the folder's config.json records."""
    try:
        expected = json.loads((folder / "config.json").read_text()).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        expected = None
    if expected is not None and sha256_of(weights) != expected:
        raise CheckpointError(f"{value}: {weights} does not match the sha256 that its config.json records (a damaged "
                              f"download?); delete {folder.parents[1]} and load it again")
