"""The networks of a CycleGAN or a pix2pix model, built from a ModelConfig.

Each model groups its generators in one module and its discriminators in another, whose
forward passes do all the work of one update. DistributedDataParallel needs exactly that:
one forward per backward for each wrapped module.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from cyclegan.config import ModelConfig
from cyclegan.directions import Direction
from cyclegan.networks import build_discriminator, build_generator_from_config


def _discriminator(config: ModelConfig, input_nc: int) -> nn.Module:
    return build_discriminator(config.net_d, input_nc, config.ndf, config.n_layers_d, config.norm,
                               config.init_type, config.init_gain,
                               antialias=config.antialias, spectral_norm=config.spectral_norm)


class CycleGenerators(nn.Module):
    """G_AB (the paper's G) and G_BA (its F), run together for one generator update."""

    def __init__(self, config: ModelConfig, batch_calls: bool):
        super().__init__()
        self.G_AB = build_generator_from_config(config, Direction.A_TO_B)
        self.G_BA = build_generator_from_config(config, Direction.B_TO_A)
        self.batch_calls = batch_calls

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor, identity: bool) -> dict[str, torch.Tensor]:
        """G_AB(a), G_BA(G_AB(a)), G_BA(b), G_AB(G_BA(b)) and, with identity, G_BA(a) and G_AB(b).

        Batched, the six generator calls become three: images that one generator processes
        independently are concatenated (instance norm works per image, so the result is the
        same as separate calls; with batch norm the trainer turns batching off).
        """
        g_ab, g_ba = self.G_AB, self.G_BA
        # Images of different sizes (--preprocess none or scale_width) cannot share a batch.
        if not self.batch_calls or real_a.shape != real_b.shape:
            out = {"fake_b": g_ab(real_a), "fake_a": g_ba(real_b)}
            out["reconstructed_a"], out["reconstructed_b"] = g_ba(out["fake_b"]), g_ab(out["fake_a"])
            if identity:
                out["identity_a"], out["identity_b"] = g_ba(real_a), g_ab(real_b)
            return out
        n = real_a.shape[0]
        if identity:
            fake_b, identity_b = g_ab(torch.cat([real_a, real_b])).split(n)
            fake_a, reconstructed_a, identity_a = g_ba(torch.cat([real_b, fake_b, real_a])).split(n)
        else:
            fake_b = g_ab(real_a)
            fake_a, reconstructed_a = g_ba(torch.cat([real_b, fake_b])).split(n)
        out = {"fake_b": fake_b, "fake_a": fake_a, "reconstructed_a": reconstructed_a,
               "reconstructed_b": g_ab(fake_a)}
        if identity:
            out["identity_a"], out["identity_b"] = identity_a, identity_b
        return out


def judge(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, batch_calls: bool):
    """(D(real), D(fake)), in one batched call where that gives the same result (and where the
    sizes match: the image history may hold a generated image of another size)."""
    if not batch_calls or real.shape != fake.shape:
        return discriminator(real), discriminator(fake)
    return discriminator(torch.cat([real, fake])).split(real.shape[0])


class CycleDiscriminators(nn.Module):
    """D_A judges images of domain A (real A vs G_BA(b)); D_B judges domain B."""

    def __init__(self, config: ModelConfig, batch_calls: bool):
        super().__init__()
        self.D_A = _discriminator(config, config.input_nc)
        self.D_B = _discriminator(config, config.output_nc)
        self.batch_calls = batch_calls

    def forward(self, real_a, fake_a, real_b, fake_b) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {"A": judge(self.D_A, real_a, fake_a, self.batch_calls),
                "B": judge(self.D_B, real_b, fake_b, self.batch_calls)}


class CycleGAN(nn.Module):
    """Two generators, G_AB: A -> B and G_BA: B -> A, and a discriminator per domain."""

    def __init__(self, config: ModelConfig, batch_calls: bool = True):
        super().__init__()
        self.config = config
        self.generators = CycleGenerators(config, batch_calls)
        self.discriminators = CycleDiscriminators(config, batch_calls)

    G_AB = property(lambda self: self.generators.G_AB)
    G_BA = property(lambda self: self.generators.G_BA)
    D_A = property(lambda self: self.discriminators.D_A)
    D_B = property(lambda self: self.discriminators.D_B)

    def networks(self) -> dict[str, nn.Module]:
        """The networks by their checkpoint names."""
        return {"G_AB": self.G_AB, "G_BA": self.G_BA, "D_A": self.D_A, "D_B": self.D_B}

    def judges(self) -> dict[str, nn.Module]:
        """The discriminator of each domain (D_A judges images of A)."""
        return {"A": self.D_A, "B": self.D_B}

    def generator_parameters(self):
        return list(self.generators.parameters())

    def discriminator_parameters(self):
        return list(self.discriminators.parameters())


class ConditionalDiscriminator(nn.Module):
    """pix2pix's discriminator: a PatchGAN that sees the input image and a candidate output
    stacked along the channels, so it judges whether the output fits *this* input."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.D = _discriminator(config, config.input_nc + config.output_nc)

    def forward(self, condition: torch.Tensor, real: torch.Tensor, fake: torch.Tensor):
        return judge(self.D, torch.cat([condition, real], 1), torch.cat([condition, fake], 1), batch_calls=False)


class Pix2PixGenerator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.G_AB = build_generator_from_config(config, Direction.A_TO_B)

    def forward(self, real_a: torch.Tensor) -> torch.Tensor:
        return self.G_AB(real_a)


class Pix2Pix(nn.Module):
    """pix2pix (Isola et al. 2017): one generator trained on pairs with L1 + a conditional GAN.
    The paper's upper bound for CycleGAN, which never sees pairs."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.generators = Pix2PixGenerator(config)
        self.discriminators = ConditionalDiscriminator(config)

    G_AB = property(lambda self: self.generators.G_AB)
    D = property(lambda self: self.discriminators.D)

    def networks(self) -> dict[str, nn.Module]:
        return {"G_AB": self.G_AB, "D": self.D}

    def judges(self) -> dict[str, nn.Module]:
        """The discriminator by the domain it judges: B, the output, seen beside its input."""
        return {"B": self.D}

    def generator_parameters(self):
        return list(self.generators.parameters())

    def discriminator_parameters(self):
        return list(self.discriminators.parameters())


def build_model(config: ModelConfig, batch_calls: bool = True) -> nn.Module:
    if config.model == "pix2pix":
        return Pix2Pix(config)
    return CycleGAN(config, batch_calls=batch_calls and config.norm != "batch")
