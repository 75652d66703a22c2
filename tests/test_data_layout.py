"""Dataset layouts: which folders a dataset has, what kind it is, and how long its epoch is."""
import pytest

from cyclegan.config import TrainConfig
from cyclegan.data.layout import check_batchable, find_layout, is_paired, iterations_per_epoch, training_dataset
from cyclegan.errors import DatasetError

from conftest import write_images


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
