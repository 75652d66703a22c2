"""Intensity windows: parsing, [LOW, HIGH] <-> [-1, 1], clipping counts, defaults per type."""

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.data.highbit import unit_to_array
from cyclegan.data.intensity import EIGHT_BIT_WINDOW, IntensityWindow, default_window, window_for
from cyclegan.errors import ConfigError
from cyclegan.imageconv import image_to_tensor, tensor_to_image


def test_parse_reads_a_fixed_window():
    assert IntensityWindow.parse("-1000,2000") == IntensityWindow(low=-1000.0, high=2000.0)
    assert IntensityWindow.parse(" 0.5 , 1e3 ") == IntensityWindow(low=0.5, high=1000.0)


def test_parse_reads_percentile_windows_per_volume_by_default_or_per_image():
    assert IntensityWindow.parse("percentile:0.5,99.5") == IntensityWindow(p_low=0.5, p_high=99.5, scope="volume")
    assert IntensityWindow.parse("Percentile:1,99:image") == IntensityWindow(p_low=1.0, p_high=99.0, scope="image")


@pytest.mark.parametrize("text, message", [
    ("abc", "window 'abc' is not LOW,HIGH (e.g. -1000,2000) or percentile:P_LOW,P_HIGH (e.g. percentile:0.5,99.5)"),
    ("1,2,3", "window '1,2,3' is not LOW,HIGH (e.g. -1000,2000) or percentile:P_LOW,P_HIGH (e.g. percentile:0.5,99.5)"),
    ("2000,-1000", "a window LOW,HIGH needs the first number below the second, got 2000,-1000"),
    ("0,inf", "a window LOW,HIGH needs two finite numbers, got 0.0,inf"),
    ("percentile:1,101", "percentiles must satisfy 0 <= P_LOW < P_HIGH <= 100, got 1.0,101.0"),
    ("percentile:1,99:slab", "window scope must be one of image, volume, got 'slab'"),
])
def test_parse_refuses_bad_windows_in_one_line(text, message):
    with pytest.raises(ConfigError) as caught:
        IntensityWindow.parse(text)

    assert str(caught.value) == message


def test_str_gives_back_what_parse_reads():
    for text in ("-1000,2000", "percentile:0.5,99.5:volume", "percentile:2,98:image"):
        assert str(IntensityWindow.parse(text)) == text


def test_eight_bit_default_maps_every_value_exactly_as_image_to_tensor():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    today = image_to_tensor(Image.fromarray(values))[0].numpy()

    unit, clipped = default_window(np.uint8).to_unit(values)

    assert unit.dtype == np.float32
    assert np.array_equal(unit, today)
    assert np.array_equal(unit, (torch.from_numpy(values).float() / 127.5 - 1.0).numpy())
    assert clipped == 0


def test_eight_bit_inverse_rounds_exactly_as_tensor_to_image():
    unit = torch.linspace(-1.0, 1.0, 1001).reshape(1, 7, 143)
    today = np.asarray(tensor_to_image(unit))

    assert np.array_equal(unit_to_array(unit[0].numpy(), EIGHT_BIT_WINDOW, np.uint8, "8"), today)


def test_ct_window_round_trip_in_hounsfield_units_within_half_a_unit():
    hounsfield = np.linspace(-1000.0, 2000.0, 3000, dtype=np.float32).reshape(3, 1000)
    window = IntensityWindow.parse("-1000,2000")

    unit, clipped = window.to_unit(hounsfield)
    back = window.from_unit(unit)

    assert clipped == 0
    assert float(unit.min()) == -1.0 and float(unit.max()) == 1.0
    assert float(np.abs(back - hounsfield).max()) <= 0.5


def test_ct_window_round_trip_of_int16_hounsfield_units_is_exact():
    hounsfield = np.arange(-1000, 2000, dtype=np.int16).reshape(3, 1000)
    window = IntensityWindow.parse("-1000,2000")

    unit, _ = window.to_unit(hounsfield)

    assert np.array_equal(unit_to_array(unit, window, np.int16, "16"), hounsfield)


def test_values_outside_the_window_are_clipped_and_counted():
    values = np.array([-2000.0, -1000.0, 500.0, 2000.0, 3000.0, np.nan], dtype=np.float32)

    unit, clipped = IntensityWindow.parse("-1000,2000").to_unit(values)

    assert clipped == 3
    assert unit.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0, -1.0]


def test_sixteen_bit_integers_map_their_full_range_by_default():
    assert default_window(np.uint16) == IntensityWindow(low=0.0, high=65535.0)
    assert default_window(np.int16) == IntensityWindow(low=-32768.0, high=32767.0)
    unit, _ = default_window(np.uint16).to_unit(np.array([0, 65535], dtype=np.uint16))
    assert unit.tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_images_without_a_window_get_the_clear_error(dtype):
    with pytest.raises(ConfigError) as caught:
        window_for(dtype, None)

    assert str(caught.value) == ("float images need --window-a/--window-b LOW,HIGH (or percentile:P_LOW,P_HIGH): "
                                 "their values are never stretched per image")


def test_a_given_window_is_used_for_float_images():
    window = IntensityWindow.parse("0,1")

    assert window_for(np.float32, window) is window


def test_percentile_window_resolves_on_the_values_it_is_given():
    values = np.arange(101, dtype=np.float32)
    window = IntensityWindow.parse("percentile:10,90")

    assert window.resolved(values) == IntensityWindow(low=10.0, high=90.0)
    unit, clipped = window.to_unit(values)
    assert clipped == 20
    assert unit[50] == 0.0


def test_percentile_window_must_be_resolved_before_it_is_inverted():
    with pytest.raises(ValueError, match="resolve a percentile window"):
        IntensityWindow.parse("percentile:1,99").from_unit(np.zeros(3, dtype=np.float32))


def test_records_round_trip_both_kinds_of_window():
    for window in (IntensityWindow.parse("-1000,2000"), IntensityWindow.parse("percentile:0.5,99.5:image")):
        assert IntensityWindow.from_record(window.to_record()) == window
    assert IntensityWindow.parse("-1000,2000").to_record() == {"low": -1000.0, "high": 2000.0}
    assert IntensityWindow.parse("percentile:0.5,99.5").to_record() == {"percentile": [0.5, 99.5], "scope": "volume"}


def test_a_record_with_other_keys_is_refused():
    with pytest.raises(ConfigError) as caught:
        IntensityWindow.from_record({"low": 0})

    assert str(caught.value) == "an intensity window record holds low and high, or percentile and scope; got ['low']"
