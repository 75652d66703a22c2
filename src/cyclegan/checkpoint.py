"""Our checkpoint file format: weights in safetensors with the model config inside, training
state beside them. Training writes it; inference, export, the zoo, evaluation and serving read
it through this module alone, without importing the trainer.

Layout of a run's `checkpoints/` folder::

    iter_00001200.safetensors   weights of G_AB, G_BA, D_A, D_B ("G_AB.model.1.weight", ...);
                                metadata: format, model config (JSON), networks, epoch,
                                iteration, the cyclegan version that wrote it
    iter_00001200.state.pt      optimisers, schedules, image pools, RNG states, position in epoch
                                (plain tensors and numbers: loads with torch.load(weights_only=True))
    latest.json                 {"weights": "iter_00001200.safetensors", "state": ...}
    best.json                   the checkpoint with the best validation score, when the run tracks
                                one: latest.json's keys plus "select_by" and "score"

Each file is written to a temporary name and renamed, and `latest.json` is replaced only after
both files of a checkpoint are complete, so a crash at any moment leaves the previous
checkpoint as "latest".

A pix2pix checkpoint holds G_AB and D. A file holding a single generator (`networks` = "G_AB":
an official model converted by the zoo) has no direction of its own: `load_generator` applies
it whatever direction is asked, and its `GeneratorSpec.direction` is None.
"""
from __future__ import annotations

import errno
import importlib.metadata
import json
import pickle
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from cyclegan import __version__
from cyclegan.config import PICKS, ModelConfig
from cyclegan.directions import Direction
from cyclegan.errors import CheckpointError
from cyclegan.fileio import write_atomic, write_text_atomic
from cyclegan.networks import build_generator_from_config, generator_channels, size_multiple
from cyclegan.reference_format import load_reference_generator

FORMAT = "cyclegan/1"
LATEST = "latest.json"
BEST = "best.json"
WEIGHTS_SUFFIX = ".safetensors"
# The training state written beside a checkpoint's weights ("iter_00001200.state.pt").
STATE_SUFFIX = ".state.pt"
# The `networks` metadata of a file holding one generator without a direction of its own.
SINGLE_GENERATOR = "G_AB"
# The weights of a Hub folder (`cyclegan export --hub-folder`), beside its config.json and README.md.
HUB_WEIGHTS = "model.safetensors"
REFERENCE_SUFFIXES = (".pth", ".pt")


def package_version() -> str:
    """The installed cyclegan's version, recorded in every file written, named in load errors."""
    try:
        return importlib.metadata.version("cyclegan")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return __version__


@dataclass(frozen=True)
class GeneratorSpec:
    """What a loaded generator is: its architecture, where it came from, how it runs.

    `direction` is "AtoB" or "BtoA" for a generator taken from a checkpoint of a run (a pix2pix
    run has AtoB only), and None for a file holding a single generator (an official `.pth`, a
    converted zoo model, an ONNX export), which is used whatever direction is asked. `ngf` and
    `norm` are None where the file does not record them (an ONNX export may not). For an ONNX
    export, `backend` is "onnxruntime", `providers` its execution providers and
    `exported_direction` the direction it was exported from, when known.
    """

    net_g: str
    input_nc: int
    output_nc: int
    ngf: int | None
    norm: str | None
    source: str
    direction: str | None = None
    use_dropout: bool = False
    backend: str = "torch"
    providers: tuple[str, ...] = ()
    exported_direction: str | None = None
    # The intensity windows (--window-a/--window-b, as given) of this generator's input and output
    # domains, and the slice axis of volumes; None where the run gave none (or the file does not say).
    input_window: str | None = None
    output_window: str | None = None
    slice_axis: int | None = None

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (the caller pads)."""
        return size_multiple(self.net_g)

    def describe(self) -> str:
        """One line for people: "resnet_9blocks 3->3 channels, ngf 64, instance norm, from FILE"."""
        ngf = "?" if self.ngf is None else self.ngf
        norm = "?" if self.norm is None else self.norm
        backend = f" (onnxruntime, {', '.join(self.providers)})" if self.backend == "onnxruntime" else ""
        return (f"{self.net_g} {self.input_nc}->{self.output_nc} channels, ngf {ngf}, {norm} norm, "
                f"from {self.source}{backend}")


@dataclass
class CheckpointFiles:
    weights: Path
    state: Path | None


def checkpoint_stem(iteration: int) -> str:
    return f"iter_{iteration:08d}"


def checkpoint_files(folder: Path, iteration: int, with_state: bool = True) -> CheckpointFiles:
    """The files of the checkpoint at `iteration` in `folder`: the one rule naming them."""
    weights = Path(folder) / f"{checkpoint_stem(iteration)}{WEIGHTS_SUFFIX}"
    return CheckpointFiles(weights, state_path(weights) if with_state else None)


def state_path(weights: Path) -> Path:
    """The training state's file beside `weights` (which need not exist)."""
    return weights.with_name(weights.name.removesuffix(WEIGHTS_SUFFIX) + STATE_SUFFIX)


def save_checkpoint(folder: Path, modules: dict[str, torch.nn.Module], model_config: ModelConfig,
                    training_state: dict | None, *, epoch: int, iteration: int, keep_last: int = 0) -> CheckpointFiles:
    """Write one checkpoint atomically, point latest.json at it, then prune old ones."""
    folder = Path(folder)
    stem = checkpoint_stem(iteration)
    files = checkpoint_files(folder, iteration, with_state=training_state is not None)
    try:
        _write_checkpoint(folder, modules, model_config, training_state, epoch, iteration, files.weights, files.state)
    except OSError as error:
        previous = read_latest(folder) if folder.is_dir() else None
        full = " (the disk is full)" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        kept = (f"the previous checkpoint {previous.weights.name} is intact" if previous
                else "there is no earlier checkpoint")
        raise CheckpointError(f"cannot write checkpoint {stem} in {folder}: {error.strerror or error}{full}; "
                              f"{kept}") from error
    if keep_last > 0:
        prune_checkpoints(folder, keep_last)
    return files


def _write_checkpoint(folder: Path, modules, model_config, training_state, epoch, iteration, weights_path,
                      state_path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a writer that was killed mid-write
        stale.unlink(missing_ok=True)

    metadata = {**format_metadata(model_config, list(modules)), "epoch": str(epoch), "iteration": str(iteration)}
    write_atomic(weights_path, lambda temporary: save_file(_tensors(modules), str(temporary), metadata=metadata))
    if state_path is not None:
        write_atomic(state_path, lambda temporary: torch.save(training_state, temporary))
    pointer = {"weights": weights_path.name, "state": state_path.name if state_path else None,
               "epoch": epoch, "iteration": iteration}
    write_text_atomic(folder / LATEST, json.dumps(pointer, indent=2) + "\n")


def format_metadata(model_config: ModelConfig, networks: list[str]) -> dict[str, str]:
    """The safetensors metadata that makes a weights file one of ours: format, model config,
    the networks it holds and the version that wrote it."""
    return {"format": FORMAT, "model_config": json.dumps(asdict(model_config)), "networks": ",".join(networks),
            "cyclegan_version": package_version()}


def _tensors(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value.detach().cpu().contiguous()
            for name, module in modules.items() for key, value in module.state_dict().items()}


def save_single_generator(path: str | Path, generator: torch.nn.Module, model_config: ModelConfig,
                          metadata: dict[str, str] | None = None) -> Path:
    """Write one generator without a direction of its own (a converted official model), atomically.

    `metadata` (provenance: source, sha256, ...) is stored beside the format's own keys.
    """
    path = Path(path)
    header = {**(metadata or {}), **format_metadata(model_config, [SINGLE_GENERATOR])}
    write_atomic(path, lambda temporary: save_file(_tensors({SINGLE_GENERATOR: generator}), str(temporary),
                                                   metadata=header))
    return path


def prune_checkpoints(folder: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints; never one that latest.json or best.json names."""
    named = {files.weights for files in (read_latest(folder), read_pointer(folder / BEST)) if files is not None}
    weights = sorted(folder.glob(f"iter_*{WEIGHTS_SUFFIX}"))
    removed = []
    for path in weights[:-keep_last]:
        if path in named:
            continue
        for companion in (path, state_path(path)):
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
        pointer = json.loads(pointer_path.read_text(encoding="utf-8"))
        if not isinstance(pointer["weights"], str) or not isinstance(pointer.get("state") or "", str):
            raise TypeError("the weights and state entries must be file names")
    except (OSError, ValueError, KeyError, TypeError) as error:
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
    if path.is_dir() and not (path / "checkpoints").is_dir() and not (path / LATEST).exists() \
            and (path / HUB_WEIGHTS).is_file():
        if pick == "best":
            raise CheckpointError(f"{path} is a Hub folder, which holds one model; leave out --pick best")
        return CheckpointFiles(path / HUB_WEIGHTS, None)
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
    state = state_path(path)
    return CheckpointFiles(path, state if path.suffix == WEIGHTS_SUFFIX and state.exists() else None)


def read_metadata(weights_path: Path) -> dict:
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights_path} is not a readable safetensors checkpoint ({error})") from error


def load_model_config(weights_path: Path) -> ModelConfig:
    """The architecture saved in one of our weights files; CheckpointError for a foreign file, or
    for settings this version does not know (naming them and the version that wrote the file)."""
    return model_config_of(weights_path, read_metadata(weights_path))


def model_config_of(weights_path: Path, metadata: dict) -> ModelConfig:
    if metadata.get("format") != FORMAT or "model_config" not in metadata:
        raise CheckpointError(f"{weights_path} has no cyclegan model config in its metadata; it was not written "
                              "by this project (for official *.pth generators use them directly or convert them)")
    try:
        values = json.loads(metadata["model_config"])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{weights_path}: the model config in its metadata is damaged ({error})") from error
    if not isinstance(values, dict):
        raise CheckpointError(f"{weights_path}: the model config in its metadata is not a JSON object")
    unknown = sorted(set(values) - set(ModelConfig.__dataclass_fields__))
    if unknown:
        writer = metadata.get("cyclegan_version")
        written_by = f"cyclegan {writer}" if writer else "an unknown (older or newer) version"
        raise CheckpointError(f"{weights_path} has model settings this version does not know "
                              f"({', '.join(unknown)}): written by {written_by}, this is cyclegan "
                              f"{package_version()}; upgrade cyclegan (or use the version that wrote it)")
    return ModelConfig(**values)


def read_tensors(weights_path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of a weights file, by its key ("G_AB.model.1.weight")."""
    try:
        return load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights_path} cannot be read ({error}); it may be truncated or damaged") from error


def network_state(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The state dict of network `name` ("D_A") among a file's tensors, its prefix taken off."""
    prefix = f"{name}."
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}


def load_weights(weights_path: Path, modules: dict[str, torch.nn.Module], device: torch.device | str = "cpu") -> None:
    """Load the named networks' weights, strictly: every key present and of the right shape."""
    tensors = read_tensors(weights_path, device)
    for name, module in modules.items():
        state = network_state(tensors, name)
        if not state:
            raise CheckpointError(f"{weights_path} holds no weights for network {name}")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{weights_path}: weights of {name} do not fit the model: {error}") from error


def load_training_state(state_path: Path) -> dict:
    """A checkpoint's training state, loaded with `weights_only=True`: tensors and plain values,
    never objects whose unpickling could run code."""
    try:
        return torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files, with its own advice
        raise CheckpointError(f"training state {state_path} cannot be read: {_unreadable_state(state_path, error)}; "
                              f"resume from an earlier checkpoint by naming it in {LATEST}") from error


def _unreadable_state(state_path: Path, error: Exception) -> str:
    """What is wrong with a training state file that torch.load refused, in words: torch's own
    messages name its internals and advise loading untrusted files without `weights_only`."""
    try:
        size = Path(state_path).stat().st_size
    except OSError as stat_error:
        return stat_error.strerror or type(stat_error).__name__
    if size == 0:
        return "the file is empty"
    if not zipfile.is_zipfile(state_path):
        return "it is truncated or damaged (not a complete PyTorch file)"
    if isinstance(error, pickle.UnpicklingError):
        return "it holds objects other than tensors and plain values (not loaded: unpickling them could run code)"
    return f"it is damaged ({type(error).__name__})"


def is_reference_file(path: str | Path) -> bool:
    """A generator saved by the reference implementation (`*.pth`): weights without architecture."""
    path = Path(path)
    return path.suffix in REFERENCE_SUFFIXES and path.is_file()


def generator_directions(path: str | Path) -> tuple[Direction, ...]:
    """The directions whose generator `path` holds, as trained: (AtoB, BtoA) for a CycleGAN
    checkpoint, (AtoB,) for a pix2pix one, and () for a file holding a single generator without
    a direction (an official `.pth`, a converted zoo model), which `load_generator` applies whatever
    the direction asked. Reads metadata only."""
    if is_reference_file(path):
        return ()
    return held_directions(read_metadata(find_checkpoint(path).weights))


def held_directions(metadata: dict) -> tuple[Direction, ...]:
    """The directions whose generator a weights file with `metadata` holds; () for a single generator."""
    networks = _networks(metadata)
    if networks == [SINGLE_GENERATOR]:
        return ()
    return tuple(direction for direction in Direction if networks is None or direction.generator in networks)


def _networks(metadata: dict) -> list[str] | None:
    """The networks a weights file names (None if it does not say)."""
    return metadata["networks"].split(",") if metadata.get("networks") else None


def load_generator(path: str | Path, direction: str = "AtoB") -> tuple[torch.nn.Module, GeneratorSpec]:
    """The generator for `direction` (in eval mode) and its description.

    `path` is a run folder, its checkpoints/ folder, one of our weights files, or an official
    reference `.pth`. A file holding a single generator (`.pth`, converted zoo model) gives that
    generator whatever the direction, with `spec.direction` None. Raises CheckpointError for a
    file that cannot be read or has no generator for `direction` (BtoA of a pix2pix run).
    """
    direction = Direction.parse(direction)
    if is_reference_file(path):
        return load_reference(path)
    weights = find_checkpoint(path).weights
    return generator_from_file(weights, read_metadata(weights), direction)


def load_reference(path: str | Path) -> tuple[torch.nn.Module, GeneratorSpec]:
    """An official reference `.pth` generator, which has no direction of its own."""
    generator, architecture = load_reference_generator(path)
    return generator, GeneratorSpec(source=str(path), direction=None, **architecture)


def generator_from_file(weights: Path, metadata: dict, direction: Direction | str) -> tuple[torch.nn.Module,
                                                                                           GeneratorSpec]:
    """The generator for `direction` of the weights file `weights`, whose `metadata` the caller
    has read (`read_metadata`); see `load_generator`."""
    direction = Direction.parse(direction)
    config = model_config_of(weights, metadata)
    networks = _networks(metadata)
    if networks == [SINGLE_GENERATOR]:
        name, applied = SINGLE_GENERATOR, None
    else:
        name, applied = direction.generator, direction
        if networks is not None and name not in networks:
            held = held_directions(metadata)
            raise CheckpointError(f"{weights} holds no {direction} generator ({name}), only "
                                  f"{', '.join(networks)}; use direction {' or '.join(held) or 'AtoB'}")
    input_nc, output_nc = generator_channels(config, applied or Direction.A_TO_B)
    generator = build_generator_from_config(config, applied or Direction.A_TO_B)
    load_weights(weights, {name: generator})
    windows = (config.window_b, config.window_a) if applied is Direction.B_TO_A else (config.window_a, config.window_b)
    spec = GeneratorSpec(config.net_g, input_nc, output_nc, config.ngf, config.norm, str(weights),
                         None if applied is None else applied.value, config.use_dropout, input_window=windows[0],
                         output_window=windows[1], slice_axis=config.slice_axis)
    return generator.eval(), spec
