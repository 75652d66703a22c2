"""Generators and discriminators of CycleGAN (Zhu et al., ICCV 2017).

The layers, their order and therefore the state-dict keys are those of the reference
implementation (junyanz/pytorch-CycleGAN-and-pix2pix, `models/networks.py`), so the
official pretrained generators load into these classes without renaming anything
(see `cyclegan.reference_format`).

Defaults reproduce the paper: a ResNet generator with 9 residual blocks, a 70x70 PatchGAN
discriminator, instance normalisation everywhere, weights drawn from N(0, 0.02).

Bias convention (taken from the reference, and relied on by `cyclegan.reference_format`):
a convolution that is followed by a norm layer has a bias only with instance norm. Batch
norm has its own learned shift, so a bias would be redundant; with norm "none" the reference
also leaves the bias out. The first and last convolutions that have no norm after them always
have a bias. Because of this rule the three norms give three distinguishable key sets.

Optional improvements, all off by default (so the networks above are the reference's): resize-
convolution up-sampling (Odena et al. 2016) and anti-aliased down- and up-sampling (Zhang 2019,
as in CUT, Park et al. 2020) in the ResNet generator, anti-aliased down-sampling and spectral
normalisation (Miyato et al. 2018) in the discriminators. They change the layer lists and so the
state-dict keys; `cyclegan.reference_format` knows only the reference layouts.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from cyclegan.config import DISCRIMINATORS, GENERATORS, INIT_TYPES, NORMS, PADDING_TYPES, UPSAMPLINGS, ModelConfig
from cyclegan.directions import Direction
from cyclegan.errors import ConfigError
from cyclegan.layers.antialias import BlurDownsample, BlurUpsample
from cyclegan.layers.instance_norm import FastInstanceNorm2d
from cyclegan.layers.nnpack import NnpackConv2d


_RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}
UNET_DOWNS = {"unet_256": 8, "unet_128": 7}


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")


def _uses_bias(norm: str) -> bool:
    """Whether a convolution followed by a `norm` layer has a bias (see the module docstring)."""
    return norm == "instance"


def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Return a factory `channels -> norm module` for one of NORMS.

    "instance" (the CycleGAN default): InstanceNorm2d(affine=False, track_running_stats=False),
    which has neither parameters nor buffers, as its faster subclass `FastInstanceNorm2d`.
    "batch" (the pix2pix default): BatchNorm2d(affine=True, track_running_stats=True).
    "none": nn.Identity, which keeps the layer indices, and so the state-dict keys, the same
    as with a norm.
    """
    _check_choice("norm", norm, NORMS)
    if norm == "instance":
        return lambda channels: FastInstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return lambda channels: nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    return lambda channels: nn.Identity()


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise `net` in place as the reference does, and return it.

    Weights of every convolution, transposed convolution and linear layer: "normal" N(0, gain)
    (the paper's choice, gain 0.02), "xavier" xavier_normal(gain), "kaiming"
    kaiming_normal(a=0, mode="fan_in") (gain is not used), "orthogonal" orthogonal(gain).
    Their biases are set to 0. BatchNorm2d weights are drawn from N(1, gain), biases set to 0.
    A spectrally normalised layer (the only parametrization these networks use) has its
    unnormalised weight drawn, then its normalisation registered anew, so that the power
    iteration starts from vectors estimated for the new weight rather than the old one.
    """
    _check_choice("init type", init_type, INIT_TYPES)
    weighted = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                nn.ConvTranspose3d, nn.Linear)

    def init_module(module: nn.Module) -> None:
        if isinstance(module, weighted):
            spectral = parametrize.is_parametrized(module, "weight")
            if spectral:
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            if init_type == "normal":
                nn.init.normal_(module.weight, 0.0, init_gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(module.weight, gain=init_gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(module.weight, gain=init_gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
            if spectral:
                parametrizations.spectral_norm(module)
        elif isinstance(module, nn.BatchNorm2d) and module.affine:
            nn.init.normal_(module.weight, 1.0, init_gain)
            nn.init.zeros_(module.bias)

    with torch.no_grad():
        net.apply(init_module)
    return net


def _check_input_size(x: torch.Tensor, multiple: int) -> None:
    height, width = x.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"input size {height}x{width} is not a multiple of {multiple}; "
            f"resize or pad the image so both sides are multiples of {multiple}"
        )


class ResnetBlock(nn.Module):
    """Residual block: x + conv_block(x), with the same spatial size and `dim` channels.

    `conv_block` is, as in the reference: pad(1), conv3x3, norm, ReLU, [Dropout(0.5)],
    pad(1), conv3x3, norm. With padding_type "zero" the pad layers are left out and the
    convolutions pad by 1 themselves. Paper defaults: reflect padding, instance norm, no dropout.
    """

    def __init__(self, dim: int, padding_type: str = "reflect", norm: str = "instance",
                 use_dropout: bool = False) -> None:
        super().__init__()
        _check_choice("padding type", padding_type, PADDING_TYPES)
        norm_layer = get_norm_layer(norm)
        use_bias = _uses_bias(norm)
        conv_padding = 1 if padding_type == "zero" else 0

        def pad() -> list[nn.Module]:
            if padding_type == "reflect":
                return [nn.ReflectionPad2d(1)]
            if padding_type == "replicate":
                return [nn.ReplicationPad2d(1)]
            return []

        layers = pad() + [
            NnpackConv2d(dim, dim, kernel_size=3, padding=conv_padding, bias=use_bias),
            norm_layer(dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += pad() + [
            NnpackConv2d(dim, dim, kernel_size=3, padding=conv_padding, bias=use_bias),
            norm_layer(dim),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """ResNet generator (Johnson et al. 2016), the CycleGAN paper's generator.

    c7s1-ngf, d(2 ngf), d(4 ngf), n_blocks x R(4 ngf), u(2 ngf), u(ngf), c7s1-output_nc, tanh.
    Downsampling is a stride-2 conv3x3, upsampling a stride-2 ConvTranspose2d. The paper uses
    9 blocks for 256x256 images and 6 for 128x128; defaults: 3 -> 3 channels, ngf 64,
    instance norm, no dropout, reflect padding. Input sides must be multiples of 4; the output
    has the input's height and width and values in [-1, 1].

    `model` has the reference's indices: with 9 blocks the convolutions are `model.1`,
    `model.4`, `model.7`, blocks `model.10` to `model.18`, transposed convolutions `model.19`
    and `model.22`, and the last convolution `model.26`.

    Options beyond the paper (the layer lists follow CUT's, so the indices after them shift):
    `antialias` makes each down-sampling a stride-1 conv3x3, norm, ReLU, then a blur pool
    (`BlurDownsample`, [1, 2, 1] as CUT), so the features alias less. `upsample` "resize_conv"
    replaces each transposed convolution by nearest-neighbour 2x up-sampling and a stride-1
    conv3x3 (Odena et al. 2016): every output pixel then gets the same number of kernel taps, so
    the up-sampling itself cannot make the checkerboard pattern a stride-2 transposed conv3x3
    makes. "antialias" does the same with CUT's `BlurUpsample` (zeros, then a [1, 3, 3, 1] blur)
    in place of the nearest-neighbour copy. The 3x3 convolutions after a resize pad with zeros,
    as the stride-2 ones they replace; the new stride-1 3x3 convolutions are `NnpackConv2d`, as
    the blocks' are.
    """

    size_multiple = 4

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64,
                 norm: str = "instance", use_dropout: bool = False, n_blocks: int = 9,
                 padding_type: str = "reflect", upsample: str = "transposed",
                 antialias: bool = False) -> None:
        super().__init__()
        _check_choice("padding type", padding_type, PADDING_TYPES)
        _check_choice("up-sampling", upsample, UPSAMPLINGS)
        if n_blocks < 0:
            raise ConfigError(f"n_blocks must be >= 0, got {n_blocks}")
        norm_layer = get_norm_layer(norm)
        use_bias = _uses_bias(norm)

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            NnpackConv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):
            channels = ngf * mult * 2
            if antialias:
                layers += [
                    NnpackConv2d(ngf * mult, channels, kernel_size=3, padding=1, bias=use_bias),
                    norm_layer(channels),
                    nn.ReLU(True),
                    BlurDownsample(channels),
                ]
            else:
                layers += [
                    nn.Conv2d(ngf * mult, channels, kernel_size=3, stride=2, padding=1,
                              bias=use_bias),
                    norm_layer(channels),
                    nn.ReLU(True),
                ]
        layers += [ResnetBlock(ngf * 4, padding_type, norm, use_dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            channels = ngf * mult // 2
            if upsample == "transposed":
                layers.append(nn.ConvTranspose2d(ngf * mult, channels, kernel_size=3, stride=2,
                                                 padding=1, output_padding=1, bias=use_bias))
            else:
                resize = (nn.Upsample(scale_factor=2, mode="nearest") if upsample == "resize_conv"
                          else BlurUpsample(ngf * mult))
                layers += [resize,
                           NnpackConv2d(ngf * mult, channels, kernel_size=3, padding=1, bias=use_bias)]
            layers += [norm_layer(channels), nn.ReLU(True)]
        layers += [
            nn.ReflectionPad2d(3),
            NnpackConv2d(ngf, output_nc, kernel_size=7, padding=0),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input_size(x, self.size_multiple)
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: down(x) -> submodule -> up, concatenated with x.

    Layouts of `model`, as in the reference:
      outermost: [conv4x4 s2, submodule, ReLU, ConvTranspose4x4 s2, Tanh] (no skip concat)
      innermost: [LeakyReLU(0.2), conv, ReLU, ConvTranspose, norm]
      otherwise: [LeakyReLU(0.2), conv, norm, submodule, ReLU, ConvTranspose, norm, [Dropout(0.5)]]
    `outer_nc` channels go in and come out (before the concat); the block below sees
    `inner_nc`. `input_nc` (default outer_nc) is the image channel count at the outermost level.
    """

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        if not innermost and submodule is None:
            raise ConfigError("a U-Net block that is not the innermost needs a submodule")
        self.outermost = outermost
        norm_layer = get_norm_layer(norm)
        use_bias = _uses_bias(norm)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)

        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1,
                                        bias=use_bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv,
                      norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                        padding=1, bias=use_bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, norm_layer(inner_nc), submodule,
                      nn.ReLU(True), upconv, norm_layer(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net generator (Ronneberger et al. 2015), the pix2pix generator, also offered by CycleGAN.

    `num_downs` stride-2 levels: an image of side 2**num_downs becomes 1x1 at the bottleneck,
    so input sides must be multiples of 2**num_downs ("unet_256": 8, "unet_128": 7). Channels
    ngf, 2 ngf, 4 ngf, then 8 ngf for the remaining levels; dropout (if on) in the 8 ngf levels
    below the fourth. Defaults follow the reference class: ngf 64, batch norm, no dropout.
    Keys nest as `model.model.0.weight` (outermost conv), `model.model.1.model.1.weight` ...
    """

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64,
                 norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ConfigError(f"a U-Net needs num_downs >= 5, got {num_downs}")
        self.size_multiple = 2 ** num_downs
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm,
                                            use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input_size(x, self.size_multiple)
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator; with n_layers=3 ("basic") it is the paper's 70x70 PatchGAN.

    C64 (no norm) - C128 - C256 (stride 2) - C512 (stride 1) - conv to 1 channel, all 4x4
    convolutions with LeakyReLU(0.2); channels double per layer up to 8 ndf. The output is a
    map of raw scores (no sigmoid; the loss decides), e.g. 30x30 for a 256x256 input and 6x6
    for 64x64. Defaults: 3 input channels, ndf 64, 3 layers, instance norm.

    Options beyond the paper, as in CUT's PatchGAN: `antialias` makes each stride-2 convolution
    a stride-1 one followed (after its norm and LeakyReLU) by a blur pool; the output size stays
    the same. `spectral_norm`: see `spectral_normalised_convs`; the norm layers become
    nn.Identity (same indices) and every convolution has a bias.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance", antialias: bool = False, spectral_norm: bool = False) -> None:
        super().__init__()
        if n_layers < 1:
            raise ConfigError(f"n_layers must be >= 1, got {n_layers}")
        norm_layer = get_norm_layer("none" if spectral_norm else norm)
        use_bias = spectral_norm or _uses_bias(norm)
        first_stride = 1 if antialias else 2
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=first_stride, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        if antialias:
            layers.append(BlurDownsample(ndf))
        mult = 1
        for n in range(1, n_layers + 1):
            prev_mult, mult = mult, min(2 ** n, 8)
            strided = n < n_layers
            layers += [
                nn.Conv2d(ndf * prev_mult, ndf * mult, kernel_size=4,
                          stride=2 if strided and not antialias else 1, padding=1, bias=use_bias),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
            if strided and antialias:
                layers.append(BlurDownsample(ndf * mult))
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        if spectral_norm:
            spectral_normalised_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN ("pixel"): judges every pixel on its own; output N x 1 x H x W raw scores.

    conv1x1(ndf) - LeakyReLU(0.2) - conv1x1(2 ndf) - norm - LeakyReLU(0.2) - conv1x1(1), as the
    reference, where the last convolution follows the bias rule of the middle one. Defaults:
    3 input channels, ndf 64, instance norm. `spectral_norm` as in `NLayerDiscriminator`.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, norm: str = "instance",
                 spectral_norm: bool = False) -> None:
        super().__init__()
        norm_layer = get_norm_layer("none" if spectral_norm else norm)
        use_bias = spectral_norm or _uses_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=use_bias),
        )
        if spectral_norm:
            spectral_normalised_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def spectral_normalised_convs(net: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every convolution of `net`, in place.

    Each weight is divided by its largest singular value, estimated by one power iteration per
    forward pass in training mode (torch.nn.utils.parametrizations.spectral_norm), which bounds
    each layer's Lipschitz constant by 1. The discriminators that use it have no norm layers:
    instance or batch norm rescales activations by statistics of the data, which undoes that
    bound, and SN-GAN's discriminators have none. Each weight's state-dict key becomes
    `<conv>.parametrizations.weight.original`, beside the power iteration's vectors
    `<conv>.parametrizations.weight.0._u` and `._v`, which are saved too so that a resumed run
    continues the same estimate. Because every training-mode call advances the estimate, judging
    real and fake images in one batched call and in two calls gives slightly different results.
    """
    convs = [module for module in net.modules()
             if isinstance(module, nn.Conv2d) and not parametrize.is_parametrized(module, "weight")]
    for conv in convs:
        parametrizations.spectral_norm(conv)
    return net


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")


def build_generator(net_g: str = "resnet_9blocks", input_nc: int = 3, output_nc: int = 3,
                    ngf: int = 64, norm: str = "instance", use_dropout: bool = False,
                    padding_type: str = "reflect", init_type: str = "normal",
                    init_gain: float = 0.02, upsample: str = "transposed",
                    antialias: bool = False) -> nn.Module:
    """Build and initialise one of GENERATORS. The defaults are the CycleGAN paper's:
    ResNet with 9 blocks, 3 -> 3 channels, ngf 64, instance norm, no dropout, reflect padding,
    weights N(0, 0.02), transposed-convolution up-sampling, plain strided down-sampling.
    `padding_type`, `upsample` and `antialias` only apply to the ResNet generators; a U-Net with
    `upsample` or `antialias` other than the default raises ConfigError.
    """
    _check_choice("generator", net_g, GENERATORS)
    _check_choice("norm", norm, NORMS)
    _check_choice("padding type", padding_type, PADDING_TYPES)
    _check_choice("init type", init_type, INIT_TYPES)
    _check_choice("up-sampling", upsample, UPSAMPLINGS)
    _check_positive(input_nc=input_nc, output_nc=output_nc, ngf=ngf)
    if net_g in _RESNET_BLOCKS:
        net: nn.Module = ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout,
                                         _RESNET_BLOCKS[net_g], padding_type, upsample, antialias)
    else:
        if upsample != "transposed" or antialias:
            raise ConfigError(f"--upsample {upsample} and --antialias apply to the ResNet generators only; "
                              f"leave them at their defaults with --netG {net_g}")
        net = UnetGenerator(input_nc, output_nc, UNET_DOWNS[net_g], ngf, norm, use_dropout)
    return init_weights(net, init_type, init_gain)


def build_generator_from_config(config: ModelConfig, direction: Direction | str = Direction.A_TO_B) -> nn.Module:
    """The generator of `direction` that `config` describes, as training builds it and loading
    fills it: A→B maps input_nc to output_nc channels, B→A the other way round."""
    input_nc, output_nc = generator_channels(config, direction)
    return build_generator(config.net_g, input_nc, output_nc, config.ngf, config.norm, config.use_dropout,
                           config.padding_type, config.init_type, config.init_gain,
                           upsample=config.upsample, antialias=config.antialias)


def generator_channels(config: ModelConfig, direction: Direction | str) -> tuple[int, int]:
    """(input channels, output channels) of the generator of `direction`."""
    if Direction.parse(direction) is Direction.B_TO_A:
        return config.output_nc, config.input_nc
    return config.input_nc, config.output_nc


def build_discriminator(net_d: str = "basic", input_nc: int = 3, ndf: int = 64,
                        n_layers_d: int = 3, norm: str = "instance", init_type: str = "normal",
                        init_gain: float = 0.02, antialias: bool = False,
                        spectral_norm: bool = False) -> nn.Module:
    """Build and initialise one of DISCRIMINATORS. The defaults are the CycleGAN paper's:
    the 70x70 PatchGAN ("basic", which is "n_layers" with 3 layers; `n_layers_d` only applies
    to "n_layers"), 3 input channels, ndf 64, instance norm, weights N(0, 0.02).
    `antialias` blurs before each stride-2 sub-sampling of the PatchGANs (the pixel
    discriminator has none, so it is unchanged); `spectral_norm` normalises every convolution
    and drops the norm layers (`spectral_normalised_convs`).
    """
    _check_choice("discriminator", net_d, DISCRIMINATORS)
    _check_choice("norm", norm, NORMS)
    _check_choice("init type", init_type, INIT_TYPES)
    _check_positive(input_nc=input_nc, ndf=ndf, n_layers_d=n_layers_d)
    if net_d == "pixel":
        net: nn.Module = PixelDiscriminator(input_nc, ndf, norm, spectral_norm)
    else:
        n_layers = 3 if net_d == "basic" else n_layers_d
        net = NLayerDiscriminator(input_nc, ndf, n_layers, norm, antialias, spectral_norm)
    return init_weights(net, init_type, init_gain)


def size_multiple(net_g: str) -> int:
    """The input height and width must be multiples of this for generator `net_g`:
    4 for the ResNets (two stride-2 levels), 2**num_downs for the U-Nets (256 and 128).
    """
    _check_choice("generator", net_g, GENERATORS)
    if net_g in _RESNET_BLOCKS:
        return ResnetGenerator.size_multiple
    return 2 ** UNET_DOWNS[net_g]


def count_parameters(net: nn.Module) -> int:
    """Number of scalar parameters of `net` (buffers such as BatchNorm running stats excluded)."""
    return sum(p.numel() for p in net.parameters())


# --- encoder features for CUT's PatchNCE --------------------------------------------------------

def _resnet_layers(generator: nn.Module) -> nn.Sequential:
    if not isinstance(generator, ResnetGenerator):
        raise ConfigError(f"PatchNCE reads the encoder of a ResNet generator, not a {type(generator).__name__}; "
                          "use --netG resnet_9blocks or resnet_6blocks")
    return generator.model


def paper_nce_layers(generator: nn.Module) -> tuple[int, ...]:
    """The indices into `generator.model` of the layers CUT's PatchNCE reads, chosen by meaning.

    CUT (Park et al. 2020) reads five layers of its anti-aliased ResNet generator (its
    `--nce_layers 0,4,8,12,16`): the padded RGB input, the convolution of each down-sampling
    (before its norm), the first residual block and the middle one (the fifth of nine). The
    same meanings give 0, 4, 8, 12, 16 with `antialias` (CUT's layer list) and 0, 4, 7, 10, 14
    with the plain strided down-sampling, where CUT's numbers would point at other layers. With
    6 blocks the middle block is the fourth (the later of the two middle ones).
    """
    layers = _resnet_layers(generator)
    blocks = [index for index, layer in enumerate(layers) if isinstance(layer, ResnetBlock)]
    if not blocks:
        raise ConfigError("the paper's PatchNCE layers include residual blocks and this generator has none; "
                          "give the layers with --nce-layers")
    # The first convolution is the c7s1 block's; the next two are the down-samplings'.
    convolutions = [index for index, layer in enumerate(layers[:blocks[0]]) if isinstance(layer, nn.Conv2d)]
    return (0, convolutions[1], convolutions[2], blocks[0], blocks[len(blocks) // 2])


def _check_nce_layers(layers: nn.Sequential, wanted: tuple[int, ...]) -> None:
    if not wanted:
        raise ConfigError("PatchNCE needs at least one layer; give --nce-layers, e.g. 0,4,8,12,16")
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"--nce-layers lists a layer twice: {','.join(map(str, wanted))}; list each once")
    outside = [index for index in wanted if not 0 <= index < len(layers)]
    if outside:
        raise ConfigError(f"--nce-layers {','.join(map(str, outside))} outside this generator's layers "
                          f"0 to {len(layers) - 1}; choose layers of its encoder")


def feature_channels(generator: nn.Module, layers: tuple[int, ...]) -> tuple[int, ...]:
    """The channel count of each of `layers`' activations in `generator.model`, read from the
    architecture without running it, so that a head per layer (`PatchProjector`) can be built
    before the optimizer, and before any batch is seen."""
    sequential = _resnet_layers(generator)
    wanted = tuple(layers)
    _check_nce_layers(sequential, wanted)
    channels = sequential[1].in_channels  # the first convolution reads the image
    counts: dict[int, int] = {}
    for index, layer in enumerate(sequential[:max(wanted) + 1]):
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            channels = layer.out_channels
        counts[index] = channels
    return tuple(counts[index] for index in wanted)


def _run_collecting(generator: nn.Module, x: torch.Tensor, layers: tuple[int, ...],
                    to_the_end: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    sequential = _resnet_layers(generator)
    wanted = tuple(layers)
    _check_nce_layers(sequential, wanted)
    _check_input_size(x, generator.size_multiple)
    last = len(sequential) - 1 if to_the_end else max(wanted)
    collected: dict[int, torch.Tensor] = {}
    for index, layer in enumerate(sequential[:last + 1]):
        # An in-place layer (the ReLUs) would overwrite a collected activation: give it a copy.
        if index - 1 in collected and getattr(layer, "inplace", False):
            x = x.clone()
        x = layer(x)
        if index in wanted:
            collected[index] = x
    return x, [collected[index] for index in wanted]


def encode_features(generator: nn.Module, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
    """The activations of `layers` (indices into the ResNet generator's `model`) for input `x`,
    in the order given, each N x C x H x W; the layers after the last one asked for are not run.

    Layer i's activation is the output of `model[i]` (layer 0, a padding, gives the padded input),
    as CUT reads its generator. Raises ConfigError for a generator other than a ResNet and for
    layers it does not have.
    """
    return _run_collecting(generator, x, layers, to_the_end=False)[1]


def generate_with_features(generator: nn.Module, x: torch.Tensor,
                           layers: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`generator(x)` and, from the same pass, `encode_features(generator, x, layers)`: the keys
    of PatchNCE are the encoder's features of the very images the generator translates, so one
    pass gives both. Not where FastCUT mirrors the generator's input: its keys are the features
    of the unmirrored image."""
    return _run_collecting(generator, x, layers, to_the_end=True)
