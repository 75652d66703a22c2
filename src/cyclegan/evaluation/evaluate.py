"""Measuring translation quality: every score of a checkpoint on a dataset's test split.

`evaluate(checkpoint, data_dir)` translates testA -> B and testB -> A with the checkpoint's
generators (a pix2pix checkpoint, or a single converted generator, has only A -> B: the other
direction is reported as skipped) and computes:

- for every direction: FID and KID between the translations and the real test images of the
  target domain (when the Inception weights are installed), the cycle reconstruction error
  mean |x - F(G(x))| in [-1, 1] units (when both generators exist), and PSNR / SSIM against
  the real target image of the same name (when test stems match across testA / testB);
- for labels <-> photo data with ground truth (the synthetic set, Cityscapes), the paper's
  Table 1 scores: photo -> labels read by nearest palette colour and compared with the
  ground-truth ids; labels -> photo scored by the project's segmenter on the generated photos
  (the "FCN score"), next to the same segmenter on the real test photos (the ceiling).

Segmentation scores are computed at the ground truth's resolution: generated label maps are
upsampled (nearest), segmenter logits bilinearly.

Test folders may hold what training folders hold (`evaluation.inputs`): 16-bit, float and
multi-channel files and volumes are read through the run's intensity windows (`--window-a` /
`--window-b`, saved with the weights) and every score of theirs is computed on those [-1, 1]
values, the translations unrounded. FID / KID see 1-channel images repeated to 3 channels, as
validation during training does; domains of other than 1 or 3 channels get none.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from cyclegan.data.images import list_images, load_image
from cyclegan.data.layout import test_folders
from cyclegan.data.synth import MIN_SIZE as SYNTHETIC_MIN_SIZE
from cyclegan.data.sources import Source
from cyclegan.directions import Direction
from cyclegan.errors import ConfigError, DatasetError
from cyclegan.evaluation import fid as fid_metrics
from cyclegan.evaluation.image_metrics import psnr, ssim
from cyclegan.evaluation.inputs import DomainImages, as_unit, describe_window, pair_key, read_domain
from cyclegan.evaluation.scoring import KID_SUBSET_SIZE, KID_SUBSETS, DirectionScores, score_direction
from cyclegan.evaluation.segmentation import (CITYSCAPES, CITYSCAPES_LABELS, LabelSet, confusion_matrix,
                                              label_set_from_classes_json, nearest_palette_ids, palette_coverage,
                                              read_class_ids, segmentation_scores)
from cyclegan.evaluation.segmenter import DEFAULT_STEPS, Segmenter, train_segmenter, train_synthetic_segmenter
from cyclegan.fileio import write_text_atomic
from cyclegan.imageconv import to_uint8
from cyclegan.inference import Translator, load_translators

DOMAINS = ("A", "B")
CITYSCAPES_NAME = re.compile(r"^[a-z]+_\d{6}_\d{6}")
DEFAULT_SEGMENTER_SIZE = {"synthetic": 64, "cityscapes": 128}


@dataclass
class DatasetInfo:
    """What a dataset folder offers for evaluation."""

    root: Path
    kind: str  # "synthetic", "cityscapes" or "unpaired" (no label ground truth)
    label_set: LabelSet | None = None
    labels_domain: str | None = None  # the domain holding colour label maps
    test_labels: Path | None = None  # ground-truth label images of the test stems
    train_labels: Path | None = None  # label ids of the training photos (for the segmenter)

    @property
    def photo_domain(self) -> str | None:
        return None if self.labels_domain is None else ("B" if self.labels_domain == "A" else "A")


def describe_dataset(data_dir: str | Path, labels_domain: str | None = None) -> DatasetInfo:
    """Detect the dataset kind and which domain holds the label maps.

    synthetic: `classes.json` present (label maps in A, ground truth in `label_ids/test`).
    cityscapes: `label_ids/` holding Cityscapes-named files (ground truth in `label_ids/val`,
    else `label_ids/test`; label maps in B in ../shared/data/cityscapes, in whichever test
    folder is made of Cityscapes colours otherwise). `labels_domain` ("A"/"B") overrides.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; give --data a dataset folder with testA/ and testB/")
    for domain, folder in zip(DOMAINS, test_folders(root)):
        if folder is None:
            raise DatasetError(f"{root}: no test{domain} folder; evaluation translates testA and testB")
    if labels_domain is not None and labels_domain not in DOMAINS:
        raise ConfigError(f"--labels-domain must be A or B, got {labels_domain!r}")
    if (root / "classes.json").is_file():
        try:
            label_set = label_set_from_classes_json(json.loads((root / "classes.json").read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"{root / 'classes.json'} is not a synthetic dataset description ({error})") from error
        domain = labels_domain or _colour_domain(root, label_set.palette) or "A"
        return DatasetInfo(root, "synthetic", label_set, domain, _existing(root / "label_ids" / "test"))
    ids = root / "label_ids"
    if ids.is_dir() and any(CITYSCAPES_NAME.match(path.name) for path in ids.rglob("*.png")):
        colours = np.array([colour for *_, colour in CITYSCAPES_LABELS], dtype=np.uint8)
        domain = labels_domain or _colour_domain(root, colours) or "B"
        test_labels = _existing(ids / "val") or _existing(ids / "test")
        return DatasetInfo(root, "cityscapes", CITYSCAPES, domain, test_labels, _existing(ids / "train"))
    if labels_domain is not None:
        raise ConfigError(f"--labels-domain was given but {root} has no label ground truth (classes.json or "
                          "label_ids/); it applies to labels <-> photo datasets")
    return DatasetInfo(root, "unpaired")


def _existing(path: Path) -> Path | None:
    return path if path.is_dir() else None


def _colour_domain(root: Path, colours: np.ndarray, samples: int = 4) -> str | None:
    """The test domain whose images are (almost) only label colours, if exactly one is."""
    coverage = {}
    for domain in DOMAINS:
        paths = list_images(root / f"test{domain}")[:samples]
        values = [palette_coverage(np.asarray(load_image(path)), colours) for path in paths]
        coverage[domain] = min(values) if values else 0.0
    label_like = [domain for domain in DOMAINS if coverage[domain] > 0.9]
    return label_like[0] if len(label_like) == 1 else None


def _run_data_config(checkpoint: str | Path) -> dict:
    """The data section of the run folder's config.json, or of the training config that a Hub
    folder's config.json carries ({} when there is neither)."""
    path = Path(checkpoint)
    if path.is_dir():
        run = path.parent if path.name == "checkpoints" else path
    else:
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    try:
        described = json.loads((run / "config.json").read_text())
        data = described["data"] if "data" in described else described["training"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def run_config_size(checkpoint: str | Path) -> int | None:
    """The size a run's images were trained at (its crop size, with the default resize_and_crop
    preprocessing), from the run folder's config.json; None when there is no such file."""
    return _trained_size(_run_data_config(checkpoint))


def _trained_size(data: dict) -> int | None:
    """`run_config_size` of a run's data config."""
    try:
        return int(data["crop_size"]) if data.get("preprocess", "resize_and_crop") == "resize_and_crop" else None
    except (KeyError, TypeError, ValueError):
        return None


def _min_foreground(data: dict) -> float:
    """The run's --min-foreground (the slices of volumes it trained on), from its data config; 0
    when there is none: even then slices without any voxel above the window's low end are skipped."""
    try:
        return float(data.get("min_foreground", 0.0))
    except (TypeError, ValueError):
        return 0.0


def _by_direction(translators: dict[str, Translator]) -> dict[Direction, Translator]:
    """`load_translators`' translators (keyed by the plain spelling) keyed by Direction."""
    return {Direction.parse(key): translator for key, translator in translators.items()}


def _skipped_directions(translators: dict[str, Translator]) -> dict[Direction, str]:
    """Why the directions a checkpoint does not hold are not scored."""
    held = _by_direction(translators)
    if len(held) == len(Direction):
        return {}
    ((only, translator),) = held.items()
    if translator.spec.direction is None:
        return {only.reverse: f"the file holds a single generator, evaluated as {only}"}
    # pix2pix translates AtoB only; CUT and FastCUT the one direction they were trained in.
    return {only.reverse: f"the checkpoint has no generator for {only.reverse}; it translates {only} only"}


def _check_options(size: int | None, batch_size: int, segmenter_size: int | None, segmenter_steps: int | None,
                   kind: str | None = None) -> None:
    """ConfigError for a count out of range, before any image is read: a size of 0 used to fail in
    PIL with a traceback, and a segmenter size or step count of 0 meant the default, -1 steps an
    untrained segmenter whose scores were reported (and cached)."""
    for flag, value in (("--size", size), ("--batch-size", batch_size), ("--segmenter-steps", segmenter_steps)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if segmenter_size is not None and (segmenter_size < 8 or segmenter_size % 8):
        raise ConfigError(f"--segmenter-size must be a positive multiple of 8, got {segmenter_size}")
    if kind == "synthetic" and segmenter_size is not None and segmenter_size < SYNTHETIC_MIN_SIZE:
        raise ConfigError(f"--segmenter-size {segmenter_size} is below the {SYNTHETIC_MIN_SIZE} px the synthetic "
                          f"scenes it trains on need; give {SYNTHETIC_MIN_SIZE} or more")


def _runs_of_equal_shape(items: list[torch.Tensor], batch_size: int):
    """(start, stop) index ranges of consecutive same-shape items, at most batch_size long."""
    start = 0
    while start < len(items):
        stop = start + 1
        while stop < len(items) and stop - start < batch_size and items[stop].shape == items[start].shape:
            stop += 1
        yield start, stop
        start = stop


@dataclass(frozen=True)
class PairedScores:
    """PSNR / SSIM of the translations that have a real target image of the same name."""

    images: int  # translations with a same-name target
    psnr: float | None  # dB, mean over the pairs
    ssim: float | None  # 0-1, mean over the pairs of at least 11 px

    def to_record(self) -> dict:
        return {"paired_images": self.images, "psnr": self.psnr, "ssim": self.ssim}


@dataclass(frozen=True)
class DirectionEvaluation:
    """One direction's scores on the test split."""

    scores: DirectionScores
    paired: PairedScores

    def to_record(self) -> dict:
        """{"source": "testA", "target": "testB", "images", "fid", "kid": {"mean", "std", "subset_size",
        "subsets"} | None, "cycle_l1", "paired_images", "psnr", "ssim"}."""
        return {**self.scores.to_record(), **self.paired.to_record()}


@dataclass(frozen=True)
class SkippedDirection:
    """A direction the checkpoint cannot translate, and why."""

    reason: str

    def to_record(self) -> dict:
        return {"skipped": self.reason}


@dataclass(frozen=True)
class EvaluationResult:
    """Every score of a checkpoint on a dataset's test split (see `evaluate`).

    `to_record()` is the JSON that `cyclegan evaluate --out` writes, with every non-finite score
    (the PSNR of identical images) as null; `result["notes"]` reads that record too.
    """

    checkpoint: str
    data: str
    size: int | None  # the size test images were resized to
    seconds: float
    dataset: DatasetInfo
    directions: dict[Direction, DirectionEvaluation | SkippedDirection]
    # {"photo_to_labels", "labels_to_photo", "ceiling": scores | None, "segmenter": {...} | None}
    # for labels <-> photo data, where scores = {"direction", "images", "pixel_accuracy",
    # "class_accuracy", "class_iou", "pixels", "per_class": {class: {"accuracy", "iou", "pixels"}}}
    segmentation: dict | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The model's intensity window of each domain ("LOW,HIGH" or "percentile:..."), None where it has none.
    windows: dict[str, str | None] = field(default_factory=dict)

    def to_record(self) -> dict:
        info = self.dataset
        return _json_safe({
            "checkpoint": self.checkpoint, "data": self.data, "size": self.size, "seconds": self.seconds,
            "dataset": {"kind": info.kind, "labels_domain": info.labels_domain,
                        "classes": list(info.label_set.names) if info.label_set else None},
            "directions": {direction.value: self.directions[direction].to_record()
                           for direction in Direction if direction in self.directions},
            "segmentation": self.segmentation,
            "windows": dict(self.windows),
            "notes": list(self.notes),
        })

    def __getitem__(self, key: str):
        return self.to_record()[key]


def evaluate(checkpoint: str | Path, data_dir: str | Path, *, labels_domain: str | None = None,
             size: int | None = None, fid: bool | None = None, inception_weights: str | Path | None = None,
             device: str = "auto", precision: str = "auto", segmenter_size: int | None = None, segmenter_steps: int | None = None,
             segmenter_seed: int = 0, cache_dir: str | Path | None = None, batch_size: int = 8,
             kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
             log: Callable[[str], None] | None = None) -> EvaluationResult:
    """Score `checkpoint` (run folder, checkpoint file, or anything `Translator.from_checkpoint`
    reads) on the test split of `data_dir`.

    Options: `size` resizes test images to size x size first (default: the run's training crop
    size from its config.json, else the images' own size); `fid` None computes FID/KID when
    Inception weights are found and notes why not otherwise, True requires them, False skips
    them; `segmenter_size`/`segmenter_steps`/`segmenter_seed`/`cache_dir` set the FCN-score
    segmenter (defaults: 64 px for synthetic, 128 px for Cityscapes, 600 steps, the cache in
    $CYCLEGAN_CACHE/segmenters, else ~/.cache/cyclegan/segmenters); KID averages `kid_subsets`
    subsets of min(`kid_subset_size`, images / 2) images, so that small test sets still give a
    spread; `log` receives progress lines. A score that cannot be computed is None. The
    intensity windows and slice axis come with the weights, the slices kept of test volumes
    follow the run's --min-foreground (its config.json).
    """
    _check_options(size, batch_size, segmenter_size, segmenter_steps)
    info = describe_dataset(data_dir, labels_domain)  # before loading: a missing test folder fails at once
    run_data = _run_data_config(checkpoint)
    if size is None:
        size = _trained_size(run_data)
    translators = load_translators(checkpoint, device=device, precision=precision)
    return evaluate_translators(translators, info, checkpoint=str(checkpoint), size=size, fid=fid,
                                inception_weights=inception_weights, device=device,
                                min_foreground=_min_foreground(run_data), segmenter_size=segmenter_size,
                                segmenter_steps=segmenter_steps, segmenter_seed=segmenter_seed, cache_dir=cache_dir,
                                batch_size=batch_size, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                                log=log)


def evaluate_translators(translators: dict[str, Translator], dataset: DatasetInfo, *, checkpoint: str | None = None,
                         size: int | None = None, fid: bool | None = None,
                         inception_weights: str | Path | None = None, device: str = "auto",
                         min_foreground: float = 0.0, segmenter_size: int | None = None,
                         segmenter_steps: int | None = None, segmenter_seed: int = 0,
                         cache_dir: str | Path | None = None, batch_size: int = 8, kid_subsets: int = KID_SUBSETS,
                         kid_subset_size: int = KID_SUBSET_SIZE,
                         log: Callable[[str], None] | None = None) -> EvaluationResult:
    """`evaluate` with translators already loaded (`load_translators`' {"AtoB": ..., "BtoA": ...})
    on a `describe_dataset` result; `checkpoint` names them in the record (default: the first one's
    file). `size` None keeps the images' own size; `min_foreground` is --min-foreground for the
    slices of test volumes."""
    _check_options(size, batch_size, segmenter_size, segmenter_steps, dataset.kind)
    started = time.perf_counter()
    say = log or (lambda message: None)
    skipped = _skipped_directions(translators)
    notes: list[str] = []
    channels: dict[str, int] = {}
    windows: dict[str, str | None] = {}
    slice_axis = None
    by_direction = _by_direction(translators)
    for direction, translator in by_direction.items():
        spec = translator.spec
        channels.setdefault(direction.source, spec.input_nc)
        channels.setdefault(direction.target, spec.output_nc)
        windows.setdefault(direction.source, spec.input_window)
        windows.setdefault(direction.target, spec.output_window)
        slice_axis = spec.slice_axis if slice_axis is None else slice_axis
    targets = {direction.target for direction in by_direction}
    unscorable = {domain: channels[domain] for domain in sorted(targets)
                  if channels[domain] not in fid_metrics.INCEPTION_CHANNELS}
    if fid and unscorable:
        domain, count = next(iter(unscorable.items()))
        raise ConfigError(f"FID/KID compare Inception features of 1- or 3-channel images, but domain {domain} has "
                          f"{count} channels; evaluate it with --no-fid")
    inception = _inception_network(fid, inception_weights, device, notes, say)  # fails early if --fid cannot work

    real: dict[str, DomainImages] = {}
    for domain, folder in zip(DOMAINS, test_folders(dataset.root)):
        real[domain] = read_domain(folder, domain, channels.get(domain, 3), windows.get(domain), slice_axis,
                                   min_foreground, size)
        for _volume, reason in real[domain].skipped:
            notes.append(f"test{domain}: skipped {reason}")
        if not real[domain].images:
            raise DatasetError(f"{folder} holds no images to evaluate on"
                               + (f" ({real[domain].skipped[0][1]})" if real[domain].skipped else ""))
        if real[domain].full_precision:
            notes.append(f"{real[domain].full_precision} image(s) of {describe_window(real[domain])}"
                         + (f"; {real[domain].clipped} value(s) outside it clipped" if real[domain].clipped else ""))
    say(f"reading {len(real['A'].images)} + {len(real['B'].images)} test images" + (f" at {size} px" if size else ""))
    images = {domain: real[domain].images for domain in DOMAINS}
    sources = {domain: real[domain].sources for domain in DOMAINS}

    fake: dict[Direction, list[torch.Tensor]] = {}
    directions: dict[Direction, DirectionEvaluation | SkippedDirection] = {
        direction: SkippedDirection(reason) for direction, reason in skipped.items()}
    real_features: dict[str, np.ndarray] = {}
    for direction, translator in by_direction.items():
        source, target = direction.source, direction.target
        say(f"translating test{source} -> {target}")
        fake[direction], cycle_pairs = _translate(translator, translators.get(direction.reverse), images[source],
                                                  batch_size)
        network = _fid_network(inception, direction, fake[direction], images[target], real_features, notes, say)
        scores = score_direction(direction, fake[direction], images[target], network=network,
                                 target_features=real_features, cycle_pairs=cycle_pairs,
                                 kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
        directions[direction] = DirectionEvaluation(
            scores, _paired_scores(fake[direction], sources[source], images[target], sources[target]))

    segmentation = None
    if dataset.label_set is not None:
        segmentation = _segmentation_scores(dataset, fake, images, sources, segmenter_size, segmenter_steps,
                                            segmenter_seed, cache_dir, device, notes, say)
    if checkpoint is None:
        checkpoint = next(iter(translators.values())).spec.source
    return EvaluationResult(checkpoint, str(dataset.root), size, round(time.perf_counter() - started, 1), dataset,
                            directions, segmentation, tuple(notes), {domain: windows.get(domain) for domain in DOMAINS})


def _translate(translator: Translator, back: Translator | None, images: list[torch.Tensor],
               batch_size: int) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]] | None]:
    """Translations as they would be saved (uint8 for an 8-bit picture into 1 or 3 channels;
    float32 in [-1, 1], unrounded, for what is written at full precision) and, with `back`, the
    (reconstruction, input) batches of the cycle error, in [-1, 1]."""
    outputs, cycle_pairs = [], []
    for start, stop in _runs_of_equal_shape(images, batch_size):
        batch = torch.stack([as_unit(image) for image in images[start:stop]])
        translated = translator.translate_tensor(batch)
        for image, output in zip(images[start:stop], translated.cpu()):
            eight_bit = image.dtype == torch.uint8 and output.shape[0] in (1, 3)
            outputs.append(to_uint8(output) if eight_bit else output)
        if back is not None:
            cycle_pairs.append((back.translate_tensor(translated).cpu(), batch))
    return outputs, (cycle_pairs if back is not None else None)


def _paired_scores(generated: list[torch.Tensor], source_paths: list[Source], targets: list[torch.Tensor],
                   target_paths: list[Source]) -> PairedScores:
    """PSNR / SSIM of each translation against the real target image with the same stem (for
    volumes: the same slice of the volume of the same name)."""
    target_of = {pair_key(path): index for index, path in enumerate(target_paths)}
    psnr_values, ssim_values = [], []
    for image, path in zip(generated, source_paths):
        index = target_of.get(pair_key(path))
        if index is None:
            continue
        target = targets[index]
        if target.shape[0] != image.shape[0]:
            continue  # 1-channel vs 3-channel: no pixel-wise comparison
        if target.shape != image.shape:
            resized = torch.nn.functional.interpolate(as_unit(target)[None], size=image.shape[-2:], mode="bicubic",
                                                      align_corners=False)[0].clamp(-1, 1)
            target = to_uint8(resized) if target.dtype == torch.uint8 else resized
        pair = as_unit(image)[None], as_unit(target)[None]
        psnr_values.append(float(psnr(*pair)[0]))
        if min(image.shape[-2:]) >= 11:
            ssim_values.append(float(ssim(*pair)[0]))
    return PairedScores(len(psnr_values), float(np.mean(psnr_values)) if psnr_values else None,
                        float(np.mean(ssim_values)) if ssim_values else None)


def _inception_network(fid: bool | None, weights, device: str, notes: list[str],
                       say: Callable[[str], None]) -> fid_metrics.InceptionFeatures | None:
    if fid is False:
        return None
    try:
        return fid_metrics.InceptionFeatures(weights, device)
    except fid_metrics.InceptionWeightsNotFound as error:
        if fid:
            raise
        notes.append(f"FID/KID not computed: {error}")
        say(notes[-1])
        return None


def _fid_network(network: fid_metrics.InceptionFeatures | None, direction: Direction, generated: list,
                 reals: list, real_features: dict, notes: list[str],
                 say: Callable[[str], None]) -> fid_metrics.InceptionFeatures | None:
    """The Inception network for FID/KID of `direction`, or None (with a note) where they cannot be computed."""
    if network is None:
        return None
    channels = generated[0].shape[0] if generated else 0
    if channels not in fid_metrics.INCEPTION_CHANNELS:
        notes.append(f"FID/KID of {direction} not computed: the Inception network takes 1- or 3-channel images, "
                     f"test{direction.target} has {channels}")
        return None
    if len(generated) < 2 or len(reals) < 2:
        notes.append(f"FID/KID of {direction} not computed: they need at least 2 images per set")
        return None
    say(f"Inception features: {len(generated)} translations {direction}" +
        ("" if direction.target in real_features else f" and {len(reals)} real test{direction.target} images"))
    return network


def _segmentation_scores(info: DatasetInfo, fake: dict, real: dict, paths: dict,
                         segmenter_size: int | None, segmenter_steps: int | None, segmenter_seed: int,
                         cache_dir, device: str, notes: list[str], say: Callable[[str], None]) -> dict | None:
    if info.test_labels is None:
        notes.append(f"segmentation scores not computed: {info.root} has no ground-truth label ids of the test split")
        return None
    labels, photos = info.labels_domain, info.photo_domain
    photo_to_labels = Direction.A_TO_B if photos == "A" else Direction.B_TO_A
    labels_to_photo = photo_to_labels.reverse
    truth_files = {path.stem: path for path in list_images(info.test_labels)}
    label_set = info.label_set
    result = {"photo_to_labels": None, "labels_to_photo": None, "ceiling": None, "segmenter": None}

    def truth(path: Path) -> np.ndarray | None:
        file = truth_files.get(path.stem)
        return None if file is None else read_class_ids(file, label_set)

    if photo_to_labels in fake:
        predictions = []
        for image, path in zip(fake[photo_to_labels], paths[photos]):
            predicted = nearest_palette_ids(image.permute(1, 2, 0).numpy(), label_set.palette).astype(np.uint8)
            predictions.append((predicted, truth(path)))
        result["photo_to_labels"] = _scores(photo_to_labels, predictions, label_set)

    if labels_to_photo in fake:
        segmenter = _segmenter(info, segmenter_size, segmenter_steps, segmenter_seed, cache_dir, device, notes, say)
        if segmenter is not None:
            result["segmenter"] = {"size": segmenter.size, "steps": segmenter.metadata["steps"],
                                   "seed": segmenter.metadata["seed"],
                                   "train_seconds": segmenter.metadata.get("train_seconds"),
                                   "from_cache": segmenter.from_cache, "training_data": segmenter.metadata["data"],
                                   "source": segmenter.metadata.get("source")}
            say("segmenting the generated and the real test photos")
            result["labels_to_photo"] = _scores(labels_to_photo, _segment(segmenter, fake[labels_to_photo],
                                                                          paths[labels], truth), label_set)
            result["ceiling"] = _scores("real", _segment(segmenter, real[photos], paths[photos], truth), label_set)
    return result


def _segment(segmenter: Segmenter, images: list[torch.Tensor], image_paths: list[Path], truth) -> list:
    pairs = []
    for image, path in zip(images, image_paths):
        truth_ids = truth(path)
        out_size = truth_ids.shape if truth_ids is not None else image.shape[-2:]
        predicted = segmenter.predict(as_unit(image)[None], out_size)[0].numpy().astype(np.uint8)
        pairs.append((predicted, truth_ids))
    return pairs


def _scores(direction: Direction | str, pairs: list[tuple[np.ndarray, np.ndarray | None]], label_set: LabelSet) -> dict | None:
    """Scores of (predicted ids, ground-truth ids) pairs; predictions are resized (nearest) to the truth."""
    confusion = np.zeros((label_set.num_classes, label_set.num_classes), dtype=np.int64)
    scored = 0
    for predicted, truth_ids in pairs:
        if truth_ids is None:
            continue
        if predicted.shape != truth_ids.shape:
            height, width = truth_ids.shape
            predicted = np.asarray(Image.fromarray(predicted).resize((width, height), Image.Resampling.NEAREST))
        confusion += confusion_matrix(truth_ids, predicted, label_set.num_classes)
        scored += 1
    if not scored:
        return None
    return {"direction": str(direction), "images": scored, **segmentation_scores(confusion, label_set.names)}


def _segmenter(info: DatasetInfo, size: int | None, steps: int | None, seed: int, cache_dir, device: str,
               notes: list[str], say: Callable[[str], None]) -> Segmenter | None:
    size = size or DEFAULT_SEGMENTER_SIZE[info.kind]
    steps = steps or DEFAULT_STEPS
    if info.kind == "synthetic":
        return train_synthetic_segmenter(size, steps, seed, classes=info.label_set, cache=cache_dir, device=device,
                                         log=say)
    photos = info.root / f"train{info.photo_domain}"
    if info.train_labels is None or not photos.is_dir():
        notes.append(f"labels -> photo not scored: the segmenter needs train{info.photo_domain} photos and their "
                     f"label ids in {info.root / 'label_ids' / 'train'}")
        return None
    return train_segmenter(photos, info.train_labels, info.label_set, size, steps, seed, cache=cache_dir,
                           device=device, log=say)


def format_report(evaluation: EvaluationResult) -> str:
    """The scores of `evaluate` as a readable table."""
    result = evaluation.to_record()
    lines = [f"checkpoint {result['checkpoint']} on {result['data']} ({result['dataset']['kind']}"
             + (f", labels in {result['dataset']['labels_domain']}" if result["dataset"]["labels_domain"] else "")
             + (f", {result['size']} px" if result["size"] else "") + ")", ""]
    header = f"{'direction':<10}{'images':>7}{'FID':>9}{'KID x1e3':>16}{'cycle L1':>10}{'PSNR':>8}{'SSIM':>7}"
    lines += [header, "-" * len(header)]
    for direction, scores in result["directions"].items():
        if "skipped" in scores:
            lines.append(f"{direction:<10}skipped: {scores['skipped']}")
            continue
        kid = scores["kid"]
        kid_text = f"{kid['mean'] * 1e3:.2f} ± {kid['std'] * 1e3:.2f}" if kid else "-"
        lines.append(f"{direction:<10}{scores['images']:>7}{_number(scores['fid'], '.2f'):>9}{kid_text:>16}"
                     f"{_number(scores['cycle_l1'], '.4f'):>10}{_number(scores['psnr'], '.2f'):>8}"
                     f"{_number(scores['ssim'], '.3f'):>7}")
    segmentation = result.get("segmentation")
    if segmentation:
        lines += ["", f"{'segmentation':<34}{'per-pixel acc':>14}{'per-class acc':>14}{'class IoU':>11}"]
        rows = (("photo_to_labels", "photo -> labels"), ("labels_to_photo", "labels -> photo (FCN score)"),
                ("ceiling", "real photos (segmenter ceiling)"))
        for key, title in rows:
            scores = segmentation.get(key)
            if scores:
                lines.append(f"{title + ' ' + ('' if key == 'ceiling' else scores['direction']):<34}"
                             f"{_number(scores['pixel_accuracy'], '.3f'):>14}"
                             f"{_number(scores['class_accuracy'], '.3f'):>14}{_number(scores['class_iou'], '.3f'):>11}")
        segmenter = segmentation.get("segmenter")
        if segmenter:
            origin = "cached" if segmenter["from_cache"] else f"trained in {segmenter['train_seconds']} s"
            lines.append(f"segmenter: {segmenter['size']} px, {segmenter['steps']} steps, {origin}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_report(result: EvaluationResult, path: str | Path) -> None:
    """Write the result of `evaluate` as JSON."""
    write_text_atomic(Path(path), json.dumps(result.to_record(), indent=2) + "\n")


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


__all__ = ["evaluate", "evaluate_translators", "EvaluationResult", "DirectionEvaluation", "PairedScores", "SkippedDirection",
           "describe_dataset", "DatasetInfo", "format_report", "write_report", "run_config_size"]
