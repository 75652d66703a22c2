"""UnalignedDataset / SingleFolderDataset: reproducible samples, problem files, DataLoader workers."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from cyclegan.data import SingleFolderDataset, SkippedImageWarning, UnalignedDataset, collate_samples
from cyclegan.errors import DatasetError

from conftest import shared_dataset, write_ct_volumes

MNIST2USPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist2usps"
SMALL = dict(preprocess="resize_and_crop", load_size=40, crop_size=32)


def write_images(folder, count, size=(36, 36), offset=0):
    """`count` noise PNGs 000.png, 001.png, ... (each different), returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        noise = np.random.default_rng(offset + i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"{i:03d}.png"
        Image.fromarray(noise).save(path)
        paths.append(path)
    return paths


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def folders(tmp_path):
    write_images(tmp_path / "A", 3)
    write_images(tmp_path / "B", 5, offset=100)
    return tmp_path / "A", tmp_path / "B"


def same_sample(first, second):
    return (
        torch.equal(first["A"], second["A"])
        and torch.equal(first["B"], second["B"])
        and first["A_path"] == second["A_path"]
        and first["B_path"] == second["B_path"]
    )


def test_length_is_the_larger_domain(folders):
    assert len(UnalignedDataset(*folders, **SMALL)) == 5


def test_sample_holds_tensors_of_the_crop_size_and_paths(folders):
    sample = UnalignedDataset(*folders, **SMALL)[4]

    assert sample["A"].shape == (3, 32, 32) and sample["B"].shape == (3, 32, 32)
    assert sample["A"].dtype == torch.float32
    assert -1.0 <= sample["A"].min().item() and sample["A"].max().item() <= 1.0
    assert sample["A_path"] == str(folders[0] / "001.png")  # index 4 % 3 images
    assert Path(sample["B_path"]).parent == folders[1]
    assert sample["skipped"] == []


def test_same_seed_epoch_and_index_give_an_identical_sample_in_a_new_dataset(folders):
    first, second = UnalignedDataset(*folders, seed=3, **SMALL), UnalignedDataset(*folders, seed=3, **SMALL)
    first.set_epoch(2)
    second.set_epoch(2)

    for index in range(5):
        assert same_sample(first[index], second[index])
    assert same_sample(first[1], first[1])


def test_another_epoch_changes_the_b_choices_and_the_crops(folders):
    dataset = UnalignedDataset(*folders, **SMALL)
    epoch_0 = [dataset[i] for i in range(5)]
    dataset.set_epoch(1)
    epoch_1 = [dataset[i] for i in range(5)]

    assert [s["A_path"] for s in epoch_0] == [s["A_path"] for s in epoch_1]
    assert [s["B_path"] for s in epoch_0] != [s["B_path"] for s in epoch_1]
    assert any(not torch.equal(a["A"], b["A"]) for a, b in zip(epoch_0, epoch_1))


def test_another_seed_changes_the_samples(folders):
    one, other = UnalignedDataset(*folders, seed=0, **SMALL), UnalignedDataset(*folders, seed=1, **SMALL)

    assert any(not same_sample(one[i], other[i]) for i in range(5))


def test_serial_batches_pairs_a_and_b_by_index(folders):
    dataset = UnalignedDataset(*folders, serial_batches=True, **SMALL)

    for index in range(5):
        sample = dataset[index]
        assert sample["A_path"] == str(folders[0] / f"{index % 3:03d}.png")
        assert sample["B_path"] == str(folders[1] / f"{index:03d}.png")


def test_index_out_of_range_raises_index_error(folders):
    with pytest.raises(IndexError):
        UnalignedDataset(*folders, **SMALL)[5]


def test_folder_with_only_non_images_raises_dataset_error_naming_the_folder(folders, tmp_path):
    labels = tmp_path / "labels_only"
    labels.mkdir()
    (labels / "labels.csv").write_text("file,label\n")
    (labels / "notes.txt").write_text("hello\n")

    expected = (
        r"labels_only: no usable images for domain B: "
        r"it holds 2 entries \(labels.csv, notes.txt\) but none has an image extension"
    )
    with pytest.raises(DatasetError, match=expected):
        UnalignedDataset(folders[0], labels, **SMALL)


def test_folder_whose_images_cannot_be_opened_raises_dataset_error_with_the_reason(folders, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_text("not a png")

    expected = (
        r"broken: no usable images for domain A: "
        r".*1 with an image extension, and none of those could be opened: .*x.png"
    )
    with pytest.warns(SkippedImageWarning), pytest.raises(DatasetError, match=expected):
        UnalignedDataset(broken, folders[1], **SMALL)


def test_missing_folder_raises_dataset_error(folders, tmp_path):
    with pytest.raises(DatasetError, match="missing: folder not found"):
        UnalignedDataset(folders[0], tmp_path / "missing", **SMALL)


def test_file_that_is_not_an_image_is_dropped_with_a_warning_naming_it(folders):
    (folders[0] / "001.png").write_text("oops, a text file")

    with pytest.warns(SkippedImageWarning, match="001.png"):
        dataset = UnalignedDataset(*folders, **SMALL)

    assert [p.name for p in dataset.paths_a] == ["000.png", "002.png"]
    assert [Path(path).name for path, _ in dataset.skipped] == ["001.png"]


def test_file_failing_to_decode_is_replaced_by_the_next_one_and_reported_in_skipped(folders):
    truncate(folders[0] / "001.png")
    dataset = UnalignedDataset(*folders, serial_batches=True, **SMALL)

    with pytest.warns(SkippedImageWarning, match="001.png"):
        sample = dataset[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same file is reported once per process
        again = dataset[1]

    assert sample["A_path"] == str(folders[0] / "002.png")
    assert sample["skipped"] == [str(folders[0] / "001.png")]
    assert same_sample(sample, again) and again["skipped"] == sample["skipped"]


def test_domain_where_no_file_decodes_raises_dataset_error(folders):
    for path in sorted(folders[0].iterdir()):
        truncate(path)
    dataset = UnalignedDataset(*folders, **SMALL)

    expected = "none of its 3 images can be decoded"
    with pytest.warns(SkippedImageWarning), pytest.raises(DatasetError, match=expected):
        dataset[0]


def test_collate_samples_stacks_tensors_and_concatenates_skipped_lists():
    samples = [
        {"A": torch.zeros(3, 4, 4), "A_path": "a0", "skipped": ["x"]},
        {"A": torch.ones(3, 4, 4), "A_path": "a1", "skipped": ["y", "z"]},
    ]

    batch = collate_samples(samples)

    assert batch["A"].shape == (2, 3, 4, 4)
    assert batch["A_path"] == ["a0", "a1"]
    assert batch["skipped"] == ["x", "y", "z"]


def test_dataloader_with_two_workers_gives_the_same_batches_as_without_workers(folders):
    truncate(folders[0] / "001.png")  # used by samples 1 and 4
    dataset = UnalignedDataset(*folders, seed=5, **SMALL)
    dataset.set_epoch(3)

    def batches(workers):
        loader = DataLoader(dataset, batch_size=2, num_workers=workers, collate_fn=collate_samples)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedImageWarning)
            return list(loader)

    serial, parallel = batches(0), batches(2)

    assert len(serial) == len(parallel) == 3
    assert [len(batch["skipped"]) for batch in parallel] == [1, 0, 1]
    for one, other in zip(serial, parallel):
        assert torch.equal(one["A"], other["A"]) and torch.equal(one["B"], other["B"])
        assert one["A_path"] == other["A_path"] and one["B_path"] == other["B_path"]
        assert one["skipped"] == other["skipped"]


def test_one_channel_digits_from_the_real_mnist2usps_folders():
    shared_dataset("mnist2usps")
    dataset = UnalignedDataset(
        MNIST2USPS / "trainA", MNIST2USPS / "trainB", input_nc=1, output_nc=1,
        preprocess="resize_and_crop", load_size=36, crop_size=32,
    )

    sample = dataset[0]

    assert len(dataset) == 400  # labels.csv beside the images is ignored, without a warning
    assert dataset.skipped == []
    assert sample["A"].shape == (1, 32, 32) and sample["B"].shape == (1, 32, 32)
    assert sample["A_path"].endswith("mnist_t10k_00000.png")


def test_single_folder_dataset_is_deterministic_and_rounds_sizes(tmp_path):
    write_images(tmp_path / "in", 2, size=(30, 45))
    (tmp_path / "in" / "labels.csv").write_text("x\n")

    dataset = SingleFolderDataset(tmp_path / "in")

    assert len(dataset) == 2
    sample = dataset[1]
    assert sample["image"].shape == (3, 44, 32)
    assert sample["path"] == str(tmp_path / "in" / "001.png")
    assert torch.equal(sample["image"], SingleFolderDataset(tmp_path / "in")[1]["image"])


def test_single_folder_dataset_accepts_a_list_of_files_and_one_channel(tmp_path):
    paths = write_images(tmp_path / "in", 3)

    dataset = SingleFolderDataset(
        [paths[2], paths[0]], channels=1, preprocess="resize_and_crop", load_size=40, crop_size=32
    )

    assert [s["path"] for s in dataset] == [str(paths[2]), str(paths[0])]
    assert dataset[0]["image"].shape == (1, 32, 32)


# ------------------------------------------------------------------------------ decoded volumes kept
HU = "-1000,2000"
VOLUME_BYTES = 16 * 16 * 4 * 4  # a 16x16x4 volume as float32


@pytest.fixture
def volume_reads(monkeypatch):
    """How often each volume file is decoded from now on."""
    from cyclegan.data import sources

    reads: dict[str, int] = {}
    decode = sources.read_volume

    def counted(path):
        reads[Path(path).name] = reads.get(Path(path).name, 0) + 1
        return decode(path)

    monkeypatch.setattr(sources, "read_volume", counted)
    return reads


def test_an_epoch_in_random_order_decodes_each_volume_once(tmp_path, volume_reads):
    import pickle

    from cyclegan.training.trainer import epoch_order

    write_ct_volumes(tmp_path / "A", 3, seed=1, prefix="a")
    write_ct_volumes(tmp_path / "B", 3, seed=2, prefix="b")
    dataset = UnalignedDataset(tmp_path / "A", tmp_path / "B", 1, 1, preprocess="none", flip=False,
                               window_a=HU, window_b=HU)
    assert len(dataset) == 12 and volume_reads == {f"{d}_{i:03d}.nii.gz": 1 for d in "ab" for i in range(3)}
    volume_reads.clear()  # listing the slices read each volume once, and kept none

    worker = pickle.loads(pickle.dumps(dataset))  # as a DataLoader worker gets it: nothing kept
    for index in epoch_order(len(worker), seed=0, epoch=0, shuffle=True):
        worker[int(index)]
    assert volume_reads == {f"{d}_{i:03d}.nii.gz": 1 for d in "ab" for i in range(3)}
    for index in epoch_order(len(worker), seed=0, epoch=1, shuffle=True):
        worker[int(index)]
    assert sum(volume_reads.values()) == 6  # without workers the next epoch decodes nothing again
    assert pickle.loads(pickle.dumps(worker)).readers["A"].cached == []


def test_the_kept_volumes_stay_within_the_bound_dropping_the_least_recently_used(tmp_path, volume_reads):
    from cyclegan.data.intensity import IntensityWindow
    from cyclegan.data.sources import SourceReader

    first, second, third = write_ct_volumes(tmp_path, 3)
    reader = SourceReader(1, IntensityWindow.parse(HU), max_cache_bytes=2 * VOLUME_BYTES)
    for path in (first, second, third, second, first):
        reader.volume(path)
        assert reader.cached_bytes <= 2 * VOLUME_BYTES
    assert reader.cached == [second, first]
    assert volume_reads == {first.name: 2, second.name: 1, third.name: 1}

    only_the_last = SourceReader(1, IntensityWindow.parse(HU), max_cache_bytes=0)
    for path in (first, second):
        only_the_last.volume(path)
    assert only_the_last.cached == [second] and only_the_last.cached_bytes == VOLUME_BYTES


def test_volume_cache_mb_sets_the_bound_of_each_domains_reader(tmp_path):
    from cyclegan.config import TrainConfig
    from cyclegan.data.layout import training_dataset

    write_ct_volumes(tmp_path / "trainA", 1, prefix="a")
    write_ct_volumes(tmp_path / "trainB", 1, prefix="b")
    config = TrainConfig()
    config.data.data, config.data.volume_cache_mb = str(tmp_path), 3
    config.model.input_nc = config.model.output_nc = 1
    dataset = training_dataset(config)
    assert [reader.max_cache_bytes for reader in dataset.readers.values()] == [3 * 2 ** 20] * 2
