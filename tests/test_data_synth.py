"""The synthetic labels <-> photo dataset: layout, determinism, unpaired training, ground truth."""

import json

import numpy as np
import pytest
from PIL import Image

from cyclegan.data.synth import (
    CLASS_NAMES,
    PALETTE,
    generate_synthetic_dataset,
    render_scene,
    rgb_to_labels,
    scene_rng,
)
from cyclegan.errors import ConfigError, DatasetError

SMALL = dict(size=32, n_train=6, n_test=8)


def read(path):
    with Image.open(path) as img:
        return np.array(img)


def all_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "set"
    counts = generate_synthetic_dataset(root, seed=0, **SMALL)
    return root, counts


def test_layout_and_counts(dataset):
    root, counts = dataset

    assert counts == {"trainA": 6, "trainB": 6, "testA": 8, "testB": 8, "label_ids/test": 8}
    for folder, count in counts.items():
        assert sorted(p.name for p in (root / folder).iterdir()) == [f"{i:06d}.png" for i in range(count)]
    assert sorted(p.name for p in root.iterdir()) == [
        "classes.json", "label_ids", "testA", "testB", "trainA", "trainB"
    ]


def test_classes_json_holds_names_and_the_cityscapes_palette(dataset):
    classes = json.loads((dataset[0] / "classes.json").read_text())

    assert classes["names"] == ["road", "sidewalk", "building", "vegetation", "sky", "car", "person"]
    assert classes["palette"] == [
        [128, 64, 128], [244, 35, 232], [70, 70, 70], [107, 142, 35],
        [70, 130, 180], [0, 0, 142], [220, 20, 60],
    ]


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(dataset, tmp_path):
    generate_synthetic_dataset(tmp_path / "again", seed=0, **SMALL)
    generate_synthetic_dataset(tmp_path / "other", seed=1, **SMALL)

    first, again, other = all_files(dataset[0]), all_files(tmp_path / "again"), all_files(tmp_path / "other")

    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if name.endswith(".png"))


def test_test_pairs_share_stems_and_label_ids_match_the_label_colours_exactly(dataset):
    root = dataset[0]
    for path in sorted((root / "testA").iterdir()):
        label_rgb = read(path)
        label_ids = read(root / "label_ids" / "test" / path.name)
        photo = read(root / "testB" / path.name)
        assert label_rgb.shape == photo.shape == (32, 32, 3)
        assert label_ids.dtype == np.uint8 and label_ids.shape == (32, 32)
        assert np.array_equal(PALETTE[label_ids], label_rgb)
        assert np.array_equal(rgb_to_labels(label_rgb), label_ids)


def test_label_maps_use_only_palette_colours_and_photos_do_not(dataset):
    root = dataset[0]
    palette_colours = {tuple(colour) for colour in PALETTE.tolist()}
    for path in sorted((root / "trainA").iterdir()):
        assert {tuple(c) for c in read(path).reshape(-1, 3).tolist()} <= palette_colours
    photo = read(root / "testB" / "000000.png").reshape(-1, 3)
    assert len({tuple(c) for c in photo.tolist()}) > 100


def test_every_class_appears_in_the_test_set(dataset):
    root = dataset[0]
    present = set()
    for path in (root / "label_ids" / "test").iterdir():
        present |= set(np.unique(read(path)).tolist())

    assert present == set(range(len(CLASS_NAMES)))


def test_train_a_and_train_b_show_disjoint_scenes(dataset):
    root = dataset[0]
    train_a_labels = [rgb_to_labels(read(p)) for p in sorted((root / "trainA").iterdir())]
    for index, path in enumerate(sorted((root / "trainB").iterdir())):
        # Re-render the scene behind this train B photo, proving where the photo came from...
        label_ids, _, photo = render_scene(scene_rng(0, "trainB", index), 32)
        assert np.array_equal(read(path), photo)
        # ...and check that no train A label map shows that scene.
        assert not any(np.array_equal(label_ids, labels) for labels in train_a_labels)
    # Train A holds the label maps of the "trainA" scenes.
    assert np.array_equal(train_a_labels[0], render_scene(scene_rng(0, "trainA", 0), 32)[0])


@pytest.mark.parametrize("size", [32, 64, 128])
def test_render_scene_works_for_any_size_of_at_least_32(size):
    label_ids, label_rgb, photo = render_scene(np.random.default_rng(0), size)

    assert label_ids.shape == (size, size) and label_ids.dtype == np.uint8
    assert label_rgb.shape == photo.shape == (size, size, 3)
    assert label_rgb.dtype == photo.dtype == np.uint8
    assert np.array_equal(PALETTE[label_ids], label_rgb)


def test_most_scenes_show_every_class():
    presence = np.zeros(len(CLASS_NAMES))
    for index in range(40):
        label_ids = render_scene(scene_rng(0, "test", index), 64)[0]
        presence += np.bincount(label_ids.ravel(), minlength=len(CLASS_NAMES)) > 0

    assert (presence >= 0.8 * 40).all(), dict(zip(CLASS_NAMES, presence))


def test_size_below_32_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="size >= 32"):
        generate_synthetic_dataset(tmp_path / "tiny", size=16, n_train=1, n_test=1)


def test_refuses_to_write_into_a_non_empty_folder_and_leaves_it_untouched(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")

    with pytest.raises(DatasetError, match="not an empty folder"):
        generate_synthetic_dataset(tmp_path, size=32, n_train=1, n_test=1)

    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_writes_into_an_existing_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()

    generate_synthetic_dataset(tmp_path / "empty", size=32, n_train=1, n_test=1)

    assert (tmp_path / "empty" / "classes.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_paired_training_set_pairs_the_unpaired_sets_label_maps_with_their_own_photos(tmp_path):
    from cyclegan.data.synth import generate_paired_training_set, render_scene, scene_rng

    generate_synthetic_dataset(tmp_path / "unpaired", size=32, n_train=3, n_test=1, seed=4)
    generate_paired_training_set(tmp_path / "paired", size=32, n_train=3, seed=4)
    for index in range(3):
        name = f"{index:06d}.png"
        assert (tmp_path / "paired" / "trainA" / name).read_bytes() == (tmp_path / "unpaired" / "trainA" / name).read_bytes()
        _, _, photo = render_scene(scene_rng(4, "trainA", index), 32)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "paired" / "trainB" / name)), photo)
