"""Checkpoints: weights in safetensors with the model config inside, training state beside them.

Layout of a run's `checkpoints/` folder::

    iter_00001200.safetensors   weights of G_AB, G_BA, D_A, D_B ("G_AB.model.1.weight", ...);
                                metadata: format, model config (JSON), epoch, iteration
    iter_00001200.state.pt      optimisers, schedules, image pools, RNG states, position in epoch
                                (plain tensors and numbers: loads with torch.load(weights_only=True))
    latest.json                 {"weights": "iter_00001200.safetensors", "state": ...}
    best.json                   the checkpoint with the best validation score, when the run tracks
                                one: latest.json's keys plus "select_by" and "score"

Each file is written to a temporary name and renamed, and `latest.json` is replaced only after
both files of a checkpoint are complete, so a crash at any moment leaves the previous
checkpoint as "latest".
"""
from __future__ import annotations

import errno
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cyclegan.config import PICKS, ModelConfig
from cyclegan.errors import CheckpointError
from cyclegan.fileio import write_atomic, write_text_atomic

FORMAT = "cyclegan/1"
LATEST = "latest.json"
BEST = "best.json"


@dataclass
class CheckpointFiles:
    weights: Path
    state: Path | None


def checkpoint_stem(iteration: int) -> str:
    return f"iter_{iteration:08d}"


def save_checkpoint(folder: Path, modules: dict[str, torch.nn.Module], model_config: ModelConfig,
                    training_state: dict | None, *, epoch: int, iteration: int, keep_last: int = 0) -> CheckpointFiles:
    """Write one checkpoint atomically, point latest.json at it, then prune old ones."""
    folder = Path(folder)
    stem = checkpoint_stem(iteration)
    weights_path = folder / f"{stem}.safetensors"
    state_path = folder / f"{stem}.state.pt" if training_state is not None else None
    try:
        _write_checkpoint(folder, modules, model_config, training_state, epoch, iteration, weights_path, state_path)
    except OSError as error:
        previous = read_latest(folder) if folder.is_dir() else None
        full = " (the disk is full)" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        kept = (f"the previous checkpoint {previous.weights.name} is intact" if previous
                else "there is no earlier checkpoint")
        raise CheckpointError(f"cannot write checkpoint {stem} in {folder}: {error.strerror or error}{full}; "
                              f"{kept}") from error
    if keep_last > 0:
        prune_checkpoints(folder, keep_last)
    return CheckpointFiles(weights_path, state_path)


def _write_checkpoint(folder: Path, modules, model_config, training_state, epoch, iteration, weights_path,
                      state_path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a writer that was killed mid-write
        stale.unlink(missing_ok=True)

    tensors = {f"{name}.{key}": value.detach().cpu().contiguous()
               for name, module in modules.items() for key, value in module.state_dict().items()}
    metadata = {"format": FORMAT, "model_config": json.dumps(asdict(model_config)),
                "networks": ",".join(modules), "epoch": str(epoch), "iteration": str(iteration)}
    write_atomic(weights_path, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))
    if state_path is not None:
        write_atomic(state_path, lambda temporary: torch.save(training_state, temporary))
    pointer = {"weights": weights_path.name, "state": state_path.name if state_path else None,
               "epoch": epoch, "iteration": iteration}
    write_text_atomic(folder / LATEST, json.dumps(pointer, indent=2) + "\n")


def prune_checkpoints(folder: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints; never one that latest.json or best.json names."""
    named = {files.weights for files in (read_latest(folder), read_pointer(folder / BEST)) if files is not None}
    weights = sorted(folder.glob("iter_*.safetensors"))
    removed = []
    for path in weights[:-keep_last]:
        if path in named:
            continue
        for companion in (path, path.with_suffix(".state.pt")):
            if companion.exists():
                companion.unlink()
                removed.append(companion)
    return removed


def read_latest(folder: Path) -> CheckpointFiles | None:
    return read_pointer(Path(folder) / LATEST)


def read_pointer(pointer_path: Path) -> CheckpointFiles | None:
    """The checkpoint that latest.json or best.json names; None when the file does not exist."""
    pointer = read_pointer_record(pointer_path)
    if pointer is None:
        return None
    state = pointer_path.parent / pointer["state"] if pointer.get("state") else None
    return CheckpointFiles(pointer_path.parent / pointer["weights"], state)


def read_pointer_record(pointer_path: Path) -> dict | None:
    """The contents of latest.json or best.json (at least "weights" and "state"); None when the
    file does not exist."""
    pointer_path = Path(pointer_path)
    if not pointer_path.exists():
        return None
    try:
        pointer = json.loads(pointer_path.read_text())
        if not isinstance(pointer["weights"], str) or not isinstance(pointer.get("state") or "", str):
            raise TypeError("the weights and state entries must be file names")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{pointer_path} is damaged ({error}); pass one of the iter_*.safetensors "
                              "files in that folder explicitly") from error
    return pointer


def write_best(folder: Path, files: CheckpointFiles, record: dict) -> None:
    """Point best.json at `files`, with `record` (epoch, iteration, select_by, score) beside them."""
    pointer = {"weights": files.weights.name, "state": files.state.name if files.state else None, **record}
    write_text_atomic(Path(folder) / BEST, json.dumps(pointer, indent=2) + "\n")


def find_checkpoint(path: str | Path, pick: str = "latest") -> CheckpointFiles:
    """Resolve what a user typed: a run folder or its checkpoints/ folder (its latest checkpoint,
    or with `pick` "best" the one with the best validation score), or a weights file."""
    path = Path(path)
    if pick not in PICKS:
        raise CheckpointError(f"unknown checkpoint choice {pick!r}; choose {' or '.join(PICKS)}")
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        pointer = folder / (BEST if pick == "best" else LATEST)
        files = read_pointer(pointer)
        if files is None and pick == "best":
            raise CheckpointError(f"{path} has no best checkpoint (no {BEST}: a run keeps one only when it scores "
                                  "itself on validation images); train with valA/ and valB/ or --val-fraction, "
                                  "or use --pick latest")
        if files is None:
            raise CheckpointError(f"no checkpoint in {path}: expected {pointer}; "
                                  "a run writes one at the end of each epoch (or use --max-iters / --save-every)")
        if not files.weights.exists():
            raise CheckpointError(f"{pointer} names {files.weights.name}, which is missing")
        return files
    if pick == "best":
        raise CheckpointError(f"--pick best needs a run folder, not the file {path}")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    state = path.with_name(path.name.replace(".safetensors", ".state.pt"))
    return CheckpointFiles(path, state if path.suffix == ".safetensors" and state.exists() else None)


def read_metadata(weights_path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights_path} is not a readable safetensors checkpoint ({error})") from error


def load_model_config(weights_path: Path) -> ModelConfig:
    metadata = read_metadata(weights_path)
    if metadata.get("format") != FORMAT or "model_config" not in metadata:
        raise CheckpointError(f"{weights_path} has no cyclegan model config in its metadata; it was not written "
                              "by this project (for official *.pth generators use them directly or convert them)")
    values = json.loads(metadata["model_config"])
    known = set(ModelConfig.__dataclass_fields__)
    return ModelConfig(**{key: value for key, value in values.items() if key in known})


def load_weights(weights_path: Path, modules: dict[str, torch.nn.Module], device: torch.device | str = "cpu") -> None:
    """Load the named networks' weights, strictly: every key present and of the right shape."""
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights_path} cannot be read ({error}); it may be truncated or damaged") from error
    for name, module in modules.items():
        prefix = f"{name}."
        state = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        if not state:
            raise CheckpointError(f"{weights_path} holds no weights for network {name}")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{weights_path}: weights of {name} do not fit the model: {error}") from error


def load_training_state(state_path: Path) -> dict:
    try:
        return torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        raise CheckpointError(f"training state {state_path} cannot be read ({error})") from error
