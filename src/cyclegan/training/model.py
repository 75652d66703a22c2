"""The networks of a CycleGAN, pix2pix, CUT or FastCUT model, built from a ModelConfig.

Each model groups its generators in one module and its discriminators in another, whose
forward passes do all the work of one update. DistributedDataParallel needs exactly that:
one forward per backward for each wrapped module.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from cyclegan.config import ONE_DIRECTION_MODELS, ModelConfig, parse_nce_layers
from cyclegan.directions import Direction
from cyclegan.networks import (build_discriminator, build_generator_from_config, encode_features, feature_channels,
                               generate_with_features, generator_channels, paper_nce_layers)
from cyclegan.training.patchnce import FlipDraw, PatchProjector, patch_nce


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


class ContrastiveGenerator(nn.Module):
    """CUT's generator G for one direction and its PatchNCE projection heads (`projector`, one
    head per encoder layer PatchNCE reads), run together for one generator update: the forward
    returns the translations and the PatchNCE losses, so that under DDP the heads' gradients are
    part of the one forward per backward.

    The heads are built here from the channel counts of the chosen layers, which the architecture
    decides (`networks.feature_channels`; CUT builds them from the first batch's features, which
    have the same counts), so the optimizer made after the model holds their parameters and a
    resumed run loads them like any other weights.
    """

    def __init__(self, config: ModelConfig, direction: Direction, batch_calls: bool):
        super().__init__()
        self.G = build_generator_from_config(config, direction)
        self.nce_layers = (parse_nce_layers(config.nce_layers) if config.nce_layers is not None
                           else paper_nce_layers(self.G))
        self.projector = PatchProjector(feature_channels(self.G, self.nce_layers), init_type=config.init_type,
                                        init_gain=config.init_gain)
        self.batch_calls = batch_calls

    def forward(self, real_source: torch.Tensor, real_target: torch.Tensor, identity: bool, flipped: bool,
                rng: torch.Generator, num_patches: int, temperature: float) -> dict[str, torch.Tensor]:
        """G(source) ("fake"), PatchNCE between source and G(source) ("nce") and, with `identity`,
        G(target) ("identity") and PatchNCE between target and G(target) ("nce_identity").

        `flipped` (FastCUT's flip-equivariance, `patchnce.draw_flip`): G translates the mirrored
        images, and the translations' features are mirrored back before they meet the unmirrored
        inputs' features; the translations are returned as made (mirrored), for the discriminator.
        The locations come from `rng`, drawn per layer and per loss as CUT draws them.
        """
        flip = FlipDraw(flipped)
        same_size = real_source.shape == real_target.shape
        if identity and self.batch_calls and same_size:
            fakes, keys = self._translate_with_keys(torch.cat([real_source, real_target]), flip)
            n = real_source.shape[0]
            queries = flip.each(encode_features(self.G, fakes, self.nce_layers))
            pairs = {"": (fakes[:n], [key[:n] for key in keys], [query[:n] for query in queries]),
                     "_identity": (fakes[n:], [key[n:] for key in keys], [query[n:] for query in queries])}
        else:
            pairs = {}
            for suffix, images in (("", real_source), ("_identity", real_target)) if identity else (("", real_source),):
                fake, keys = self._translate_with_keys(images, flip)
                pairs[suffix] = (fake, keys, flip.each(encode_features(self.G, fake, self.nce_layers)))
        out = {}
        for suffix, (fake, keys, queries) in pairs.items():
            out["fake" if not suffix else "identity"] = fake
            out["nce" + suffix] = patch_nce(self.projector, queries, keys, rng, num_patches, temperature)
        return out

    def _translate_with_keys(self, images: torch.Tensor, flip: FlipDraw) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """G(flip(images)) and the encoder's features of the unmirrored images (PatchNCE's keys)."""
        if flip.flipped:
            return self.G(flip(images)), encode_features(self.G, images, self.nce_layers)
        return generate_with_features(self.G, images, self.nce_layers)


class TargetDiscriminator(nn.Module):
    """The one discriminator of CUT: real images of the target domain vs translations into it."""

    def __init__(self, config: ModelConfig, input_nc: int, batch_calls: bool):
        super().__init__()
        self.D = _discriminator(config, input_nc)
        self.batch_calls = batch_calls

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return judge(self.D, real, fake, self.batch_calls)


class ContrastiveModel(nn.Module):
    """CUT and FastCUT (Park et al. 2020): one generator for `config.direction` trained with an
    adversarial term and PatchNCE, its projection heads, and one discriminator for the target
    domain. The checkpoint names the generator and discriminator by direction as CycleGAN's are
    named (an A->B model holds G_AB, D_B and projector), so translation finds the generator of
    its direction, and a request for the other one is refused as for pix2pix."""

    def __init__(self, config: ModelConfig, batch_calls: bool = True):
        super().__init__()
        self.config = config
        self.direction = Direction.parse(config.direction)
        self.generators = ContrastiveGenerator(config, self.direction, batch_calls)
        target_channels = generator_channels(config, self.direction)[1]
        self.discriminators = TargetDiscriminator(config, target_channels, batch_calls)

    G = property(lambda self: self.generators.G)
    D = property(lambda self: self.discriminators.D)
    projector = property(lambda self: self.generators.projector)

    def networks(self) -> dict[str, nn.Module]:
        return {self.direction.generator: self.G, self.direction.discriminator: self.D, "projector": self.projector}

    def judges(self) -> dict[str, nn.Module]:
        """The discriminator by the domain it judges: the target domain."""
        return {self.direction.target: self.D}

    def generator_parameters(self):
        """G's and the projection heads' (CUT optimises them together, with the same settings)."""
        return list(self.generators.parameters())

    def discriminator_parameters(self):
        return list(self.discriminators.parameters())


def build_model(config: ModelConfig, batch_calls: bool = True) -> nn.Module:
    if config.model == "pix2pix":
        return Pix2Pix(config)
    if config.model in ONE_DIRECTION_MODELS:
        return ContrastiveModel(config, batch_calls=batch_calls and config.norm != "batch")
    return CycleGAN(config, batch_calls=batch_calls and config.norm != "batch")
