"""Instance normalisation that keeps the memory layout and is faster on a CPU.

The generators and discriminators use it wherever the paper uses instance norm. It has neither
parameters nor buffers, so it changes no state-dict key.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance normalisation of a 4-D (N, C, H, W) tensor without affine parameters, as
    `F.instance_norm` (biased variance, `eps` inside the square root), in `x`'s memory format.

    `F.instance_norm` reshapes its input to (1, N*C, H, W) for batch norm, which copies a
    channels-last tensor and returns a contiguous one, so every layer after it converts back.
    Which formulation is fastest was measured per layout on a CPU (benchmarks/speed/instance_norm.py;
    figures in docs/PERFORMANCE.md): with a gradient, group norm with one group per channel on
    contiguous input and batch norm in training mode over each single image (the same statistics)
    on channels-last input; forward only, group norm on contiguous input. Forward only on
    channels-last input, group norm was fastest too, but torch 2.13's channels-last group-norm
    kernel loses float32 precision when a channel's mean is large against its spread (the
    reference's own output was missed by more than 1e-4, tests/test_reference_outputs.py), so
    that case computes the statistics in two passes, which keep the layout and the precision.
    Other devices (measured on none) and ONNX export (whose graph keeps its
    InstanceNormalization node) get `F.instance_norm` itself.
    """
    if x.dim() != 4 or x.device.type != "cpu" or torch.onnx.is_in_onnx_export():
        # torch 2.13's CPU instance norm returns a wrong input gradient for a channels-last single
        # image whose output gradient is channels-last too (tests/test_fast_instance_norm.py); not
        # checked on other devices, so they get a contiguous input, which F.instance_norm would
        # make by a copy anyway.
        return F.instance_norm(x.contiguous(), eps=eps)
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if not channels_last:
        return F.group_norm(x, x.shape[1], eps=eps)
    if not (torch.is_grad_enabled() and x.requires_grad):
        centred = x - x.mean(dim=(2, 3), keepdim=True)
        return centred * torch.rsqrt(centred.square().mean(dim=(2, 3), keepdim=True) + eps)
    images = [F.batch_norm(image, None, None, training=True, eps=eps) for image in x.split(1)]
    return images[0] if len(images) == 1 else torch.cat(images)


class FastInstanceNorm2d(nn.InstanceNorm2d):
    """`nn.InstanceNorm2d` that keeps the input's memory format and is faster on a CPU, forward
    and backward, in both layouts (docs/PERFORMANCE.md).

    Only `forward` differs, and only for what CycleGAN uses: no affine parameters, no running
    statistics, a 4-D tensor with `num_features` channels, which `instance_norm` normalises
    (on a CPU; elsewhere it is `F.instance_norm`). Everything else goes to `nn.InstanceNorm2d`.
    Without affine parameters the layer has no parameters or buffers, so state dicts and the
    reference's pretrained files are unchanged, and `isinstance(m, nn.InstanceNorm2d)` holds.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.affine or self.track_running_stats or input.dim() != 4 or input.shape[1] != self.num_features:
            return super().forward(input)
        return instance_norm(input, self.eps)
