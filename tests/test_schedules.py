"""The learning rate at every epoch equals its formula."""
import math

import pytest
import torch

from cyclegan.training.schedules import LearningRateSchedule, linear_factor


def schedule(policy, **kwargs):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=2e-4)
    return LearningRateSchedule(optimizer, policy, 2e-4, kwargs.pop("epochs", 100), kwargs.pop("epochs_decay", 100),
                                **kwargs)


def lrs(sched, epochs):
    values = []
    for epoch in range(epochs):
        sched.start_epoch(epoch)
        values.append(sched.lr)
        sched.end_epoch(1.0)
    return values


def test_linear_policy_is_constant_for_100_epochs_then_decays_linearly_to_zero():
    values = lrs(schedule("linear"), 200)
    for epoch, lr in enumerate(values):
        expected = 2e-4 * (1.0 - max(0, epoch + 1 - 100) / 101)
        assert lr == pytest.approx(expected, rel=1e-12, abs=0)
    assert values[:100] == [2e-4] * 100
    assert values[100] == pytest.approx(2e-4 * 100 / 101)
    assert values[199] == pytest.approx(2e-4 / 101)
    assert linear_factor(200, 100, 100) == 0.0  # the rate after the last epoch


def test_step_policy_multiplies_by_gamma_every_step():
    values = lrs(schedule("step", step_epochs=50, gamma=0.1), 200)
    for epoch, lr in enumerate(values):
        assert lr == pytest.approx(2e-4 * 0.1 ** (epoch // 50))


def test_cosine_policy_follows_half_a_cosine_over_all_epochs():
    values = lrs(schedule("cosine", epochs=10, epochs_decay=10), 20)
    for epoch, lr in enumerate(values):
        assert lr == pytest.approx(2e-4 * 0.5 * (1 + math.cos(math.pi * epoch / 20)))


def test_plateau_policy_lowers_the_rate_after_five_epochs_without_improvement():
    sched = schedule("plateau", gamma=0.1)
    seen = []
    for epoch in range(8):
        sched.start_epoch(epoch)
        seen.append(sched.lr)
        sched.end_epoch(1.0)  # never improves
    # epoch 0 sets the best; epochs 1..5 are bad (patience 5); the 6th bad epoch (epoch 6) cuts the rate.
    assert seen[:7] == [2e-4] * 7
    assert seen[7] == pytest.approx(2e-5)


def test_without_a_gamma_each_policy_uses_the_reference_codes_factor():
    # The reference's StepLR(gamma=0.1) every 50 epochs and ReduceLROnPlateau(factor=0.2, patience=5).
    assert lrs(schedule("step", step_epochs=50), 101)[50:] == [pytest.approx(2e-5)] * 50 + [pytest.approx(2e-6)]
    plateau = lrs(schedule("plateau"), 8)  # never improves: cut after the 6th bad epoch
    assert plateau[:7] == [2e-4] * 7 and plateau[7] == pytest.approx(4e-5)


def test_the_config_records_the_policys_gamma_and_keeps_a_given_one():
    from cyclegan.config import TrainConfig

    def gamma(**optim):
        return TrainConfig.from_dict({"optim": optim}).optim.lr_gamma

    assert (gamma(lr_policy="plateau"), gamma(lr_policy="step"), gamma(lr_policy="linear")) == (0.2, 0.1, None)
    assert gamma(lr_policy="plateau", lr_gamma=0.5) == 0.5


def test_a_gamma_that_is_not_positive_is_refused_before_training():
    from cyclegan.config import TrainConfig
    from cyclegan.errors import ConfigError

    config = TrainConfig()
    config.data.data = "data"
    config.optim.lr_gamma = 0.0
    with pytest.raises(ConfigError, match="--lr-gamma must be positive, got 0.0"):
        config.validate()
