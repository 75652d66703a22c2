"""Segmentation scores, palettes and label tables, PSNR and SSIM."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_dataset
from cyclegan.evaluation.image_metrics import gaussian_window, psnr, ssim
from cyclegan.evaluation.segmentation import (CITYSCAPES, IGNORE, SYNTHETIC, confusion_matrix, exact_palette_ids,
                                              nearest_palette_ids, raw_ids_to_classes, read_class_ids,
                                              segmentation_scores)


def pixels_from_confusion(confusion: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Truth and prediction arrays whose confusion matrix is `confusion` (rows = truth)."""
    truth, prediction = [], []
    for true_class, row in enumerate(confusion):
        for predicted_class, count in enumerate(row):
            truth += [true_class] * count
            prediction += [predicted_class] * count
    return np.array(truth), np.array(prediction)


def test_perfect_prediction_scores_one():
    truth = np.random.default_rng(0).integers(0, 7, size=(4, 16, 16))
    scores = segmentation_scores(confusion_matrix(truth, truth.copy(), 7), SYNTHETIC.names)
    assert (scores["pixel_accuracy"], scores["class_accuracy"], scores["class_iou"]) == (1.0, 1.0, 1.0)
    assert scores["pixels"] == 4 * 16 * 16
    assert all(values == {"accuracy": 1.0, "iou": 1.0, "pixels": values["pixels"]}
               for values in scores["per_class"].values())


def test_known_confusion_matrix_gives_hand_computed_scores():
    # Class 2 is never in the ground truth but is predicted once: it is not averaged over,
    # and its pixel counts as a miss of class 1.
    expected = [[4, 1, 0],
                [1, 2, 1],
                [0, 0, 0]]
    truth, prediction = pixels_from_confusion(expected)
    confusion = confusion_matrix(truth, prediction, 3)
    assert confusion.tolist() == expected
    scores = segmentation_scores(confusion, ("a", "b", "c"))
    assert scores["pixel_accuracy"] == pytest.approx(6 / 9)  # (4 + 2) correct of 9
    assert scores["class_accuracy"] == pytest.approx((4 / 5 + 2 / 4) / 2)
    # IoU = correct / (true + predicted - correct): a: 4 / (5 + 5 - 4), b: 2 / (4 + 3 - 2)
    assert scores["class_iou"] == pytest.approx((4 / 6 + 2 / 5) / 2)
    assert set(scores["per_class"]) == {"a", "b"}
    assert scores["per_class"]["b"] == {"accuracy": 0.5, "iou": pytest.approx(0.4), "pixels": 4}


def test_ignore_label_is_excluded():
    truth, prediction = pixels_from_confusion([[4, 1], [1, 2]])
    ignored_truth = np.concatenate([truth, np.full(50, IGNORE)])
    any_prediction = np.concatenate([prediction, np.random.default_rng(1).integers(0, 2, 50)])
    assert confusion_matrix(ignored_truth, any_prediction, 2).tolist() == [[4, 1], [1, 2]]
    assert segmentation_scores(confusion_matrix(ignored_truth, any_prediction, 2))["pixels"] == 8


def test_a_prediction_outside_the_classes_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion_matrix(np.array([0, 1]), np.array([0, IGNORE]), 3)


def test_no_scored_pixel_gives_nan_scores():
    scores = segmentation_scores(confusion_matrix(np.full(4, IGNORE), np.zeros(4), 3))
    assert math.isnan(scores["pixel_accuracy"]) and math.isnan(scores["class_iou"]) and scores["per_class"] == {}


@pytest.mark.parametrize("label_set", [CITYSCAPES, SYNTHETIC], ids=lambda s: s.name)
def test_nearest_palette_mapping_of_perturbed_colours_recovers_ids(label_set):
    palette = label_set.palette.astype(np.int64)
    closest = min(np.linalg.norm(palette[i] - palette[j]) for i in range(len(palette)) for j in range(i))
    rng = np.random.default_rng(2)
    ids = rng.integers(0, len(palette), size=(20, 30))
    noise = rng.integers(-5, 6, size=(20, 30, 3))
    assert np.linalg.norm(noise, axis=-1).max() < closest / 2  # so the nearest colour is the true one
    perturbed = np.clip(palette[ids] + noise, 0, 255).astype(np.uint8)
    assert np.array_equal(nearest_palette_ids(perturbed, label_set.palette), ids)


def test_cityscapes_label_ids_map_to_the_19_train_classes():
    assert CITYSCAPES.num_classes == 19
    assert raw_ids_to_classes(np.array([7, 8, 26, 33, 0, 6, 29]), CITYSCAPES).tolist() == [0, 1, 13, 18] + [IGNORE] * 3
    assert CITYSCAPES.names[13] == "car" and tuple(CITYSCAPES.palette[13]) == (0, 0, 142)
    assert tuple(CITYSCAPES.palette[0]) == (128, 64, 128) and CITYSCAPES.names[-1] == "bicycle"


def test_colour_ground_truth_reads_unscored_colours_as_ignored():
    rgb = np.array([[[128, 64, 128], [0, 0, 0], [81, 0, 81], [0, 0, 142]]], dtype=np.uint8)
    assert exact_palette_ids(rgb, CITYSCAPES.palette).tolist() == [[0, IGNORE, IGNORE, 13]]


def test_shared_cityscapes_colour_maps_agree_with_their_label_ids():
    root = shared_dataset("cityscapes")
    for label_path in sorted((root / "label_ids" / "val").glob("*.png"))[:3]:
        from_ids = read_class_ids(label_path, CITYSCAPES)
        from_colours = read_class_ids(root / "testB" / label_path.name, CITYSCAPES)
        # Only "polegroup" (ignored) shares its colour with "pole" (scored).
        assert (from_ids == from_colours).mean() > 0.999


def test_read_class_ids_resizes_with_nearest(tmp_path):
    Image.fromarray(np.array([[7, 26], [0, 8]], dtype=np.uint8)).resize((4, 4), Image.NEAREST).save(tmp_path / "x.png")
    assert read_class_ids(tmp_path / "x.png", CITYSCAPES, size=2).tolist() == [[0, 13], [IGNORE, 1]]


def test_psnr_and_ssim_of_identical_images_are_inf_and_one():
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    assert psnr(image, image.clone()).tolist() == [math.inf, math.inf]
    assert ssim(image, image.clone()).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


def test_psnr_of_a_known_noise():
    image = torch.rand(1, 3, 16, 16) - 0.5
    signs = torch.randint(0, 2, image.shape) * 2 - 1
    noisy = image + 0.05 * signs  # every pixel off by exactly 0.05: MSE = 0.0025
    assert psnr(image, noisy).item() == pytest.approx(10 * math.log10(2.0**2 / 0.05**2))  # 38.06 dB
    assert psnr(image, image + 0.1).item() == pytest.approx(26.0206, abs=1e-4)


def test_ssim_of_constant_images_matches_the_formula():
    a, b = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), -0.4)
    c1 = (0.01 * 2.0) ** 2  # variances and covariance are 0: only the luminance term remains
    assert ssim(a, b).item() == pytest.approx((2 * 0.2 * -0.4 + c1) / (0.2**2 + 0.4**2 + c1))


def test_ssim_of_one_window_matches_a_direct_computation():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-1, 1, (11, 11)), rng.uniform(-1, 1, (11, 11))
    y = 0.6 * x + 0.4 * y  # correlated
    weights = np.outer(gaussian_window().numpy(), gaussian_window().numpy())
    mx, my = (weights * x).sum(), (weights * y).sum()
    vx, vy = (weights * (x - mx) ** 2).sum(), (weights * (y - my) ** 2).sum()
    cov = (weights * (x - mx) * (y - my)).sum()
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    expected = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    as_tensor = lambda array: torch.from_numpy(array)[None, None]  # noqa: E731
    assert ssim(as_tensor(x), as_tensor(y)).item() == pytest.approx(expected, rel=1e-9)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
