"""Warnings of a failing run: a discriminator that wins, a collapsed generator, one that copies its
input, a validation KID that keeps rising; each once per stretch, none on a healthy run."""
import json

import pytest
import torch

from cyclegan.evaluation import fid as fid_metrics
from cyclegan.evaluation.scoring import spread
from cyclegan.training.health import COPY_CHANGE, D_WINDOW, HealthMonitor
from cyclegan.training.trainer import Trainer

from conftest import tiny_config, write_images


def fired(monitor_call, records):
    return [(warning.iteration, warning.kind, warning.subject) for record in records for warning in
            monitor_call(record)]


def log_records(accuracies):
    return [{"iteration": i, "epoch": 1, "acc_D_A": a, "acc_D_B": 0.6} for i, a in enumerate(accuracies, 1)]


def score_records(**series):
    length = len(next(iter(series.values())))
    return [{"iteration": i + 1, "epoch": i + 1, **{key: values[i] for key, values in series.items()}}
            for i in range(length)]


# ----------------------------------------------------------------------------------- the conditions
def test_a_discriminator_winning_for_a_stretch_is_warned_about_once_per_stretch():
    assert D_WINDOW == 10
    accuracies = [1.0] * 14 + [0.5] + [1.0] * 10 + [0.995] * 3
    assert fired(HealthMonitor().observe_log, log_records(accuracies)) == [
        (10, "discriminator_wins", "D_A"), (25, "discriminator_wins", "D_A")]
    # One record of 85% among ten keeps the mean (98.5%) under the threshold.
    assert fired(HealthMonitor().observe_log, log_records([1.0] * 9 + [0.85])) == []


def test_a_generator_giving_one_image_whatever_its_input_has_a_spread_of_0():
    inputs = [torch.rand(3, 32, 32) * 2 - 1 for _ in range(4)]
    constant = torch.rand(3, 32, 32)
    assert spread([constant] * 4, inputs) == 0.0
    assert spread(inputs, inputs) == pytest.approx(1.0)
    assert spread(inputs[:1], inputs[:1]) is None


def test_collapse_is_warned_about_when_the_spread_falls_below_the_threshold():
    records = score_records(spread_AtoB=[0.4, 0.01, 0.02, 0.3, 0.04], spread_BtoA=[0.5] * 5)
    assert fired(HealthMonitor().observe_scores, records) == [(2, "collapse", "G_AB"), (5, "collapse", "G_AB")]


def test_a_copy_is_warned_about_at_the_second_evaluation_in_a_row():
    copy = COPY_CHANGE / 2
    records = score_records(change_AtoB=[0.3] * 6, change_BtoA=[copy, 0.3, copy, copy, copy, 0.2])
    assert fired(HealthMonitor().observe_scores, records) == [(4, "copy", "G_BA")]


def test_a_kid_rising_three_times_beyond_its_spread_is_warned_about():
    std = {"kid_AtoB_std": [0.01] * 8, "kid_BtoA_std": [0.01] * 8}
    rising = score_records(kid=[0.5, 0.3, 0.31, 0.32, 0.40, 0.45, 0.2, 0.21], **std)
    assert fired(HealthMonitor().observe_scores, rising) == [(5, "kid_rising", "kid")]
    within_noise = score_records(kid=[0.300, 0.301, 0.302, 0.303, 0.304, 0.305, 0.306, 0.307], **std)
    assert fired(HealthMonitor().observe_scores, within_noise) == []
    without_spread = score_records(kid=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                                   kid_AtoB_std=[0.0] * 8, kid_BtoA_std=[0.0] * 8)
    assert fired(HealthMonitor().observe_scores, without_spread) == []


# ----------------------------------------------------------------------------------- runs made to fail
@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    write_images(root / "trainA", 8, seed=1, prefix="a")
    write_images(root / "trainB", 8, seed=2, prefix="b")
    return root


def warnings_of(run):
    found = []
    for name in ("log.jsonl", "metrics.jsonl"):
        path = run / name
        lines = path.read_text().splitlines() if path.exists() else []
        found += [(r["warning"], r["subject"]) for r in map(json.loads, lines) if "warning" in r]
    return found


class Copy(torch.nn.Module):
    """A generator that returns its input: a certain case of "no translation"."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images


def test_a_discriminator_that_wins_is_reported_in_the_log_and_on_the_gallery_page(data, tmp_path, capsys):
    # The generators never learn (--lr 0) and the discriminators learn fast: they soon win.
    config = tiny_config(data, tmp_path / "runs", max_iters=26)
    config.optim.lr, config.optim.lr_d, config.optim.epochs, config.optim.epochs_decay = 0.0, 2e-3, 3, 3
    config.loss.gan_mode, config.loss.pool_size = "vanilla", 0
    Trainer(config).train()
    run = tmp_path / "runs" / "tiny"
    assert warnings_of(run) == [("discriminator_wins", "D_A"), ("discriminator_wins", "D_B")]
    assert capsys.readouterr().err.count("has told real from generated patches over 99%") == 2
    page = (run / "gallery" / "index.html").read_text()
    assert "<h2>Warnings</h2>" in page and "D_B has told real from generated patches" in page


def test_a_generator_with_a_constant_output_is_reported_as_collapsed(data, tmp_path, monkeypatch, fake_inception):
    monkeypatch.setenv(fid_metrics.WEIGHTS_ENV, str(fake_inception))
    config = tiny_config(data, tmp_path / "runs", max_iters=6)
    config.validation.val_fraction, config.optim.lr = 0.25, 0.0
    trainer = Trainer(config)
    output_layer = [module for module in trainer.model.G_AB.modules() if isinstance(module, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # tanh(0): every output pixel is 0 whatever the input
        output_layer.weight.zero_()
        output_layer.bias.zero_()
    trainer.train()
    run = tmp_path / "runs" / "tiny"
    assert warnings_of(run) == [("collapse", "G_AB")]
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                 if "warning" not in line]
    assert record["spread_AtoB"] == 0.0 and record["spread_BtoA"] > 0.1


def test_a_generator_that_returns_its_input_is_reported_as_a_copy(data, tmp_path, no_inception):
    config = tiny_config(data, tmp_path / "runs", max_iters=12)
    config.validation.val_fraction = 0.25
    trainer = Trainer(config)
    trainer.model.generators.G_AB = Copy()
    trainer.train()
    run = tmp_path / "runs" / "tiny"
    assert warnings_of(run) == [("copy", "G_AB")]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r.get("warning")) for r in records] == [(6, None), (12, None), (12, "copy")]


def test_a_healthy_run_gets_no_warning(data, tmp_path, monkeypatch, fake_inception, capsys):
    monkeypatch.setenv(fid_metrics.WEIGHTS_ENV, str(fake_inception))
    write_images(data / "valA", 8, seed=3, prefix="va")
    write_images(data / "valB", 8, seed=4, prefix="vb")
    config = tiny_config(data, tmp_path / "runs", max_iters=24)
    config.validation.eval_every = 4
    Trainer(config).train()
    run = tmp_path / "runs" / "tiny"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 6  # six evaluations, no warning
    assert warnings_of(run) == []
    assert "warning" not in capsys.readouterr().err
