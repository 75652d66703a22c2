"""Dataset layouts: which folders a dataset has, what kind it is, and how long its epoch is."""
import hashlib

import pytest

from cyclegan.config import TrainConfig
from cyclegan.data.layout import (find_layout, held_out_images, is_paired, iterations_per_epoch, training_dataset,
                                  validation_images)
from cyclegan.errors import DatasetError

from conftest import write_ct_volumes, write_images


def test_epoch_length_is_the_larger_domain_or_the_number_of_pairs(tmp_path):
    write_images(tmp_path / "trainA", 4, prefix="x")
    write_images(tmp_path / "trainB", 6, prefix="x")
    unpaired = TrainConfig.from_dict({"data": {"data": str(tmp_path)}})
    paired = TrainConfig.from_dict({"model": {"model": "pix2pix"}, "data": {"data": str(tmp_path)}})
    assert len(training_dataset(unpaired)) == 6
    assert len(training_dataset(paired)) == 4


def test_iterations_per_epoch_round_up_per_process_then_per_batch():
    assert iterations_per_epoch(180, 1) == 180
    assert iterations_per_epoch(7, 2) == 4
    assert iterations_per_epoch(7, 2, world_size=2) == 2  # 4 images each, 2 batches of 2
    assert iterations_per_epoch(9, 4, world_size=2) == 2  # 5 images each: a batch of 4 and one of 1


def test_layouts_of_the_three_kinds(tmp_path):
    write_images(tmp_path / "u" / "trainA", 2, prefix="a")
    write_images(tmp_path / "u" / "trainB", 2, prefix="b")
    write_images(tmp_path / "u" / "testA", 1, prefix="a")
    unpaired = find_layout(tmp_path / "u")
    assert (unpaired.kind, unpaired.test_a, unpaired.test_b) == ("unpaired", tmp_path / "u" / "testA", None)
    assert not unpaired.has_test_set
    write_images(tmp_path / "al" / "train", 2, prefix="ab")
    write_images(tmp_path / "al" / "val", 1, prefix="ab")
    aligned = find_layout(tmp_path / "al", paired=True)
    assert (aligned.kind, aligned.train_b, aligned.test_a) == ("aligned", None, tmp_path / "al" / "val")
    assert aligned.has_test_set
    assert find_layout(domain_a=tmp_path / "x", domain_b=tmp_path / "y").kind == "unpaired"
    with pytest.raises(DatasetError, match="no trainA or trainB"):
        find_layout(tmp_path / "al")


def test_a_dataset_is_paired_when_both_domains_hold_the_same_names_or_it_has_a_b_images(tmp_path):
    write_images(tmp_path / "p" / "trainA", 3, prefix="x")
    write_images(tmp_path / "p" / "trainB", 3, prefix="x")
    write_images(tmp_path / "u" / "trainA", 3, prefix="a")
    write_images(tmp_path / "u" / "trainB", 3, prefix="b")
    write_images(tmp_path / "al" / "train", 1, prefix="ab")
    assert [is_paired(tmp_path / name) for name in ("p", "u", "al")] == [True, False, True]


# --------------------------------------------------------------------------- --val-fraction's split
def split_position(seed: int, domain: str, name: str) -> float:
    """Where a file falls in the split's order: its name's SHA-256 with the seed, read as a number in [0, 1)."""
    digest = hashlib.sha256(f"{seed}/{domain}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def held_out_names(data, fraction, seed=0):
    config = TrainConfig()
    config.data.data, config.validation.val_fraction, config.run.seed = str(data), fraction, seed
    return {(path.parent.name, path.name) for path in held_out_images(config)}


def test_val_fraction_holds_out_the_files_first_in_the_order_of_their_name_hashes(tmp_path):
    write_images(tmp_path / "trainA", 20, prefix="a")
    write_images(tmp_path / "trainB", 12, prefix="b")
    expected = set()
    for folder, domain, count in (("trainA", "A", 5), ("trainB", "B", 3)):
        names = sorted(path.name for path in (tmp_path / folder).iterdir())
        expected |= {(folder, name) for name in sorted(names, key=lambda n: split_position(7, domain, n))[:count]}
    assert held_out_names(tmp_path, 0.25, seed=7) == expected


def test_adding_or_removing_an_image_moves_at_most_it_and_one_image_at_the_edge_of_the_split(tmp_path):
    # An exact count (a quarter of 20 is 5, of 21 still 5) means a new image that falls among the
    # held-out ones pushes the last of them out; the old permutation reshuffled most of the split.
    write_images(tmp_path / "trainA", 20, prefix="a")
    write_images(tmp_path / "trainB", 4, prefix="b")
    before = held_out_names(tmp_path, 0.25)
    for index in range(6):  # new images one at a time: each changes the split by at most one old image
        write_images(tmp_path / "new", 1, seed=index, prefix=f"new{index}")[0].rename(
            tmp_path / "trainA" / f"new{index}.png")
        after = held_out_names(tmp_path, 0.25)
        old_names_moved = (before ^ after) - {("trainA", f"new{index}.png")}
        assert len(old_names_moved) <= 1
        before = after
    (tmp_path / "trainA" / "a_000.png").unlink()
    after = held_out_names(tmp_path, 0.25)
    assert len((before ^ after) - {("trainA", "a_000.png")}) <= 1


def test_a_file_that_ranks_after_the_split_changes_nothing_when_added(tmp_path):
    write_images(tmp_path / "trainA", 20, prefix="a")
    write_images(tmp_path / "trainB", 4, prefix="b")
    before = held_out_names(tmp_path, 0.25)
    held_out_a = sorted((name for folder, name in before if folder == "trainA"),
                        key=lambda n: split_position(0, "A", n))
    late = next(f"z{index}.png" for index in range(1000)
                if split_position(0, "A", f"z{index}.png") > split_position(0, "A", held_out_a[-1]))
    write_images(tmp_path / "new", 1, prefix="z")[0].rename(tmp_path / "trainA" / late)
    assert held_out_names(tmp_path, 0.25) == before


# --------------------------------------------------------------------------- volumes in the split
def volume_config(data, fraction, seed=0):
    config = TrainConfig()
    config.data.data, config.validation.val_fraction, config.run.seed = str(data), fraction, seed
    config.model.input_nc, config.model.window_a = 1, "-1000,2000"
    return config


def test_val_fraction_holds_out_whole_volumes_first_in_the_order_of_their_name_hashes(tmp_path):
    volumes = write_ct_volumes(tmp_path / "trainA", 12, shape=(16, 16, 4))
    write_images(tmp_path / "trainB", 8, prefix="b")
    config = volume_config(tmp_path, 0.25, seed=3)
    names = sorted(path.name for path in volumes)
    expected = sorted(sorted(names, key=lambda name: split_position(3, "A", name))[:3])

    held_out = sorted(path.name for path in held_out_images(config) if path.parent.name == "trainA")
    trained = [(piece.path.name, piece.index) for piece in training_dataset(config).paths_a]
    validating = [(piece.path.name, piece.index) for piece in validation_images(config).domains["A"].paths]

    assert held_out == expected
    assert trained == [(name, index) for name in names if name not in expected for index in range(4)]
    assert validating == [(name, index) for name in expected for index in range(4)]


def test_adding_a_volume_moves_no_other_volume_across_the_split(tmp_path):
    # 11 volumes hold out 3 (a quarter of 11 rounds to 3, of 12 too): a new volume that ranks
    # after the split changes nothing, one that ranks first pushes out only the last held out.
    write_ct_volumes(tmp_path / "trainA", 11, shape=(8, 8, 2))
    write_images(tmp_path / "trainB", 4, prefix="b")
    before = {path.name for path in held_out_images(volume_config(tmp_path, 0.25)) if path.parent.name == "trainA"}
    ranked = sorted(before, key=lambda name: split_position(0, "A", name))
    late = next(f"late_{index}.nii.gz" for index in range(1000)
                if split_position(0, "A", f"late_{index}.nii.gz") > split_position(0, "A", ranked[-1]))
    early = next(f"early_{index}.nii.gz" for index in range(1000)
                 if split_position(0, "A", f"early_{index}.nii.gz") < split_position(0, "A", ranked[0]))

    def held_out_after_adding(name):
        [new] = write_ct_volumes(tmp_path / "new", 1, shape=(8, 8, 2), seed=5)
        new.rename(tmp_path / "trainA" / name)
        held_out = {path.name for path in held_out_images(volume_config(tmp_path, 0.25))
                    if path.parent.name == "trainA"}
        (tmp_path / "trainA" / name).unlink()
        return held_out

    assert held_out_after_adding(late) == before
    assert held_out_after_adding(early) == before - {ranked[-1]} | {early}


def test_a_folder_of_one_volume_cannot_hold_one_out(tmp_path):
    write_ct_volumes(tmp_path / "trainA", 1, shape=(8, 8, 2))
    write_images(tmp_path / "trainB", 4, prefix="b")
    with pytest.raises(DatasetError, match="trainA holds 1 image.s. or volume.s.: too few to hold one out"):
        held_out_images(volume_config(tmp_path, 0.25))


def test_training_on_a_data_path_that_is_a_file_says_it_is_a_file_not_that_it_is_missing(tmp_path, capsys):
    from cyclegan.cli import main

    archive = tmp_path / "horse2zebra.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    assert main(["train", "--data", str(archive), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == (f"cyclegan train: error: --data {archive} is a file; give the dataset folder "
                                       "that holds trainA/ and trainB/\n")


def test_a_domain_folder_that_is_a_file_is_one_sentence_per_problem(tmp_path, capsys):
    from cyclegan.cli import main

    write_images(tmp_path / "B", 2)
    (tmp_path / "A.png").write_bytes(b"not a folder")
    assert main(["train", "--domain-a", str(tmp_path / "A.png"), "--domain-b", str(tmp_path / "B"),
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == (f"cyclegan train: error: cannot train on this data: domain A: {tmp_path / 'A.png'}: "
                                       "is a file, not a folder. Pass the folder holding the images. `cyclegan data "
                                       "check` reports every problem of a dataset folder\n")
