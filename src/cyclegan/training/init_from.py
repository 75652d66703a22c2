"""`cyclegan train --init-from MODEL`: a new run whose networks start from another model's weights.

Unlike `--resume`, which continues one run with its optimisers, schedules and image pools, this
starts a new run (iteration 0, fresh optimisers and schedule) from any model `resolve` accepts: a
zoo name, a run folder, a `.safetensors` file, a reference `.pth` or an `hf://` folder. Generators
are loaded strictly: a layer that is missing, extra or of another shape is named in the error.
Discriminators come from the same file where it holds them (a run's checkpoint), else they start
fresh; a file holding a single generator (a reference `.pth`, a zoo model) gives G_AB only.
"""
from __future__ import annotations

import torch

from cyclegan import checkpoint as ckpt
from cyclegan.directions import Direction
from cyclegan.errors import CheckpointError, ConfigError

SHOWN_LAYERS = 4  # mismatched layers named in an error, per kind


def initialise_from(model: torch.nn.Module, value: str, is_pix2pix: bool) -> list[str]:
    """Load the networks of `model` from the model that `value` names; returns what was loaded
    and what starts fresh, one line each, for the user."""
    from cyclegan.inference.resolve import resolve

    resolved = resolve(value)
    if resolved.is_onnx:
        raise ConfigError(f"--init-from needs PyTorch weights, and {resolved.weights} is an ONNX export; "
                          "give the run folder or .safetensors file it was exported from")
    networks = model.networks()
    wanted = (Direction.A_TO_B,) if is_pix2pix else tuple(Direction)
    loaded, fresh = [], []
    for direction in wanted:
        if resolved.is_single_generator and direction is not Direction.A_TO_B:
            fresh.append(direction.generator)
            continue
        if not resolved.is_single_generator and direction not in resolved.directions:
            fresh.append(direction.generator)
            continue
        source, spec = resolved.load_generator(direction)
        _load_strictly(networks[direction.generator], source.state_dict(), direction.generator, resolved.weights,
                       spec.describe())
        loaded.append(direction.generator)
    discriminators = [name for name in networks if name.startswith("D")]
    held = set(resolved.metadata.get("networks", "").split(","))
    if not resolved.is_single_generator and set(discriminators) <= held:
        ckpt.load_weights(resolved.weights, {name: networks[name] for name in discriminators})
        loaded += discriminators
        discriminator_note = ""
    else:
        fresh += discriminators
        discriminator_note = " (the file holds no discriminators)"
    lines = [f"init from:   {resolved.weights}: {', '.join(loaded)}; optimisers and schedule start new"]
    if fresh:
        lines.append(f"             trained from scratch: {', '.join(fresh)}{discriminator_note}")
    return lines


def _load_strictly(target: torch.nn.Module, state: dict[str, torch.Tensor], name: str, source, described: str) -> None:
    """Copy `state` into `target`, or CheckpointError naming the layers that do not fit."""
    own = target.state_dict()
    missing = [key for key in own if key not in state]
    extra = [key for key in state if key not in own]
    reshaped = [f"{key} ({_shape(state[key])} there, {_shape(own[key])} here)"
                for key in own if key in state and state[key].shape != own[key].shape]
    if missing or extra or reshaped:
        problems = [f"{label}: {', '.join(keys[:SHOWN_LAYERS])}" + (f" and {len(keys) - SHOWN_LAYERS} more"
                                                                   if len(keys) > SHOWN_LAYERS else "")
                    for label, keys in (("shapes differ", reshaped), ("missing there", missing),
                                        ("not in this model", extra)) if keys]
        raise CheckpointError(f"--init-from {source}: {name} does not fit this run's generator ("
                              + "; ".join(problems) + f"). It is {described}: give the same --netG, --ngf, "
                              "--norm and channels")
    with torch.no_grad():
        target.load_state_dict(state, strict=True)


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(size) for size in tensor.shape)
