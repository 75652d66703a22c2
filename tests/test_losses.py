"""Each loss term against a hand computation."""
import math

import pytest
import torch
import torch.nn as nn

from cyclegan import losses
from cyclegan.errors import ConfigError

REAL = torch.tensor([[0.9, 0.2], [1.5, -0.5]])
FAKE = torch.tensor([[0.1, 0.7], [-1.0, 0.4]])


def test_lsgan_generator_loss_is_mean_squared_distance_to_one():
    expected = ((0.1 - 1) ** 2 + (0.7 - 1) ** 2 + (-1.0 - 1) ** 2 + (0.4 - 1) ** 2) / 4
    assert losses.generator_adversarial_loss("lsgan", FAKE).item() == pytest.approx(expected)


def test_lsgan_discriminator_loss_sums_real_to_one_and_fake_to_zero():
    real_term = ((0.9 - 1) ** 2 + (0.2 - 1) ** 2 + (1.5 - 1) ** 2 + (-0.5 - 1) ** 2) / 4
    fake_term = (0.1 ** 2 + 0.7 ** 2 + 1.0 ** 2 + 0.4 ** 2) / 4
    assert losses.discriminator_adversarial_loss("lsgan", REAL, FAKE).item() == pytest.approx(real_term + fake_term)


def softplus(x):
    return math.log1p(math.exp(x))


def test_vanilla_losses_are_binary_cross_entropy_on_logits():
    # -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x)
    generator = sum(softplus(-x) for x in FAKE.flatten().tolist()) / 4
    discriminator = (sum(softplus(-x) for x in REAL.flatten().tolist()) / 4
                     + sum(softplus(x) for x in FAKE.flatten().tolist()) / 4)
    assert losses.generator_adversarial_loss("vanilla", FAKE).item() == pytest.approx(generator)
    assert losses.discriminator_adversarial_loss("vanilla", REAL, FAKE).item() == pytest.approx(discriminator)


def test_hinge_losses():
    real_term = (max(0, 1 - 0.9) + max(0, 1 - 0.2) + max(0, 1 - 1.5) + max(0, 1 + 0.5)) / 4
    fake_term = (max(0, 1 + 0.1) + max(0, 1 + 0.7) + max(0, 1 - 1.0) + max(0, 1 + 0.4)) / 4
    assert losses.discriminator_adversarial_loss("hinge", REAL, FAKE).item() == pytest.approx(real_term + fake_term)
    assert losses.generator_adversarial_loss("hinge", FAKE).item() == pytest.approx(-FAKE.mean().item())


def test_wasserstein_losses_are_differences_of_means():
    assert losses.discriminator_adversarial_loss("wgangp", REAL, FAKE).item() == pytest.approx(
        FAKE.mean().item() - REAL.mean().item())
    assert losses.generator_adversarial_loss("wgangp", FAKE).item() == pytest.approx(-FAKE.mean().item())


def test_gradient_penalty_of_a_linear_critic_is_its_squared_slope_excess():
    # D(x) = sum(w * x): the gradient is w everywhere, so the penalty is (||w|| - 1)^2 exactly.
    critic = nn.Conv2d(1, 1, kernel_size=2, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[[[1.0, 2.0], [2.0, 4.0]]]]))  # ||w|| = 5
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    penalty = losses.gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx(16.0)
    penalty.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0  # it trains the critic


def test_gradient_penalty_of_images_of_two_sizes_interpolates_their_shared_centre():
    # --preprocess none: the real image and the generated one (or the older one from the image
    # history) can differ in size; the penalty interpolates their centres of the common size.
    torch.manual_seed(0)
    critic = nn.Conv2d(1, 1, kernel_size=3)
    real, fake = torch.randn(1, 1, 4, 6), torch.randn(1, 1, 6, 4)
    torch.manual_seed(1)
    penalty = losses.gradient_penalty(critic, real, fake)
    torch.manual_seed(1)
    expected = losses.gradient_penalty(critic, real[:, :, :, 1:5], fake[:, :, 1:5, :])
    assert penalty.item() == expected.item()
    assert math.isfinite(penalty.item())


def test_cycle_and_identity_losses_are_mean_absolute_error():
    x = torch.tensor([[0.0, 0.5], [-1.0, 1.0]])
    y = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert losses.cycle_loss(y, x).item() == pytest.approx((0.5 + 0 + 2 + 1) / 4)
    assert losses.identity_loss(y, x).item() == pytest.approx(0.875)


def test_discriminator_accuracy_counts_patches_on_the_right_side_of_the_threshold():
    # lsgan: threshold 0.5. Real: 0.9, 1.5 correct (2 of 4). Fake: 0.1, -1.0, 0.4 correct (3 of 4).
    assert float(losses.discriminator_accuracy("lsgan", REAL, FAKE)) == pytest.approx((2 / 4 + 3 / 4) / 2)
    # logits: threshold 0. Real: 0.9, 0.2, 1.5 (3 of 4); fake: 0.1? no, -1.0 yes, 0.7 no, 0.4 no (1 of 4).
    assert float(losses.discriminator_accuracy("vanilla", REAL, FAKE)) == pytest.approx((3 / 4 + 1 / 4) / 2)


def test_unknown_gan_mode_is_rejected_with_the_choices():
    with pytest.raises(ConfigError, match="lsgan, vanilla, wgangp, hinge"):
        losses.generator_adversarial_loss("wasserstein", FAKE)
