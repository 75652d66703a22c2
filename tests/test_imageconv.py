"""The [-1, 1] <-> 8-bit conversion: exact both ways, and the one every part uses."""
import numpy as np
import torch
from PIL import Image

from cyclegan import data
from cyclegan.imageconv import image_to_tensor, tensor_to_image, to_8bit_values, to_uint8, to_unit_range


def test_every_8bit_value_survives_the_round_trip_exactly():
    values = torch.arange(256, dtype=torch.uint8)
    unit = to_unit_range(values)
    assert unit.dtype == torch.float32 and unit[0] == -1.0 and unit[255] == 1.0 and unit[51] == 51 / 127.5 - 1.0
    assert torch.equal(to_uint8(unit), values)
    assert torch.equal(to_8bit_values(unit), values.float())
    row = Image.fromarray(np.arange(256, dtype=np.uint8)[None, :])  # an "L" image of all 256 values
    assert np.array_equal(np.asarray(tensor_to_image(image_to_tensor(row))), np.asarray(row))


def test_values_outside_the_range_are_clamped_rounded_and_nan_is_black():
    tensor = torch.tensor([-3.0, 2.0, float("nan"), float("inf"), -float("inf"), 0.0, 1 / 255, -1 / 255])
    assert to_uint8(tensor).tolist() == [0, 255, 0, 255, 0, 128, 128, 127]


def test_the_data_package_hands_out_the_same_functions():
    assert data.image_to_tensor is image_to_tensor and data.tensor_to_image is tensor_to_image
