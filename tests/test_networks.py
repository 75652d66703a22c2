"""Specification of cyclegan.networks: reference layouts, sizes, shapes, loading reference weights."""

import pytest
import torch
from torch import nn

from cyclegan.errors import ConfigError
from cyclegan.layers.instance_norm import FastInstanceNorm2d
from cyclegan.layers.nnpack import NnpackConv2d
from cyclegan.networks import (
    NLayerDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    build_discriminator,
    build_generator,
    count_parameters,
    get_norm_layer,
    init_weights,
    size_multiple,
)


def conv_params(c_in, c_out, k, bias):
    return c_in * c_out * k * k + (c_out if bias else 0)


# --- parameter counts (ngf/ndf 64, 3 -> 3 channels) -------------------------------------------

def test_resnet_9blocks_instance_norm_has_reference_parameter_count():
    assert count_parameters(ResnetGenerator(3, 3, 64, "instance", n_blocks=9)) == 11_378_179


def test_resnet_6blocks_instance_norm_has_parameter_count_by_formula():
    # Everything outside the blocks is shared with the 9-block net; each block is 2 biased conv3x3 256->256.
    block = 2 * conv_params(256, 256, 3, True)
    outside = (conv_params(3, 64, 7, True) + conv_params(64, 128, 3, True)
               + conv_params(128, 256, 3, True) + conv_params(256, 128, 3, True)
               + conv_params(128, 64, 3, True) + conv_params(64, 3, 7, True))
    assert outside + 9 * block == 11_378_179
    assert outside + 6 * block == 7_837_699
    assert count_parameters(ResnetGenerator(3, 3, 64, "instance", n_blocks=6)) == 7_837_699


def unet_batch_norm_parameters(num_downs):
    """The reference U-Net with batch norm: inner convs have no bias, BatchNorm has 2 per channel."""
    bn = lambda c: 2 * c  # noqa: E731
    outermost = conv_params(3, 64, 4, False) + conv_params(128, 3, 4, True)
    def level(outer, inner):
        return conv_params(outer, inner, 4, False) + bn(inner) + conv_params(2 * inner, outer, 4, False) + bn(outer)
    innermost = conv_params(512, 512, 4, False) + conv_params(512, 512, 4, False) + bn(512)
    return (outermost + level(64, 128) + level(128, 256) + level(256, 512)
            + (num_downs - 5) * level(512, 512) + innermost)


def test_unet_256_batch_norm_has_parameter_count_by_formula():
    assert unet_batch_norm_parameters(8) == 54_413_955  # printed by the reference as "54.414 M"
    assert count_parameters(UnetGenerator(3, 3, 8, 64, "batch")) == 54_413_955


def test_unet_128_batch_norm_has_parameter_count_by_formula():
    assert unet_batch_norm_parameters(7) == 41_828_995
    assert count_parameters(UnetGenerator(3, 3, 7, 64, "batch")) == 41_828_995


def test_unet_256_instance_norm_has_biases_instead_of_norm_parameters():
    assert count_parameters(UnetGenerator(3, 3, 8, 64, "instance")) == 54_409_603


def test_basic_patchgan_instance_norm_has_reference_parameter_count():
    assert count_parameters(NLayerDiscriminator(3, 64, 3, "instance")) == 2_764_737


def test_pixel_discriminator_has_parameter_count_by_formula():
    expected = conv_params(3, 64, 1, True) + conv_params(64, 128, 1, True) + conv_params(128, 1, 1, True)
    assert expected == 8_705
    assert count_parameters(PixelDiscriminator(3, 64, "instance")) == 8_705


def test_build_functions_default_to_the_paper_networks():
    assert count_parameters(build_generator()) == 11_378_179
    assert count_parameters(build_discriminator()) == 2_764_737


# --- state-dict layout ---------------------------------------------------------------------------

RESNET_9BLOCKS_KEYS = [
    "model.1.weight", "model.1.bias", "model.4.weight", "model.4.bias", "model.7.weight", "model.7.bias",
    "model.10.conv_block.1.weight", "model.10.conv_block.1.bias", "model.10.conv_block.5.weight", "model.10.conv_block.5.bias",
    "model.11.conv_block.1.weight", "model.11.conv_block.1.bias", "model.11.conv_block.5.weight", "model.11.conv_block.5.bias",
    "model.12.conv_block.1.weight", "model.12.conv_block.1.bias", "model.12.conv_block.5.weight", "model.12.conv_block.5.bias",
    "model.13.conv_block.1.weight", "model.13.conv_block.1.bias", "model.13.conv_block.5.weight", "model.13.conv_block.5.bias",
    "model.14.conv_block.1.weight", "model.14.conv_block.1.bias", "model.14.conv_block.5.weight", "model.14.conv_block.5.bias",
    "model.15.conv_block.1.weight", "model.15.conv_block.1.bias", "model.15.conv_block.5.weight", "model.15.conv_block.5.bias",
    "model.16.conv_block.1.weight", "model.16.conv_block.1.bias", "model.16.conv_block.5.weight", "model.16.conv_block.5.bias",
    "model.17.conv_block.1.weight", "model.17.conv_block.1.bias", "model.17.conv_block.5.weight", "model.17.conv_block.5.bias",
    "model.18.conv_block.1.weight", "model.18.conv_block.1.bias", "model.18.conv_block.5.weight", "model.18.conv_block.5.bias",
    "model.19.weight", "model.19.bias", "model.22.weight", "model.22.bias", "model.26.weight", "model.26.bias",
]


def test_resnet_9blocks_state_dict_keys_are_the_reference_layout():
    net = ResnetGenerator(3, 3, ngf=8, norm="instance", n_blocks=9)
    assert list(net.state_dict()) == RESNET_9BLOCKS_KEYS
    assert isinstance(net.model[19], nn.ConvTranspose2d)
    assert isinstance(net.model[22], nn.ConvTranspose2d)
    assert isinstance(net.model[26], nn.Conv2d)


def test_resnet_block_with_dropout_puts_dropout_after_the_first_relu():
    net = ResnetGenerator(3, 3, ngf=8, use_dropout=True, n_blocks=1)
    layer_types = [type(m) for m in net.model[10].conv_block]
    assert layer_types == [nn.ReflectionPad2d, NnpackConv2d, FastInstanceNorm2d, nn.ReLU, nn.Dropout,
                           nn.ReflectionPad2d, NnpackConv2d, FastInstanceNorm2d]


def test_unet_state_dict_keys_nest_as_the_reference():
    keys = list(UnetGenerator(3, 3, 7, ngf=8, norm="batch").state_dict())
    assert keys[:3] == ["model.model.0.weight", "model.model.1.model.1.weight", "model.model.1.model.2.weight"]
    assert "model.model.0.bias" not in keys  # batch norm: no bias before a norm
    assert keys[-2:] == ["model.model.3.weight", "model.model.3.bias"]
    innermost = "model.model.1" + ".model.3" * 5
    assert f"{innermost}.model.1.weight" in keys and f"{innermost}.model.4.running_mean" in keys


def test_norm_layers_are_reference_norms():
    instance = get_norm_layer("instance")(4)
    batch = get_norm_layer("batch")(4)
    assert isinstance(instance, nn.InstanceNorm2d)
    assert (instance.affine, instance.track_running_stats) == (False, False)
    assert isinstance(batch, nn.BatchNorm2d)
    assert (batch.affine, batch.track_running_stats) == (True, True)
    assert isinstance(get_norm_layer("none")(4), nn.Identity)


# --- shapes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("net_g", ["resnet_9blocks", "resnet_6blocks"])
def test_resnet_generator_keeps_non_square_shape_and_output_is_in_tanh_range(net_g):
    torch.manual_seed(0)
    net = build_generator(net_g, ngf=8)
    out = net(torch.randn(2, 3, 32, 48) * 3)
    assert out.shape == (2, 3, 32, 48)
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("net_g, side", [("unet_128", 128), ("unet_256", 256)])
def test_unet_generator_keeps_shape(net_g, side):
    net = build_generator(net_g, ngf=2, norm="instance")
    out = net(torch.randn(1, 3, side, side))
    assert out.shape == (1, 3, side, side)
    assert out.min() >= -1 and out.max() <= 1


def test_one_channel_input_gives_three_channel_output():
    net = build_generator("resnet_6blocks", input_nc=1, output_nc=3, ngf=8)
    assert net(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_generator_rejects_input_size_that_is_not_a_multiple():
    with pytest.raises(ValueError, match="multiple of 4"):
        build_generator(ngf=8)(torch.randn(1, 3, 30, 32))


def test_size_multiple_per_generator():
    assert [size_multiple(g) for g in ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")] == [4, 4, 256, 128]


def test_patchgan_gives_6x6_on_64x64_and_30x30_on_256x256():
    net = build_discriminator("basic", ndf=8)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    assert net(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_n_layers_discriminator_uses_n_layers_d():
    net = build_discriminator("n_layers", input_nc=1, ndf=8, n_layers_d=2)
    assert net(torch.randn(1, 1, 64, 64)).shape == (1, 1, 14, 14)


def test_pixel_discriminator_scores_every_pixel():
    net = build_discriminator("pixel", ndf=8)
    assert net(torch.randn(2, 3, 32, 48)).shape == (2, 1, 32, 48)


# --- initialisation ------------------------------------------------------------------------------

def test_normal_init_gives_std_002_weights_and_zero_biases():
    torch.manual_seed(0)
    net = init_weights(nn.Sequential(nn.Conv2d(256, 256, 3), nn.ConvTranspose2d(8, 8, 3)), "normal", 0.02)
    assert net[0].weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert net[0].weight.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert torch.count_nonzero(net[0].bias) == 0 and torch.count_nonzero(net[1].bias) == 0


def test_batch_norm_init_is_normal_around_one_with_zero_bias():
    torch.manual_seed(0)
    bn = init_weights(nn.Sequential(nn.BatchNorm2d(4096)))[0]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert bn.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(bn.bias) == 0


@pytest.mark.parametrize("init_type", ["xavier", "kaiming", "orthogonal"])
def test_other_init_types_run_and_zero_biases(init_type):
    conv = init_weights(nn.Sequential(nn.Conv2d(4, 4, 3)), init_type)[0]
    assert torch.count_nonzero(conv.bias) == 0


def test_unknown_init_type_raises_config_error_naming_valid_ones():
    with pytest.raises(ConfigError, match="normal, xavier, kaiming, orthogonal"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")


# --- bad names -----------------------------------------------------------------------------------

def test_unknown_generator_name_lists_the_choices():
    with pytest.raises(ConfigError, match="resnet_9blocks, resnet_6blocks, unet_256, unet_128"):
        build_generator("resnet_7")


def test_unknown_norm_lists_the_choices():
    with pytest.raises(ConfigError, match="instance, batch, none"):
        build_generator(norm="group")
    with pytest.raises(ConfigError, match="instance, batch, none"):
        get_norm_layer("group")


def test_unknown_discriminator_and_padding_list_the_choices():
    with pytest.raises(ConfigError, match="basic, n_layers, pixel"):
        build_discriminator("patch")
    with pytest.raises(ConfigError, match="reflect, replicate, zero"):
        build_generator(padding_type="circular")
