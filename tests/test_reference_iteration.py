"""Trainer.train_step is the reference code's training iteration.

An independent re-implementation of that iteration, written out below from the reference
(models/cycle_gan_model.py, networks.py, util/image_pool.py) with its own network functions, loss
formulas and Adam, takes the Trainer's weights and the same images at every step; the losses and
every weight of G_AB, G_BA, D_A and D_B after the step must agree to float32 rounding. The
re-implementation calls none of the project's networks, losses, pool or optimisers.

Both normalise with the reference's nn.InstanceNorm2d (the Trainer's faster subclass is swapped
out; tests/test_fast_instance_norm.py compares the two, and tests/test_reference_outputs.py the
networks with the reference's own output), and each step starts both from the Trainer's weights.
Two float32 computations that round differently would not stay comparable over several steps:
a ReLU input or a gradient within rounding of zero can go either way, and Adam's first steps,
of size lr whatever the gradient's size, turn such a flip into a difference of 2 lr that later
steps carry on.

The reference's order: the generators' update with the discriminators frozen, then the
discriminators' update on images drawn from a history pool (which returns the new image while it
holds fewer than pool_size), each discriminator loss halved; identity weighted lambda_identity *
lambda. Names below are the project's: G_AB maps A to B (the reference's G_A), D_B judges domain B
(the reference's D_A).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config
from cyclegan.training.trainer import Trainer

STEPS = 5
LAMBDA, LAMBDA_IDENTITY, POOL_SIZE = 10.0, 0.5, 50
LR, BETAS, EPS = 2e-4, (0.5, 0.999), 1e-8
BLOCKS = 6  # resnet_6blocks, as tiny_config builds it
# Both compute the same float32 operations but for Adam's, written here in another order: the
# tolerances are far below one Adam step (LR).
LOSS_RTOL, WEIGHT_ATOL = 1e-6, 1e-7
# Biases of convolutions followed by instance norm, which subtracts them again: their gradient is
# zero but for rounding, which Adam scales up to steps of up to LR. They change no output.
NORMALISED_BIASES = {"model.1", "model.4", "model.7", f"model.{10 + BLOCKS}", f"model.{13 + BLOCKS}",
                     "model.2", "model.5", "model.8"}


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """The reference's nn.InstanceNorm2d(affine=False, track_running_stats=False)."""
    return F.instance_norm(x, eps=1e-5)


def is_normalised_bias(key: str) -> bool:
    layer, _, kind = key.rpartition(".")
    return kind == "bias" and (layer in NORMALISED_BIASES or ".conv_block." in layer)


def conv(p: dict, key: str, x: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    return F.conv2d(x, p[f"{key}.weight"], p[f"{key}.bias"], stride=stride, padding=padding)


def reflect(x: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(x, (width,) * 4, mode="reflect")


def generator(p: dict, x: torch.Tensor) -> torch.Tensor:
    """The reference's ResnetGenerator, by its state-dict keys: c7s1, two stride-2 convs, residual
    blocks (reflect-pad, conv3, norm, ReLU, reflect-pad, conv3, norm), two transposed convs, c7s1, tanh."""
    x = F.relu(instance_norm(conv(p, "model.1", reflect(x, 3))))
    x = F.relu(instance_norm(conv(p, "model.4", x, stride=2, padding=1)))
    x = F.relu(instance_norm(conv(p, "model.7", x, stride=2, padding=1)))
    for block in range(10, 10 + BLOCKS):
        y = F.relu(instance_norm(conv(p, f"model.{block}.conv_block.1", reflect(x, 1))))
        x = x + instance_norm(conv(p, f"model.{block}.conv_block.5", reflect(y, 1)))
    for key in (f"model.{10 + BLOCKS}", f"model.{13 + BLOCKS}"):
        x = F.conv_transpose2d(x, p[f"{key}.weight"], p[f"{key}.bias"], stride=2, padding=1, output_padding=1)
        x = F.relu(instance_norm(x))
    return torch.tanh(conv(p, f"model.{17 + BLOCKS}", reflect(x, 3)))


def discriminator(p: dict, x: torch.Tensor) -> torch.Tensor:
    """The reference's 70x70 PatchGAN (NLayerDiscriminator, 3 layers), by its state-dict keys."""
    x = F.leaky_relu(conv(p, "model.0", x, stride=2, padding=1), 0.2)
    for key, stride in (("model.2", 2), ("model.5", 2), ("model.8", 1)):
        x = F.leaky_relu(instance_norm(conv(p, key, x, stride=stride, padding=1)), 0.2)
    return conv(p, "model.11", x, padding=1)


def least_squares(prediction: torch.Tensor, target: float) -> torch.Tensor:
    return ((prediction - target) ** 2).mean()


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().mean()


class Adam:
    """torch.optim.Adam's update (no weight decay, no amsgrad), written out."""

    def __init__(self, parameters: list[torch.Tensor]):
        self.parameters = parameters
        self.m = [torch.zeros_like(p) for p in parameters]
        self.v = [torch.zeros_like(p) for p in parameters]
        self.t = 0

    @torch.no_grad()
    def step(self, gradients: list[torch.Tensor]) -> None:
        self.t += 1
        beta1, beta2 = BETAS
        for parameter, gradient, m, v in zip(self.parameters, gradients, self.m, self.v):
            m.mul_(beta1).add_((1 - beta1) * gradient)
            v.mul_(beta2).add_((1 - beta2) * gradient * gradient)
            m_hat, v_hat = m / (1 - beta1 ** self.t), v / (1 - beta2 ** self.t)
            parameter.sub_(LR * m_hat / (v_hat.sqrt() + EPS))


class ReferencePool:
    """util/image_pool.py for fewer queries than pool_size: it keeps the image and returns it."""

    def __init__(self):
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        assert len(self.images) + len(images) <= POOL_SIZE, "past pool_size the reference draws at random"
        self.images.extend(images.detach().clone())
        return images.detach()


class ReferenceIteration:
    def __init__(self, weights: dict[str, dict[str, torch.Tensor]]):
        self.p = {name: {key: value.detach().clone().requires_grad_(True) for key, value in state.items()}
                  for name, state in weights.items()}
        self.g_parameters = [*self.p["G_AB"].values(), *self.p["G_BA"].values()]
        self.d_parameters = [*self.p["D_A"].values(), *self.p["D_B"].values()]
        self.adam_g, self.adam_d = Adam(self.g_parameters), Adam(self.d_parameters)
        self.pool_a, self.pool_b = ReferencePool(), ReferencePool()

    def __call__(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        p = self.p
        fake_b, fake_a = generator(p["G_AB"], real_a), generator(p["G_BA"], real_b)
        reconstructed_a, reconstructed_b = generator(p["G_BA"], fake_b), generator(p["G_AB"], fake_a)
        identity_a, identity_b = generator(p["G_BA"], real_a), generator(p["G_AB"], real_b)
        # The generators' update: gradients of the generators only (the discriminators are frozen).
        losses_g = {
            "loss_G_AB": least_squares(discriminator(p["D_B"], fake_b), 1.0),
            "loss_G_BA": least_squares(discriminator(p["D_A"], fake_a), 1.0),
            "loss_cycle_A": l1(reconstructed_a, real_a) * LAMBDA,
            "loss_cycle_B": l1(reconstructed_b, real_b) * LAMBDA,
            "loss_idt_A": l1(identity_a, real_a) * LAMBDA * LAMBDA_IDENTITY,
            "loss_idt_B": l1(identity_b, real_b) * LAMBDA * LAMBDA_IDENTITY,
        }
        self.adam_g.step(torch.autograd.grad(sum(losses_g.values()), self.g_parameters))
        # Then the discriminators', on this iteration's images drawn through the pools, loss halved.
        history_a, history_b = self.pool_a.query(fake_a), self.pool_b.query(fake_b)
        losses_d = {
            "loss_D_A": (least_squares(discriminator(p["D_A"], real_a), 1.0)
                         + least_squares(discriminator(p["D_A"], history_a), 0.0)) * 0.5,
            "loss_D_B": (least_squares(discriminator(p["D_B"], real_b), 1.0)
                         + least_squares(discriminator(p["D_B"], history_b), 0.0)) * 0.5,
        }
        self.adam_d.step(torch.autograd.grad(sum(losses_d.values()), self.d_parameters))
        return {name: loss.item() for name, loss in {**losses_g, **losses_d}.items()}

    @torch.no_grad()
    def load(self, weights: dict[str, dict[str, torch.Tensor]]) -> None:
        """Take these weights; Adam's moments and the pools stay the reference's own."""
        for name, state in weights.items():
            for key, value in state.items():
                self.p[name][key].copy_(value)


def binary_images(generator: torch.Generator) -> torch.Tensor:
    """Black-and-white 32x32 images (pixels exactly -1 or 1). A tanh output never equals them, so
    the sign of every L1 gradient (of output - target) is settled: no rounding can flip one."""
    return torch.randint(0, 2, (1, 3, 32, 32), generator=generator).float() * 2 - 1


def plain_trainer(tiny_dataset, tmp_path, batch_generator_calls: bool = False) -> Trainer:
    config = tiny_config(tiny_dataset, tmp_path / "runs", device="cpu", precision="fp32", nnpack=False,
                         channels_last=False, batch_generator_calls=batch_generator_calls)
    assert (config.loss.lambda_a, config.loss.lambda_b, config.loss.lambda_identity) == (LAMBDA, LAMBDA,
                                                                                       LAMBDA_IDENTITY)
    assert (config.loss.pool_size, config.loss.gan_mode, config.loss.d_ratio) == (POOL_SIZE, "lsgan", 2.0)
    assert (config.optim.lr, config.optim.beta1, config.optim.beta2) == (LR, *BETAS)
    assert (config.model.net_g, config.model.net_d, config.model.norm) == ("resnet_6blocks", "basic", "instance")
    return Trainer(config)


def with_reference_instance_norms(trainer: Trainer) -> Trainer:
    """The Trainer's networks with every instance norm replaced by nn.InstanceNorm2d itself."""
    for network in trainer.model.networks().values():
        for name, module in list(network.named_modules()):
            if isinstance(module, torch.nn.InstanceNorm2d) and type(module) is not torch.nn.InstanceNorm2d:
                assert not (module.affine or module.track_running_stats)
                parent, _, child = name.rpartition(".")
                setattr(network.get_submodule(parent), child, torch.nn.InstanceNorm2d(module.num_features))
    return trainer


def weights(trainer: Trainer) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {key: value.detach().clone() for key, value in network.state_dict().items()}
            for name, network in trainer.model.networks().items()}


def test_train_step_matches_an_independent_reimplementation_of_the_reference_iteration(tiny_dataset, tmp_path):
    trainer = with_reference_instance_norms(plain_trainer(tiny_dataset, tmp_path))
    reference = ReferenceIteration(weights(trainer))
    images = torch.Generator().manual_seed(7)
    for step in range(1, STEPS + 1):
        before = weights(trainer)
        reference.load(before)
        real_a, real_b = binary_images(images), binary_images(images)
        theirs = reference(real_a, real_b)
        ours = trainer.train_step(real_a, real_b)
        assert {name: pytest.approx(value, rel=LOSS_RTOL) for name, value in theirs.items()} == \
            {name: ours[name] for name in theirs}, f"step {step}"
        checked = 0
        for name, state in weights(trainer).items():
            for key, value in state.items():
                if is_normalised_bias(key):
                    continue
                difference = (value - reference.p[name][key]).abs().max().item()
                assert difference <= WEIGHT_ATOL, f"step {step}: {name}.{key} differs by {difference:.2e}"
                # Adam moved it by up to LR: the two agree on a step, not on standing still.
                assert (value - before[name][key]).abs().max().item() > 100 * WEIGHT_ATOL, f"{name}.{key}"
                checked += 1
        # Per generator 3 + 2 * BLOCKS + 3 weights and the last bias; per discriminator 5 weights, 2 biases.
        assert checked == 2 * (3 + 2 * BLOCKS + 3 + 1) + 2 * (5 + 2)


@pytest.mark.parametrize("batch_generator_calls", [False, True], ids=["separate calls", "batched calls"])
def test_the_generator_update_gives_the_discriminators_no_gradient(tiny_dataset, tmp_path, batch_generator_calls):
    trainer = plain_trainer(tiny_dataset, tmp_path, batch_generator_calls)
    networks = trainer.model.networks()
    d_parameters = [p for name in ("D_A", "D_B") for p in networks[name].parameters()]
    # Each gradient that reaches a parameter, in order: (network, whether any D already has a gradient).
    arrivals: list[tuple[str, bool]] = []
    for name, network in networks.items():
        for parameter in network.parameters():
            parameter.register_post_accumulate_grad_hook(
                lambda _, name=name: arrivals.append((name, any(p.grad is not None for p in d_parameters))))
    images = torch.Generator().manual_seed(3)
    trainer.train_step(binary_images(images), binary_images(images))

    kinds = [name[0] for name, _ in arrivals]
    generator_count = len([p for name in ("G_AB", "G_BA") for p in networks[name].parameters()])
    # First the generators' backward pass, once per parameter, with no discriminator gradient anywhere;
    # then the discriminators' own, once per parameter.
    assert kinds == ["G"] * generator_count + ["D"] * len(d_parameters)
    assert [has_d_gradient for name, has_d_gradient in arrivals if name.startswith("G")] == [False] * generator_count
