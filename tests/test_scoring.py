"""`score_direction`: the one scoring of translations behind validation and `cyclegan evaluate`."""
import pytest
import torch

from cyclegan.directions import Direction
from cyclegan.evaluation import fid as fid_metrics
from cyclegan.evaluation.scoring import mean_absolute_error, score_direction
from cyclegan.imageconv import to_uint8, to_unit_range


def fixed_images(count: int, seed: int) -> list[torch.Tensor]:
    """Images on the 8-bit grid, as float in [-1, 1]: what a saved translation reads back as."""
    generator = torch.Generator().manual_seed(seed)
    return [to_unit_range(torch.randint(0, 256, (3, 16, 16), generator=generator)) for _ in range(count)]


def test_validation_and_evaluate_read_the_same_numbers_under_their_own_names(fake_inception):
    network = fid_metrics.InceptionFeatures(fake_inception, "cpu")
    inputs, translations, targets = fixed_images(4, 0), fixed_images(4, 1), fixed_images(4, 2)
    reconstructions = [image * 0 for image in inputs]  # mid-grey: |x - F(G(x))| is |x|
    # Validation scores float translations image by image; evaluate scores the uint8 images it
    # keeps, with (reconstruction, input) batches.
    validation = score_direction(Direction.B_TO_A, translations, targets, network=network,
                                 cycle_pairs=zip(reconstructions, inputs), inputs=inputs)
    evaluation = score_direction(Direction.B_TO_A, [to_uint8(image) for image in translations],
                                 [to_uint8(image) for image in targets], network=network,
                                 cycle_pairs=[(torch.stack(reconstructions), torch.stack(inputs))])
    cycle = sum(float(image.abs().sum()) for image in inputs) / (4 * 3 * 16 * 16)
    record = validation.metrics_record()
    assert list(record) == ["images_BtoA", "kid_BtoA", "kid_BtoA_std", "fid_BtoA", "cycle_BtoA", "change_BtoA",
                            "spread_BtoA"]
    assert record["images_BtoA"] == 4 and record["cycle_BtoA"] == cycle
    assert record["change_BtoA"] == mean_absolute_error(zip(translations, inputs))
    entry = evaluation.to_record()
    assert entry == {"source": "testB", "target": "testA", "images": 4, "fid": record["fid_BtoA"],
                     "kid": {"mean": record["kid_BtoA"], "std": record["kid_BtoA_std"], "subset_size": 2,
                             "subsets": 100},
                     "cycle_l1": pytest.approx(cycle, rel=1e-6)}  # float32 sums per batch, not per image
    assert record["fid_BtoA"] > 0


def test_without_the_network_or_enough_images_there_is_no_fid_and_pix2pix_reports_its_l1():
    inputs, translations = fixed_images(1, 0), fixed_images(1, 1)
    scores = score_direction(Direction.A_TO_B, translations, inputs, network=None, inputs=inputs,
                             paired_targets=inputs)
    assert scores.metrics_record() == {"images_AtoB": 1, "kid_AtoB": None, "kid_AtoB_std": None, "fid_AtoB": None,
                                       "l1_AtoB": mean_absolute_error(zip(translations, inputs)),
                                       "change_AtoB": mean_absolute_error(zip(translations, inputs)),
                                       "spread_AtoB": None}
    assert scores.to_record()["kid"] is None and scores.to_record()["cycle_l1"] is None


def test_images_of_other_than_1_or_3_channels_get_no_fid_even_with_the_network(fake_inception):
    network = fid_metrics.InceptionFeatures(fake_inception, "cpu")
    four_channels = [torch.cat([image, image[:1]]) for image in fixed_images(4, 0)]
    gray = [image[:1] for image in fixed_images(4, 1)]

    multispectral = score_direction(Direction.A_TO_B, four_channels, four_channels, network=network)
    grayscale = score_direction(Direction.A_TO_B, gray, gray, network=network)

    assert (multispectral.fid, multispectral.kid) == (None, None)
    assert grayscale.fid == pytest.approx(0.0, abs=1e-6)  # gray repeated to RGB: identical sets
    with pytest.raises(ValueError, match="1- or 3-channel images, got 4 channels"):
        network.prepare(four_channels[0])
