"""Stride-1 3x3 and 7x7 convolutions through NNPACK on the CPU.

The 3x3 convolutions of the residual blocks are most of a ResNet generator's arithmetic.
oneDNN, PyTorch's default CPU convolution, computes them directly; NNPACK (built into PyTorch's
CPU wheels) uses the Winograd transform with 8x8 tiles: 64 products for 36 outputs instead of 9
for each, about a fifth of the multiplications, at the cost of transforming inputs and outputs.
That pays from some feature-map size up, and not below it (`benchmarks/speed/nnpack.py`; the measured
speed-ups per size and channel count are in docs/PERFORMANCE.md). For the generator's first and
last convolutions (7x7, 3 <-> 64 channels at full resolution) NNPACK picks its FFT-based
algorithm, which also measured faster there.

NNPACK given a batch of several images in one call was slower than oneDNN (it switches to an
algorithm meant for large batches), so images go through one at a time. Its results differ from
oneDNN's by float rounding only.

Training needs more than the forward pass. The gradient with respect to the input of a stride-1
convolution is itself a stride-1 convolution of the same kernel size (of the output gradient,
with the kernel flipped and its channel axes swapped), so it goes through NNPACK too; the
gradient with respect to the weights stays with oneDNN, which PyTorch exposes and NNPACK, here,
does not.

Used only where it applies and was measured faster: float32 (not under autocast), contiguous
NCHW tensors, CPU, zero padding, output sides of at least MIN_SIDE, not while exporting,
tracing or compiling. Everything else is the ordinary convolution.
"""
from __future__ import annotations

import functools

import torch

# Output side (height and width) from which NNPACK was faster than oneDNN (see above).
MIN_SIDE = 32


@functools.cache
def available() -> bool:
    """Whether this PyTorch has NNPACK and this CPU runs it. The check also initialises NNPACK,
    which its convolution needs: without it every call fails."""
    return bool(torch.backends.nnpack.is_available())


# Kernel sizes measured faster through NNPACK: the residual blocks' 3x3 (Winograd) and the
# generator's first and last 7x7 convolutions (NNPACK picks its FFT-based algorithm there).
KERNELS = (3, 7)


def applies(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation, groups: int) -> bool:
    """Whether `F.conv2d(x, weight, ..., stride, padding, dilation, groups)` can and should go
    through NNPACK (see the module docstring)."""
    if x.device.type != "cpu" or x.dim() != 4 or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    kernel = weight.shape[-1]
    if kernel not in KERNELS or weight.shape[-2] != kernel:
        return False
    if tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) or groups != 1:
        return False
    if isinstance(padding, str) or padding[0] != padding[1] or padding[0] > kernel - 1:
        return False
    if torch.is_autocast_enabled("cpu") or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    if torch.compiler.is_compiling():
        return False
    if not x.is_contiguous():  # channels-last input would be copied to NCHW and back
        return False
    out_height = x.shape[2] + 2 * padding[0] - kernel + 1
    out_width = x.shape[3] + 2 * padding[0] - kernel + 1
    return min(out_height, out_width) >= MIN_SIDE and available()


def _nnpack_per_image(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      padding: int) -> torch.Tensor:
    outputs = [torch._nnpack_spatial_convolution(image, weight, bias, [padding, padding], [1, 1])
               for image in x.split(1)]
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


class _NnpackConvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return _nnpack_per_image(x.contiguous(), weight.contiguous(), bias, padding)

    @staticmethod
    @torch.autograd.function.once_differentiable  # no double backward: raise rather than be wrong
    def backward(ctx, grad_output: torch.Tensor):
        x, weight = ctx.saved_tensors
        padding = ctx.padding
        grad_output = grad_output.contiguous()
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            # d(conv(x, w))/dx applied to g = conv(g, w flipped in space with in/out swapped),
            # padded by kernel - 1 - padding: again a stride-1 convolution of the same kernel size.
            flipped = weight.flip(2, 3).transpose(0, 1).contiguous()
            grad_input = _nnpack_per_image(grad_output, flipped, None, weight.shape[-1] - 1 - padding)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            wanted_bias = ctx.has_bias and ctx.needs_input_grad[2]
            _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad_output, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], [padding, padding],
                [1, 1], False, [0, 0], 1, [False, ctx.needs_input_grad[1], wanted_bias])
        return grad_input, grad_weight, grad_bias, None


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """A stride-1 convolution with `padding` zeros on every side, through NNPACK; call only where
    `applies` said so."""
    return _NnpackConvolution.apply(x, weight, bias, padding)


class NnpackConv2d(torch.nn.Conv2d):
    """`nn.Conv2d` (same parameters, same state-dict keys) that runs through NNPACK where `applies`
    and its `nnpack` attribute are true. Off when built, so a network computes exactly what
    nn.Conv2d does until `use_nnpack(network)` turns it on."""

    nnpack = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.nnpack and self.padding_mode == "zeros"
                and applies(x, self.weight, self.stride, self.padding, self.dilation, self.groups)):
            return conv2d(x, self.weight, self.bias, self.padding[0])
        return super().forward(x)


def use_nnpack(network: torch.nn.Module, enabled: bool = True) -> int:
    """Turn the NNPACK path of every NnpackConv2d in `network` on or off; returns how many
    layers there are."""
    layers = [module for module in network.modules() if isinstance(module, NnpackConv2d)]
    for layer in layers:
        layer.nnpack = enabled
    return len(layers)

