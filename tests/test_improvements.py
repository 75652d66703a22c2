"""Specification of the optional improvements (issue #13, item 4), all off by default:
resize-convolution and anti-aliased sampling in the networks, spectral normalisation of the
discriminators, and differentiable augmentation of what the discriminators see."""

import argparse

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.augment import (
    augment_for_discriminator,
    cut_out,
    diff_augment,
    parse_policy,
    random_cutout,
    random_translation,
    translate,
)
from cyclegan.cli import build_parser
from cyclegan.cli.options import config_from_args
from cyclegan.config import ModelConfig, TrainConfig
from cyclegan.errors import CheckpointError, ConfigError
from cyclegan.checkpoint import load_generator
from cyclegan.layers.antialias import BlurDownsample, BlurUpsample, binomial_filter
from cyclegan.layers.instance_norm import FastInstanceNorm2d
from cyclegan.networks import (
    NLayerDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    build_discriminator,
    build_generator,
    count_parameters,
    init_weights,
)
from cyclegan.reference_format import generator_from_state_dict, infer_generator_architecture
from cyclegan import checkpoint as ckpt
from cyclegan.training.model import build_model


def conv_params(c_in, c_out, k, bias):
    return c_in * c_out * k * k + (c_out if bias else 0)


def largest_singular_value(conv: nn.Conv2d) -> float:
    return torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()


# --- defaults untouched ----------------------------------------------------------------------

def test_default_options_are_off_and_build_the_paper_networks():
    config = TrainConfig()
    assert (config.model.upsample, config.model.antialias, config.model.spectral_norm) == ("transposed", False, False)
    assert config.loss.diff_augment == ""
    model = build_model(ModelConfig())
    assert count_parameters(model.G_AB) == 11_378_179
    assert count_parameters(model.D_A) == 2_764_737


def test_default_networks_have_no_new_layers_and_the_reference_keys():
    generator = build_generator(ngf=8)
    discriminator = build_discriminator(ndf=8)
    new_layers = (BlurDownsample, BlurUpsample, nn.Upsample)
    assert not any(isinstance(m, new_layers) for m in [*generator.modules(), *discriminator.modules()])
    assert not any("parametrizations" in key for key in discriminator.state_dict())
    assert list(discriminator.state_dict()) == [
        "model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias", "model.5.weight", "model.5.bias",
        "model.8.weight", "model.8.bias", "model.11.weight", "model.11.bias"]
    assert [type(m) for m in generator.model[19:25]] == [nn.ConvTranspose2d, FastInstanceNorm2d, nn.ReLU,
                                                         nn.ConvTranspose2d, FastInstanceNorm2d, nn.ReLU]


def test_reference_format_still_infers_the_default_generator():
    state = build_generator("resnet_6blocks", ngf=8, norm="batch").state_dict()
    assert infer_generator_architecture(state) == {
        "net_g": "resnet_6blocks", "input_nc": 3, "output_nc": 3, "ngf": 8, "norm": "batch", "use_dropout": False}


@pytest.mark.parametrize("options", [{"upsample": "resize_conv"}, {"upsample": "antialias"}, {"antialias": True}])
def test_reference_format_refuses_generators_with_the_new_layouts(options):
    state = build_generator("resnet_6blocks", ngf=8, **options).state_dict()
    with pytest.raises(CheckpointError):
        generator_from_state_dict(state)


# --- up-sampling by resize + convolution -----------------------------------------------------

@pytest.mark.parametrize("upsample", ["resize_conv", "antialias"])
def test_resize_up_sampling_keeps_shape_and_the_parameter_count(upsample):
    # The conv3x3 that follows the resize has the transposed conv3x3's in -> out channels.
    net = build_generator("resnet_6blocks", ngf=8, upsample=upsample)
    assert net(torch.randn(2, 3, 32, 48)).shape == (2, 3, 32, 48)
    block = 2 * conv_params(32, 32, 3, True)
    outside = (conv_params(3, 8, 7, True) + conv_params(8, 16, 3, True) + conv_params(16, 32, 3, True)
               + conv_params(32, 16, 3, True) + conv_params(16, 8, 3, True) + conv_params(8, 3, 7, True))
    assert count_parameters(net) == outside + 6 * block == count_parameters(build_generator("resnet_6blocks", ngf=8))


def test_resize_conv_layout_is_upsample_then_stride_1_conv3x3():
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=1, upsample="resize_conv")
    up, conv = net.model[11], net.model[12]
    assert isinstance(up, nn.Upsample) and (up.scale_factor, up.mode) == (2.0, "nearest")
    assert isinstance(conv, nn.Conv2d) and (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(ResnetGenerator(3, 3, ngf=8, n_blocks=1, upsample="antialias").model[11], BlurUpsample)


def decoder_response_to_a_constant(upsample):
    """The generator's two up-sampling stages (no norm, so a constant stays a constant) applied to a
    constant 8x8 feature map, away from the 4 border pixels that the zero padding reaches."""
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", ngf=8, norm="none", upsample=upsample)
    decoder = net.model[16:-3]  # after the 6 blocks, before the last pad, conv and tanh
    with torch.no_grad():
        return decoder(torch.ones(1, 32, 8, 8))[0, :, 4:-4, 4:-4]


def test_transposed_conv_answers_a_constant_with_a_checkerboard_and_resize_conv_does_not():
    def phase_gap(out):  # largest difference between the mean of even and of odd positions, per channel
        return (out[:, 0::2, 0::2].mean((1, 2)) - out[:, 1::2, 1::2].mean((1, 2))).abs().max().item()

    transposed = decoder_response_to_a_constant("transposed")
    assert phase_gap(transposed) > 0.1 * transposed.abs().max().item()
    for upsample in ("resize_conv", "antialias"):
        out = decoder_response_to_a_constant(upsample)
        assert out.abs().max() > 0
        assert torch.allclose(out, out[:, :1, :1].expand_as(out), atol=1e-6)  # constant in every channel


def test_upsample_and_antialias_are_refused_for_the_unet():
    with pytest.raises(ConfigError, match="ResNet generators only"):
        build_generator("unet_128", ngf=8, upsample="resize_conv")
    with pytest.raises(ConfigError, match="ResNet generators only"):
        build_generator("unet_128", ngf=8, antialias=True)
    with pytest.raises(ConfigError, match="transposed, resize_conv, antialias"):
        build_generator(ngf=8, upsample="bicubic")


# --- anti-aliasing ---------------------------------------------------------------------------

def test_binomial_filters_are_pascal_rows_normalised():
    assert torch.equal(binomial_filter(3) * 16, torch.tensor([[1., 2., 1.], [2., 4., 2.], [1., 2., 1.]]))
    row = torch.tensor([1., 3., 3., 1.])
    assert torch.equal(binomial_filter(4) * 64, row[:, None] * row[None, :])
    assert binomial_filter(5).sum().item() == pytest.approx(1.0)


def test_blur_layers_hold_fixed_filters_outside_the_state_dict():
    down, up = BlurDownsample(4), BlurUpsample(4)
    assert list(down.state_dict()) == [] and list(up.state_dict()) == []
    assert list(down.parameters()) == [] and list(up.parameters()) == []
    assert torch.equal(down.kernel[2, 0], binomial_filter(3))
    assert torch.equal(up.kernel[0, 0], 4 * binomial_filter(4))


def test_blur_downsample_halves_even_sides_and_averages_with_the_filter():
    x = torch.arange(64.).reshape(1, 1, 8, 8)
    out = BlurDownsample(1)(x)
    assert out.shape == (1, 1, 4, 4)
    # Output (1, 1) is centred on input (2, 2): a linear ramp is kept exactly by a symmetric filter.
    assert out[0, 0, 1, 1].item() == pytest.approx(x[0, 0, 2, 2].item())
    assert torch.allclose(BlurDownsample(3)(torch.full((2, 3, 6, 6), 0.7)), torch.full((2, 3, 3, 3), 0.7))


def test_blur_upsample_is_bilinear_interpolation():
    x = torch.randn(2, 3, 5, 7)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(BlurUpsample(3)(x), expected, atol=1e-6)


def test_antialiased_encoder_changes_less_than_the_strided_one_when_the_input_moves_one_pixel():
    torch.manual_seed(0)
    strided = build_generator("resnet_6blocks", ngf=8)
    antialiased = build_generator("resnet_6blocks", ngf=8, antialias=True)
    for plain_index, antialiased_index in ((1, 1), (4, 4), (7, 8)):  # the same convolution weights
        antialiased.model[antialiased_index].load_state_dict(strided.model[plain_index].state_dict())
    x = torch.randn(4, 3, 32, 32)
    shifted = torch.roll(x, 1, dims=3)

    def relative_change(encoder):
        with torch.no_grad():
            a, b = encoder(x)[..., 1:-1, 1:-1], encoder(shifted)[..., 1:-1, 1:-1]
        return ((a - b).norm() / a.norm()).item()

    assert relative_change(antialiased.model[:12]) < 0.5 * relative_change(strided.model[:10])


def test_antialiased_generator_layout_and_parameter_count():
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=1, antialias=True)
    assert [type(m).__name__ for m in net.model[4:12]] == [
        "NnpackConv2d", "FastInstanceNorm2d", "ReLU", "BlurDownsample",
        "NnpackConv2d", "FastInstanceNorm2d", "ReLU", "BlurDownsample"]
    assert net.model[4].stride == (1, 1)
    assert count_parameters(net) == count_parameters(ResnetGenerator(3, 3, ngf=8, n_blocks=1))
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_antialiased_patchgan_blurs_after_every_stride_2_layer_and_keeps_the_output_size():
    net = build_discriminator("basic", ndf=8, antialias=True)
    blurs = [i for i, m in enumerate(net.model) if isinstance(m, BlurDownsample)]
    assert blurs == [2, 6, 10]
    assert all(m.stride == (1, 1) for m in net.model if isinstance(m, nn.Conv2d))
    assert count_parameters(net) == count_parameters(build_discriminator("basic", ndf=8))
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    assert net(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_pixel_discriminator_has_nothing_to_antialias():
    torch.manual_seed(0)
    plain = build_discriminator("pixel", ndf=8)
    torch.manual_seed(0)
    antialiased = build_discriminator("pixel", ndf=8, antialias=True)
    assert str(plain) == str(antialiased)


# --- spectral normalisation ------------------------------------------------------------------

def test_spectral_norm_bounds_every_discriminator_conv_by_one():
    torch.manual_seed(0)
    net = build_discriminator("basic", ndf=8, spectral_norm=True)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    with torch.no_grad():
        for _ in range(5):  # each training-mode forward refines the power iteration
            net(torch.randn(2, 3, 32, 32))
    assert [largest_singular_value(conv) for conv in convs] == pytest.approx([1.0] * 5, abs=0.02)


def test_init_weights_reestimates_the_spectral_norm_for_the_new_weights():
    torch.manual_seed(0)
    net = NLayerDiscriminator(3, 8, 3, spectral_norm=True)  # torch's default init, normalised
    init_weights(net, "normal", 0.5).eval()  # redrawn: no forward pass may correct the estimate
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [largest_singular_value(conv) for conv in convs] == pytest.approx([1.0] * 5, abs=0.05)
    assert convs[1].parametrizations.weight.original.std().item() == pytest.approx(0.5, rel=0.1)


def test_spectral_norm_drops_the_norm_layers_and_gives_every_conv_a_bias():
    net = build_discriminator("basic", ndf=8, norm="batch", spectral_norm=True)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in net.modules())
    assert [key for key in net.state_dict() if key.startswith("model.2.")] == [
        "model.2.bias", "model.2.parametrizations.weight.original",
        "model.2.parametrizations.weight.0._u", "model.2.parametrizations.weight.0._v"]
    # With batch norm each middle layer had 2 x channels norm parameters and no conv bias; now a bias.
    batch_norm = build_discriminator("basic", ndf=8, norm="batch")
    assert count_parameters(batch_norm) - count_parameters(net) == (2 - 1) * (16 + 32 + 64)
    pixel = PixelDiscriminator(3, 8, "batch", spectral_norm=True)
    assert count_parameters(pixel) == conv_params(3, 8, 1, True) + conv_params(8, 16, 1, True) + conv_params(16, 1, 1, True)


def test_model_with_every_option_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8, upsample="resize_conv", antialias=True,
                         spectral_norm=True)
    model = build_model(config)
    with torch.no_grad():
        model.D_A(torch.randn(2, 3, 32, 32))  # move the power iteration away from its initial vectors
    files = ckpt.save_checkpoint(tmp_path, model.networks(), config, None, epoch=1, iteration=3)

    loaded_config = ckpt.load_model_config(files.weights)
    assert loaded_config == config
    torch.manual_seed(1)
    restored = build_model(loaded_config)
    ckpt.load_weights(files.weights, restored.networks())
    for name, network in model.networks().items():
        for key, value in network.state_dict().items():
            assert torch.equal(restored.networks()[name].state_dict()[key], value), f"{name}.{key}"
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(restored.D_B.eval()(x), model.D_B.eval()(x))
        assert torch.equal(restored.G_AB.eval()(x), model.G_AB.eval()(x))

    generator, info = load_generator(files.weights, "BtoA")
    with torch.no_grad():
        assert torch.equal(generator(x), model.G_BA.eval()(x))


def test_checkpoint_config_written_before_the_options_existed_reads_as_the_defaults(tmp_path):
    import json
    from dataclasses import asdict

    from safetensors.torch import save_file

    old_config = {key: value for key, value in asdict(ModelConfig(ngf=8)).items()
                  if key not in ("upsample", "antialias", "spectral_norm")}
    path = tmp_path / "old.safetensors"
    save_file({"G_AB.x": torch.zeros(1)}, str(path), metadata={"format": ckpt.FORMAT,
                                                               "model_config": json.dumps(old_config)})
    assert ckpt.load_model_config(path) == ModelConfig(ngf=8)


def test_spectral_norm_checkpoint_does_not_load_into_a_plain_discriminator(tmp_path):
    config = ModelConfig(ngf=8, ndf=8, spectral_norm=True)
    files = ckpt.save_checkpoint(tmp_path, build_model(config).networks(), config, None, epoch=1, iteration=1)
    with pytest.raises(CheckpointError, match="D_A"):
        ckpt.load_weights(files.weights, {"D_A": build_discriminator(ndf=8)})


# --- DiffAugment -----------------------------------------------------------------------------

def test_policy_names_are_checked():
    assert parse_policy("") == ()
    assert parse_policy("color, cutout") == ("color", "cutout")
    with pytest.raises(ConfigError, match="colour.*color, translation, cutout"):
        parse_policy("colour,cutout")


def test_empty_policy_returns_the_input_itself():
    x = torch.randn(2, 3, 8, 8)
    assert diff_augment(x, "") is x
    real, fake = augment_for_discriminator(x, x + 1, "")
    assert real is x and torch.equal(fake, x + 1)


def test_augmented_batch_keeps_its_shape_and_passes_gradients_to_the_input():
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    out = diff_augment(x, "color,translation,cutout")
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cut_out_pixels_get_no_gradient_and_the_others_a_gradient_of_one():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    out = diff_augment(x, "cutout", torch.Generator().manual_seed(0))
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).float())


@pytest.mark.parametrize("policy", ["color", "translation", "cutout"])
def test_every_image_gets_its_own_draw(policy):
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    same = x[:1].expand(8, -1, -1, -1)
    out = diff_augment(same, policy, torch.Generator().manual_seed(0))
    distinct = {tuple(image.flatten().tolist()) for image in out}
    assert len(distinct) > 1
    assert not torch.equal(diff_augment(x, policy, torch.Generator().manual_seed(0)), x)


def test_translate_moves_content_and_fills_with_zeros():
    x = torch.arange(1., 17.).reshape(1, 1, 4, 4)
    out = translate(x, torch.tensor([[1, -2]]))  # one down, two left
    assert out[0, 0].tolist() == [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0], [11, 12, 0, 0]]


def test_cut_out_zeroes_the_part_of_the_square_inside_the_image():
    out = cut_out(torch.ones(1, 2, 4, 4), torch.tensor([[-1, 2]]), (2, 2))
    assert out[0, 1].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]
    assert torch.equal(out[0, 0], out[0, 1])  # every channel


def test_random_translation_and_cutout_stay_within_their_ranges_with_a_seeded_generator():
    # A 16x16 image of ones: translation by up to 2 (1/8) px leaves at most 2 rows and 2 columns
    # empty; cutout removes an 8x8 square (half the side), of which at least 4x4 is inside.
    ones = torch.ones(64, 1, 16, 16)
    moved = random_translation(ones, torch.Generator().manual_seed(0))
    empty_rows = (moved.sum(dim=3) == 0).sum(dim=2).flatten()
    empty_cols = (moved.sum(dim=2) == 0).sum(dim=2).flatten()
    assert empty_rows.max() == 2 and empty_cols.max() == 2 and empty_rows.min() == 0
    cut = random_cutout(ones, torch.Generator().manual_seed(0))
    removed = (cut == 0).flatten(1).sum(1)
    assert removed.max() == 64 and removed.min() >= 16


def test_random_translation_and_cutout_are_the_exact_operations_with_the_documented_draws():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    drawn = torch.Generator().manual_seed(3)
    down, right = torch.randint(-2, 3, (2,), generator=drawn), torch.randint(-2, 3, (2,), generator=drawn)
    expected = translate(x, torch.stack([down, right], dim=1))
    assert torch.equal(random_translation(x, torch.Generator().manual_seed(3)), expected)

    drawn = torch.Generator().manual_seed(4)
    # An 8x8 square whose top-left corner lies in [-4, 12] on each axis.
    top, left = torch.randint(-4, 13, (2,), generator=drawn), torch.randint(-4, 13, (2,), generator=drawn)
    expected = cut_out(x, torch.stack([top, left], dim=1), (8, 8))
    assert torch.equal(random_cutout(x, torch.Generator().manual_seed(4)), expected)


def test_color_changes_brightness_saturation_and_contrast_per_image_within_bounds():
    grey = torch.zeros(16, 3, 4, 4)  # mid-grey: saturation and contrast leave it, brightness moves it
    out = diff_augment(grey, "color", torch.Generator().manual_seed(0))
    offsets = out.flatten(1)
    assert torch.equal(offsets, offsets[:, :1].expand_as(offsets))  # one offset per image
    assert offsets.min() >= -0.5 and offsets.max() < 0.5 and offsets[:, 0].unique().numel() == 16


def test_augmentation_uses_the_global_rng_without_a_generator():
    x = torch.randn(3, 3, 16, 16)
    torch.manual_seed(5)
    first = diff_augment(x)
    torch.manual_seed(5)
    assert torch.equal(diff_augment(x), first)


def test_augment_for_discriminator_augments_real_and_fake_each_with_own_draws():
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    fake = real.clone().requires_grad_(True)
    real_aug, fake_aug = augment_for_discriminator(real, fake, "color,translation,cutout",
                                                   torch.Generator().manual_seed(0))
    assert not torch.equal(real_aug, real) and not torch.equal(fake_aug, fake)
    assert not torch.equal(real_aug, fake_aug)  # same images in, independent draws
    fake_aug.sum().backward()
    assert fake.grad.abs().sum() > 0


def test_bad_diff_augment_policy_fails_validation():
    config = TrainConfig()
    config.data.data = "x"
    config.loss.diff_augment = "color,flip"
    with pytest.raises(ConfigError, match="flip"):
        config.validate()


def _seen_by_discriminator_a(policy: str):
    """What D_A receives in one discriminator update of the CycleGAN objective: (real, fake)."""
    from cyclegan.training.objective import CycleGANObjective

    config = TrainConfig()
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 4, 4
    config.loss.diff_augment = policy
    model = build_model(config.model)
    seen = []
    model.D_A.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    objective = CycleGANObjective(config.loss, config.model, model.generators, model.discriminators, model.judges())
    real_a, fake_a = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    real_b, fake_b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    torch.manual_seed(0)
    objective.discriminator_terms(real_a, real_b, {"A": fake_a, "B": fake_b})
    batch = torch.cat(seen)  # one batched call of real and fake, or two calls
    return (real_a, fake_a), (batch[:1], batch[1:])


def test_discriminators_see_real_and_generated_images_augmented_alike():
    (real, fake), (seen_real, seen_fake) = _seen_by_discriminator_a("cutout")
    # cutout zeroes a square of half the side (clipped at the border) in every image, real and
    # generated, and leaves the rest alone.
    for original, seen in ((real, seen_real), (fake, seen_fake)):
        zeroed = (seen == 0).all(dim=1) & (original != 0).all(dim=1)
        assert 0 < zeroed.sum().item() <= 16 * 16
        assert torch.equal(seen[~zeroed.expand_as(seen)], original[~zeroed.expand_as(original)])


def test_without_a_policy_the_discriminators_see_the_images_unchanged():
    (real, fake), (seen_real, seen_fake) = _seen_by_discriminator_a("")
    assert torch.equal(seen_real, real) and torch.equal(seen_fake, fake)


def test_generator_updates_judge_augmented_generated_images():
    # The generator's adversarial term must pass its images through the same augmentation as the
    # discriminator's update: D_B is shown G_AB(a) with a square cut out, and the gradient reaches G_AB.
    from cyclegan.training.objective import CycleGANObjective

    config = TrainConfig()
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 4, 4
    config.loss.diff_augment = "cutout"
    model = build_model(config.model)
    seen = []
    model.D_B.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    objective = CycleGANObjective(config.loss, config.model, model.generators, model.discriminators, model.judges())
    torch.manual_seed(0)
    terms, outputs = objective.generator_terms(torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1)
    (seen_fake,) = seen
    fake_b = outputs.fakes["B"].detach()
    zeroed = (seen_fake == 0).all(dim=1) & (fake_b != 0).all(dim=1)
    assert 0 < zeroed.sum().item() <= 16 * 16
    assert torch.equal(seen_fake[~zeroed.expand_as(seen_fake)], fake_b[~zeroed.expand_as(fake_b)])
    terms.terms["loss_G_AB"].backward()
    assert all(parameter.grad is not None for parameter in model.G_AB.parameters())


def test_pix2pix_refuses_diff_augment():
    from cyclegan.training.objective import check_objective_options

    config = TrainConfig(model=ModelConfig(model="pix2pix"))
    config.loss.diff_augment = "color"
    with pytest.raises(ConfigError, match="--diff-augment does not apply to --model pix2pix"):
        check_objective_options(config)


def test_new_model_options_pass_validation():
    config = TrainConfig()
    config.data.data = "x"
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 4, 4
    config.model.upsample, config.model.antialias, config.model.spectral_norm = "antialias", True, True
    assert config.validate() is None
    # ... and the model they build has each: blurred sampling in G and D, spectral norm in D.
    model = build_model(config.model)
    generator_layers = {type(module) for module in model.G_AB.modules()}
    assert {BlurDownsample, BlurUpsample} <= generator_layers and nn.ConvTranspose2d not in generator_layers
    assert any(isinstance(module, BlurDownsample) for module in model.D_A.modules())
    discriminator_convs = [module for module in model.D_A.modules() if isinstance(module, nn.Conv2d)]
    assert discriminator_convs and all(torch.nn.utils.parametrize.is_parametrized(conv, "weight")
                                       for conv in discriminator_convs)


# --- command line ----------------------------------------------------------------------------

def train_parser():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["train"]


def test_new_flags_are_in_train_help_and_reach_the_config():
    parser = train_parser()
    help_text = parser.format_help()
    for flag in ("--upsample", "--antialias", "--no-antialias", "--spectral-norm", "--no-spectral-norm",
                 "--diff-augment"):
        assert flag in help_text
    args = parser.parse_args(["--upsample", "resize_conv", "--antialias", "--spectral-norm",
                              "--diff-augment", "color,cutout", "--data", "x"])
    config = config_from_args(args)
    assert (config.model.upsample, config.model.antialias, config.model.spectral_norm) == ("resize_conv", True, True)
    assert config.loss.diff_augment == "color,cutout"
    defaults = config_from_args(parser.parse_args(["--data", "x"]))
    assert defaults.model == ModelConfig() and defaults.loss.diff_augment == ""
