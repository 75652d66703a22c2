"""The four networks of a CycleGAN, built from a ModelConfig."""
from __future__ import annotations

import torch.nn as nn

from cyclegan.config import ModelConfig
from cyclegan.networks import build_discriminator, build_generator

# Names used in checkpoints and logs. The paper's G is G_AB and its F is G_BA. Unlike the
# reference code, D_A judges images of domain A (real A vs G_BA(b)) and D_B judges domain B.
NETWORK_NAMES = ("G_AB", "G_BA", "D_A", "D_B")


class CycleGAN(nn.Module):
    """Two generators, G_AB: A -> B and G_BA: B -> A, and a discriminator per domain."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

        def generator(input_nc: int, output_nc: int) -> nn.Module:
            return build_generator(config.net_g, input_nc, output_nc, config.ngf, config.norm, config.use_dropout,
                                   config.padding_type, config.init_type, config.init_gain)

        def discriminator(input_nc: int) -> nn.Module:
            return build_discriminator(config.net_d, input_nc, config.ndf, config.n_layers_d, config.norm,
                                       config.init_type, config.init_gain)

        self.G_AB = generator(config.input_nc, config.output_nc)
        self.G_BA = generator(config.output_nc, config.input_nc)
        self.D_A = discriminator(config.input_nc)
        self.D_B = discriminator(config.output_nc)

    def generator_parameters(self):
        return [*self.G_AB.parameters(), *self.G_BA.parameters()]

    def discriminator_parameters(self):
        return [*self.D_A.parameters(), *self.D_B.parameters()]
