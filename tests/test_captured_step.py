"""The whole-iteration CUDA graph step (training.captured_step), checked on the CPU.

A CPU has no CUDA graphs, but the captured step's body is ordinary PyTorch: run eagerly
(`CapturedStep(trainer, replay=False)`) it must compute exactly what the trainer's ordinary step
computes: the same losses, weights, Adam state and image history, bit for bit, through the
history's swaps, a batch of two, and non-finite losses (which it handles on the device, through
Adam's `found_inf`, where the ordinary step decides on the host). The replay itself needs a GPU:
benchmarks/gpu.sh fast compares captured and uncaptured loss curves there.
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_config
from cyclegan.config import TrainConfig
from cyclegan.errors import ConfigError
from cyclegan.training.captured_step import (WARM_UP_ITERATIONS, CapturedStep, check_capturable, make_capturable,
                                             ordinary_state)
from cyclegan.training.pool import ImagePool
from cyclegan.training.schedules import LearningRateSchedule
from cyclegan.training.trainer import NonFiniteLossError, Trainer
from cyclegan.tuning import Arithmetic, candidates, choose_arithmetic, ProbeKey, DecisionCache


def build(tiny_dataset, tmp_path, name: str, captured: bool, pool_size: int = 3, **run) -> Trainer:
    config = tiny_config(tiny_dataset, tmp_path / "runs", precision="fp32", channels_last=False, nnpack=False, **run)
    config.run.name = name
    config.loss.pool_size = pool_size
    trainer = Trainer(config)
    if captured:
        trainer.captured_step = CapturedStep(trainer, replay=False)
    return trainer


def batches(count: int, batch: int = 1, nan_at: tuple[int, ...] = ()):
    """Random batches; at the iterations `nan_at` one value of each image is NaN."""
    generator = torch.Generator().manual_seed(7)
    for index in range(count):
        real_a = torch.rand((batch, 3, 32, 32), generator=generator) * 2 - 1
        real_b = torch.rand((batch, 3, 32, 32), generator=generator) * 2 - 1
        if index in nan_at:
            real_a[0, 0, 0, 0] = real_b[0, 0, 0, 0] = float("nan")
        yield real_a, real_b


def step(trainer: Trainer, real_a, real_b, ordinary_converts_at: int | None = None) -> dict[str, float]:
    """One iteration as the training loop does it. For the ordinary trainer, Adam is switched to
    its fused form at the iteration where the captured step switches it, so both update alike."""
    if ordinary_converts_at is not None and trainer.iteration == ordinary_converts_at:
        for optimizer in (trainer.optimizer_g, trainer.optimizer_d):
            make_capturable(optimizer, trainer.device)
    values = trainer.train_step(real_a, real_b)
    trainer.iteration += 1
    return values


def assert_same_state(ordinary: Trainer, captured: Trainer) -> None:
    captured.captured_step.sync_pools()
    for (name, mine), (_, theirs) in zip(ordinary.model.state_dict().items(), captured.model.state_dict().items()):
        assert torch.equal(mine, theirs), name
    for first, second in ((ordinary.optimizer_g, captured.optimizer_g), (ordinary.optimizer_d, captured.optimizer_d)):
        for mine, theirs in zip(first.state.values(), second.state.values()):
            assert mine.keys() == theirs.keys()
            for key in mine:
                assert torch.equal(mine[key], theirs[key]), key
    for domain in ("A", "B"):
        mine, theirs = ordinary.pools[domain], captured.pools[domain]
        assert len(mine.images) == len(theirs.images)
        assert all(torch.equal(a, b) for a, b in zip(mine.images, theirs.images))
        assert mine._random.getstate() == theirs._random.getstate()


@pytest.fixture
def swaps(monkeypatch):
    """How often the pools' rule returned a stored image (so a test can show it took that path)."""
    seen = []
    choose = ImagePool.choose

    def recording(self, filled):
        slot, returns_stored = choose(self, filled)
        seen.append(returns_stored)
        return slot, returns_stored

    monkeypatch.setattr(ImagePool, "choose", recording)
    return seen


@pytest.mark.parametrize("batch", [1, 2])
def test_the_captured_step_trains_exactly_as_the_ordinary_step(tiny_dataset, tmp_path, swaps, batch):
    ordinary = build(tiny_dataset, tmp_path, "ordinary", captured=False, pool_size=3 if batch == 1 else 2)
    captured = build(tiny_dataset, tmp_path, "captured", captured=True, pool_size=3 if batch == 1 else 2)
    iterations = 10
    for real_a, real_b in batches(iterations, batch):
        expected = step(ordinary, real_a, real_b, ordinary_converts_at=WARM_UP_ITERATIONS)
        assert step(captured, real_a, real_b) == expected
    assert captured.captured_step.captured
    assert captured.optimizer_g.param_groups[0]["fused"] is True
    assert any(swaps), "no stored image was ever returned: the history's swap went untested"
    assert_same_state(ordinary, captured)


def test_a_nonfinite_generator_loss_changes_no_weight_and_no_stored_image(tiny_dataset, tmp_path):
    # Two NaN iterations: one while the history fills (its images would go into the next slots),
    # one once it is full, where the draw replaces stored images (which must then stay as they were).
    pool_size = WARM_UP_ITERATIONS + 3
    nan_at = (WARM_UP_ITERATIONS + 1, WARM_UP_ITERATIONS + 8)
    ordinary = build(tiny_dataset, tmp_path, "ordinary", captured=False, pool_size=pool_size, skip_nonfinite=True)
    captured = build(tiny_dataset, tmp_path, "captured", captured=True, pool_size=pool_size, skip_nonfinite=True)
    for index, (real_a, real_b) in enumerate(batches(nan_at[-1] + 3, nan_at=nan_at)):
        expected = step(ordinary, real_a, real_b, ordinary_converts_at=WARM_UP_ITERATIONS)
        if index in nan_at:
            before = {name: value.clone() for name, value in captured.model.state_dict().items()}
            adam_steps = [state["step"].clone() for state in captured.optimizer_d.state.values()]
            histories = captured.captured_step.histories
            stored = {domain: (history.filled, history.images.clone()) for domain, history in histories.items()}
        values = step(captured, real_a, real_b)
        assert values == expected
        if index in nan_at:
            assert values == {"skipped": 1.0}
            assert all(torch.equal(before[name], value) for name, value in captured.model.state_dict().items())
            assert all(torch.equal(a, state["step"]) for a, state in zip(adam_steps, captured.optimizer_d.state.values()))
            assert all(history.filled == stored[domain][0] and torch.equal(history.images, stored[domain][1])
                       for domain, history in histories.items())
            planned = [history.plan[0].tolist() for history in histories.values()]
            if index == nan_at[-1]:
                assert [1, 1] in [row[1:] for row in planned], "the draw stored nothing: the test missed its case"
    assert captured.nonfinite_skipped == ordinary.nonfinite_skipped == 2
    assert_same_state(ordinary, captured)


def test_a_nonfinite_loss_stops_a_captured_run_before_any_update(tiny_dataset, tmp_path):
    captured = build(tiny_dataset, tmp_path, "captured", captured=True)
    steps = batches(WARM_UP_ITERATIONS + 2, nan_at=(WARM_UP_ITERATIONS + 1,))
    for _ in range(WARM_UP_ITERATIONS + 1):
        step(captured, *next(steps))
    before = {name: value.clone() for name, value in captured.model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="loss_cycle_A = nan"):
        step(captured, *next(steps))
    assert all(torch.equal(before[name], value) for name, value in captured.model.state_dict().items())


def test_a_nonfinite_discriminator_loss_updates_the_generators_only(tiny_dataset, tmp_path):
    ordinary = build(tiny_dataset, tmp_path, "ordinary", captured=False, skip_nonfinite=True)
    captured = build(tiny_dataset, tmp_path, "captured", captured=True, skip_nonfinite=True)
    poisoned = {"now": False}
    for trainer in (ordinary, captured):
        original = trainer.objective.discriminator_terms

        def poisoning(real_a, real_b, fakes, original=original):
            terms = original(real_a, real_b, fakes)
            if poisoned["now"]:
                terms.terms["loss_D_B"] = terms.terms["loss_D_B"] * float("inf")
            return terms

        trainer.objective.discriminator_terms = poisoning
    for index, (real_a, real_b) in enumerate(batches(8)):
        poisoned["now"] = index == WARM_UP_ITERATIONS + 1
        if poisoned["now"]:
            generator_before = [p.clone() for p in captured.model.generator_parameters()]
            discriminator_before = [p.clone() for p in captured.model.discriminator_parameters()]
        expected = step(ordinary, real_a, real_b, ordinary_converts_at=WARM_UP_ITERATIONS)
        values = step(captured, real_a, real_b)
        assert values.keys() == expected.keys()
        assert all(values[key] == expected[key] or (math.isinf(values[key]) and math.isinf(expected[key]))
                   for key in values)
        if poisoned["now"]:
            assert values["skipped"] == 1.0
            assert not all(torch.equal(a, b) for a, b in zip(generator_before, captured.model.generator_parameters()))
            assert all(torch.equal(a, b) for a, b in zip(discriminator_before, captured.model.discriminator_parameters()))
    assert_same_state(ordinary, captured)


def test_a_batch_of_another_shape_is_trained_by_an_ordinary_step_with_the_same_history(tiny_dataset, tmp_path):
    ordinary = build(tiny_dataset, tmp_path, "ordinary", captured=False, pool_size=2)
    captured = build(tiny_dataset, tmp_path, "captured", captured=True, pool_size=2)
    sizes = [2] * (WARM_UP_ITERATIONS + 2) + [1] + [2] * 2  # an epoch's smaller last batch in between
    generator = torch.Generator().manual_seed(3)
    for size in sizes:
        real_a, real_b = (torch.rand((size, 3, 32, 32), generator=generator) * 2 - 1 for _ in range(2))
        assert step(captured, real_a, real_b) == step(ordinary, real_a, real_b,
                                                      ordinary_converts_at=WARM_UP_ITERATIONS)
    assert_same_state(ordinary, captured)


def test_a_captured_run_saves_a_checkpoint_any_run_resumes(tiny_dataset, tmp_path):
    captured = build(tiny_dataset, tmp_path, "captured", captured=True)
    for real_a, real_b in batches(WARM_UP_ITERATIONS + 3):
        step(captured, real_a, real_b)
    state = captured.training_state()
    for saved in (state["optimizer_g"], state["optimizer_d"]):
        group = saved["param_groups"][0]
        assert (type(group["lr"]), group["capturable"], group["fused"], group["foreach"]) == (float, False, None, None)
        assert all(entry["step"].device.type == "cpu" for entry in saved["state"].values())
    # The live optimizer is still the captured one.
    assert isinstance(captured.optimizer_g.param_groups[0]["lr"], torch.Tensor)
    pool = state["ranks"][0]["pool_a"]
    assert len(pool["images"]) == 3
    # An uncaptured trainer takes the state and trains on.
    resumed = build(tiny_dataset, tmp_path, "resumed", captured=False)
    resumed.optimizer_g.load_state_dict(state["optimizer_g"])
    resumed.optimizer_d.load_state_dict(state["optimizer_d"])
    resumed.pool_a.load_state_dict(pool)
    assert resumed.optimizer_g.param_groups[0]["capturable"] is False
    values = step(resumed, *next(batches(1)))
    assert all(math.isfinite(value) for value in values.values())
    assert float(next(iter(resumed.optimizer_g.state.values()))["step"]) == WARM_UP_ITERATIONS + 4


def test_ordinary_state_leaves_an_uncaptured_optimizer_as_it_saves_itself():
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([parameter], lr=0.1)
    parameter.sum().backward()
    optimizer.step()
    assert ordinary_state(optimizer)["param_groups"] == optimizer.state_dict()["param_groups"]


def test_a_schedule_changes_a_captured_learning_rate_in_place():
    parameter = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.Adam([parameter], lr=0.0002)
    make_capturable(optimizer, torch.device("cpu"))
    rate = optimizer.param_groups[0]["lr"]
    schedule = LearningRateSchedule(optimizer, "linear", 0.0002, epochs=1, epochs_decay=3)
    schedule.start_epoch(2)  # factor 1 - 2 / 4
    assert optimizer.param_groups[0]["lr"] is rate
    assert float(rate) == pytest.approx(0.0001)
    assert schedule.lr == pytest.approx(0.0001)


@pytest.mark.parametrize("change, reason", [
    (lambda c: setattr(c.model, "model", "cut"), "PatchNCE patch positions"),
    (lambda c: setattr(c.run, "precision", "fp16"), "loss scaling"),
    (lambda c: setattr(c.loss, "d_steps", 2), "--d-steps 2"),
    (lambda c: setattr(c.run, "compile", True), "--compile"),
])
def test_cuda_graphs_refuse_what_one_graph_cannot_replay(change, reason):
    config = TrainConfig()
    check_capturable(config, distributed=False)  # CycleGAN as the paper trains it is capturable
    change(config)
    with pytest.raises(ConfigError, match=reason) as raised:
        check_capturable(config, distributed=False)
    assert "Leave out --cuda-graphs" in str(raised.value)
    with pytest.raises(ConfigError, match="torchrun"):
        check_capturable(TrainConfig(), distributed=True)


def test_the_probe_leaves_out_an_excluded_precision(tmp_path):
    cpu = torch.device("cpu")
    assert all(candidate.precision != "bf16" for candidate in candidates(cpu, exclude=("bf16",)))
    assert Arithmetic("fp32") in candidates(cpu, exclude=("bf16",))
    key = ProbeKey.for_architecture(cpu, "train", "test", 32, 1)
    result = choose_arithmetic(cpu, key, lambda arithmetic: 2.0 if arithmetic.precision == "fp32" else 1.0, 1000,
                               cache=DecisionCache(tmp_path / "decisions.json"), exclude=("bf16",))
    assert result.chosen.precision == "fp32"


def test_the_capture_waits_for_a_first_image_in_the_history(tiny_dataset, tmp_path):
    # Every warm-up step skipped for a NaN: the history is still empty, so the next steps stay ordinary.
    captured = build(tiny_dataset, tmp_path, "captured", captured=True, skip_nonfinite=True)
    for real_a, real_b in batches(WARM_UP_ITERATIONS + 1, nan_at=tuple(range(WARM_UP_ITERATIONS + 1))):
        assert step(captured, real_a, real_b) == {"skipped": 1.0}
    assert not captured.captured_step.captured and captured.pool_a.images == []
    step(captured, *next(batches(1)))
    assert not captured.captured_step.captured and len(captured.pool_a.images) == 1
    step(captured, *next(batches(1)))
    assert captured.captured_step.captured


def test_a_step_torch_cannot_capture_leaves_the_run_training_without_graphs(tiny_dataset, tmp_path, capsys):
    ordinary = build(tiny_dataset, tmp_path, "ordinary", captured=False)
    captured = build(tiny_dataset, tmp_path, "captured", captured=True)
    body = CapturedStep._body
    calls = []

    def refusing(self):
        calls.append(1)
        if len(calls) == 1:  # as torch refuses an operation while a stream is being captured
            raise RuntimeError("operation not permitted when stream is capturing\nmore detail")
        return body(self)

    captured.captured_step._body = refusing.__get__(captured.captured_step)
    for real_a, real_b in batches(WARM_UP_ITERATIONS + 4):
        assert step(captured, real_a, real_b) == step(ordinary, real_a, real_b,
                                                      ordinary_converts_at=WARM_UP_ITERATIONS)
    assert captured.captured_step.failure == "operation not permitted when stream is capturing"
    assert len(calls) == 1 and not captured.captured_step.captured
    assert ("--cuda-graphs: this training step could not be captured (operation not permitted when stream is "
            "capturing); training goes on without CUDA graphs") in capsys.readouterr().out
    for mine, theirs in zip(ordinary.model.parameters(), captured.model.parameters()):
        assert torch.equal(mine, theirs)
    for domain in ("A", "B"):
        assert ordinary.pools[domain]._random.getstate() == captured.pools[domain]._random.getstate()
        assert all(torch.equal(a, b) for a, b in zip(ordinary.pools[domain].images, captured.pools[domain].images))
