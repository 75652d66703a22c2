"""Segmentation scores (the paper's Tables 1-2) and the label sets they are computed over.

A `LabelSet` says which classes are scored, their colours, and how the raw ids stored in
label-id images map to them (`IGNORE` for pixels that are not scored, Cityscapes' "void"
classes). Scores come from a confusion matrix accumulated over all test images, as in the
FCN / pix2pix evaluation code:

- per-pixel accuracy: correctly labelled pixels / scored pixels;
- per-class accuracy: mean over classes of (correct pixels of the class / its pixels);
- class IoU: mean over classes of |prediction & truth| / |prediction | truth|.

Both means run over the classes present in the ground truth (a test set of 8 images does not
contain every class; counting absent classes as 0, as the reference code's epsilon does,
would make small test sets look worse than they are). A predicted class absent from the
ground truth still costs: its pixels are misses of the true class.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cyclegan.data import synth
from cyclegan.data.images import open_image_header

IGNORE = 255

# cityscapesScripts, helpers/labels.py: (label id, name, train id, colour). The 19 classes with
# a train id are the ones evaluated; every other id is ignored (train id 255).
CITYSCAPES_LABELS = (
    (0, "unlabeled", IGNORE, (0, 0, 0)),
    (1, "ego vehicle", IGNORE, (0, 0, 0)),
    (2, "rectification border", IGNORE, (0, 0, 0)),
    (3, "out of roi", IGNORE, (0, 0, 0)),
    (4, "static", IGNORE, (0, 0, 0)),
    (5, "dynamic", IGNORE, (111, 74, 0)),
    (6, "ground", IGNORE, (81, 0, 81)),
    (7, "road", 0, (128, 64, 128)),
    (8, "sidewalk", 1, (244, 35, 232)),
    (9, "parking", IGNORE, (250, 170, 160)),
    (10, "rail track", IGNORE, (230, 150, 140)),
    (11, "building", 2, (70, 70, 70)),
    (12, "wall", 3, (102, 102, 156)),
    (13, "fence", 4, (190, 153, 153)),
    (14, "guard rail", IGNORE, (180, 165, 180)),
    (15, "bridge", IGNORE, (150, 100, 100)),
    (16, "tunnel", IGNORE, (150, 120, 90)),
    (17, "pole", 5, (153, 153, 153)),
    (18, "polegroup", IGNORE, (153, 153, 153)),
    (19, "traffic light", 6, (250, 170, 30)),
    (20, "traffic sign", 7, (220, 220, 0)),
    (21, "vegetation", 8, (107, 142, 35)),
    (22, "terrain", 9, (152, 251, 152)),
    (23, "sky", 10, (70, 130, 180)),
    (24, "person", 11, (220, 20, 60)),
    (25, "rider", 12, (255, 0, 0)),
    (26, "car", 13, (0, 0, 142)),
    (27, "truck", 14, (0, 0, 70)),
    (28, "bus", 15, (0, 60, 100)),
    (29, "caravan", IGNORE, (0, 0, 90)),
    (30, "trailer", IGNORE, (0, 0, 110)),
    (31, "train", 16, (0, 80, 100)),
    (32, "motorcycle", 17, (0, 0, 230)),
    (33, "bicycle", 18, (119, 11, 32)),
)


@dataclass(frozen=True, eq=False)
class LabelSet:
    """The scored classes: names, colours (K, 3) uint8, and raw id -> class index (256 entries)."""

    name: str
    names: tuple[str, ...]
    palette: np.ndarray
    id_to_class: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        return {"name": self.name, "names": list(self.names), "palette": self.palette.tolist()}


def _lookup(pairs: dict[int, int]) -> np.ndarray:
    table = np.full(256, IGNORE, dtype=np.uint8)
    for raw, class_index in pairs.items():
        table[raw] = class_index
    table.setflags(write=False)
    return table


def _cityscapes() -> LabelSet:
    train = sorted((train_id, name, colour) for _, name, train_id, colour in CITYSCAPES_LABELS if train_id != IGNORE)
    palette = np.array([colour for _, _, colour in train], dtype=np.uint8)
    palette.setflags(write=False)
    return LabelSet("cityscapes", tuple(name for _, name, _ in train), palette,
                    _lookup({label_id: train_id for label_id, _, train_id, _ in CITYSCAPES_LABELS}))


def _synthetic() -> LabelSet:
    return LabelSet("synthetic", tuple(synth.CLASS_NAMES), synth.PALETTE,
                    _lookup({index: index for index in range(len(synth.CLASS_NAMES))}))


CITYSCAPES = _cityscapes()
SYNTHETIC = _synthetic()


def label_set_from_classes_json(description: dict) -> LabelSet:
    """The label set a synthetic dataset's classes.json describes (ids are class indices)."""
    names = tuple(description["names"])
    palette = np.array(description["palette"], dtype=np.uint8).reshape(len(names), 3)
    palette.setflags(write=False)
    return LabelSet("synthetic", names, palette, _lookup({index: index for index in range(len(names))}))


def raw_ids_to_classes(raw_ids: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """Map raw label ids (uint8 image values) to class indices, IGNORE where not scored."""
    return label_set.id_to_class[np.asarray(raw_ids, dtype=np.uint8)]


def nearest_palette_ids(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class index of the nearest palette colour (Euclidean in RGB) for each pixel.

    How a generated colour label map is read (photo -> labels): generators never output the
    exact colours, so each pixel takes the class whose colour it is closest to.
    `rgb` is (..., 3) uint8; the result has shape (...) and dtype int64.
    """
    pixels = np.asarray(rgb, dtype=np.float32).reshape(-1, 3)
    colours = np.asarray(palette, dtype=np.float32)
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 is the same for every c, so it is left out.
    distance = (colours * colours).sum(1)[None, :] - 2.0 * pixels @ colours.T
    return distance.argmin(1).reshape(np.shape(rgb)[:-1])


def exact_palette_ids(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class index of pixels whose colour is exactly a palette colour, IGNORE elsewhere.

    How a ground-truth colour label map is read: colours of unscored classes (Cityscapes'
    black "void", "ground", ...) must not be forced into a scored class.
    """
    rgb = np.asarray(rgb)
    codes = _colour_codes(rgb.reshape(-1, 3))
    ids = np.full(codes.shape, IGNORE, dtype=np.uint8)
    for index, code in enumerate(_colour_codes(np.asarray(palette).reshape(-1, 3))):
        ids[codes == code] = index
    return ids.reshape(rgb.shape[:-1])


def read_class_ids(path: str | os.PathLike, label_set: LabelSet, size: int | None = None) -> np.ndarray:
    """A ground-truth label image as (H, W) uint8 class indices (IGNORE where unscored).

    Single-channel files ("L", 16-bit) hold raw label ids, mapped by the label set; anything else
    is a colour label map, read by exact palette colours. `size` resizes (nearest) to size x size.
    """
    with open_image_header(path) as image:
        if image.mode in ("L", "I", "I;16", "I;16B", "I;16L"):
            raw = np.asarray(image).astype(np.int64)
            if raw.min() < 0 or raw.max() > 255:
                raise ValueError(f"{path}: label ids must lie in [0, 255], found [{raw.min()}, {raw.max()}]")
            ids = raw_ids_to_classes(raw.astype(np.uint8), label_set)
        else:
            ids = exact_palette_ids(np.asarray(image.convert("RGB")), label_set.palette)
    if size is not None and ids.shape != (size, size):
        ids = np.asarray(Image.fromarray(ids).resize((size, size), Image.Resampling.NEAREST))
    return ids


def palette_coverage(rgb: np.ndarray, colours: np.ndarray) -> float:
    """Fraction of pixels whose colour is exactly one of `colours` (how label-map-like an image is)."""
    codes = _colour_codes(np.asarray(rgb).reshape(-1, 3))
    return float(np.isin(codes, _colour_codes(np.asarray(colours).reshape(-1, 3))).mean())


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def confusion_matrix(truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = predicted class.

    Pixels whose true class is IGNORE (or any value >= K) are left out. Predictions must be
    class indices in [0, K).
    """
    truth = np.asarray(truth).reshape(-1).astype(np.int64)
    prediction = np.asarray(prediction).reshape(-1).astype(np.int64)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth and prediction differ in size: {truth.size} vs {prediction.size} pixels")
    scored = (truth >= 0) & (truth < num_classes)
    truth, prediction = truth[scored], prediction[scored]
    if prediction.size and (prediction.min() < 0 or prediction.max() >= num_classes):
        raise ValueError(f"predicted class indices must lie in [0, {num_classes}), got "
                         f"[{prediction.min()}, {prediction.max()}]")
    return np.bincount(truth * num_classes + prediction, minlength=num_classes**2).reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray, names: tuple[str, ...] | None = None) -> dict:
    """Per-pixel accuracy, per-class accuracy and class IoU from a confusion matrix.

    Returns {"pixel_accuracy", "class_accuracy", "class_iou": floats in [0, 1] (NaN when no
    pixel is scored), "pixels": scored pixel count, "per_class": {name: {"accuracy", "iou",
    "pixels"}} for the classes present in the ground truth}.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    names = names or tuple(str(index) for index in range(len(confusion)))
    correct = np.diag(confusion)
    true_pixels = confusion.sum(1)
    predicted_pixels = confusion.sum(0)
    present = true_pixels > 0
    total = confusion.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = correct / true_pixels
        iou = correct / (true_pixels + predicted_pixels - correct)
    nan = float("nan")
    return {
        "pixel_accuracy": float(correct.sum() / total) if total else nan,
        "class_accuracy": float(accuracy[present].mean()) if present.any() else nan,
        "class_iou": float(iou[present].mean()) if present.any() else nan,
        "pixels": int(total),
        "per_class": {names[index]: {"accuracy": float(accuracy[index]), "iou": float(iou[index]),
                                     "pixels": int(true_pixels[index])}
                      for index in np.flatnonzero(present)},
    }


__all__ = ["IGNORE", "CITYSCAPES_LABELS", "CITYSCAPES", "SYNTHETIC", "LabelSet", "label_set_from_classes_json",
           "raw_ids_to_classes", "read_class_ids", "nearest_palette_ids", "exact_palette_ids", "palette_coverage",
           "confusion_matrix", "segmentation_scores"]
