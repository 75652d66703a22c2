"""Batch norm at test time, as the pix2pix paper and the reference code run it.

pix2pix (Isola et al., 2017, section 3.2) runs the generator at test time "in exactly the same
manner as during the training phase": batch normalisation with the statistics of the test batch,
not the averages gathered in training; at the batch size of 1 it trains with, that is each image
normalised by its own statistics, i.e. instance normalisation with batch norm's learned scale and
shift. The reference's test.py does the same (it leaves the network in training mode unless
given --eval). So a model trained with `--norm batch` (pix2pix's default) saw per-image statistics
in every training step, and the running averages, an average over many images, match none of them.

Here every BatchNorm2d layer of a generator that translates is replaced by an InstanceNorm2d
sharing its weight and bias. Unlike batch norm in training mode this keeps the images of a batch
apart (a translation in batches of several images gives each image what it gets alone) and changes
no running statistics; tiling (inference.tiling) then pools its statistics over the whole image, as
for instance norm, and an ONNX export holds an InstanceNormalization node. Dropout, which the paper
also keeps on at test time for a little randomness, stays off: translations are reproducible.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

from torch import nn


def per_image_norm(batch_norm: nn.BatchNorm2d) -> nn.InstanceNorm2d:
    """An InstanceNorm2d that normalises as `batch_norm` does in training mode on one image,
    sharing its weight and bias (so a change to them is seen by both)."""
    norm = nn.InstanceNorm2d(batch_norm.num_features, eps=batch_norm.eps, affine=batch_norm.affine,
                             track_running_stats=False)
    if batch_norm.affine:
        norm.weight, norm.bias = batch_norm.weight, batch_norm.bias
    return norm


def _batch_norms(network: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    return [(name, module) for name, module in network.named_modules() if isinstance(module, nn.BatchNorm2d)]


def _put(network: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(network.get_submodule(parent_name) if parent_name else network, child, module)


def _swap_in(network: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """Put a `per_image_norm` in place of each BatchNorm2d of `network`; returns what was taken out."""
    swapped = _batch_norms(network)
    for name, batch_norm in swapped:
        _put(network, name, per_image_norm(batch_norm))
    return swapped


def each_image_normalised(network: nn.Module) -> nn.Module:
    """`network` itself when it has no batch norm, else a copy whose BatchNorm2d layers are
    `per_image_norm`s (the original is left as it is)."""
    if not _batch_norms(network):
        return network
    twin = copy.deepcopy(network)
    _swap_in(twin)
    return twin


@contextlib.contextmanager
def normalising_each_image(network: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, `network`'s BatchNorm2d layers are `per_image_norm`s (in place, for the
    scores and gallery a training run makes of its own model); afterwards they are back, their
    running statistics untouched."""
    swapped = _swap_in(network)
    try:
        yield network
    finally:
        for name, batch_norm in swapped:
            _put(network, name, batch_norm)
