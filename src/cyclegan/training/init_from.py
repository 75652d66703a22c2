"""`cyclegan train --init-from MODEL`: a new run whose networks start from another model's weights.

Unlike `--resume`, which continues one run with its optimisers, schedules and image pools, this
starts a new run (iteration 0, fresh optimisers and schedule) from any model `resolve` accepts: a
zoo name, a run folder, a `.safetensors` file, a reference `.pth` or an `hf://` folder. Each of the
run's networks is taken from the file when the file holds a network of that name (a file holding a
single generator, a reference `.pth` or a zoo model, gives G_AB only), else it starts fresh; what
is loaded is loaded strictly: a layer that is missing, extra or of another shape is named in the
error. So a pix2pix model gives a CycleGAN run its G_AB and nothing else (its discriminator D
judges (A, B) pairs, where CycleGAN's judge one domain's images), and a CycleGAN model gives a
pix2pix run its G_AB.
"""
from __future__ import annotations

import dataclasses

import torch

from cyclegan import checkpoint as ckpt
from cyclegan.config import ModelConfig, flag_of, negative_flag_of
from cyclegan.directions import Direction
from cyclegan.errors import CheckpointError, ConfigError
from cyclegan.hub import is_hub_name, pinned_hub_name

SHOWN_LAYERS = 4  # mismatched layers named in an error, per kind
# The options that decide the shapes of each kind of network, as the errors name them.
# Dropout moves the layers after it in a ResNet block, and so their state-dict keys.
GENERATOR_OPTIONS = ("net_g", "ngf", "norm", "use_dropout", "input_nc", "output_nc", "antialias", "upsample")
DISCRIMINATOR_OPTIONS = ("net_d", "ndf", "n_layers_d", "norm", "input_nc", "output_nc")
PIX2PIX = "pix2pix"


def initialise_from(model: torch.nn.Module, value: str) -> tuple[list[str], str]:
    """Load the networks of `model` from the model that `value` names; returns what was loaded
    and what starts fresh, one line each, for the user, and the name to record for `value` (a Hub
    name pinned to the commit downloaded, `hub.pinned_hub_name`)."""
    from cyclegan.inference.resolve import resolve

    resolved = resolve(value)
    recorded = pinned_hub_name(value, resolved.weights.parent) if is_hub_name(value) else value
    if resolved.is_onnx:
        raise ConfigError(f"--init-from needs PyTorch weights, and {resolved.weights} is an ONNX export; "
                          "give the run folder or .safetensors file it was exported from")
    networks = model.networks()
    held = _held_networks(resolved)
    tensors = None
    loaded, fresh = [], []
    for name, network in networks.items():
        direction = next((d for d in Direction if d.generator == name), None)
        if name not in held:
            fresh.append(name)
        elif direction is not None:
            source, spec = resolved.load_generator(direction)
            _load_strictly(network, source.state_dict(), name, "generator", resolved.weights,
                           _hint(spec.describe(), resolved.config, model.config, GENERATOR_OPTIONS))
            loaded.append(name)
        else:
            if tensors is None:
                tensors = ckpt.read_tensors(resolved.weights)
            state = ckpt.network_state(tensors, name)
            kind = "discriminator" if name.startswith("D") else "network"
            _load_strictly(network, state, name, kind, resolved.weights,
                           _hint(f"from {resolved.weights}", resolved.config, model.config, DISCRIMINATOR_OPTIONS))
            loaded.append(name)
    if not loaded:
        raise ConfigError(f"--init-from {resolved.weights} holds none of this run's networks (it holds "
                          f"{', '.join(sorted(held))}; this run trains {', '.join(networks)}); give a model "
                          "of the same kind and direction")
    lines = [f"init from:   {resolved.weights}: {', '.join(loaded)}; optimisers and schedule start new"]
    if fresh:
        lines.append(f"             trained from scratch: {', '.join(fresh)} ({_why_fresh(resolved, held, model.config)})")
    return lines, recorded


def _held_networks(resolved) -> set[str]:
    """The names of the networks the file holds; a single generator counts as G_AB."""
    if resolved.is_single_generator:
        return {Direction.A_TO_B.generator}
    return {name for name in resolved.metadata.get("networks", "").split(",") if name}


def _why_fresh(resolved, held: set[str], ours: ModelConfig) -> str:
    """Why the networks not loaded start fresh, for the user."""
    theirs = resolved.config.model if resolved.config is not None else None
    discriminators = sorted(name for name in held if name.startswith("D"))
    if not discriminators:
        return "the file holds no discriminators"
    if theirs == PIX2PIX and ours.model != PIX2PIX:
        return "a pix2pix model holds one generator, and its D judges (A, B) pairs, not one domain's images"
    if ours.model == PIX2PIX and theirs != PIX2PIX:
        return f"pix2pix's D judges (A, B) pairs, and the file's {', '.join(discriminators)} one domain's images"
    return f"the file holds {', '.join(sorted(held))} only"


def _hint(described: str, theirs: ModelConfig | None, ours: ModelConfig, options: tuple[str, ...]) -> str:
    """What to do when a network does not fit: the options that differ, where the file records its
    config, else the options that decide the shapes."""
    fields = {field.name: field for field in dataclasses.fields(ModelConfig)}
    differing = [_as_flag(fields[name], getattr(theirs, name)) for name in options
                 if theirs is not None and getattr(theirs, name) is not None and getattr(ours, name) is not None
                 and getattr(theirs, name) != getattr(ours, name)]
    if differing:
        return f"It was trained with {', '.join(differing)}: give the same"
    if options is GENERATOR_OPTIONS:
        return f"It is {described}: give the same --netG, --ngf, --norm and channels"
    return f"It comes {described}: give the same {', '.join(flag_of(fields[name]) for name in options[:3])}"


def _as_flag(option: dataclasses.Field, value) -> str:
    """How a user gives `value` to the option: "--ngf 8", "--antialias", "--no-antialias"."""
    if isinstance(value, bool):
        return flag_of(option) if value else negative_flag_of(option)
    return f"{flag_of(option)} {value}"


def _load_strictly(target: torch.nn.Module, state: dict[str, torch.Tensor], name: str, kind: str, source,
                   hint: str) -> None:
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
        raise CheckpointError(f"--init-from {source}: {name} does not fit this run's {kind} ("
                              + "; ".join(problems) + f"). {hint}")
    with torch.no_grad():
        target.load_state_dict(state, strict=True)


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(size) for size in tensor.shape)
