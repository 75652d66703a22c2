"""Weights saved by the reference implementation: recognising, converting and loading them.

The official pretrained generators (`horse2zebra.pth`, `latest_net_G_A.pth`, ...) are bare state
dicts: no architecture, sometimes a `module.` prefix, sometimes the running statistics that old
PyTorch kept for instance norm. This module infers the architecture from the keys (the bias rule
in `cyclegan.networks`' docstring makes the three norms distinguishable), cleans the keys and
builds the generator, so that such files are used without any flag. Files are read as plain
tensors (`weights_only=True`), never unpickled code.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cyclegan.config import GENERATORS
from cyclegan.errors import CheckpointError
from cyclegan.networks import UNET_DOWNS, build_generator

# Buffers that an InstanceNorm2d with track_running_stats=True (old PyTorch, old checkpoints) has.
_RUNNING_STAT_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def clean_reference_state_dict(state_dict: dict) -> dict:
    """Return a plain dict copy of a reference generator state dict that loads strictly here.

    The official pretrained files (e.g. `horse2zebra.pth`, `latest_net_G_A.pth`) may have
    - a `module.` prefix on every key (saved from nn.DataParallel): it is removed;
    - `running_mean`/`running_var`/`num_batches_tracked` of InstanceNorm layers (PyTorch < 0.4
      tracked them): they are dropped. A norm layer whose keys are only running stats, with
      no `weight`, is an InstanceNorm (affine=False); BatchNorm layers, which always have a
      weight here, keep theirs.
    """
    if not isinstance(state_dict, dict):
        raise CheckpointError(
            f"expected a state dict (a mapping of names to tensors), got {type(state_dict).__name__}"
        )
    cleaned: dict = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"state dict entry {key!r} is not a tensor ({type(value).__name__}); "
                "is this a full checkpoint rather than a network's weights?"
            )
        name = key[len("module."):] if key.startswith("module.") else key
        if name in cleaned:
            raise CheckpointError(f"state dict has key {name!r} both with and without 'module.'")
        cleaned[name] = value
    for key in list(cleaned):
        prefix, _, suffix = key.rpartition(".")
        if suffix in _RUNNING_STAT_SUFFIXES and f"{prefix}.weight" not in cleaned:
            del cleaned[key]
    return cleaned


def _norm_of(keys: set[str], conv: str, norm: str) -> str:
    """Tell the norm from a conv followed by a norm layer (module-docstring bias rule)."""
    if f"{norm}.running_mean" in keys or f"{norm}.weight" in keys:
        return "batch"
    return "instance" if f"{conv}.bias" in keys else "none"


def _describe_keys(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} keys)" if len(keys) > limit else "")


def _infer_resnet(state_dict: dict, keys: set[str]) -> dict:
    block_indices = sorted({int(k.split(".")[1]) for k in keys if ".conv_block." in k})
    first = block_indices[0] if block_indices else None
    if first != 10 or block_indices != list(range(10, 10 + len(block_indices))):
        raise CheckpointError(
            f"ResNet generator blocks expected at model.10, model.11, ...; found {block_indices}"
        )
    n_blocks = len(block_indices)
    net_g = f"resnet_{n_blocks}blocks"
    if net_g not in GENERATORS:
        raise CheckpointError(
            f"the generator has {n_blocks} residual blocks; only 6 or 9 are supported "
            f"({', '.join(GENERATORS)})"
        )
    block_convs = sorted({int(k.split(".")[3]) for k in keys
                          if k.startswith("model.10.conv_block.") and k.endswith(".weight")
                          and state_dict[k].dim() == 4})
    # Without dropout the block's convs are at 1 and 5; Dropout(0.5) after the ReLU moves the
    # second one to 6. Blocks without pad layers (padding_type "zero") start with a conv at 0.
    if block_convs not in ([1, 5], [1, 6]):
        raise CheckpointError(
            f"residual block convolutions at conv_block.{block_convs}; expected [1, 5] "
            "(reflect/replicate padding) or [1, 6] (with dropout); zero-padded blocks "
            "cannot be inferred, build the generator explicitly"
        )
    first_conv = state_dict["model.1.weight"]
    last_conv = state_dict[f"model.{17 + n_blocks}.weight"]
    return {
        "net_g": net_g,
        "input_nc": int(first_conv.shape[1]),
        "output_nc": int(last_conv.shape[0]),
        "ngf": int(first_conv.shape[0]),
        "norm": _norm_of(keys, "model.1", "model.2"),
        "use_dropout": block_convs == [1, 6],
    }


def _infer_unet(state_dict: dict, keys: set[str]) -> dict:
    # The outermost block holds its child at index 1, every other block at index 3.
    prefix, num_downs = "model.model.1.model.", 1
    while any(k.startswith(prefix) for k in keys):
        prefix, num_downs = prefix + "3.model.", num_downs + 1
    net_g = {downs: name for name, downs in UNET_DOWNS.items()}.get(num_downs)
    if net_g is None:
        raise CheckpointError(
            f"the U-Net has {num_downs} levels; only 7 (unet_128) or 8 (unet_256) are supported"
        )
    first_conv = state_dict["model.model.0.weight"]
    last_upconv = state_dict["model.model.3.weight"]  # ConvTranspose2d: (in, out, kh, kw)
    return {
        "net_g": net_g,
        "input_nc": int(first_conv.shape[1]),
        "output_nc": int(last_upconv.shape[1]),
        "ngf": int(first_conv.shape[0]),
        "norm": _norm_of(keys, "model.model.1.model.1", "model.model.1.model.2"),
        # Dropout sits last in its block, so it moves no key; it only acts in training anyway.
        "use_dropout": False,
    }


def infer_generator_architecture(state_dict: dict) -> dict:
    """Infer the `build_generator` arguments that fit a generator state dict.

    Returns {"net_g", "input_nc", "output_nc", "ngf", "norm", "use_dropout"}. ResNets are
    recognised by `model.N.conv_block.` keys (the block count gives net_g; only 6 and 9 are
    supported), U-Nets by `model.model.` keys (their nesting depth gives net_g). The norm
    follows from the keys: BatchNorm has weight/running stats, instance norm leaves only the
    conv biases, "none" neither. Dropout is detected in ResNet blocks (it shifts the second
    conv's index); in a U-Net it moves no key and is reported as False. The state dict is
    cleaned first (`clean_reference_state_dict`). Raises CheckpointError when the keys are
    neither layout, e.g. for a discriminator.
    """
    cleaned = clean_reference_state_dict(state_dict)
    keys = set(cleaned)
    try:
        if any(".conv_block." in k for k in keys) and "model.1.weight" in keys:
            return _infer_resnet(cleaned, keys)
        if "model.model.0.weight" in keys and "model.model.3.weight" in keys:
            return _infer_unet(cleaned, keys)
    except (KeyError, IndexError, ValueError) as exc:
        raise CheckpointError(f"generator state dict is incomplete or malformed: {exc}") from exc
    raise CheckpointError(
        "not a ResNet or U-Net generator state dict (expected keys like "
        "'model.10.conv_block.1.weight' or 'model.model.0.weight'); unexpected keys: "
        + _describe_keys(sorted(keys))
    )


def generator_from_state_dict(state_dict: dict) -> tuple[nn.Module, dict]:
    """Build the generator a state dict was saved from and load it strictly.

    Accepts our own generator weights and the reference's pretrained files alike (cleaned
    with `clean_reference_state_dict`). Returns (network in eval mode, architecture dict as
    from `infer_generator_architecture`). Raises CheckpointError when the weights do not fit.
    """
    cleaned = clean_reference_state_dict(state_dict)
    architecture = infer_generator_architecture(cleaned)
    net = build_generator(**architecture)
    expected = set(net.state_dict())
    missing = sorted(expected - set(cleaned))
    unexpected = sorted(set(cleaned) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"state dict does not fit the inferred generator {architecture}: "
            f"missing keys: {_describe_keys(missing) or 'none'}; "
            f"unexpected keys: {_describe_keys(unexpected) or 'none'}"
        )
    try:
        net.load_state_dict(cleaned, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"state dict does not fit the inferred generator: {exc}") from exc
    return net.eval(), architecture


def load_reference_generator(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """An official reference-code generator file (`*_net_G*.pth`, the zoo's `horse2zebra.pth`),
    read as plain tensors (never unpickled code), and its architecture as inferred from the keys
    (`infer_generator_architecture`)."""
    path = Path(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # damaged file, or a pickle that is more than tensors
        raise CheckpointError(f"{path} cannot be loaded as a plain state dict of tensors "
                              f"({_load_failure(path, error)}); only weights are accepted, never pickled code") from error
    if isinstance(state_dict, dict) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    generator, architecture = generator_from_state_dict(state_dict)
    return generator.eval(), architecture


def _load_failure(path: Path, error: Exception) -> str:
    """Why torch.load refused `path`, in one line: torch's own message spans lines (for a file that
    is no PyTorch file at all too) and advises weights_only=False, which would run the file's code."""
    with open(path, "rb") as file:
        head = file.read(4)
    if not head:
        return "the file is empty"
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch writes a zip, or formerly a pickle
        return "it is not a PyTorch file: neither a zip archive nor a pickle"
    if "Weights only load failed" in str(error):
        return "it holds pickled objects other than tensors"
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)

