"""What a user types for a model, resolved once: the one place where a value becomes a model.

A value is a downloaded official model's name (`horse2zebra`, see `cyclegan.zoo`), a run folder
or its checkpoints/ folder (with `pick` "latest" or "best"), a Hub folder (`cyclegan export
--hub-folder`) or its name on the Hub (`hf://owner/name`, see `cyclegan.hub`), one of our
`.safetensors` files, an official reference `.pth` or an ONNX export. `resolve` finds the weights
and reads their metadata once; the `ResolvedModel` it returns builds each direction's generator
without reading again. (It lives above `cyclegan.checkpoint` and `cyclegan.zoo` because it needs
both, and the zoo writes checkpoints.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cyclegan import checkpoint as ckpt
from cyclegan.config import BACKENDS, PICKS, ModelConfig
from cyclegan.directions import Direction
from cyclegan.errors import CheckpointError, ConfigError
from cyclegan.hub import download_hub_model, is_hub_name, parse_hub_name
from cyclegan.zoo import resolve_model_argument

ONNX_SUFFIX = ".onnx"


@dataclass(frozen=True)
class ResolvedModel:
    """A model file found and described: everything known before any weight is loaded.

    `directions` are those the file holds as trained (AtoB and BtoA for a CycleGAN run, AtoB for
    pix2pix); a file holding a single generator (reference `.pth`, converted zoo model, `.onnx`)
    holds none of its own and is applied whatever direction is asked. `config` and `metadata` are
    those of our safetensors files (None and {} for `.pth` and `.onnx`).
    """

    value: str
    weights: Path
    backend: str
    directions: tuple[Direction, ...]
    is_reference: bool = False
    is_onnx: bool = False
    config: ModelConfig | None = None
    metadata: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_single_generator(self) -> bool:
        return not self.directions

    @property
    def available_directions(self) -> tuple[Direction, ...]:
        """The directions it can be asked for: a single generator is served as AtoB."""
        return self.directions or (Direction.A_TO_B,)

    def load_generator(self, direction: Direction | str = Direction.A_TO_B, device: str = "auto"
                       ) -> tuple[torch.nn.Module, ckpt.GeneratorSpec]:
        """The generator for `direction` (in eval mode) and its description; `device` chooses the
        execution providers of an ONNX model (torch generators are moved by their caller)."""
        if self.is_onnx:
            from cyclegan.inference.onnx import load_onnx_generator

            return load_onnx_generator(self.weights, device)
        if self.is_reference:
            return ckpt.load_reference(self.weights)
        return ckpt.generator_from_file(self.weights, self.metadata, direction)

    def check_directions(self, wanted: list[Direction]) -> None:
        """ConfigError naming the file when it holds no generator for one of `wanted`."""
        missing = [direction for direction in wanted if direction not in self.available_directions]
        if missing:
            what = ("holds a single generator, which is served as AtoB" if self.is_single_generator
                    else f"holds no {missing[0]} generator, only {', '.join(self.directions)}")
            leave_out = " or leave the direction out" if Direction.A_TO_B in self.available_directions else ""
            raise ConfigError(f"{self.weights} {what}; ask for {' and '.join(self.available_directions)}{leave_out}")


def resolve(value: str | os.PathLike, pick: str = "latest", backend: str = "auto",
            cache: str | os.PathLike | None = None) -> ResolvedModel:
    """The model that `value` names (see the module's docstring); `pick` "best" takes a run's
    best-scoring checkpoint, `backend` "auto" runs `.onnx` files with onnxruntime, the rest with
    torch, and `cache` is the folder of downloaded models (default: `cyclegan.zoo.cache_dir()`).
    Raises CheckpointError for what cannot be found or read, ConfigError for a wrong choice."""
    if pick not in PICKS:
        raise CheckpointError(f"unknown checkpoint choice {pick!r}; choose {' or '.join(PICKS)}")
    if is_hub_name(value) and pick == "best":
        parse_hub_name(str(value))  # a malformed name is said first
        raise CheckpointError(f"{value} is a Hub model, which holds one model; leave out --pick best")
    path = download_hub_model(str(value)) if is_hub_name(value) else resolve_model_argument(value, cache)
    is_onnx = path.suffix.lower() == ONNX_SUFFIX
    backend = _backend(path, backend, is_onnx)
    if is_onnx or ckpt.is_reference_file(path):
        if pick == "best":
            raise CheckpointError(f"--pick best needs a run folder, not the file {path}")
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        return ResolvedModel(str(value), path, backend, (), is_reference=not is_onnx, is_onnx=is_onnx)
    weights = ckpt.find_checkpoint(path, pick).weights
    metadata = ckpt.read_metadata(weights)
    config = ckpt.model_config_of(weights, metadata)
    return ResolvedModel(str(value), weights, backend, ckpt.held_directions(metadata), config=config,
                         metadata=metadata)


def _backend(path: Path, backend: str, is_onnx: bool) -> str:
    """"torch" or "onnxruntime" for `path`: "auto" picks onnxruntime for `.onnx` files."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    if backend == "auto":
        return "onnxruntime" if is_onnx else "torch"
    if backend == "torch" and is_onnx:
        raise ConfigError(f"{path} is an ONNX model, which runs with --backend onnxruntime (or auto)")
    if backend == "onnxruntime" and not is_onnx:
        raise ConfigError(f"--backend onnxruntime needs an .onnx file, got {path}; export one with "
                          f"`cyclegan export {path} --onnx model.onnx`")
    return backend


__all__ = ["ResolvedModel", "resolve"]
