"""`cyclegan data check` and its library, `cyclegan.data.check`."""
from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from cyclegan.cli import main
from cyclegan.data import check
from cyclegan.data.check import check_dataset, fatal_problems
from cyclegan.errors import ConfigError

from conftest import write_images
from hostile import smooth_rgb

SMALL = dict(crop_size=16, load_size=20)


@pytest.fixture
def dataset(tmp_path):
    """trainA: 3 RGB 40x36 PNGs and one 20x20 grayscale JPEG; trainB: 2 RGB and one palette PNG; testA: 1."""
    root = tmp_path / "data"
    write_images(root / "trainA", 3, seed=1, prefix="a")
    Image.new("L", (20, 20), 90).save(root / "trainA" / "gray.jpg")
    write_images(root / "trainB", 2, seed=2, prefix="b")
    smooth_rgb(seed=5).quantize(colors=4).save(root / "trainB" / "palette.png")
    write_images(root / "testA", 1, seed=3, prefix="ta")
    return root


def test_a_clean_dataset_reports_counts_sizes_and_modes_per_folder(dataset):
    report = check_dataset(dataset, **SMALL)

    assert (report.layout, report.fatal, report.warnings) == ("dataset", [], [])
    assert list(report.folders) == ["trainA", "trainB", "testA"]
    train_a = report.folders["trainA"]
    assert (train_a.images, train_a.files) == (4, 4)
    assert dict(train_a.sizes) == {"40x36": 3, "20x20": 1}
    assert dict(train_a.modes) == {"RGB": 3, "L": 1}
    assert dict(report.folders["trainB"].modes) == {"RGB": 2, "P": 1}
    assert report.folders["testA"].images == 1


def test_unreadable_files_and_files_that_are_not_images_are_listed_with_the_reason(dataset):
    folder = dataset / "trainA"
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("a text file with an image name")
    data = (folder / "a_000.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    (folder / "labels.csv").write_text("name,label\n")

    train_a = check_dataset(dataset, **SMALL).folders["trainA"]

    assert train_a.images == 4 and train_a.files == 8
    assert dict(train_a.not_images) == {
        "trainA/empty.png": "empty file (0 bytes)",
        "trainA/notes.jpg": "not an image: its content matches no image format"}
    assert [path for path, _ in train_a.unreadable] == ["trainA/cut.png"]
    assert "truncated" in train_a.unreadable[0][1]
    assert train_a.other_files == ["trainA/labels.csv"]


def test_a_png_named_jpg_is_used_by_content_and_noted(dataset):
    (dataset / "trainA" / "a_000.png").rename(dataset / "trainA" / "really_png.jpg")

    report = check_dataset(dataset, **SMALL)

    assert report.folders["trainA"].images == 4
    assert report.folders["trainA"].misnamed == [("trainA/really_png.jpg", "named .jpg but holds PNG; used by content")]
    assert report.fatal == [] and len(report.warnings) == 1


def test_an_image_with_an_extension_training_ignores_is_reported(dataset):
    shutil.copy(dataset / "trainA" / "a_000.png", dataset / "trainA" / "scan.dat")

    report = check_dataset(dataset, **SMALL)

    assert [path for path, _ in report.folders["trainA"].wrong_extension] == ["trainA/scan.dat"]
    assert "rename it" in report.folders["trainA"].wrong_extension[0][1]
    assert report.folders["trainA"].images == 4


def test_identical_files_are_grouped_within_and_across_folders(dataset):
    shutil.copy(dataset / "trainA" / "a_000.png", dataset / "trainA" / "copy.png")
    shutil.copy(dataset / "trainA" / "a_000.png", dataset / "trainB" / "also.png")

    report = check_dataset(dataset, **SMALL)

    assert report.duplicates == [["trainA/a_000.png", "trainA/copy.png", "trainB/also.png"]]
    assert "3 identical files: trainA/a_000.png, trainA/copy.png, trainB/also.png" in report.warnings
    assert report.leaks == []


def test_a_test_image_identical_to_a_train_image_of_its_domain_is_a_leak(dataset):
    shutil.copy(dataset / "trainA" / "a_002.png", dataset / "testA" / "seen.png")

    report = check_dataset(dataset, **SMALL)

    assert report.leaks == [("trainA/a_002.png", "testA/seen.png")]
    assert report.warnings == ["train/test leak: testA/seen.png is identical to trainA/a_002.png"]
    assert report.fatal == []


@pytest.mark.parametrize("mode", ["resize_and_crop", "crop", "scale_width", "scale_width_and_crop"])
def test_images_smaller_than_the_crop_are_usable_but_warned_about_in_resizing_modes(dataset, mode):
    Image.new("RGB", (1, 1), "red").save(dataset / "trainB" / "dot.png")

    report = check_dataset(dataset, crop_size=32, load_size=40, preprocess=mode)

    tiny = dict(report.folders["trainB"].tiny)
    assert report.folders["trainB"].images == 4
    assert tiny["trainB/dot.png"] == "1x1 is smaller than the 32 px crop and will be enlarged 32 times"
    assert "trainA/gray.jpg" in dict(report.folders["trainA"].tiny)  # 20x20 < 32
    assert report.fatal == []


def test_in_mode_none_images_below_the_networks_minimum_are_unusable(dataset):
    Image.new("RGB", (3, 3), "red").save(dataset / "trainB" / "dot.png")

    report = check_dataset(dataset, preprocess="none")

    assert report.folders["trainB"].images == 3
    assert dict(report.folders["trainB"].tiny)["trainB/dot.png"] == (
        "3x3 is too small for --preprocess none, which keeps each image's size "
        "(the networks need at least 24x24); skipped")
    assert [path for path, _ in report.folders["trainA"].tiny] == ["trainA/gray.jpg"]  # 20x20
    assert report.fatal == []


def test_in_mode_none_folders_with_several_sizes_need_batch_size_1(dataset):
    Image.new("RGB", (30, 30), "red").save(dataset / "trainA" / "other_size.png")

    report = check_dataset(dataset, preprocess="none")

    assert ("trainA/: 2 different image sizes; --preprocess none keeps them, so train with --batch-size 1"
            in report.warnings)


def test_a_missing_train_folder_is_fatal(dataset):
    shutil.rmtree(dataset / "trainB")

    report = check_dataset(dataset, **SMALL)

    assert report.fatal == ["trainB/ is missing: a dataset needs trainA/ and trainB/ "
                            "(point --domain-a/--domain-b at plain folders instead)"]
    assert not report.ok


def test_a_train_folder_without_a_usable_image_is_fatal_a_test_folder_only_warned(dataset):
    for folder in ("trainB", "testA"):
        shutil.rmtree(dataset / folder)
        (dataset / folder).mkdir()
        (dataset / folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    report = check_dataset(dataset, **SMALL)

    assert report.fatal == ["trainB/ has no usable image (1 file(s), 1 unreadable)"]
    assert "testA/ has no usable image (1 file(s), 1 unreadable)" in report.warnings


def test_a_plain_folder_of_images_is_checked_as_one_folder(dataset):
    report = check_dataset(dataset / "trainA", **SMALL)

    assert (report.layout, list(report.folders), report.fatal) == ("folders", ["."], [])
    assert report.folders["."].images == 4


def test_a_plain_folder_without_images_is_fatal(tmp_path):
    (tmp_path / "README.md").write_text("no images here")

    assert check_dataset(tmp_path).fatal == ["the folder has no usable image (1 file(s))"]


def test_impossible_preprocess_options_raise_config_error(dataset):
    with pytest.raises(ConfigError, match="crop_size 300 is larger than load_size 286"):
        check_dataset(dataset, crop_size=300)


def test_text_report_shows_histograms_problems_and_the_verdict(dataset):
    shutil.copy(dataset / "trainA" / "a_002.png", dataset / "testA" / "seen.png")
    (dataset / "trainA" / "notes.jpg").write_text("text")

    text = str(check_dataset(dataset, **SMALL))

    assert "  trainA: 4 usable image(s) of 5 file(s)" in text
    assert "    sizes: 40x36 x3, 20x20 x1" in text
    assert "    modes: RGB x3, L x1" in text
    assert "    not images: trainA/notes.jpg: not an image: its content matches no image format" in text
    assert "warning: train/test leak: testA/seen.png is identical to trainA/a_002.png" in text
    assert text.splitlines()[-1] == f"{dataset}: usable for training, with 2 warning(s)"


def test_cli_exits_0_with_warnings_and_1_on_fatal_problems(dataset, capsys):
    (dataset / "trainA" / "notes.jpg").write_text("text")
    assert main(["data", "check", str(dataset), "--crop-size", "16", "--load-size", "20"]) == 0
    assert "warning: trainA/: 1 file(s) named like images that are not images" in capsys.readouterr().out

    shutil.rmtree(dataset / "trainA")
    assert main(["data", "check", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert "error: trainA/ is missing" in out and out.splitlines()[-1].endswith("not usable for training")


def test_cli_json_holds_the_whole_report(dataset, capsys):
    shutil.copy(dataset / "trainA" / "a_000.png", dataset / "testA" / "seen.png")

    assert main(["data", "check", str(dataset), "--json", "--preprocess", "crop", "--crop-size", "16"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["preprocess"], report["crop_size"]) == (True, "crop", 16)
    assert report["folders"]["trainA"]["sizes"] == {"40x36": 3, "20x20": 1}
    assert report["folders"]["trainB"]["modes"] == {"RGB": 2, "P": 1}
    assert report["leaks"] == [{"train": "trainA/a_000.png", "test": "testA/seen.png"}]


def test_cli_on_a_missing_folder_exits_2_with_a_one_line_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"cyclegan data: error: {tmp_path / 'nowhere'}: folder not found. Pass a dataset folder "
        "(with trainA/ and trainB/) or a folder of images.")


def test_fatal_problems_is_empty_for_a_usable_pair_of_folders(dataset):
    assert fatal_problems(dataset / "trainA", dataset / "trainB") == []


def test_fatal_problems_names_every_unusable_domain_at_once(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "notes.jpg").write_text("text")

    problems = fatal_problems(tmp_path / "A", tmp_path / "B")

    assert len(problems) == 2
    assert problems[0].startswith(f"domain A: {tmp_path / 'A'} has no usable image: none of its 1 image files")
    assert "notes.jpg" in problems[0]
    assert problems[1].startswith(f"domain B: {tmp_path / 'B'}: folder not found")


def test_fatal_problems_in_mode_none_refuses_folders_of_tiny_images_only(tmp_path):
    write_images(tmp_path / "A", 2, size=(8, 8))
    write_images(tmp_path / "B", 2, size=(32, 32))

    assert fatal_problems(tmp_path / "A", tmp_path / "B") == []
    problems = fatal_problems(tmp_path / "A", tmp_path / "B", preprocess="none")
    assert len(problems) == 1 and "8x8 is too small for --preprocess none" in problems[0]


def test_fatal_problems_reads_headers_only_and_stops_at_the_first_usable_image(dataset, monkeypatch):
    opened = []

    def counting_header(path):
        opened.append(path.name)
        return original(path)

    original = check.open_image_header
    monkeypatch.setattr(check, "open_image_header", counting_header)
    monkeypatch.setattr(check, "load_image", lambda *args: pytest.fail("fatal_problems decoded pixels"))
    (dataset / "trainA" / "0_broken.png").write_bytes(b"")

    assert fatal_problems(dataset / "trainA", dataset / "trainB") == []
    assert opened == ["0_broken.png", "a_000.png", "b_000.png"]


def test_fatal_problems_of_one_folder_of_pairs_checks_that_folder_only(dataset):
    assert fatal_problems(dataset / "trainA", None) == []
    assert fatal_problems(dataset / "nowhere", None)[0].startswith(f"domain A: {dataset / 'nowhere'}: folder not found")


def test_a_train_folder_holding_only_sub_folders_says_training_does_not_search_them(dataset):
    shutil.rmtree(dataset / "trainB")
    write_images(dataset / "trainB" / "horses", 2)

    assert check_dataset(dataset, **SMALL).fatal == [
        "trainB/ has no usable image (0 file(s), 1 sub-folder(s), which training does not search)"]
