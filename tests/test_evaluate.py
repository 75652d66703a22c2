"""`cyclegan evaluate` and the FCN-score segmenter, end to end on tiny models and data."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA
from cyclegan.checkpoint import save_checkpoint
from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.data.synth import generate_synthetic_dataset
from cyclegan.evaluation.evaluate import describe_dataset, evaluate
from cyclegan.evaluation.segmentation import CITYSCAPES
from cyclegan.evaluation.segmenter import train_segmenter, train_synthetic_segmenter
from cyclegan.training.model import build_model

SEGMENTER = ["--segmenter-size", "32", "--segmenter-steps", "3"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "synthetic"
    generate_synthetic_dataset(root, size=32, n_train=20, n_test=6)
    return root


def save_tiny_model(folder, kind="cyclegan"):
    torch.manual_seed(0)
    model = build_model(ModelConfig(model=kind, net_g="resnet_6blocks", ngf=8, ndf=8))
    save_checkpoint(folder / "checkpoints", model.networks(), model.config, None, epoch=1, iteration=10)
    return folder


@pytest.fixture(scope="module")
def segmenter_cache(tmp_path_factory):
    """Shared, so that the tests after the first load the tiny segmenter instead of training it."""
    return tmp_path_factory.mktemp("segmenters")


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("runs") / "tiny")


def in_unit_range(value) -> bool:
    return value is not None and 0.0 <= value <= 1.0


def test_segmenter_second_call_loads_from_cache_with_same_outputs(tmp_path):
    first = train_synthetic_segmenter(32, steps=2, seed=0, scenes=8, cache=tmp_path)
    second = train_synthetic_segmenter(32, steps=2, seed=0, scenes=8, cache=tmp_path)
    assert (first.from_cache, second.from_cache) == (False, True)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(first.predict(images), second.predict(images))
    metadata = json.loads(next(tmp_path.glob("synthetic-32px-*.json")).read_text())
    assert metadata["steps"] == 2 and metadata["data"]["kind"] == "synthetic" and len(metadata["key"]) == 64
    assert not train_synthetic_segmenter(32, steps=3, seed=0, scenes=8, cache=tmp_path).from_cache  # new settings


def test_segmenter_trains_on_photos_and_raw_label_ids_and_caches_by_content(tmp_path):
    photos, labels = tmp_path / "photos", tmp_path / "label_ids"
    photos.mkdir(), labels.mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        raw = np.where(np.arange(40)[:, None] < 20, 23, 7).astype(np.uint8).repeat(40, 1)  # sky over road
        raw[30:, 10:20] = 26  # a car
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(photos / f"city_{index:06d}_000019.jpg")
        Image.fromarray(raw).save(labels / f"city_{index:06d}_000019.png")
    first = train_segmenter(photos, labels, CITYSCAPES, size=32, steps=2, seed=0, cache=tmp_path / "cache")
    again = train_segmenter(photos, labels, CITYSCAPES, size=32, steps=2, seed=0, cache=tmp_path / "cache")
    assert (first.from_cache, again.from_cache, first.metadata["data"]["count"]) == (False, True, 4)
    prediction = again.predict(torch.zeros(2, 3, 40, 40), out_size=(10, 12))
    assert prediction.shape == (2, 10, 12) and 0 <= int(prediction.min()) <= int(prediction.max()) < 19
    Image.fromarray(np.full((40, 40), 7, dtype=np.uint8)).save(labels / "city_000000_000019.png")  # new content
    changed = train_segmenter(photos, labels, CITYSCAPES, size=32, steps=2, seed=0, cache=tmp_path / "cache")
    assert not changed.from_cache


def test_dataset_kind_and_labels_domain_are_detected(synthetic, tiny_dataset):
    found = describe_dataset(synthetic)
    assert (found.kind, found.labels_domain, found.photo_domain) == ("synthetic", "A", "B")
    assert found.test_labels == synthetic / "label_ids" / "test"
    assert describe_dataset(synthetic, labels_domain="B").labels_domain == "B"
    assert describe_dataset(tiny_dataset).kind == "unpaired"
    cityscapes = SHARED_DATA / "cityscapes"
    if cityscapes.is_dir():
        found = describe_dataset(cityscapes)
        assert (found.kind, found.labels_domain, found.label_set.num_classes) == ("cityscapes", "B", 19)
        assert (found.test_labels, found.train_labels) == (cityscapes / "label_ids/val", cityscapes / "label_ids/train")


def test_cyclegan_evaluate_on_a_tiny_run_writes_every_score(synthetic, cyclegan_run, fake_inception, segmenter_cache,
                                                            tmp_path, capsys):
    out = tmp_path / "scores.json"
    code = main(["evaluate", str(cyclegan_run), "--data", str(synthetic), "--out", str(out), "--device", "cpu",
                 "--inception-weights", str(fake_inception), "--fid", "--cache", str(segmenter_cache), *SEGMENTER])
    assert code == 0
    printed = capsys.readouterr().out
    assert "photo -> labels" in printed and "FCN score" in printed and "KID" in printed
    result = json.loads(out.read_text())
    assert set(result) == {"checkpoint", "data", "size", "seconds", "dataset", "directions", "segmentation", "windows",
                           "notes"}
    assert result["windows"] == {"A": None, "B": None}  # trained without --window-a/--window-b
    assert result["dataset"] == {"kind": "synthetic", "labels_domain": "A",
                                 "classes": ["road", "sidewalk", "building", "vegetation", "sky", "car", "person"]}
    for direction, (source, target) in {"AtoB": ("testA", "testB"), "BtoA": ("testB", "testA")}.items():
        scores = result["directions"][direction]
        assert (scores["source"], scores["target"], scores["images"], scores["paired_images"]) == (source, target, 6, 6)
        assert math.isfinite(scores["fid"]) and scores["fid"] >= -1e-6
        assert set(scores["kid"]) == {"mean", "std", "subset_size", "subsets"} and scores["kid"]["subset_size"] == 3  # half of the 6 test images
        assert scores["kid"]["std"] >= 0
        assert 0 < scores["cycle_l1"] < 2 and 0 < scores["psnr"] < 100 and -1 <= scores["ssim"] <= 1
    segmentation = result["segmentation"]
    assert segmentation["photo_to_labels"]["direction"] == "BtoA"  # synthetic: A holds the label maps
    assert segmentation["labels_to_photo"]["direction"] == "AtoB"
    for key in ("photo_to_labels", "labels_to_photo", "ceiling"):
        scores = segmentation[key]
        assert scores["images"] == 6 and scores["pixels"] == 6 * 32 * 32
        assert all(in_unit_range(scores[name]) for name in ("pixel_accuracy", "class_accuracy", "class_iou"))
    assert segmentation["segmenter"]["size"] == 32 and segmentation["segmenter"]["steps"] == 3
    assert result["notes"] == []


def test_a_pix2pix_checkpoint_is_scored_in_its_one_direction(synthetic, segmenter_cache, tmp_path, no_inception):
    run = save_tiny_model(tmp_path / "pix2pix", kind="pix2pix")  # G_AB and a conditional D
    result = evaluate(run, synthetic, size=32, device="cpu", segmenter_size=32, segmenter_steps=3,
                      cache_dir=segmenter_cache)
    assert "no generator for BtoA" in result["directions"]["BtoA"]["skipped"]
    forward = result["directions"]["AtoB"]
    assert forward["images"] == 6 and forward["cycle_l1"] is None and forward["fid"] is None
    assert result["segmentation"]["photo_to_labels"] is None  # that would be BtoA
    assert in_unit_range(result["segmentation"]["labels_to_photo"]["pixel_accuracy"])
    assert any("FID/KID not computed" in note and "cyclegan[metrics]" in note for note in result["notes"])


def test_asking_for_fid_without_inception_weights_fails_saying_how_to_install_them(synthetic, cyclegan_run,
                                                                                    no_inception, capsys):
    code = main(["evaluate", str(cyclegan_run), "--data", str(synthetic), "--fid", "--device", "cpu", *SEGMENTER])
    assert code == 2
    assert "pip install 'cyclegan[metrics]'" in capsys.readouterr().err


def test_unpaired_data_without_labels_gets_image_scores_only(tiny_dataset, cyclegan_run, no_inception):
    result = evaluate(cyclegan_run, tiny_dataset, device="cpu")  # 40x36 images, names differ across A and B
    assert result["dataset"] == {"kind": "unpaired", "labels_domain": None, "classes": None}
    assert result["segmentation"] is None and result["size"] is None
    for scores in result["directions"].values():
        assert scores["images"] == 2 and scores["paired_images"] == 0 and scores["psnr"] is None
        assert 0 < scores["cycle_l1"] < 2


@pytest.mark.parametrize("argv, message", [
    (["--size", "0"], "--size must be at least 1, got 0"),  # used to end in PIL's ValueError traceback
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),  # used to mean 1
    (["--segmenter-size", "0"], "--segmenter-size must be a positive multiple of 8, got 0"),  # used to mean 64
    (["--segmenter-size", "12"], "--segmenter-size must be a positive multiple of 8, got 12"),
    # used to say "synthetic scenes need size >= 32, got 16", naming no option
    (["--segmenter-size", "16"],
     "--segmenter-size 16 is below the 32 px the synthetic scenes it trains on need; give 32 or more"),
    # -1 used to train and cache a segmenter that never took a step and report its scores; 0 meant 600
    (["--segmenter-steps", "-1"], "--segmenter-steps must be at least 1, got -1"),
    (["--segmenter-steps", "0"], "--segmenter-steps must be at least 1, got 0"),
])
def test_an_evaluation_count_out_of_range_is_one_line_and_exit_code_2_before_anything_is_trained_or_cached(
        synthetic, cyclegan_run, tmp_path, capsys, argv, message):
    cache = tmp_path / "segmenters"
    assert main(["evaluate", str(cyclegan_run), "--data", str(synthetic), "--no-fid", "--device", "cpu", "--quiet",
                 "--cache", str(cache), *argv]) == 2
    assert capsys.readouterr().err == f"cyclegan evaluate: error: {message}\n"
    assert not cache.exists()


def test_an_evaluate_out_path_that_cannot_be_written_is_refused_before_evaluating(synthetic, cyclegan_run, tmp_path,
                                                                                  capsys):
    # Found only once the scores were computed, it used to lose them: "Is a directory (.scores.PID.HEX.tmp)".
    (tmp_path / "scores").mkdir()
    (tmp_path / "notes.txt").write_text("kept")
    for out, reason in ((tmp_path / "scores", f"{tmp_path / 'scores'} is a folder"),
                        (tmp_path / "notes.txt" / "s.json", f"{tmp_path / 'notes.txt'} is not a folder")):
        assert main(["evaluate", str(cyclegan_run), "--data", str(synthetic), "--no-fid", "--device", "cpu",
                     "--quiet", "--out", str(out), *SEGMENTER]) == 2
        assert capsys.readouterr() == ("", f"cyclegan evaluate: error: cannot write {out}: {reason}; give another "
                                           "file path as --out\n")
    assert (tmp_path / "notes.txt").read_text() == "kept" and list((tmp_path / "scores").iterdir()) == []


def test_evaluate_on_a_data_folder_that_does_not_exist_says_so(cyclegan_run, tmp_path, capsys):
    # It used to say "no testA folder", as if the folder existed.
    missing = tmp_path / "missing"
    assert main(["evaluate", str(cyclegan_run), "--data", str(missing), "--no-fid", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (f"cyclegan evaluate: error: {missing} is not a folder; give --data a dataset "
                                       "folder with testA/ and testB/\n")
