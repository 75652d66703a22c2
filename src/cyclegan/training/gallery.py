"""The run's picture book: a fixed handful of images translated at every epoch end.

The page (gallery/index.html) shows the newest validation scores and every warning above the
strips, and the strips also go to the run's trackers. For CycleGAN each direction shows the input, its
translation, the reconstruction and the identity mapping; for pix2pix the input, the
translation and the paired ground truth; for CUT and FastCUT their one direction's input and
translation.
"""
from __future__ import annotations

import html
from pathlib import Path

import torch
from PIL import Image

from cyclegan.config import TrainConfig, model_directions
from cyclegan.data.datasets import AlignedDataset, prepared_tensor, load_source
from cyclegan.data.layout import DatasetLayout
from cyclegan.data.sources import Source, SourceReader, expand_volumes, list_sources, parse_window
from cyclegan.device import autocast
from cyclegan.directions import Direction
from cyclegan.errors import DatasetError, UnreadableImageError
from cyclegan.fileio import write_atomic, write_text_atomic
from cyclegan.imageconv import tensor_to_image
from cyclegan.layers.test_time_norm import normalising_each_image
from cyclegan.networks import size_multiple
from cyclegan.training.logging import read_log
from cyclegan.training.trackers import Trackers

GALLERY_COLUMNS = ("input", "translated", "reconstructed", "identity")


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
    def write(self, model: torch.nn.Module, run_dir: Path, epoch: int, trackers: Trackers | None = None,
              iteration: int = 0) -> Path | None:
        """Translate the gallery images, save the epoch's strips and the page, and hand the strips
        to `trackers` at `iteration`; None when a domain has no gallery image."""
        if self.inputs.get("A") is None or self.inputs.get("B") is None:
            return None
        device = self.inputs["A"].device
        # The gallery must not perturb training: its own RNG scope, eval mode, then back.
        # Batch norm as translation runs it (layers.test_time_norm).
        with torch.random.fork_rng(devices=[]), autocast(device, self.config.run.precision), \
                normalising_each_image(model):
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
                        rows[direction] = [[_viewable(t[i].float()) for t in shown]
                                           for i in range(real.shape[0])]
                    columns = GALLERY_COLUMNS if cycle else GALLERY_COLUMNS[:2]
            finally:
                model.train()
        page, strips = save_gallery(run_dir / "gallery", epoch, rows, columns, preamble=quality_section(run_dir))
        if trackers is not None:
            trackers.log_images({f"gallery/{name}": strip for name, strip in strips.items()}, iteration)
        return page


def quality_section(run_dir: Path, rows: int = 10) -> str:
    """HTML for the gallery page: the newest validation scores (metrics.jsonl), the plot of them and
    every warning of the run (log.jsonl and metrics.jsonl); empty when there is none of these."""
    run_dir = Path(run_dir)
    metrics = read_log(run_dir / "metrics.jsonl")
    evaluations = [record for record in metrics if "warning" not in record]
    warnings = sorted((record for record in read_log(run_dir / "log.jsonl") + metrics if "warning" in record),
                      key=lambda record: record["iteration"])
    parts = []
    if evaluations:
        columns = [key for key in evaluations[-1] if key.split("_")[0] in ("kid", "fid", "cycle", "l1")
                   and not key.endswith("_std")]
        parts.append("<h2>Validation scores</h2><p>Lower is better; newest first. The best checkpoint "
                     "(<code>--pick best</code>) is marked.</p>")
        if (run_dir / "metrics.png").exists():
            parts.append("<img src='../metrics.png' alt='validation scores' style='height:auto;max-width:100%'>")
        header = "".join(f"<th>{html.escape(name)}</th>" for name in ["iteration", "epoch", *columns, "seconds"])
        body = []
        for record in reversed(evaluations[-rows:]):
            cells = [str(record["iteration"]), str(record["epoch"])]
            cells += [_number(record.get(name)) for name in columns]
            cells.append(f"{record.get('seconds', 0):.1f}")
            style = " style='font-weight:bold'" if record.get("best") else ""
            body.append(f"<tr{style}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        parts.append(f"<table border='1' cellspacing='0' cellpadding='3'><tr>{header}</tr>{''.join(body)}</table>")
    if warnings:
        parts.append("<h2>Warnings</h2><ul>")
        parts.extend(f"<li>iteration {record['iteration']}: {html.escape(record['message'])}</li>"
                     for record in warnings)
        parts.append("</ul>")
    return "\n".join(parts)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def save_gallery(gallery_dir: Path, epoch: int, rows: dict[Direction, list[list[Image.Image]]],
                 columns: tuple[str, ...] = GALLERY_COLUMNS, preamble: str = "") -> tuple[Path, dict[str, Image.Image]]:
    """Save this epoch's strips and rebuild index.html (newest epoch first); returns the page and
    the strips by name ("AtoB_0"), for the trackers.

    `rows` maps a direction to a list of samples, each a list of images in
    `columns` order; each sample becomes one horizontal strip PNG. `preamble` is HTML shown
    above the strips (the validation scores and warnings).
    """
    gallery_dir = Path(gallery_dir)
    epoch_dir = gallery_dir / f"epoch_{epoch:04d}"
    epoch_dir.mkdir(parents=True, exist_ok=True)
    strips = {}
    for direction, samples in rows.items():
        for index, images in enumerate(samples):
            strip = _hstack([image.convert("RGB") for image in images])
            write_atomic(epoch_dir / f"{direction}_{index}.png", lambda temporary: strip.save(temporary, format="PNG"))
            strips[f"{direction}_{index}"] = strip
    write_text_atomic(gallery_dir / "index.html", _gallery_html(gallery_dir, list(rows), columns, preamble))
    return gallery_dir / "index.html", strips


def _hstack(images: list[Image.Image]) -> Image.Image:
    height = max(image.height for image in images)
    strip = Image.new("RGB", (sum(image.width for image in images) + 2 * (len(images) - 1), height), "white")
    x = 0
    for image in images:
        strip.paste(image, (x, 0))
        x += image.width + 2
    return strip


def _gallery_html(gallery_dir: Path, directions: list[Direction], columns: tuple[str, ...], preamble: str = "") -> str:
    parts = ["<!doctype html><meta charset='utf-8'><title>CycleGAN gallery</title>",
             "<style>body{font-family:sans-serif} img{image-rendering:pixelated;height:128px;margin:2px}"
             " h2{margin-top:1.5em}</style>", preamble,
             f"<h1>Translations per epoch</h1><p>Each strip: {' | '.join(columns)}.</p>"]
    for epoch_dir in sorted(gallery_dir.glob("epoch_*"), reverse=True):
        parts.append(f"<h2>{html.escape(epoch_dir.name.replace('_', ' '))}</h2>")
        for direction in directions:
            strips = sorted(epoch_dir.glob(f"{direction}_*.png"))
            if strips:
                parts.append(f"<h3>{html.escape(direction.label)}</h3>")
                parts.extend(f"<img src='{epoch_dir.name}/{strip.name}' alt='{html.escape(strip.stem)}'>"
                             for strip in strips)
    return "\n".join(parts) + "\n"


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
