"""Full-reference image scores for translations that have a paired ground truth (PSNR, SSIM),
and reading the images that every evaluation score starts from.

Images are tensors in the project's convention, (N, C, H, W) in [-1, 1], so the data range
is 2 (the same numbers as on 8-bit images with a range of 255). SSIM follows Wang et al.
2004: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, statistics over the
positions where the window fits ("valid"), averaged over pixels and then over channels.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from PIL import Image

from cyclegan.data.images import load_image
from cyclegan.imageconv import image_to_tensor

DATA_RANGE = 2.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def read_image_tensor(path: str | os.PathLike, channels: int = 3, size: int | None = None) -> torch.Tensor:
    """An image file as a (C, H, W) tensor in [-1, 1], resized to size x size (bicubic, as the
    training transforms do) when `size` is given."""
    image = load_image(path, channels)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image_to_tensor(image)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two (N, C, H, W) batches of the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image pair: (N,) float64, inf where identical."""
    _check_pair(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)  # mse 0 gives inf, as it should


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian (size,) float64 whose outer product is the SSIM window."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-offsets**2 / (2 * sigma**2))
    return weights / weights.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = DATA_RANGE, window: int = SSIM_WINDOW,
         sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Structural similarity of each image pair: (N,) float64, 1.0 for identical images."""
    _check_pair(a, b)
    height, width = a.shape[-2:]
    if min(height, width) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} px (its window), got {width}x{height}")
    channels = a.shape[1]
    weights = gaussian_window(window, sigma).to(a.device)
    rows = weights.view(1, 1, window, 1).repeat(channels, 1, 1, 1)
    cols = weights.view(1, 1, 1, window).repeat(channels, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:  # separable Gaussian, per channel, valid positions only
        return F.conv2d(F.conv2d(x, rows, groups=channels), cols, groups=channels)

    x, y = a.double(), b.double()
    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x**2
    var_y = blur(y * y) - mean_y**2
    cov = blur(x * y) - mean_x * mean_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(2).mean(2).mean(1)


__all__ = ["read_image_tensor", "psnr", "ssim", "gaussian_window", "DATA_RANGE"]
