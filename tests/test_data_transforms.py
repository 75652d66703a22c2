"""preprocess: output sizes of every mode, crops, flips and reproducibility."""

import numpy as np
import pytest
from PIL import Image

from cyclegan.data.transforms import PREPROCESS_MODES, preprocess
from cyclegan.errors import ConfigError


def gradient(width, height):
    """An RGB image whose every pixel is distinct: red = x, green = y."""
    x = np.arange(width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.arange(height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.zeros_like(x)], axis=2))


@pytest.mark.parametrize(
    "mode, input_size, expected",
    [
        ("resize_and_crop", (300, 200), (256, 256)),
        ("resize_and_crop", (100, 250), (256, 256)),
        ("crop", (300, 200), (256, 256)),
        ("scale_width", (300, 200), (288, 256)),  # 286 x max(190, 256), rounded to multiples of 4
        ("scale_width", (200, 300), (288, 428)),  # 286 x 429 -> 288 x 428
        ("scale_width_and_crop", (300, 200), (256, 256)),
        ("scale_width_and_crop", (200, 300), (256, 256)),
        ("none", (300, 200), (300, 200)),
        ("none", (30, 45), (32, 44)),
        ("none", (34, 1), (36, 4)),  # ties round up; a side is never smaller than one multiple
    ],
)
def test_output_size_of_each_mode_with_load_286_and_crop_256(mode, input_size, expected):
    out = preprocess(gradient(*input_size), mode=mode, load_size=286, crop_size=256, rng=np.random.default_rng(0))

    assert out.size == expected


def test_preprocess_modes_are_those_of_the_reference_code():
    assert set(PREPROCESS_MODES) == {"resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"}


def test_size_multiple_1_keeps_odd_sizes_in_mode_none():
    assert preprocess(gradient(31, 45), mode="none", size_multiple=1).size == (31, 45)


def test_crop_mode_enlarges_an_image_smaller_than_crop_size_keeping_its_aspect_ratio():
    out = preprocess(gradient(16, 32), mode="crop", crop_size=24, flip=False)

    assert out.size == (24, 24)  # enlarged to 24 x 48 first, then cropped


def test_crop_without_rng_is_the_centre_crop():
    img = gradient(40, 20)

    out = preprocess(img, mode="crop", crop_size=8, rng=None)

    assert np.array_equal(np.asarray(out), np.asarray(img)[6:14, 16:24])


def test_random_crop_is_a_window_of_the_input():
    img = gradient(40, 20)

    out = np.asarray(preprocess(img, mode="crop", crop_size=8, flip=False, rng=np.random.default_rng(3)))

    left, top = int(out[0, 0, 0]), int(out[0, 0, 1])
    assert np.array_equal(out, np.asarray(img)[top : top + 8, left : left + 8])


def test_flip_mirrors_the_image_exactly_when_the_generator_says_so():
    img = gradient(8, 4)
    flipped_seeds = []
    for seed in range(10):
        out = np.asarray(preprocess(img, mode="none", rng=np.random.default_rng(seed)))
        expect_flip = np.random.default_rng(seed).random() < 0.5  # mode "none" draws only the flip
        expected = np.asarray(img)[:, ::-1] if expect_flip else np.asarray(img)
        assert np.array_equal(out, expected)
        flipped_seeds += [seed] if expect_flip else []
    assert 0 < len(flipped_seeds) < 10


def test_no_flip_without_rng_or_with_flip_false():
    img = gradient(8, 4)

    assert np.array_equal(np.asarray(preprocess(img, mode="none", rng=None)), np.asarray(img))
    for seed in range(10):
        out = preprocess(img, mode="none", flip=False, rng=np.random.default_rng(seed))
        assert np.array_equal(np.asarray(out), np.asarray(img))


def test_same_generator_seed_gives_the_same_output_and_other_seeds_differ():
    img = gradient(60, 50)
    options = dict(mode="resize_and_crop", load_size=48, crop_size=32)

    first = np.asarray(preprocess(img, rng=np.random.default_rng(7), **options))
    again = np.asarray(preprocess(img, rng=np.random.default_rng(7), **options))
    others = [np.asarray(preprocess(img, rng=np.random.default_rng(s), **options)) for s in range(8, 12)]

    assert np.array_equal(first, again)
    assert any(not np.array_equal(first, other) for other in others)


def test_unknown_mode_raises_config_error_listing_the_modes():
    with pytest.raises(ConfigError, match="resize_and_crop, crop"):
        preprocess(gradient(8, 8), mode="resize")


def test_crop_larger_than_load_size_raises_config_error():
    with pytest.raises(ConfigError, match="crop_size 256 is larger than load_size 128"):
        preprocess(gradient(8, 8), mode="resize_and_crop", load_size=128, crop_size=256)
