"""FastInstanceNorm2d: nn.InstanceNorm2d's results in the input's memory format."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.layers.instance_norm import FastInstanceNorm2d, instance_norm
from cyclegan.networks import build_generator
from cyclegan.reference_format import generator_from_state_dict
from cyclegan.inference.tiling import with_image_statistics

CHANNELS_LAST = torch.channels_last
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": CHANNELS_LAST}
# fp32: a few float rounding steps on values of order 1. bf16: measured worst over 20 seeds of these
# inputs 0.022 (output) and 0.034 (input gradient), the same as nn.InstanceNorm2d's own in bf16.
FP32_TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}
BF16_TOLERANCE = {"atol": 5e-2, "rtol": 1.6e-2}


def activations(batch: int, layout: str, channels: int = 16) -> torch.Tensor:
    """A (batch, channels, 12, 10) input with an offset and scale per image and channel, as a
    convolution's output has, in the given memory layout."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, 12, 10, generator=generator)
    scale = torch.rand(batch, channels, 1, 1, generator=generator) * 4 + 0.5
    x = x * scale + torch.randn(batch, channels, 1, 1, generator=generator)
    return x.contiguous(memory_format=LAYOUTS[layout])


def output_gradient_like(x: torch.Tensor) -> torch.Tensor:
    """A standard normal gradient of the output, in x's shape, dtype and memory layout."""
    gradient = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(x.dtype)
    layout = CHANNELS_LAST if x.is_contiguous(memory_format=CHANNELS_LAST) else torch.contiguous_format
    return gradient.contiguous(memory_format=layout)


def output_and_input_gradient(norm: nn.Module, x: torch.Tensor, output_gradient: torch.Tensor, bf16: bool = False):
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = norm(x)
    y.backward(output_gradient)
    return y, x.grad


def expected_output_and_input_gradient(x: torch.Tensor, output_gradient: torch.Tensor, dtype: torch.dtype):
    # nn.InstanceNorm2d on contiguous tensors: on a channels-last single image with a channels-last
    # output gradient, torch 2.13's CPU instance norm returns a wrong input gradient (any dtype).
    return output_and_input_gradient(nn.InstanceNorm2d(x.shape[1]), x.to(dtype).contiguous(),
                                     output_gradient.to(dtype).contiguous())


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_fp32_output_and_input_gradient_equal_instance_norm_2d_to_float_tolerance(batch, layout):
    x = activations(batch, layout)
    output_gradient = output_gradient_like(x)
    expected, expected_grad = expected_output_and_input_gradient(x, output_gradient, torch.float32)
    y, grad = output_and_input_gradient(FastInstanceNorm2d(16), x, output_gradient)
    assert y.dtype == grad.dtype == torch.float32
    torch.testing.assert_close(y, expected, **FP32_TOLERANCE, check_stride=False)
    torch.testing.assert_close(grad, expected_grad, **FP32_TOLERANCE, check_stride=False)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_under_bf16_autocast_output_and_input_gradient_equal_instance_norm_2d_in_float64_to_bf16_tolerance(
        batch, layout):
    x = activations(batch, layout).bfloat16()
    output_gradient = output_gradient_like(x)
    expected, expected_grad = expected_output_and_input_gradient(x, output_gradient, torch.float64)
    y, grad = output_and_input_gradient(FastInstanceNorm2d(16), x, output_gradient, bf16=True)
    assert y.dtype == grad.dtype == torch.bfloat16  # autocast leaves instance norm in the input's dtype
    torch.testing.assert_close(y.double(), expected, **BF16_TOLERANCE, check_stride=False)
    torch.testing.assert_close(grad.double(), expected_grad, **BF16_TOLERANCE, check_stride=False)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("grad", [True, False], ids=["training", "no_grad"])
def test_output_and_input_gradient_keep_the_input_memory_format(batch, layout, grad):
    x = activations(batch, layout).requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        y = FastInstanceNorm2d(16)(x)
    assert y.is_contiguous(memory_format=LAYOUTS[layout])
    if grad:
        y.backward(torch.ones_like(y).contiguous(memory_format=LAYOUTS[layout]))
        assert x.grad.is_contiguous(memory_format=LAYOUTS[layout])


def test_normalises_each_image_and_channel_with_biased_variance_and_eps_1e_5():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 5.0]]]])  # mean 2, biased variance 3.5
    expected = (x - 2.0) / torch.sqrt(torch.tensor(3.5 + 1e-5))
    torch.testing.assert_close(FastInstanceNorm2d(1)(x), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(FastInstanceNorm2d(1)(x.contiguous(memory_format=CHANNELS_LAST)), expected,
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_a_constant_channel_becomes_zero_up_to_rounding_instead_of_nan(layout):
    x = torch.full((2, 3, 4, 4), 7.0).contiguous(memory_format=LAYOUTS[layout]).requires_grad_()
    y = FastInstanceNorm2d(3)(x)
    y.sum().backward()
    assert y.abs().max() < 1e-4 and torch.isfinite(x.grad).all()  # nn.InstanceNorm2d: 3.05e-5


def test_is_an_instance_norm_2d_without_parameters_or_buffers():
    norm = FastInstanceNorm2d(8)
    assert isinstance(norm, nn.InstanceNorm2d)
    assert (norm.affine, norm.track_running_stats, norm.eps) == (False, False, 1e-5)
    assert list(norm.state_dict()) == [] and list(norm.parameters()) == []


@pytest.mark.parametrize("options", [{"affine": True}, {"track_running_stats": True}],
                         ids=["affine", "running_stats"])
def test_layers_with_affine_parameters_or_running_statistics_fall_back_to_instance_norm_2d(options, monkeypatch):
    calls = []
    monkeypatch.setattr("cyclegan.layers.instance_norm.instance_norm", lambda *args: calls.append(args))
    torch.manual_seed(0)
    fast, plain = FastInstanceNorm2d(4, **options), nn.InstanceNorm2d(4, **options)
    if fast.affine:
        for module in (fast, plain):
            nn.init.normal_(module.weight)
            nn.init.normal_(module.bias)
        plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(fast.train()(x), plain.train()(x))
    assert calls == []
    assert list(fast.state_dict()) == list(plain.state_dict())
    if fast.track_running_stats:
        assert torch.equal(fast.running_mean, plain.running_mean)


def test_unbatched_3d_input_falls_back_to_instance_norm_2d(monkeypatch):
    calls = []
    monkeypatch.setattr("cyclegan.layers.instance_norm.instance_norm", lambda *args: calls.append(args))
    x = torch.randn(4, 6, 6)
    assert torch.equal(FastInstanceNorm2d(4)(x), nn.InstanceNorm2d(4)(x))
    assert calls == []


def test_the_fast_path_is_taken_for_4d_input_without_affine_or_running_statistics(monkeypatch):
    calls = []
    monkeypatch.setattr("cyclegan.layers.instance_norm.instance_norm", lambda x, eps: calls.append(eps) or x)
    FastInstanceNorm2d(4, eps=1e-3)(torch.randn(2, 4, 6, 6))
    assert calls == [1e-3]


def test_instance_norm_function_uses_f_instance_norm_during_onnx_export(monkeypatch):
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    monkeypatch.setattr(F, "group_norm", lambda *args, **kwargs: pytest.fail("group norm used in export"))
    x = activations(1, "channels_last")
    assert torch.equal(instance_norm(x), F.instance_norm(x, eps=1e-5))


def test_instance_generators_use_the_fast_norm_and_keep_their_state_dict_and_output():
    torch.manual_seed(0)
    generator = build_generator("resnet_6blocks", ngf=8).eval()
    norms = [m for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 17 and all(type(m) is FastInstanceNorm2d for m in norms)
    loaded, architecture = generator_from_state_dict(generator.state_dict())
    assert architecture["net_g"] == "resnet_6blocks"
    assert list(loaded.state_dict()) == list(generator.state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = generator(x)
        cl_generator = generator.to(memory_format=CHANNELS_LAST)
        torch.testing.assert_close(cl_generator(x.contiguous(memory_format=CHANNELS_LAST)), expected,
                                   **FP32_TOLERANCE)


def test_tiled_inference_swaps_the_fast_norms_for_whole_image_statistics():
    generator = build_generator("resnet_6blocks", ngf=8).eval()
    twin, norms = with_image_statistics(generator)
    assert len(norms) == 17
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in twin.modules())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mean", [10.0, 100.0])
def test_forward_keeps_float32_precision_when_a_channels_mean_dwarfs_its_spread(layout, mean):
    # torch 2.13's channels-last group norm loses most of float32's digits on such input (an
    # offset of 10 with a spread of 0.1 gave errors near 0.08); the result must stay as close to
    # the float64 computation as F.instance_norm's.
    generator = torch.Generator().manual_seed(3)
    x64 = torch.randn(2, 8, 16, 16, generator=generator, dtype=torch.float64) * 0.1 + mean
    expected = F.instance_norm(x64, eps=1e-5)
    x = x64.float().contiguous(memory_format=LAYOUTS[layout])
    with torch.no_grad():
        error = (instance_norm(x).double() - expected).abs().max().item()
        reference_error = (F.instance_norm(x.contiguous()).double() - expected).abs().max().item()
    assert error <= max(2 * reference_error, 1e-4), (error, reference_error)
