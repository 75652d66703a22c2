"""The run's picture book: a fixed handful of images translated at every epoch end.

Rows are written by `report.save_gallery`: for CycleGAN each direction shows the input, its
translation, the reconstruction and the identity mapping; for pix2pix the input, the
translation and the paired ground truth; for CUT and FastCUT their one direction's input and
translation.
"""
from __future__ import annotations

from pathlib import Path

import torch

from cyclegan.config import TrainConfig, model_directions
from cyclegan.data.datasets import AlignedDataset
from cyclegan.data.images import image_to_tensor, list_images, load_image, tensor_to_image
from cyclegan.data.layout import DatasetLayout
from cyclegan.data.transforms import preprocess
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
            for key, folder, channels in (("A", folder_a, model.input_nc), ("B", folder_b, model.output_nc)):
                for path in list_images(folder):
                    if len(tensors[key]) == count:
                        break
                    try:
                        image = load_image(path, channels)
                    except UnreadableImageError:
                        continue
                    image = preprocess(image, data.preprocess, data.load_size, data.crop_size, flip=False,
                                       rng=None, size_multiple=multiple)
                    tensors[key].append(image_to_tensor(image))
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
                    rows = {Direction.A_TO_B: [[tensor_to_image(t[i].float()) for t in (real_a, translated, target)]
                                               for i in range(n)]}
                    columns = ("input", "translated", "ground truth")
                else:
                    rows = {}
                    networks = model.networks()
                    directions = model_directions(self.config.model)
                    cycle = all(direction.reverse.generator in networks for direction in directions)
                    for direction in directions:
                        real = self.inputs[direction.source]
                        translated = networks[direction.generator](real)
                        shown = [real, translated]
                        if cycle:
                            backward = networks[direction.reverse.generator]
                            identity = backward(real) if real.shape[1] == translated.shape[1] else real
                            shown += [backward(translated), identity]
                        rows[direction] = [[tensor_to_image(t[i].float()) for t in shown]
                                           for i in range(real.shape[0])]
                    columns = GALLERY_COLUMNS if cycle else GALLERY_COLUMNS[:2]
            finally:
                model.train()
        return save_gallery(run_dir / "gallery", epoch, rows, columns, preamble=quality_section(run_dir))
