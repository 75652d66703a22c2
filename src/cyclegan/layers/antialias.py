"""Anti-aliased down- and up-sampling with fixed binomial blur filters.

A stride-2 convolution samples its output at every other position without low-pass filtering it
first, so high frequencies fold back (alias) and a one-pixel shift of the input can change the
output a lot. Zhang ("Making convolutional networks shift-invariant again", ICML 2019) keeps the
convolution at stride 1 and moves the sub-sampling into a blur pool: a fixed binomial low-pass
filter applied with stride 2. CUT (Park et al., ECCV 2020) uses it in its ResNet generator and
PatchGAN, and up-samples the other way round: insert zeros between the samples, then blur.

The filters are buffers with persistent=False: fixed by the layer's arguments, never trained, and
absent from the state dict, so they add no checkpoint key (CUT's own layers save theirs).
"""
from __future__ import annotations

from math import comb

import torch
import torch.nn.functional as F
from torch import nn


def binomial_filter(size: int) -> torch.Tensor:
    """The 2-D binomial low-pass filter of side `size`, normalised to sum 1: the outer product of
    row `size - 1` of Pascal's triangle with itself (3: [1, 2, 1], 4: [1, 3, 3, 1])."""
    if size < 1:
        raise ValueError(f"a blur filter needs a size of at least 1, got {size}")
    row = torch.tensor([float(comb(size - 1, k)) for k in range(size)])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Blur pool: low-pass filter each channel with a binomial filter, keeping every other sample.

    Reflect padding of (size - 1) // 2 before and size // 2 after keeps an even side exactly
    halved. CUT's generator and PatchGAN use size 3 ([1, 2, 1]), the default here.
    """

    def __init__(self, channels: int, filter_size: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.padding = ((filter_size - 1) // 2, filter_size // 2) * 2
        kernel = binomial_filter(filter_size)
        self.register_buffer("kernel", kernel.expand(channels, 1, -1, -1).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, self.padding, mode="reflect")
        return F.conv2d(padded, self.kernel.to(x.dtype), stride=2, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, filter_size={self.kernel.shape[-1]}"


class BlurUpsample(nn.Module):
    """Doubles height and width: zeros between the samples, then the [1, 3, 3, 1] binomial filter
    (times 4, the inserted zeros' share), with the border replicated, as CUT's up-sampling.

    For this filter the result is exactly bilinear interpolation with align_corners=False (each
    new sample is 3/4 of its nearer and 1/4 of its farther neighbour); the layer is written as
    zero insertion plus blur to show that it is the blur-pool's counterpart.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        kernel = 4 * binomial_filter(4)
        self.register_buffer("kernel", kernel.expand(channels, 1, -1, -1).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The transposed convolution inserts the zeros; with the border replicated by one sample,
        # cropping 3 from each side leaves 2H x 2W samples aligned with bilinear interpolation's.
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        return F.conv_transpose2d(padded, self.kernel.to(x.dtype), stride=2, padding=3, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}"
