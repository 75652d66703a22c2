"""Applying a trained generator to images of any size.

`Translator.from_checkpoint(path)` takes a run folder, one of our checkpoints or an official
reference-code generator (`*_net_G*.pth`); the architecture comes from the file, so no training
flag is ever repeated. Calling it on a PIL image returns a PIL image of the same size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from PIL import Image

from cyclegan.config import ModelConfig
from cyclegan.data.images import image_to_tensor, list_images, load_image, save_image_atomic, tensor_to_image
from cyclegan.device import autocast, select_device
from cyclegan.errors import CheckpointError, ConfigError, UnreadableImageError
from cyclegan.networks import build_generator, generator_from_state_dict, size_multiple
from cyclegan.training import checkpoint as ckpt

DIRECTIONS = ("AtoB", "BtoA")


def load_generator(path: str | Path, direction: str = "AtoB") -> tuple[torch.nn.Module, dict]:
    """The generator for `direction` and a description of it ({net_g, input_nc, output_nc, ...}).

    Our checkpoints hold both directions; an official reference `.pth` holds one generator,
    which is taken as the requested direction.
    """
    if direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction '{direction}'; choose AtoB or BtoA")
    path = Path(path)
    if path.suffix in (".pth", ".pt") and path.is_file():
        return _load_reference_generator(path)
    files = ckpt.find_checkpoint(path)
    config = ckpt.load_model_config(files.weights)
    name = "G_AB" if direction == "AtoB" else "G_BA"
    input_nc, output_nc = ((config.input_nc, config.output_nc) if direction == "AtoB"
                           else (config.output_nc, config.input_nc))
    generator = build_generator(config.net_g, input_nc, output_nc, config.ngf, config.norm, config.use_dropout,
                                config.padding_type, init_type="normal", init_gain=0.02)
    ckpt.load_weights(files.weights, {name: generator})
    info = {"net_g": config.net_g, "input_nc": input_nc, "output_nc": output_nc, "ngf": config.ngf,
            "norm": config.norm, "checkpoint": str(files.weights), "direction": direction}
    return generator.eval(), info


def _load_reference_generator(path: Path) -> tuple[torch.nn.Module, dict]:
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # damaged file, or a pickle that is more than tensors
        raise CheckpointError(f"{path} cannot be loaded as a plain state dict of tensors ({error}); "
                              "only weights are accepted, never pickled code") from error
    if isinstance(state_dict, dict) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    generator, architecture = generator_from_state_dict(state_dict)
    return generator.eval(), {**architecture, "checkpoint": str(path), "direction": "as trained"}


def pad_to_multiple(batch: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W up to a multiple (reflecting the border, which the networks were trained to
    see at crop edges; replicate where the image is too small to reflect)."""
    height, width = batch.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return batch, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(batch, (0, pad_w, 0, pad_h), mode=mode), (height, width)


@dataclass
class TranslationReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


class Translator:
    """A generator ready to translate images: any size and aspect ratio, never squashed."""

    def __init__(self, generator: torch.nn.Module, info: dict, device: str = "auto", precision: str = "fp32"):
        self.device = select_device(device)
        self.generator = generator.to(self.device).eval()
        self.info = info
        self.precision = precision
        self.multiple = size_multiple(info["net_g"])

    @classmethod
    def from_checkpoint(cls, path: str | Path, direction: str = "AtoB", device: str = "auto",
                        precision: str = "fp32") -> "Translator":
        generator, info = load_generator(path, direction)
        return cls(generator, info, device, precision)

    @property
    def input_channels(self) -> int:
        return self.info["input_nc"]

    @torch.no_grad()
    def translate_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] -> (N, C', H, W) in [-1, 1]."""
        padded, (height, width) = pad_to_multiple(batch.to(self.device), self.multiple)
        with autocast(self.device, self.precision):
            output = self.generator(padded)
        return output[..., :height, :width].float()

    def __call__(self, image: Image.Image) -> Image.Image:
        """Translate one PIL image; the result has the same width and height."""
        channels = self.input_channels
        if image.mode != ("L" if channels == 1 else "RGB"):
            image = image.convert("L" if channels == 1 else "RGB")
        output = self.translate_tensor(image_to_tensor(image).unsqueeze(0))
        return tensor_to_image(output[0].cpu())

    def translate_files(self, inputs: Iterable[str | Path], out_dir: str | Path,
                        progress: Callable[[Iterable], Iterable] | None = None) -> TranslationReport:
        """Translate image files and folders into `out_dir`, keeping file names and formats.

        Unreadable files are reported in the result and the rest are still translated. Two inputs
        with the same name (from different folders) get `_1`, `_2`... rather than overwriting.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        report = TranslationReport()
        paths = expand_inputs(inputs, report)
        for path in (progress(paths) if progress else paths):
            try:
                image = load_image(path, self.input_channels)
            except UnreadableImageError as error:
                report.failed.append((path, str(error)))
                continue
            target = _unused_name(out_dir / path.name, report.written)
            save_image_atomic(self(image), target)
            report.written.append(target)
        return report


def _unused_name(target: Path, taken: list[Path]) -> Path:
    candidate, counter = target, 0
    while candidate in taken:
        counter += 1
        candidate = target.with_name(f"{target.stem}_{counter}{target.suffix}")
    return candidate


def expand_inputs(inputs: Iterable[str | Path], report: TranslationReport) -> list[Path]:
    """Files as given, folders as their images (sorted); missing paths go to report.failed."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths.extend(list_images(item))
        elif item.is_file():
            paths.append(item)
        else:
            report.failed.append((item, f"{item}: no such file or folder"))
    return paths


def describe(info: dict) -> str:
    return (f"{info['net_g']} {info['input_nc']}->{info['output_nc']} channels, ngf {info['ngf']}, "
            f"{info.get('norm', '?')} norm, from {info['checkpoint']}")


__all__ = ["Translator", "load_generator", "pad_to_multiple", "TranslationReport", "DIRECTIONS", "ModelConfig"]
