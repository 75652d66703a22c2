"""Differentiable augmentation of the images a discriminator sees (DiffAugment, Zhao et al. 2020).

A discriminator trained on few images memorises them; augmenting its inputs prevents that, but
only if generated images are augmented the same way as real ones (otherwise the generator learns
to produce augmented-looking images), and only if the augmentation is differentiable, because the
generator's gradient passes through it. Every operation here is a per-image random colour change,
shift or masking built from differentiable tensor operations, so gradients reach the input.

Randomness comes from `generator` when one is given, otherwise from torch's global RNG of the
input's device (`torch.rand(..., device=x.device)`). The trainer saves and restores those global
states, so a resumed run draws the same augmentations as an uninterrupted one. The draws happen
in the policy's order (brightness, saturation, contrast for "color"), one value or pair per image.

Images are expected in [-1, 1], the networks' range; brightness and the zero fill of translation
and cutout are in that scale (0 is mid-grey), as in the paper's code.
"""
from __future__ import annotations

import torch

from cyclegan.config import parse_policy

# Translation moves each image by up to this fraction of its height and width.
TRANSLATION_RATIO = 0.125
# Cutout masks a rectangle of this fraction of the height and width.
CUTOUT_RATIO = 0.5


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One U[0, 1) value per image, shaped to broadcast over (C, H, W). Drawn in float32 whatever
    x's dtype, so that a precision setting does not change the random stream."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device).to(x.dtype)


def _randint(low: int, high: int, count: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """`count` integers uniform in [low, high], both ends included."""
    return torch.randint(low, high + 1, (count,), generator=generator, device=x.device)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image: add a brightness offset in [-0.5, 0.5), scale the deviation from the pixel's
    channel mean by [0, 2) (saturation) and the deviation from the image mean by [0.5, 1.5)
    (contrast)."""
    x = x + (_uniform(x, generator) - 0.5)
    pixel_mean = x.mean(dim=1, keepdim=True)
    x = (x - pixel_mean) * (2 * _uniform(x, generator)) + pixel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * (_uniform(x, generator) + 0.5) + image_mean


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move image i by shift[i] = (down, right) pixels; what comes in from outside is zero.
    out[i, :, r, c] = x[i, :, r - down, c - right]."""
    n, channels, height, width = x.shape
    rows = torch.arange(height, device=x.device)[None, :] - shift[:, :1]  # (N, H) source rows
    cols = torch.arange(width, device=x.device)[None, :] - shift[:, 1:]  # (N, W) source columns
    inside = (((rows >= 0) & (rows < height))[:, None, :, None]
              & ((cols >= 0) & (cols < width))[:, None, None, :])
    rows = rows.clamp(0, height - 1)[:, None, :, None].expand(n, channels, height, width)
    cols = cols.clamp(0, width - 1)[:, None, None, :].expand(n, channels, height, width)
    moved = x.gather(2, rows).gather(3, cols)
    return moved * inside.to(x.dtype)


def random_translation(x: torch.Tensor, generator: torch.Generator | None = None,
                       ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Per image: `translate` by a shift uniform in [-ratio * side, ratio * side] (rounded) in
    each direction, rows first."""
    n, _, height, width = x.shape
    max_down, max_right = int(height * ratio + 0.5), int(width * ratio + 0.5)
    down = _randint(-max_down, max_down, n, x, generator)
    right = _randint(-max_right, max_right, n, x, generator)
    return translate(x, torch.stack([down, right], dim=1))


def cut_out(x: torch.Tensor, top_left: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Set to zero, in image i, the `size` = (height, width) rectangle whose top-left corner is
    top_left[i] = (row, column); a corner outside the image masks only the part inside."""
    _, _, height, width = x.shape
    rows = torch.arange(height, device=x.device)[None, :] - top_left[:, :1]
    cols = torch.arange(width, device=x.device)[None, :] - top_left[:, 1:]
    in_rows = (rows >= 0) & (rows < size[0])
    in_cols = (cols >= 0) & (cols < size[1])
    masked = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return x * (~masked).to(x.dtype)


def random_cutout(x: torch.Tensor, generator: torch.Generator | None = None,
                  ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Per image: `cut_out` a rectangle of `ratio` times the height and width (rounded), its
    top-left corner uniform in [-(size // 2), side - (size + 1) // 2] on each axis (rows first):
    it may hang over any edge by up to half its size, the same on every side."""
    n, _, height, width = x.shape
    size = (int(height * ratio + 0.5), int(width * ratio + 0.5))
    top = _randint(-(size[0] // 2), height - (size[0] + 1) // 2, n, x, generator)
    left = _randint(-(size[1] // 2), width - (size[1] + 1) // 2, n, x, generator)
    return cut_out(x, torch.stack([top, left], dim=1), size)


_AUGMENTATIONS = {"color": color, "translation": random_translation, "cutout": random_cutout}


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """`x` (N, C, H, W) with the augmentations of `policy` applied in order, drawn independently
    for every image; differentiable with respect to `x`. An empty policy returns `x` itself.
    See the module docstring for where the randomness comes from."""
    for name in parse_policy(policy):
        x = _AUGMENTATIONS[name](x, generator)
    return x


def augment_for_discriminator(real: torch.Tensor, fake: torch.Tensor, policy: str,
                              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, fake) as a discriminator should see them under DiffAugment: both augmented with
    `policy`, each image with its own random draw (real first, then fake). The objective calls it
    for the discriminator's update and, on the same policy, for the generator's adversarial term,
    so that D never sees an unaugmented image; with an empty policy both come back unchanged.
    Gradients flow through to `fake`, and so to the generator."""
    return diff_augment(real, policy, generator), diff_augment(fake, policy, generator)
