"""prepare_unpaired, split_aligned, combine_pairs and prepare_cityscapes on tiny real images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan.data.prepare import (combine_pairs, prepare_cityscapes, prepare_unpaired,
                                   split_aligned)
from cyclegan.errors import ConfigError, DatasetError


def write_png(path: Path, array_or_color, size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(array_or_color, np.ndarray):
        Image.fromarray(array_or_color, "RGB").save(path)
    else:
        Image.new("RGB", size, array_or_color).save(path)
    return path


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def two_domains(tmp_path):
    for i in range(20):
        write_png(tmp_path / "horses" / f"h{i:02d}.png", (i, 0, 0))
    for i in range(10):
        write_png(tmp_path / "zebras" / f"z{i:02d}.png", (0, i, 0))
    (tmp_path / "horses" / "notes.txt").write_text("not an image")
    return tmp_path / "horses", tmp_path / "zebras"


# --- prepare_unpaired ------------------------------------------------------------------

def test_prepare_unpaired_splits_each_domain_by_the_test_fraction(tmp_path, two_domains):
    counts = prepare_unpaired(*two_domains, tmp_path / "out", test_fraction=0.2)
    assert counts == {"testA": 4, "trainA": 16, "testB": 2, "trainB": 8}
    out = tmp_path / "out"
    assert {f: len(names(out / f)) for f in counts} == counts
    assert sorted(names(out / "testA") + names(out / "trainA")) == [f"h{i:02d}.png"
                                                                    for i in range(20)]
    assert not (out / "trainA" / names(out / "trainA")[0]).is_symlink()


def test_prepare_unpaired_is_deterministic_for_a_seed(tmp_path, two_domains):
    prepare_unpaired(*two_domains, tmp_path / "one", seed=3)
    prepare_unpaired(*two_domains, tmp_path / "two", seed=3)
    prepare_unpaired(*two_domains, tmp_path / "other", seed=4)
    assert names(tmp_path / "one" / "testA") == names(tmp_path / "two" / "testA")
    assert names(tmp_path / "one" / "testB") == names(tmp_path / "two" / "testB")
    assert names(tmp_path / "one" / "testA") != names(tmp_path / "other" / "testA")


def test_prepare_unpaired_refuses_a_non_empty_output_without_force(tmp_path, two_domains):
    out = tmp_path / "out"
    (out / "trainA").mkdir(parents=True)
    (out / "trainA" / "stale.png").write_bytes(b"old")
    with pytest.raises(DatasetError, match="not empty.*--force"):
        prepare_unpaired(*two_domains, out)
    assert names(out / "trainA") == ["stale.png"]

    prepare_unpaired(*two_domains, out, force=True)
    assert "stale.png" not in names(out / "trainA")
    assert len(names(out / "trainA")) == 18


def test_prepare_unpaired_with_link_makes_symlinks_to_the_originals(tmp_path, two_domains):
    prepare_unpaired(*two_domains, tmp_path / "out", link=True)
    linked = tmp_path / "out" / "trainB" / names(tmp_path / "out" / "trainB")[0]
    assert linked.is_symlink()
    assert linked.resolve() == (two_domains[1] / linked.name).resolve()


def test_prepare_unpaired_rejects_a_fraction_of_one(tmp_path, two_domains):
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        prepare_unpaired(*two_domains, tmp_path / "out", test_fraction=1.0)


def test_prepare_unpaired_reports_an_empty_domain(tmp_path, two_domains):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="domain B.*holds no images"):
        prepare_unpaired(two_domains[0], tmp_path / "empty", tmp_path / "out")


# --- split_aligned / combine_pairs -----------------------------------------------------

def test_combine_then_split_round_trips_pixel_exact(tmp_path):
    rng = np.random.default_rng(0)
    originals = {}
    for stem in ("p0", "p1", "p2"):
        a, b = (rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(2))
        write_png(tmp_path / "A" / f"{stem}.png", a)
        write_png(tmp_path / "B" / f"{stem}.png", b)
        originals[stem] = (a, b)

    report = combine_pairs(tmp_path / "A", tmp_path / "B", tmp_path / "pairs")
    assert (report.written, report.only_in_a, report.only_in_b, report.resized) == (3, [], [], [])
    assert np.array_equal(pixels(tmp_path / "pairs" / "p1.png"),
                          np.concatenate(originals["p1"], axis=1))

    assert split_aligned(tmp_path / "pairs", tmp_path / "halves") == 3
    for stem, (a, b) in originals.items():
        assert np.array_equal(pixels(tmp_path / "halves" / "A" / f"{stem}.png"), a)
        assert np.array_equal(pixels(tmp_path / "halves" / "B" / f"{stem}.png"), b)


def test_split_aligned_names_the_file_with_an_odd_width(tmp_path):
    write_png(tmp_path / "in" / "good.png", (1, 2, 3), size=(16, 8))
    write_png(tmp_path / "in" / "bad.png", (1, 2, 3), size=(15, 8))
    with pytest.raises(DatasetError, match=r"bad\.png: width 15 is odd"):
        split_aligned(tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_combine_pairs_reports_stems_without_a_partner(tmp_path):
    for stem in ("a", "b", "only_left"):
        write_png(tmp_path / "A" / f"{stem}.png", (9, 9, 9))
    for stem in ("a", "b", "only_right"):
        write_png(tmp_path / "B" / f"{stem}.png", (7, 7, 7))
    with pytest.raises(DatasetError, match="only in .*A: only_left; only in .*B: only_right"):
        combine_pairs(tmp_path / "A", tmp_path / "B", tmp_path / "out")

    report = combine_pairs(tmp_path / "A", tmp_path / "B", tmp_path / "out", skip_unmatched=True)
    assert (report.written, report.only_in_a, report.only_in_b) == (2, ["only_left"], ["only_right"])
    assert names(tmp_path / "out") == ["a.png", "b.png"]


def test_combine_pairs_resizes_B_to_the_size_of_A(tmp_path):
    write_png(tmp_path / "A" / "x.png", (10, 20, 30), size=(8, 6))
    write_png(tmp_path / "B" / "x.png", (40, 50, 60), size=(16, 12))
    report = combine_pairs(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert report.resized == ["x"]
    combined = pixels(tmp_path / "out" / "x.png")
    assert combined.shape == (6, 16, 3)
    assert combined[:, 8:].tolist() == [[[40, 50, 60]] * 8] * 6


# --- prepare_cityscapes ----------------------------------------------------------------

def fake_cityscapes(root: Path) -> tuple[Path, Path]:
    """Official naming: {gtFine,leftImg8bit}/{train,val}/{city}/{city}_{seq}_{frame}_*.png."""
    frames = {"train": [("aachen", "000000_000019"), ("bochum", "000001_000002")],
              "val": [("frankfurt", "000000_000294")]}
    for phase, items in frames.items():
        for city, number in items:
            stem = f"{city}_{number}"
            write_png(root / "leftImg8bit" / phase / city / f"{stem}_leftImg8bit.png",
                      (200, 100, 50), size=(32, 16))
            write_png(root / "gtFine" / phase / city / f"{stem}_gtFine_color.png",
                      (128, 64, 128), size=(32, 16))
            write_png(root / "gtFine" / phase / city / f"{stem}_gtFine_labelIds.png",
                      (7, 7, 7), size=(32, 16))
    return root / "gtFine", root / "leftImg8bit"


def test_prepare_cityscapes_pairs_by_stem_and_writes_both_layouts(tmp_path):
    gtfine, leftimg = fake_cityscapes(tmp_path / "raw")
    counts = prepare_cityscapes(gtfine, leftimg, tmp_path / "cityscapes", size=16)
    out = tmp_path / "cityscapes"
    assert counts == {"train": 2, "test": 1}
    assert names(out) == ["test", "testA", "testB", "train", "trainA", "trainB"]
    assert names(out / "trainA") == ["aachen_000000_000019.png", "bochum_000001_000002.png"]
    assert names(out / "testB") == ["frankfurt_000000_000294.png"]
    photo = pixels(out / "trainA" / "aachen_000000_000019.png")
    assert photo.shape == (16, 16, 3) and (photo == [200, 100, 50]).all()
    assert (pixels(out / "trainB" / "aachen_000000_000019.png") == [128, 64, 128]).all()
    pair = pixels(out / "test" / "frankfurt_000000_000294.png")
    assert pair.shape == (16, 32, 3)
    assert (pair[:, :16] == [200, 100, 50]).all() and (pair[:, 16:] == [128, 64, 128]).all()


def test_prepare_cityscapes_accepts_the_folder_holding_gtFine_and_leftImg8bit(tmp_path):
    fake_cityscapes(tmp_path / "raw")
    counts = prepare_cityscapes(tmp_path / "raw", tmp_path / "raw", tmp_path / "out", size=8)
    assert counts == {"train": 2, "test": 1}


def test_prepare_cityscapes_reports_photos_without_labels(tmp_path):
    gtfine, leftimg = fake_cityscapes(tmp_path / "raw")
    (gtfine / "train" / "bochum" / "bochum_000001_000002_gtFine_color.png").unlink()
    with pytest.raises(DatasetError, match="1 photos/labels without a partner "
                                           r"\(bochum_000001_000002\)"):
        prepare_cityscapes(gtfine, leftimg, tmp_path / "out", size=8)
    assert not (tmp_path / "out").exists()
