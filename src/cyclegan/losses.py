"""The CycleGAN objective (paper section 3, eq. 1-3 and the identity term of section 5.2).

Adversarial losses are written so that each mode is one small function of the discriminator's
raw outputs; the cycle and identity terms are plain L1 distances.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cyclegan.config import GAN_MODES
from cyclegan.errors import ConfigError



def check_gan_mode(mode: str) -> str:
    if mode not in GAN_MODES:
        raise ConfigError(f"unknown GAN loss '{mode}'; choose one of {', '.join(GAN_MODES)}")
    return mode


def generator_adversarial_loss(mode: str, pred_fake: torch.Tensor) -> torch.Tensor:
    """What the generator minimises so that D takes its images for real.

    lsgan: mean (D(G(x)) - 1)^2 (Mao et al., the paper's choice); vanilla: the non-saturating
    -log sigmoid(D(G(x))); wgangp and hinge: -mean D(G(x)).
    """
    check_gan_mode(mode)
    pred_fake = pred_fake.float()
    if mode == "lsgan":
        return F.mse_loss(pred_fake, torch.ones_like(pred_fake))
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred_fake, torch.ones_like(pred_fake))
    return -pred_fake.mean()


def discriminator_adversarial_loss(mode: str, pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """What the discriminator minimises: real -> 1 (or high), generated -> 0 (or low).

    Returned as the sum of the real and fake terms; the trainer divides it by `d_ratio`.
    """
    check_gan_mode(mode)
    pred_real, pred_fake = pred_real.float(), pred_fake.float()
    if mode == "lsgan":
        return F.mse_loss(pred_real, torch.ones_like(pred_real)) + F.mse_loss(pred_fake, torch.zeros_like(pred_fake))
    if mode == "vanilla":
        return (F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real))
                + F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake)))
    if mode == "hinge":
        return F.relu(1.0 - pred_real).mean() + F.relu(1.0 + pred_fake).mean()
    return pred_fake.mean() - pred_real.mean()


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - 1)^2] on random
    interpolates x_hat between real and generated images. The caller multiplies by its weight.

    Images of different sizes (--preprocess none, where the generated image, or the older one the
    image history returns, can differ from the real one) are interpolated over their centres of the
    common size: a line between two images needs both in one space, and the fully convolutional
    discriminator judges a centre as it judges the whole."""
    real, fake = _centres_of_common_size(real, fake)
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    interpolates = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    output = discriminator(interpolates)
    (gradients,) = torch.autograd.grad(outputs=output.sum(), inputs=interpolates, create_graph=True)
    gradient_norm = gradients.float().flatten(1).norm(2, dim=1)
    return ((gradient_norm - 1.0) ** 2).mean()


def _centres_of_common_size(*images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    height = min(image.shape[-2] for image in images)
    width = min(image.shape[-1] for image in images)

    def centre(image: torch.Tensor) -> torch.Tensor:
        top, left = (image.shape[-2] - height) // 2, (image.shape[-1] - width) // 2
        return image[..., top:top + height, left:left + width]

    return tuple(centre(image) for image in images)


def decision_threshold(mode: str) -> float:
    """The D output that separates 'real' from 'generated': 0.5 for least squares targets 1/0,
    0 for logits (vanilla) and for the unbounded critics (wgangp, hinge)."""
    return 0.5 if check_gan_mode(mode) == "lsgan" else 0.0


def discriminator_accuracy(mode: str, pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """Fraction of patches D classifies correctly, real and generated weighted equally (a 0-d
    tensor on the predictions' device, so that reading it back can wait for the trainer's one read)."""
    threshold = decision_threshold(mode)
    real_correct = (pred_real.detach().float() > threshold).float().mean()
    fake_correct = (pred_fake.detach().float() <= threshold).float().mean()
    return (real_correct + fake_correct) / 2


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """||F(G(x)) - x||_1, averaged over pixels (eq. 2)."""
    return F.l1_loss(reconstructed.float(), original.float())


def identity_loss(mapped: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """||G(y) - y||_1: a generator fed an image of its target domain should leave it alone."""
    return F.l1_loss(mapped.float(), original.float())
