"""One direction's translations scored: the rules shared by training's validation and `evaluate`.

`score_direction` takes a direction's translations and the real images of its target domain
(plus, where the caller has them, the inputs, the reconstructions and paired targets) and gives a
`DirectionScores`: FID and KID against the target domain, the cycle error, the L1 distance to
paired targets, how much the translations change their inputs and how much they differ from one
another. Validation during training and `cyclegan evaluate` both call it, so a score means the
same in metrics.jsonl and in evaluation.json; each writes it under the names its file has always
used (`metrics_record` and `to_record`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cyclegan.directions import Direction
from cyclegan.evaluation import fid as fid_metrics

KID_SUBSETS = 100
# Binkowski et al.'s subset size; `fid.kid_subset_size` never uses more than half of either set.
KID_SUBSET_SIZE = 1000
# Translations are compared at this size for their spread, so that images of any size compare
# and a generator's pixel noise does not count as variety.
SPREAD_SIZE = 64


@dataclass(frozen=True)
class DirectionScores:
    """The scores of one direction's translations; None where a score was not computed."""

    direction: Direction
    images: int  # translations scored
    fid: float | None = None
    kid: float | None = None  # KID's mean over subsets
    kid_std: float | None = None
    kid_subset_size: int | None = None
    kid_subsets: int | None = None
    cycle: float | None = None  # mean |x - F(G(x))|, in [-1, 1] units
    l1: float | None = None  # mean |G(a) - b| to each input's paired target, in [-1, 1] units
    change: float | None = None  # mean |G(x) - x| (None when the domains differ in channels)
    spread: float | None = None  # see `spread`

    def metrics_record(self) -> dict:
        """The fields of a metrics.jsonl line (training's validation), named by the direction:
        images_AtoB, kid_AtoB, kid_AtoB_std, fid_AtoB, cycle_AtoB or l1_AtoB, change_AtoB, spread_AtoB."""
        d = self.direction
        record = {f"images_{d}": self.images, f"kid_{d}": self.kid, f"kid_{d}_std": self.kid_std, f"fid_{d}": self.fid}
        if self.cycle is not None:
            record[f"cycle_{d}"] = self.cycle
        if self.l1 is not None:
            record[f"l1_{d}"] = self.l1
        record.update({f"change_{d}": self.change, f"spread_{d}": self.spread})
        return record

    def to_record(self) -> dict:
        """The direction's entry of evaluation.json (`cyclegan evaluate`), before its paired scores."""
        kid = None if self.kid is None else {"mean": self.kid, "std": self.kid_std,
                                             "subset_size": self.kid_subset_size, "subsets": self.kid_subsets}
        return {"source": f"test{self.direction.source}", "target": f"test{self.direction.target}",
                "images": self.images, "fid": self.fid, "kid": kid, "cycle_l1": self.cycle}


def score_direction(direction: Direction, translations: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], *,
                    network: fid_metrics.InceptionFeatures | None = None,
                    target_features: dict[str, np.ndarray] | None = None,
                    cycle_pairs: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
                    inputs: Sequence[torch.Tensor] | None = None,
                    paired_targets: Sequence[torch.Tensor] | None = None,
                    kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE) -> DirectionScores:
    """Score `direction`'s translations (C, H, W), in [-1, 1] or as 8-bit values (uint8).

    `targets` are the real images of the target domain, for FID and KID (computed when `network`
    is given, both sets hold at least 2 images and they have 1 or 3 channels, which the Inception
    network compares: grayscale repeated to RGB); `target_features` keeps their features by
    domain across calls (the real images do not change). `cycle_pairs` are (reconstruction,
    original) images or batches, for the cycle error; `inputs` the images translated, in order, for
    change and spread; `paired_targets` each input's paired target, for the L1 distance.
    """
    distribution = {}
    channels = translations[0].shape[0] if len(translations) else 0
    if (network is not None and channels in fid_metrics.INCEPTION_CHANNELS and len(translations) >= 2
            and len(targets) >= 2):
        cache = {} if target_features is None else target_features
        if direction.target not in cache:
            cache[direction.target] = network(targets)
        real, features = cache[direction.target], network(translations)
        subset_size = fid_metrics.kid_subset_size(len(features), len(real), kid_subset_size)
        kid, kid_std = fid_metrics.kid_from_features(features, real, kid_subsets, subset_size)
        distribution = {"fid": fid_metrics.fid_from_features(features, real), "kid": kid, "kid_std": kid_std,
                        "kid_subset_size": subset_size, "kid_subsets": kid_subsets}
    pixels = {}
    if cycle_pairs is not None:
        pixels["cycle"] = mean_absolute_error(cycle_pairs)
    if paired_targets is not None:
        pixels["l1"] = mean_absolute_error(zip(translations, paired_targets))
    if inputs is not None:
        same_channels = translations[0].shape[0] == inputs[0].shape[0]
        pixels["change"] = mean_absolute_error(zip(translations, inputs)) if same_channels else None
        pixels["spread"] = spread(translations, inputs)
    return DirectionScores(direction, len(translations), **distribution, **pixels)


def mean_absolute_error(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float | None:
    """Mean |first - second| over every pixel of pairs of equal shapes (images or batches); None
    for no pairs."""
    total, count = 0.0, 0
    for first, second in pairs:
        total += float((first.float() - second.float()).abs().sum())
        count += first.numel()
    return total / count if count else None


def spread(outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor]) -> float | None:
    """How much the translations of different images differ, relative to how much the images do:
    the mean L1 distance between every two outputs over the same for their inputs, both at
    SPREAD_SIZE px. Near 0 when a generator gives one image whatever its input (mode collapse);
    None for fewer than two images."""
    if len(outputs) < 2:
        return None

    def mean_distance(images: Sequence[torch.Tensor]) -> float:
        small = torch.stack([F.adaptive_avg_pool2d(image.float()[None], SPREAD_SIZE)[0] for image in images])
        flat = small.flatten(1).double()
        distances = torch.cdist(flat, flat, p=1) / flat.shape[1]
        return float(distances.sum()) / (len(images) * (len(images) - 1))

    apart = mean_distance(inputs)
    return mean_distance(outputs) / apart if apart > 0 else None
