"""PatchNCE, the patchwise contrastive loss of CUT and FastCUT (Park et al., ECCV 2020).

The generator's output should keep what the input showed where it showed it. PatchNCE checks
that with the generator's own encoder: for patches at random locations, the encoder's feature of
the output at a location (the query) must pick out the input's feature at the same location (the
positive) among the input's features at the other sampled locations of the same image (the
negatives). Per layer of the encoder (`networks.encode_features`):

1. `sample_locations` draws the locations from the input's features, once per layer, from a
   `torch.Generator` the caller owns (so a resumed run draws the same ones);
2. `gather_patches` takes the output's and the input's features at those same locations;
3. `PatchProjector` maps each to a unit vector with a small MLP of that layer's own;
4. `patch_nce_loss`: cross-entropy over the cosine similarities / temperature, the positive as
   the target, averaged over the images and locations. `patch_nce` does all four and averages
   over the layers.

CUT's identity term, PatchNCE between an image of the target domain and its translation
(b, G(b)), is the same `patch_nce` called with those two images' features. FastCUT's flip-
equivariance augmentation is `draw_flip`: the generator's input is mirrored for the whole
iteration, and the output's features are mirrored back before they meet the unmirrored input's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.networks import init_weights

# CUT's defaults (its --netF_nc, --num_patches and --nce_T).
PROJECTION_DIM = 256
NUM_PATCHES = 256
TEMPERATURE = 0.07


def sample_locations(features: Sequence[torch.Tensor], num_patches: int,
                     rng: torch.Generator) -> list[torch.Tensor]:
    """Per layer, `num_patches` distinct locations (indices into the flattened H x W grid),
    or every location in a random order where the layer has fewer; the same for every image of
    the batch, as in CUT. Drawn on the CPU from `rng` alone, so the draw is the same on any device
    and the global random state is left untouched."""
    if num_patches < 1:
        raise ValueError(f"num_patches must be at least 1, got {num_patches}")
    locations = []
    for feature in features:
        grid = feature.shape[-2] * feature.shape[-1]
        order = torch.randperm(grid, generator=rng, device="cpu")
        locations.append(order[:num_patches].to(feature.device))
    return locations


def gather_patches(features: Sequence[torch.Tensor], locations: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer, the N x C x H x W feature map's vectors at `locations`: N x P x C."""
    if len(features) != len(locations):
        raise ValueError(f"{len(features)} feature maps but locations for {len(locations)}")
    return [feature.flatten(2)[:, :, where].transpose(1, 2) for feature, where in zip(features, locations)]


class PatchProjector(nn.Module):
    """CUT's projection head: per encoder layer, Linear(C, 256), ReLU, Linear(256, 256), then
    each vector scaled to unit length, so that dot products are cosine similarities.

    The channel counts C are those of the layers PatchNCE reads, which the generator decides:
    give them at construction or to `initialise` (`networks.feature_channels` reads them from the
    architecture; a first batch's features give the same). Either must happen before the
    optimizer is made, which needs the parameters. Initialisation as CUT's, which uses its
    networks' (`init_weights`: weights from `init_type` with `init_gain`, biases 0); CUT's default
    is xavier with gain 0.02. State-dict keys: `heads.<layer>.0.weight`, `.bias` (the first
    linear layer) and `heads.<layer>.2.weight`, `.bias` (the second), layers numbered in the order
    PatchNCE reads them.
    """

    def __init__(self, channel_counts: Sequence[int] | None = None, projection_dim: int = PROJECTION_DIM,
                 init_type: str = "xavier", init_gain: float = 0.02) -> None:
        super().__init__()
        self.projection_dim = projection_dim
        self.init_type, self.init_gain = init_type, init_gain
        self.heads = nn.ModuleList()
        if channel_counts is not None:
            self.initialise(channel_counts)

    @property
    def initialised(self) -> bool:
        return len(self.heads) > 0

    @property
    def channel_counts(self) -> tuple[int, ...]:
        return tuple(head[0].in_features for head in self.heads)

    def initialise(self, channel_counts: Sequence[int], device: torch.device | str | None = None) -> None:
        """Build and initialise one head per layer, for features of these channel counts."""
        counts = tuple(int(count) for count in channel_counts)
        if self.initialised:
            raise ValueError(f"the projector is already built for channels {self.channel_counts}")
        if not counts or min(counts) < 1:
            raise ValueError(f"the projector needs a positive channel count per layer, got {counts}")
        for count in counts:
            self.heads.append(nn.Sequential(nn.Linear(count, self.projection_dim), nn.ReLU(),
                                            nn.Linear(self.projection_dim, self.projection_dim)))
        init_weights(self.heads, self.init_type, self.init_gain)
        if device is not None:
            self.heads.to(device)

    def forward(self, patches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per layer, N x P x C patch features to N x P x projection_dim unit vectors."""
        if not self.initialised:
            raise ValueError("the projector has no heads yet; call initialise(channel_counts) "
                             "before the optimizer is made")
        if len(patches) != len(self.heads):
            raise ValueError(f"the projector has heads for {len(self.heads)} layers, given {len(patches)}")
        return [F.normalize(head(patch), dim=-1) for head, patch in zip(self.heads, patches)]


def patch_nce_loss(queries: torch.Tensor, keys: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """PatchNCE of one layer: N x P x D unit-length queries and keys (image n's p-th location in
    both); the mean over images and locations of the cross-entropy of picking key p for query p
    among the P keys of the same image, with logits cosine similarity / temperature.

    The keys are targets, so no gradient flows into them (as in CUT). Computed in float32 even
    under autocast: with logits up to 1 / temperature, bf16's rounding would be a large part of
    the gap between the positive and the negatives. CUT keeps the positive once by filling the
    diagonal of the negatives with -10 before dividing by the temperature; leaving it out exactly,
    as here, differs from that by a weight of exp(-10 / temperature), far below float32's precision.
    """
    if queries.shape != keys.shape or queries.dim() != 3:
        raise ValueError(f"queries and keys must both be N x P x D, got {tuple(queries.shape)} "
                         f"and {tuple(keys.shape)}")
    images, patches, _ = queries.shape
    with torch.autocast(queries.device.type, enabled=False):
        similarities = torch.bmm(queries.float(), keys.detach().float().transpose(1, 2))  # N x P x P
        positives = torch.arange(patches, device=queries.device).repeat(images)
        return F.cross_entropy(similarities.flatten(0, 1) / temperature, positives)


def patch_nce(projector: PatchProjector, query_features: Sequence[torch.Tensor],
              key_features: Sequence[torch.Tensor], rng: torch.Generator,
              num_patches: int = NUM_PATCHES, temperature: float = TEMPERATURE) -> torch.Tensor:
    """PatchNCE between an output's encoder features (`query_features`) and its input's
    (`key_features`), per layer N x C x H x W: the mean over the layers of `patch_nce_loss`, with
    the locations drawn once per layer from `rng` and used for both."""
    if len(query_features) != len(key_features):
        raise ValueError(f"{len(query_features)} query layers but {len(key_features)} key layers")
    for query, key in zip(query_features, key_features):
        if query.shape != key.shape:
            raise ValueError(f"query and key features differ in shape: {tuple(query.shape)} vs {tuple(key.shape)}")
    locations = sample_locations(key_features, num_patches, rng)
    images = key_features[0].shape[0]
    # Queries and keys go through each head together: one call per layer instead of two.
    patches = [torch.cat([query, key]) for query, key in
               zip(gather_patches(query_features, locations), gather_patches(key_features, locations))]
    projected = [both.split(images) for both in projector(patches)]
    layer_losses = [patch_nce_loss(query, key, temperature) for query, key in projected]
    return torch.stack(layer_losses).mean()


@dataclass(frozen=True)
class FlipDraw:
    """One iteration's draw of FastCUT's flip-equivariance augmentation: whether the generator's
    input is mirrored left-right this iteration. Calling it on a tensor mirrors the last (width)
    dimension when `flipped` and returns the tensor itself otherwise; as mirroring undoes itself,
    the same call turns the output's features back to the input's orientation."""

    flipped: bool

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.flip(tensor, dims=(-1,)) if self.flipped else tensor

    def each(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [self(tensor) for tensor in tensors]


def draw_flip(rng: torch.Generator, probability: float = 0.5) -> FlipDraw:
    """Mirror with `probability`, drawn from `rng` alone (one number per iteration).

    FastCUT's use: `flip = draw_flip(rng)`; the generator translates `flip(real_a)` (and
    `flip(real_b)` for an identity term); PatchNCE compares `flip.each(features of the output)`
    with the features of the unmirrored `real_a`. The discriminator judges the output as it is.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"the flip probability must lie in [0, 1], got {probability}")
    return FlipDraw(bool(torch.rand((), generator=rng) < probability))
