"""The "FCN score" segmenter: how recognisable are generated photos? (paper, Table 1, labels -> photo)

The paper runs an FCN trained on real Cityscapes photos over the generated photos and scores
its labels against the input label maps. We cannot ship that network, so the project trains
its own small one on the real training photos and their labels, caches it, and reports its
accuracy on the real test photos as the ceiling a perfect generator could reach.

- Cityscapes-style data: `train_segmenter(photos_dir, labels_dir, CITYSCAPES, ...)` with the
  training photos and `label_ids/train` (raw ids, mapped to the 19 train classes).
- The synthetic set: its training photos have no labels (the set is unpaired), so
  `train_synthetic_segmenter` renders its own labelled scenes with `synth.render_scene`, from
  a seed stream that no split of the dataset uses.

A trained segmenter is cached as `<name>.safetensors` plus a `.json` of metadata; the name
holds a hash of the settings and of the training data (file contents, or the synthetic
renderer's output), so changing either trains a new one. The cache folder is `segmenters/` in
the cache root (`fileio.cache_root`): `$CYCLEGAN_CACHE/segmenters`, default
`~/.cache/cyclegan/segmenters`.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from cyclegan.data import synth
from cyclegan.data.images import list_images
from cyclegan.device import select_device
from cyclegan.errors import CheckpointError, ConfigError, DatasetError
from cyclegan.evaluation.image_metrics import read_image_tensor
from cyclegan.evaluation.segmentation import IGNORE, SYNTHETIC, LabelSet, read_class_ids
from cyclegan.fileio import cache_root, write_atomic, write_text_atomic
from cyclegan.imageconv import to_uint8, to_unit_range

FORMAT = "cyclegan-segmenter/1"
# The synthetic dataset draws its splits from streams 0-2 (synth.SPLITS); the segmenter's own
# labelled training scenes come from this one, so they never repeat a dataset scene.
SYNTHETIC_STREAM = 1000
DEFAULT_STEPS = 600
DEFAULT_WIDTH = 16
DEFAULT_SCENES = 512


def _block(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SegmentationNet(nn.Module):
    """A small U-Net: (N, 3, S, S) in [-1, 1] -> (N, K, S, S) class logits, S a multiple of 8.

    Three stride-2 stages (width w, 2w, 4w), dilated convolutions at 1/8 for context, a
    decoder with skip connections back to 1/2, and a last layer at full resolution that also
    sees the input pixels, so thin objects (poles, people) keep their outline. About 0.2 M
    parameters for w = 24: it trains in minutes on a CPU.
    """

    def __init__(self, num_classes: int, width: int = DEFAULT_WIDTH):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.down1 = nn.Sequential(_block(3, c1, stride=2), _block(c1, c1))
        self.down2 = nn.Sequential(_block(c1, c2, stride=2), _block(c2, c2))
        self.down3 = nn.Sequential(_block(c2, c3, stride=2), _block(c3, c3, dilation=2), _block(c3, c3, dilation=4))
        self.up2 = _block(c3 + c2, c2)
        self.up1 = _block(c2 + c1, c1)
        self.full = _block(c1 + 3, c1)
        self.head = nn.Conv2d(c1, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.down1(x)
        quarter = self.down2(half)
        eighth = self.down3(quarter)
        up = self.up2(torch.cat([_upsample(eighth, quarter), quarter], 1))
        up = self.up1(torch.cat([_upsample(up, half), half], 1))
        return self.head(self.full(torch.cat([_upsample(up, x), x], 1)))


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


@dataclass
class Segmenter:
    """A trained SegmentationNet with what it segments: its classes and input size."""

    net: SegmentationNet
    label_set: LabelSet
    size: int
    metadata: dict
    from_cache: bool = False

    @torch.no_grad()
    def predict(self, images: torch.Tensor, out_size: tuple[int, int] | None = None,
                batch_size: int = 16) -> torch.Tensor:
        """Class indices (N, H, W) int64 of (N, C, H, W) images in [-1, 1].

        Images are resized to the segmenter's size; the logits are resized (bilinear) to
        `out_size` (default: the input's size) before the arg-max.
        """
        self.net.eval()
        device = next(self.net.parameters()).device
        out_size = tuple(out_size or images.shape[-2:])
        results = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device, torch.float32)
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            if batch.shape[-2:] != (self.size, self.size):
                batch = F.interpolate(batch, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                      antialias=True)
            logits = F.interpolate(self.net(batch), size=out_size, mode="bilinear", align_corners=False)
            results.append(logits.argmax(1).cpu())
        return torch.cat(results)


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """Where segmenters are cached: `cache`, else $CYCLEGAN_CACHE/segmenters, else ~/.cache/cyclegan/segmenters."""
    if cache is not None:
        return Path(cache).expanduser()
    return cache_root() / "segmenters"


def train_segmenter(photos_dir: str | os.PathLike, labels_dir: str | os.PathLike, classes: LabelSet,
                    size: int = 128, steps: int = DEFAULT_STEPS, seed: int = 0, *,
                    cache: str | os.PathLike | None = None, use_cache: bool = True, device: str = "cpu",
                    batch_size: int | None = None, width: int = DEFAULT_WIDTH,
                    log: Callable[[str], None] | None = None) -> Segmenter:
    """Train (or load from the cache) a segmenter on real photos and their labels.

    `labels_dir` holds, for each photo, an image with the same stem: raw label ids (one
    channel, mapped with `classes.id_to_class`) or a colour label map (exact `classes.palette`
    colours; other colours are ignored). Photos without a label file are left out.
    """
    photos_dir, labels_dir = Path(photos_dir), Path(labels_dir)
    labels_by_stem = {path.stem: path for path in list_images(labels_dir)}
    pairs = [(photo, labels_by_stem[photo.stem]) for photo in list_images(photos_dir) if photo.stem in labels_by_stem]
    if not pairs:
        raise DatasetError(f"no photo in {photos_dir} has a label image with the same name in {labels_dir}; "
                           "the segmenter needs labelled training photos")
    digest = hashlib.sha256()
    for photo, labels in pairs:
        for path in (photo, labels):
            digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    # The content decides the cache key; where the folders are is only recorded.
    data = {"kind": "folders", "count": len(pairs), "hash": digest.hexdigest()}
    source = {"photos": str(photos_dir), "labels": str(labels_dir)}

    def examples() -> tuple[torch.Tensor, torch.Tensor]:
        photos = torch.stack([to_uint8(read_image_tensor(photo, 3, size)) for photo, _ in pairs])
        labels = torch.stack([torch.from_numpy(read_class_ids(path, classes, size).copy()) for _, path in pairs])
        return photos, labels

    return _cached_or_trained(examples, data, classes, size, steps, seed, cache, use_cache, device, batch_size,
                              width, log, source)


def train_synthetic_segmenter(size: int = 64, steps: int = DEFAULT_STEPS, seed: int = 0, *,
                              scenes: int = DEFAULT_SCENES, classes: LabelSet = SYNTHETIC,
                              cache: str | os.PathLike | None = None, use_cache: bool = True,
                              device: str = "cpu", batch_size: int | None = None, width: int = DEFAULT_WIDTH,
                              log: Callable[[str], None] | None = None) -> Segmenter:
    """Train (or load) a segmenter for the synthetic set on `scenes` freshly rendered labelled
    scenes (stream SYNTHETIC_STREAM of `seed`, never a dataset scene)."""
    def scene(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return synth.render_scene(np.random.default_rng([seed, SYNTHETIC_STREAM, index]), size)

    # The first scene stands for the renderer: a change to synth.py changes it, and the cache key.
    label_ids, _, photo = scene(0)
    renderer = hashlib.sha256(label_ids.tobytes() + photo.tobytes()).hexdigest()
    data = {"kind": "synthetic", "seed": seed, "stream": SYNTHETIC_STREAM, "count": scenes, "hash": renderer}

    def examples() -> tuple[torch.Tensor, torch.Tensor]:
        rendered = [scene(index) for index in range(scenes)]
        photos = torch.stack([torch.from_numpy(photo).permute(2, 0, 1) for _, _, photo in rendered])
        labels = torch.stack([torch.from_numpy(label_ids) for label_ids, _, _ in rendered])
        return photos, labels

    return _cached_or_trained(examples, data, classes, size, steps, seed, cache, use_cache, device, batch_size,
                              width, log)


def _cached_or_trained(examples: Callable[[], tuple[torch.Tensor, torch.Tensor]], data: dict, classes: LabelSet,
                       size: int, steps: int, seed: int, cache: str | os.PathLike | None, use_cache: bool,
                       device: str, batch_size: int | None, width: int, log: Callable[[str], None] | None,
                       source: dict | None = None) -> Segmenter:
    if size % 8:
        raise ConfigError(f"the segmenter's size must be a multiple of 8 (--segmenter-size), got {size}")
    batch_size = batch_size or (16 if size <= 64 else 8)  # keeps 128 px training to about 3 CPU-minutes
    settings = {"format": FORMAT, "classes": {**classes.to_dict(), "id_to_class": classes.id_to_class.tolist()},
                "size": size, "steps": steps, "seed": seed, "batch_size": batch_size, "width": width, "data": data}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    folder = cache_dir(cache)
    stem = f"{classes.name}-{size}px-{key[:16]}"
    weights_path, metadata_path = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    torch_device = select_device(device)
    if use_cache and metadata_path.is_file() and weights_path.is_file():
        try:
            segmenter = load_segmenter(weights_path, classes, torch_device)
        except CheckpointError as error:  # a damaged cache entry is replaced, not fatal
            segmenter = None
            if log:
                log(f"segmenter: {error}; training a new one")
        if segmenter is not None and segmenter.metadata.get("key") == key:
            if log:
                log(f"segmenter: loaded from the cache ({weights_path})")
            return segmenter
    if log:
        what = "rendered scenes" if data["kind"] == "synthetic" else "labelled photos"
        log(f"segmenter: training on {data['count']} {what} at {size} px for {steps} steps (cached afterwards)")
    started = time.perf_counter()
    photos, labels = examples()
    net = SegmentationNet(classes.num_classes, width)
    final_loss = fit(net, photos, labels, steps, seed, torch_device, batch_size)
    metadata = {**settings, "key": key, "source": source, "train_seconds": round(time.perf_counter() - started, 1),
                "final_loss": final_loss}
    if use_cache:
        state = {name: value.detach().cpu().contiguous() for name, value in net.state_dict().items()}
        write_atomic(weights_path, lambda temporary: save_file(state, str(temporary), metadata={"format": FORMAT}))
        # The JSON is written last: a segmenter counts as cached only once both files are complete.
        write_text_atomic(metadata_path, json.dumps(metadata, indent=2) + "\n")
    if log:
        log(f"segmenter: trained in {metadata['train_seconds']} s (final loss {final_loss:.3f})")
    return Segmenter(net.eval(), classes, size, metadata, from_cache=False)


def load_segmenter(weights_path: str | os.PathLike, classes: LabelSet, device: str | torch.device = "cpu") -> Segmenter:
    """A cached segmenter: its weights file and the `.json` beside it."""
    weights_path = Path(weights_path)
    try:
        metadata = json.loads(weights_path.with_suffix(".json").read_text())
        net = SegmentationNet(classes.num_classes, int(metadata["width"]))
        net.load_state_dict(load_file(str(weights_path)))
    except Exception as error:  # a damaged or foreign cache file: say which one
        raise CheckpointError(f"cached segmenter {weights_path} cannot be loaded ({error}); delete it to "
                              "train a new one") from error
    return Segmenter(net.to(device).eval(), classes, int(metadata["size"]), metadata, from_cache=True)


def fit(net: SegmentationNet, photos: torch.Tensor, labels: torch.Tensor, steps: int, seed: int,
        device: torch.device | str = "cpu", batch_size: int = 16) -> float:
    """Train `net` on uint8 photos (N, 3, S, S) and class ids (N, S, S) (IGNORE not scored).

    Adam with a linearly decaying learning rate; each batch is flipped at random and given a
    random exposure and colour cast, so that the segmenter reads shapes and textures, not the
    exact colours of real photos (generated photos rarely match them). Returns the mean loss
    of the last tenth of the steps.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / max(steps, 1))
    recent = []
    for step in range(steps):
        index = torch.randint(len(photos), (batch_size,), generator=generator)
        x = to_unit_range(photos[index])
        y = labels[index].long()
        flip = torch.rand(batch_size, generator=generator) < 0.5
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        gain = 1 + 0.2 * (torch.rand(batch_size, 1, 1, 1, generator=generator) - 0.5)
        cast = 0.1 * (torch.rand(batch_size, 3, 1, 1, generator=generator) - 0.5)
        x = ((x + 1) * gain - 1 + cast).clamp(-1, 1)
        if not (y != IGNORE).any():
            continue  # nothing to learn from (every pixel unlabelled); the loss would be NaN
        loss = F.cross_entropy(net(x.to(device)), y.to(device), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step >= steps - max(1, steps // 10):
            recent.append(loss.item())
    net.eval()
    return float(np.mean(recent)) if recent else float("nan")


__all__ = ["SegmentationNet", "Segmenter", "train_segmenter", "train_synthetic_segmenter", "load_segmenter",
           "fit", "cache_dir", "SYNTHETIC_STREAM"]
