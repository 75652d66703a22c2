"""The run's picture book: a fixed handful of images translated at every epoch end.

Rows are written by `report.save_gallery`: for CycleGAN each direction shows the input, its
translation, the reconstruction and the identity mapping; for pix2pix the input, the
translation and the paired ground truth.
"""
from __future__ import annotations

from pathlib import Path

import torch

from cyclegan.config import TrainConfig
from cyclegan.data.datasets import AlignedDataset, prepared_tensor, load_source
from cyclegan.data.images import tensor_to_image
from cyclegan.data.layout import DatasetLayout
from cyclegan.data.sources import Source, SourceReader, expand_volumes, list_sources, parse_window
from cyclegan.device import autocast
from cyclegan.directions import Direction
from cyclegan.errors import DatasetError, UnreadableImageError
from cyclegan.networks import size_multiple
from cyclegan.training.report import GALLERY_COLUMNS, quality_section, save_gallery


class Gallery:
    """Test images when the dataset has them (both domains, or the A|B pairs), else training
    images; centre-cropped as training crops them, never flipped."""

    def __init__(self, config: TrainConfig, layout: DatasetLayout, device: torch.device):
        self.config = config
        self.is_pix2pix = config.model.model == "pix2pix"
        if layout.has_test_set:
            folder_a, folder_b = layout.test_a, layout.test_b
        else:
            folder_a, folder_b = layout.train_a, layout.train_b
        self.inputs = {key: None if images is None else images.to(device)
                       for key, images in self._load(folder_a, folder_b).items()}

    def _load(self, folder_a: Path, folder_b: Path | None) -> dict[str, torch.Tensor | None]:
        data, model = self.config.data, self.config.model
        multiple = size_multiple(model.net_g)
        count = self.config.run.gallery_size
        tensors: dict[str, list[torch.Tensor]] = {"A": [], "B": []}
        if self.is_pix2pix:
            try:
                pairs = AlignedDataset(folder_a, folder_b, model.input_nc, model.output_nc, data.preprocess,
                                       data.load_size, data.crop_size, flip=False, size_multiple=multiple,
                                       random=False)
            except DatasetError:
                return {"A": None, "B": None}
            for index in range(min(count, len(pairs))):
                sample = pairs[index]
                tensors["A"].append(sample["A"])
                tensors["B"].append(sample["B"])
        else:
            options = dict(mode=data.preprocess, load_size=data.load_size, crop_size=data.crop_size, flip=False,
                           size_multiple=multiple)
            for key, folder, channels, window in (("A", folder_a, model.input_nc, model.window_a),
                                                  ("B", folder_b, model.output_nc, model.window_b)):
                reader = SourceReader(channels, parse_window(window), model.slice_axis)
                for source in _gallery_sources(folder, reader, count, data.min_foreground):
                    if len(tensors[key]) == count:
                        break
                    try:
                        loaded, _clipped = load_source(source, channels, reader)
                    except UnreadableImageError:
                        continue
                    tensors[key].append(prepared_tensor(loaded, None, options))
        inputs = {}
        for key, items in tensors.items():
            same_size = [t for t in items if t.shape == items[0].shape] if items else []
            inputs[key] = torch.stack(same_size) if same_size else None
        return inputs

    @torch.no_grad()
    def write(self, model: torch.nn.Module, run_dir: Path, epoch: int) -> Path | None:
        if self.inputs.get("A") is None or self.inputs.get("B") is None:
            return None
        device = self.inputs["A"].device
        # The gallery must not perturb training: its own RNG scope, eval mode, then back.
        with torch.random.fork_rng(devices=[]), autocast(device, self.config.run.precision):
            model.eval()
            try:
                if self.is_pix2pix:
                    real_a, target = self.inputs["A"], self.inputs["B"]
                    n = min(real_a.shape[0], target.shape[0])
                    translated = model.G_AB(real_a[:n])
                    rows = {Direction.A_TO_B: [[_viewable(t[i].float()) for t in (real_a, translated, target)]
                                               for i in range(n)]}
                    columns = ("input", "translated", "ground truth")
                else:
                    rows = {}
                    networks = model.networks()
                    for direction in Direction:
                        forward, backward = networks[direction.generator], networks[direction.reverse.generator]
                        real = self.inputs[direction.source]
                        translated = forward(real)
                        reconstructed = backward(translated)
                        identity = backward(real) if real.shape[1] == translated.shape[1] else real
                        rows[direction] = [[_viewable(t[i].float())
                                            for t in (real, translated, reconstructed, identity)]
                                           for i in range(real.shape[0])]
                    columns = GALLERY_COLUMNS
            finally:
                model.train()
        return save_gallery(run_dir / "gallery", epoch, rows, columns, preamble=quality_section(run_dir))


def _gallery_sources(folder: Path, reader: SourceReader, count: int, min_foreground: float) -> list[Source]:
    """The folder's images, then slices spread evenly over its first volumes' foreground."""
    images, volumes = list_sources(folder)
    if len(images) >= count or not volumes:
        return list(images)
    slices, _unusable = expand_volumes(volumes[:count], reader, min_foreground, "the gallery")
    wanted = count - len(images)
    step = max(1, len(slices) // wanted)
    return list(images) + slices[step // 2::step][:wanted]


def _viewable(tensor: torch.Tensor):
    """An image of a (C, H, W) tensor: as it is for 1 or 3 channels, else its first 3 (or first) channels."""
    channels = tensor.shape[0]
    return tensor_to_image(tensor if channels in (1, 3) else tensor[:3] if channels > 3 else tensor[:1])
