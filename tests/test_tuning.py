"""`cyclegan.tuning`: the arithmetic chosen by timing, with a fake timer; its cache; `cyclegan tune`."""
import json
import time

import pytest
import torch

from cyclegan import device as devices
from cyclegan import tuning
from cyclegan.cli import main
from cyclegan.config import ModelConfig, TrainConfig
from cyclegan.errors import ConfigError
from cyclegan.networks import build_generator
from cyclegan.tuning import (REFERENCE, Arithmetic, DecisionCache, ProbeKey, ProbeResult, StandIn, UserFlags,
                             candidates, choose_arithmetic, probe, translation_measure)

from conftest import write_images

CPU = torch.device("cpu")
FP32, FP32_NNPACK = Arithmetic("fp32"), Arithmetic("fp32", nnpack=True)
BF16, BF16_CL = Arithmetic("bf16"), Arithmetic("bf16", channels_last=True)
TINY = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8, norm="instance")


class FakeMachine:
    """A measure that takes each candidate's given seconds on a fake clock, and counts its calls."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds
        self.now = 0.0
        self.calls: list[str] = []

    def clock(self) -> float:
        return self.now

    def measure(self, arithmetic: Arithmetic) -> float:
        self.calls.append(arithmetic.label)
        self.now += self.seconds[arithmetic.label]
        return self.seconds[arithmetic.label]

    def stand_in(self, seconds: dict[str, float], ratio: float | None = None,
                 ratio_seconds: float = 0.0) -> StandIn:
        """A cheaper measure on the same clock, its calls listed as "pass <label>", whose `ratio`
        takes `ratio_seconds` to find (listed as "ratio <label>")."""
        def measure(arithmetic: Arithmetic) -> float:
            self.calls.append(f"pass {arithmetic.label}")
            self.now += seconds[arithmetic.label]
            return seconds[arithmetic.label]

        def find_ratio(arithmetic: Arithmetic) -> float | None:
            self.calls.append(f"ratio {arithmetic.label}")
            self.now += ratio_seconds
            return ratio
        return StandIn(measure, "s/generator pass", find_ratio)


@pytest.fixture
def cpu_flags(monkeypatch):
    def set_flags(*flags):
        monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset(flags))
    return set_flags


@pytest.fixture
def with_nnpack(monkeypatch):
    monkeypatch.setattr(tuning, "nnpack_available", lambda: True)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))
    return DecisionCache()


def key(job="train", user_flags=UserFlags()) -> ProbeKey:
    return ProbeKey.for_job(CPU, TINY, job, 32, 1, user_flags)


def test_the_fastest_candidate_is_chosen_and_every_median_reported():
    machine = FakeMachine({"fp32": 1.4, "fp32+nnpack": 1.21, "bf16": 0.71, "bf16+cl": 0.52})
    result = probe([FP32, FP32_NNPACK, BF16, BF16_CL], machine.measure, budget_seconds=100, clock=machine.clock)
    assert result.chosen == BF16_CL
    assert result.source == "measured"
    assert result.seconds == {"fp32": 1.4, "fp32+nnpack": 1.21, "bf16": 0.71, "bf16+cl": 0.52}
    assert result.reference_seconds == 1.4
    assert result.describe() == "precision: bf16+cl (measured 0.52 s/it; fp32 1.4 s, fp32+nnpack 1.21 s, bf16 0.71 s)"
    assert result.table()[1].split() == ["bf16+cl", "0.5200", "2.69x", "<-", "chosen"]


def test_candidates_are_timed_in_turn_after_one_warm_up_each_and_the_slow_ones_are_dropped():
    machine = FakeMachine({"fp32": 2.0, "bf16": 1.0, "bf16+cl": 1.1})
    result = probe([FP32, BF16, BF16_CL], machine.measure, budget_seconds=9, clock=machine.clock)
    # Warm-up 4.1 s, round one 4.1 s: fp32 (twice the fastest) is not timed again, and another
    # round would end past 9 s.
    assert machine.calls == ["fp32", "bf16", "bf16+cl"] * 2
    assert result.rounds == 1 and result.chosen == BF16


def test_the_budget_bounds_the_rounds_but_every_candidate_is_timed_once():
    machine = FakeMachine({"fp32": 1.0, "bf16": 1.2})
    probe([FP32, BF16], machine.measure, budget_seconds=9, clock=machine.clock)
    # 2.2 s a round: warm-up, then rounds ending at 4.4, 6.6 and 8.8 s; a fourth would end at 11 s.
    assert machine.calls == ["fp32", "bf16"] * 4
    assert machine.now <= 9
    machine = FakeMachine({"fp32": 1.0, "bf16": 1.2})
    result = probe([FP32, BF16], machine.measure, budget_seconds=0.5, clock=machine.clock)
    assert machine.calls == ["fp32", "bf16"] * 2 and result.rounds == 1


def test_the_budget_is_also_a_share_of_the_planned_run():
    machine = FakeMachine({"fp32": 1.0, "bf16": 1.2})
    # 2% of 300 iterations at 1 s is 6 s, less than the 20 s given: a second round would end at 6.6 s.
    probe([FP32, BF16], machine.measure, budget_seconds=20, planned_iterations=300, clock=machine.clock)
    assert machine.calls == ["fp32", "bf16"] * 2
    machine = FakeMachine({"fp32": 1.0, "bf16": 1.2})
    probe([FP32, BF16], machine.measure, budget_seconds=20, planned_iterations=100_000, clock=machine.clock)
    assert len(machine.calls) == 2 * 8  # 20 s of budget: warm-up and seven rounds would end at 17.6 s
    assert machine.now <= 20


def test_where_whole_calls_would_overrun_the_budget_the_stand_in_ranks_the_candidates():
    # Whole calls would rank fp32 first, the stand-in ranks NNPACK first: the stand-in decides.
    machine = FakeMachine({"fp32": 8.0, "fp32+nnpack": 9.0})
    stand_in = machine.stand_in({"fp32": 1.2, "fp32+nnpack": 1.0})
    result = probe([FP32, FP32_NNPACK], machine.measure, budget_seconds=20, clock=machine.clock, stand_in=stand_in)
    # The first warm-up took 8 s: three more whole calls would end at 32 s. The stand-in's warm-ups
    # end at 10.2 s, then 2.2 s rounds end at 12.4, 14.6, 16.8 and 19 s; a fifth would end at 21.2 s.
    assert machine.calls == ["ratio fp32", "fp32"] + ["pass fp32", "pass fp32+nnpack"] * 5
    assert result.chosen == FP32_NNPACK and result.rounds == 4
    assert result.seconds == {"fp32": 1.2, "fp32+nnpack": 1.0}
    assert result.describe() == "precision: fp32+nnpack (measured 1 s/generator pass; fp32 1.2 s)"
    assert result.reason == ("timing whole calls once each after a warm-up would end at about 32 s, past the "
                             "budget of 20 s")


def test_with_a_ratio_the_stand_in_tells_without_any_whole_call_that_whole_calls_would_overrun():
    machine = FakeMachine({"fp32": 8.0, "fp32+nnpack": 9.0})
    stand_in = machine.stand_in({"fp32": 1.2, "fp32+nnpack": 1.0}, ratio=7.0, ratio_seconds=1.5)
    result = probe([FP32, FP32_NNPACK], machine.measure, budget_seconds=15, clock=machine.clock, stand_in=stand_in)
    # The ratio takes 1.5 s, the stand-in's warm-ups and round 4.4 s, ending at 5.9 s: whole calls'
    # warm-ups and a round would end 7 x 4.4 s later, at 36.7 s. So the stand-in's rounds go on:
    # 2.2 s each, ending at 8.1, 10.3, 12.5 and 14.7 s; one more would end at 16.9 s.
    assert machine.calls == ["ratio fp32"] + ["pass fp32", "pass fp32+nnpack"] * 6
    assert result.chosen == FP32_NNPACK and result.rounds == 5 and result.unit == "s/generator pass"
    assert result.reason == ("timing whole calls once each after a warm-up would end at about 36.7 s, past the "
                             "budget of 15 s (one costs about 7 stand-in calls)")


def test_with_a_ratio_whole_calls_that_fit_are_timed_after_the_stand_ins_first_round():
    machine = FakeMachine({"fp32": 1.0, "bf16": 1.2})
    stand_in = machine.stand_in({"fp32": 0.2, "bf16": 0.25}, ratio=5.0, ratio_seconds=0.5)
    result = probe([FP32, BF16], machine.measure, budget_seconds=12, clock=machine.clock, stand_in=stand_in)
    # Ratio and the stand-in's round end at 1.4 s; whole calls would end 5 x 0.9 s later, at 5.9 s:
    # they fit. Their warm-ups and rounds of 2.2 s end at 3.6, 5.8, 8, 10.2 and 12.4 s: the last
    # round would have ended past the 12 s.
    assert machine.calls == ["ratio fp32"] + ["pass fp32", "pass bf16"] * 2 + ["fp32", "bf16"] * 4
    assert result.chosen == FP32 and result.unit == "s/it" and result.rounds == 3 and result.reason == ""


def test_whole_calls_that_fit_the_budget_are_timed_as_without_a_stand_in():
    machine = FakeMachine({"fp32": 1.0, "bf16": 1.2})
    result = probe([FP32, BF16], machine.measure, budget_seconds=9, clock=machine.clock,
                   stand_in=machine.stand_in({"fp32": 0.1, "bf16": 0.05}))
    # The first warm-up (1 s) is also the one that showed they fit: it is not repeated.
    assert machine.calls == ["ratio fp32"] + ["fp32", "bf16"] * 4
    assert result.chosen == FP32 and result.unit == "s/it"


def test_the_planned_runs_share_of_the_budget_also_decides_for_the_stand_in():
    # 2% of 300 iterations at the 2 s of the first call is 12 s: warm-ups and a round (8 s) fit.
    machine = FakeMachine({"fp32": 2.0, "bf16": 2.0})
    probe([FP32, BF16], machine.measure, budget_seconds=20, planned_iterations=300, clock=machine.clock,
          stand_in=machine.stand_in({"fp32": 0.5, "bf16": 0.4}))
    assert not any(call.startswith("pass") for call in machine.calls)
    # Of 100 iterations it is 4 s: the stand-in's warm-ups and one round, at 3.8 s, end the probe.
    machine = FakeMachine({"fp32": 2.0, "bf16": 2.0})
    result = probe([FP32, BF16], machine.measure, budget_seconds=20, planned_iterations=100, clock=machine.clock,
                   stand_in=machine.stand_in({"fp32": 0.5, "bf16": 0.4}))
    assert machine.calls == ["ratio fp32", "fp32"] + ["pass fp32", "pass bf16"] * 2
    assert result.chosen == BF16 and result.unit == "s/generator pass"
    # With a ratio of 4, an iteration is estimated at 4 x the fastest pass (0.4 s): 2% of 500 of them
    # is 16 s, and whole calls would end at 1.8 + 4 x 1.8 = 9 s; of 200, 6.4 s: they would not fit.
    machine = FakeMachine({"fp32": 2.0, "bf16": 2.0})
    probe([FP32, BF16], machine.measure, budget_seconds=20, planned_iterations=500, clock=machine.clock,
          stand_in=machine.stand_in({"fp32": 0.5, "bf16": 0.4}, ratio=4.0))
    assert machine.calls[-2:] == ["fp32", "bf16"]
    machine = FakeMachine({"fp32": 2.0, "bf16": 2.0})
    result = probe([FP32, BF16], machine.measure, budget_seconds=20, planned_iterations=200, clock=machine.clock,
                   stand_in=machine.stand_in({"fp32": 0.5, "bf16": 0.4}, ratio=4.0))
    assert not any(call in ("fp32", "bf16") for call in machine.calls)
    assert result.unit == "s/generator pass"


def test_a_cpu_without_native_bf16_gets_no_bf16_candidates(cpu_flags, with_nnpack):
    cpu_flags("fpu", "avx2", "fma")
    assert candidates(CPU) == [FP32, FP32_NNPACK]


def test_a_cpu_with_native_bf16_gets_bf16_and_bf16_channels_last(cpu_flags, with_nnpack):
    cpu_flags("avx2", "avx512_bf16")
    assert candidates(CPU) == [FP32, FP32_NNPACK, BF16, BF16_CL]
    cpu_flags("amx_bf16")
    assert [candidate.label for candidate in candidates(CPU)] == ["fp32", "fp32+nnpack", "bf16", "bf16+cl"]


def test_without_nnpack_the_cpu_candidates_leave_it_out(cpu_flags, monkeypatch):
    monkeypatch.setattr(tuning, "nnpack_available", lambda: False)
    cpu_flags("avx512_bf16")
    assert candidates(CPU) == [FP32, BF16, BF16_CL]


def test_cuda_candidates_pair_every_precision_with_both_layouts(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    labels = [candidate.label for candidate in candidates(torch.device("cuda"))]
    assert labels == ["fp32", "fp32+cl", "tf32", "tf32+cl", "bf16", "bf16+cl", "fp16", "fp16+cl"]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert [candidate.label for candidate in candidates(torch.device("cuda"))] == ["fp32", "fp32+cl", "fp16",
                                                                                   "fp16+cl"]


@pytest.mark.parametrize("flags", ["fpu avx2", "avx512_bf16", "amx_bf16 avx512_bf16"])
def test_the_reference_fp32_path_is_always_the_first_candidate(cpu_flags, flags):
    cpu_flags(*flags.split())
    assert candidates(CPU)[0] == REFERENCE == Arithmetic("fp32", channels_last=False, nnpack=False)


def test_a_fixed_flag_is_imposed_on_every_candidate_and_only_the_free_ones_vary(cpu_flags, with_nnpack):
    cpu_flags("avx512_bf16")
    assert candidates(CPU, UserFlags(precision="fp32")) == [FP32, FP32_NNPACK, Arithmetic("fp32", channels_last=True)]
    assert candidates(CPU, UserFlags(nnpack=False)) == [FP32, BF16, BF16_CL]
    # NNPACK applies to fp32 in the contiguous layout only: bf16+cl+nnpack would time bf16+cl again.
    assert candidates(CPU, UserFlags(precision="bf16", channels_last=True)) == [BF16_CL]
    assert candidates(CPU, UserFlags(nnpack=True)) == [FP32_NNPACK, Arithmetic("bf16", nnpack=True),
                                                       Arithmetic("bf16", True, True)]


def test_a_fixed_precision_is_never_changed_by_the_probe(cpu_flags, with_nnpack, cache):
    cpu_flags("avx512_bf16")
    machine = FakeMachine({"fp32": 1.0, "fp32+cl": 2.0, "fp32+nnpack": 0.9, "bf16": 0.1, "bf16+cl": 0.1})
    flags = UserFlags(precision="fp32")
    result = choose_arithmetic(CPU, key(user_flags=flags), machine.measure, 1000, flags, cache=cache,
                               clock=machine.clock)
    assert result.chosen == FP32_NNPACK
    assert set(machine.calls) == {"fp32", "fp32+nnpack", "fp32+cl"}


def test_everything_fixed_means_no_probe(cache):
    machine = FakeMachine({})
    flags = UserFlags("bf16", True, False)
    result = choose_arithmetic(CPU, key(user_flags=flags), machine.measure, 1000, flags, cache=cache)
    assert (result.chosen, result.source, machine.calls) == (BF16_CL, "as asked", [])
    assert result.describe() == "precision: bf16+cl (as asked)"
    assert not cache.path.exists()


def test_the_cache_key_holds_what_decides_the_choice():
    train = ProbeKey.for_job(CPU, TINY, "train", 128, 2, UserFlags(nnpack=False))
    assert train.device == devices.device_name(CPU)
    assert train.torch_version == torch.__version__
    assert (train.job, train.size, train.batch, train.threads, train.fixed) == ("train", 128, 2, 1, "nnpack=False")
    assert train.architecture == ("resnet_6blocks, ngf 8, norm instance, upsample transposed, antialias False, "
                                  "channels 3->3, cyclegan, basic, ndf 8, n_layers_d 3, spectral_norm False")
    translate = ProbeKey.for_job(CPU, TINY, "translate", 128, 2)
    assert translate.architecture == ("resnet_6blocks, ngf 8, norm instance, upsample transposed, antialias False, "
                                      "channels 3->3")
    assert len({train.text(), translate.text(), ProbeKey.for_job(CPU, TINY, "train", 256, 2).text()}) == 3
    with pytest.raises(ConfigError, match="unknown job 'serve'"):
        ProbeKey.for_job(CPU, TINY, "serve", 128, 1)


def test_a_training_key_holds_the_loss_terms_that_change_an_iterations_work_and_not_mere_weights():
    def architecture(**sections) -> str:
        config = TrainConfig.from_dict({"model": {"net_g": "resnet_6blocks", "ngf": 8, "ndf": 8,
                                                  **sections.get("model", {})}, "loss": sections.get("loss", {})})
        return ProbeKey.for_job(CPU, config.model, "train", 64, 1, loss=config.loss).architecture

    cyclegan = architecture()
    assert cyclegan.endswith("cyclegan, basic, ndf 8, n_layers_d 3, spectral_norm False, gan lsgan, d_steps 1, "
                             "cycle both, identity True")
    assert architecture(loss={"lambda_identity": 0.0}).endswith("cycle both, identity False")
    assert architecture(loss={"lambda_a": 5.0}) == cyclegan  # a weight: the same work
    cut = architecture(model={"model": "cut"})
    assert cut.endswith("gan lsgan, d_steps 1, nce_layers default, num_patches 256, nce_idt True, "
                        "flip_equivariance False")
    assert architecture(model={"model": "cut"}, loss={"nce_idt": False}).endswith(
        "num_patches 256, nce_idt False, flip_equivariance False")
    assert architecture(model={"model": "cut"}, loss={"num_patches": 64}) != cut
    assert architecture(model={"model": "cut", "nce_layers": "0,4"}) != cut
    assert architecture(model={"model": "cut"}, loss={"lambda_nce": 3.0}) == cut
    assert architecture(model={"model": "fastcut"}).endswith("nce_idt False, flip_equivariance True")


def test_the_device_name_is_the_cpu_model_from_cpuinfo(monkeypatch):
    monkeypatch.setattr(devices, "_cpu_model_name", lambda: "Intel(R) Xeon(R) Platinum 8480+")
    assert devices.device_name(CPU) == "Intel(R) Xeon(R) Platinum 8480+"


def test_a_second_run_uses_the_cached_decision_without_probing(cpu_flags, with_nnpack, cache):
    cpu_flags("avx512_bf16")
    machine = FakeMachine({"fp32": 1.4, "fp32+nnpack": 1.2, "bf16": 0.7, "bf16+cl": 0.5})
    first = choose_arithmetic(CPU, key(), machine.measure, 1000, cache=cache, clock=machine.clock)
    calls = len(machine.calls)
    assert calls > 0 and first.chosen == BF16_CL
    stored = json.loads(cache.path.read_text())
    assert cache.path == tuning.cache_root() / "arithmetic" / "decisions.json"
    assert list(stored["decisions"]) == [key().text()]
    assert stored["decisions"][key().text()]["chosen"] == {"precision": "bf16", "channels_last": True, "nnpack": False}

    second = choose_arithmetic(CPU, key(), machine.measure, 1000, cache=DecisionCache(), clock=machine.clock)
    assert len(machine.calls) == calls
    assert (second.chosen, second.source, second.seconds) == (BF16_CL, "cached", first.seconds)
    assert second.describe().startswith("precision: bf16+cl (cached measurement 0.5 s/it; fp32 1.4 s")
    # Another job, size or set of fixed flags is another decision.
    choose_arithmetic(CPU, key("translate"), machine.measure, 1000, cache=cache, clock=machine.clock)
    assert len(machine.calls) > calls


def test_a_run_under_fifty_iterations_does_not_probe(cpu_flags, with_nnpack, cache):
    cpu_flags("avx512_bf16")
    machine = FakeMachine({"fp32": 1.4, "fp32+nnpack": 1.2, "bf16": 0.7, "bf16+cl": 0.5})
    result = choose_arithmetic(CPU, key(), machine.measure, 49, cache=cache, clock=machine.clock)
    assert (result.chosen, result.source, machine.calls) == (REFERENCE, "default", [])
    assert result.describe() == ("precision: fp32 (a run of 49 iterations is not worth measuring, and no decision "
                                 "is cached)")
    assert not cache.path.exists()
    flags = UserFlags(channels_last=True)
    assert choose_arithmetic(CPU, key(user_flags=flags), machine.measure, 10, flags, cache=cache).chosen == \
        Arithmetic("fp32", channels_last=True)
    # With a cached decision, the short run uses it.
    choose_arithmetic(CPU, key(), machine.measure, 50, cache=cache, clock=machine.clock)
    machine.calls.clear()
    result = choose_arithmetic(CPU, key(), machine.measure, 10, cache=cache)
    assert (result.chosen, result.source, machine.calls) == (BF16_CL, "cached", [])


def test_an_unreadable_cache_counts_as_empty(cache):
    cache.path.parent.mkdir(parents=True)
    cache.path.write_text("{not json")
    assert cache.read(key()) is None
    cache.path.write_text(json.dumps({"format": 1, "decisions": {key().text(): {"chosen": {"precision": "fp64"}}}}))
    assert cache.read(key()) is None
    cache.write(key(), ProbeResult(BF16, "measured", seconds={"bf16": 0.5}, rounds=2))
    assert cache.read(key()).chosen == BF16


def test_an_arithmetic_round_trips_through_its_record():
    for arithmetic in (FP32, FP32_NNPACK, BF16_CL, Arithmetic("tf32", channels_last=True), Arithmetic("fp16")):
        record = arithmetic.to_record()
        assert json.loads(json.dumps(record)) == record
        assert Arithmetic.from_record(record) == arithmetic
    assert BF16_CL.to_record() == {"precision": "bf16", "channels_last": True, "nnpack": False}
    with pytest.raises(ConfigError, match="needs exactly channels_last, nnpack, precision"):
        Arithmetic.from_record({"precision": "bf16"})
    with pytest.raises(ConfigError, match="unknown precision 'fp64'"):
        Arithmetic.from_record({"precision": "fp64", "channels_last": False, "nnpack": False})


def test_user_flags_from_options_treat_auto_and_none_as_free():
    assert UserFlags.from_options("auto") == UserFlags()
    assert UserFlags.from_options("bf16", None, False).fixed() == {"precision": "bf16", "nnpack": False}
    assert UserFlags.from_options("fp32", True, True).complete


def test_the_translation_measure_applies_each_candidate_to_the_generator():
    generator = build_generator("resnet_6blocks", ngf=8).eval()
    measure = translation_measure(generator, CPU, 32)
    assert measure(BF16_CL) > 0
    assert generator.model[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert measure(FP32_NNPACK) > 0
    assert generator.model[1].weight.is_contiguous()
    assert all(layer.nnpack for layer in generator.modules() if hasattr(layer, "nnpack"))


def test_tf32_needs_cuda():
    with pytest.raises(ConfigError, match="tf32 needs a CUDA GPU"):
        devices.autocast(CPU, "tf32")


def test_the_training_probe_times_the_trainers_own_step_in_each_arithmetic():
    from cyclegan.training.arithmetic_probe import TrainingProbe
    from cyclegan.training.trainer import Trainer

    config = TrainConfig()
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 8, 8
    config.data.crop_size = 32
    with TrainingProbe(config, Trainer) as measure:
        assert measure(FP32_NNPACK) > 0
        assert measure(BF16_CL) > 0
        trainer = measure.trainer
        assert (trainer.config.run.precision, trainer.config.run.channels_last) == ("bf16", True)
        assert trainer.memory_format == torch.channels_last
        workdir = measure.workdir
    assert not workdir.exists()
    assert config.run.precision == "auto" and config.data.data is None  # the run's own config is untouched


@pytest.mark.parametrize("model, generator", [("cyclegan", "G_AB"), ("cut", "G_AB")])
def test_the_stand_in_times_one_forward_and_backward_of_the_first_generator_and_changes_no_weight(model, generator):
    from cyclegan.training.arithmetic_probe import TrainingProbe
    from cyclegan.training.trainer import Trainer

    config = TrainConfig(model=ModelConfig(model=model))
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 8, 8
    config.data.crop_size = 32
    ticks = iter([10.0, 12.5])
    with TrainingProbe(config, Trainer, timer=lambda: next(ticks)) as iteration:
        stand_in = iteration.stand_in()
        assert stand_in.unit == "s/generator pass"
        trainer = iteration.ensure_built()
        networks = trainer.model.networks()
        before = {name: [parameter.detach().clone() for parameter in network.parameters()]
                  for name, network in networks.items()}
        forwards = []
        for name, network in networks.items():
            network.register_forward_hook(lambda module, inputs, output, name=name: forwards.append(name))
        assert stand_in.measure(FP32_NNPACK) == 2.5  # the clock read before and after the pass
        assert forwards == [generator]
        assert trainer.config.run.nnpack is True
        for name, network in networks.items():
            assert all(parameter.grad is None for parameter in network.parameters())
            assert all(torch.equal(old, new) for old, new in zip(before[name], network.parameters()))


def test_the_stand_ins_ratio_is_one_iteration_over_one_pass_both_timed_on_small_images():
    from cyclegan.training.arithmetic_probe import RATIO_SIDE, TrainingProbe
    from cyclegan.training.trainer import Trainer

    config = TrainConfig()
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 8, 8
    config.data.crop_size = 2 * RATIO_SIDE
    # Two readings per call: an untimed iteration, a timed one (3 s), an untimed pass, a timed one (0.5 s).
    ticks = iter([0.0, 1.0, 1.0, 4.0, 4.0, 5.0, 5.0, 5.5, 10.0, 12.0])
    with TrainingProbe(config, Trainer, timer=lambda: next(ticks)) as iteration:
        trainer = iteration.ensure_built()
        sides = []
        trainer.model.networks()["G_AB"].register_forward_pre_hook(
            lambda module, inputs: sides.append(inputs[0].shape[-1]))
        assert iteration.stand_in().ratio(FP32) == 6.0
        # Every generator call was on the small images; the image histories hold none of them.
        assert set(sides) == {RATIO_SIDE}
        assert all(pool.images == [] for pool in trainer.pools.values())
        sides.clear()
        assert iteration.stand_in().measure(FP32) == 2.0  # back at the crop
        assert sides == [2 * RATIO_SIDE]
    config.data.crop_size = RATIO_SIDE
    with TrainingProbe(config, Trainer) as iteration:
        assert iteration.stand_in().ratio(FP32) is None  # no smaller images to time it on


def test_a_captured_probe_times_one_replay_after_warming_up_and_capturing_afresh_per_candidate(monkeypatch):
    # A --cuda-graphs run trains by replays of one captured iteration, so that is what its probe
    # times; on this CPU the captured step runs eagerly, the same calls in the same order.
    from cyclegan.training import captured_step
    from cyclegan.training.arithmetic_probe import TrainingProbe
    from cyclegan.training.trainer import Trainer

    events: list[str] = []
    for cls, name, event in ((captured_step.CapturedStep, "_capture", "capture"),
                             (captured_step.CapturedStep, "_step", "replay"),
                             (Trainer, "_uncaptured_step", "ordinary")):
        def spy(self, *args, original=getattr(cls, name), event=event):
            events.append(event)
            return original(self, *args)
        monkeypatch.setattr(cls, name, spy)

    def clock() -> float:
        events.append("clock")
        return float(events.count("clock"))  # 1, 2, 3, ...: one unit between a call's two readings

    config = TrainConfig()
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 8, 8
    config.data.crop_size = 32
    with TrainingProbe(config, Trainer, timer=clock, captured=True) as measure:
        assert measure.stand_in() is None  # a captured iteration is timed whole
        one_call = ["ordinary"] * captured_step.WARM_UP_ITERATIONS + ["capture", "replay", "clock", "replay", "clock"]
        assert measure(FP32) == 1.0
        assert events == one_call
        trainer = measure.trainer
        assert trainer.captured_step is None  # the graph is not kept between calls
        assert all(group["capturable"] and group["fused"] for group in trainer.optimizer_g.param_groups)
        assert measure(BF16_CL) == 1.0
        assert events == one_call * 2  # warmed up and captured again in the new layout
        assert trainer.memory_format == torch.channels_last
        # Each call started from empty histories: only its own warm-up steps filled the pools.
        assert [len(pool.images) for pool in trainer.pools.values()] == [captured_step.WARM_UP_ITERATIONS] * 2


def test_a_captured_runs_decisions_are_kept_apart_and_leave_fp16_out():
    from cyclegan.training.arithmetic_probe import training_probe_key

    ordinary, no_exclusions = training_probe_key(CPU, TINY, TrainConfig().loss, 64, 1, UserFlags(nnpack=False))
    captured, excluded = training_probe_key(CPU, TINY, TrainConfig().loss, 64, 1, UserFlags(nnpack=False),
                                            captured=True)
    assert (no_exclusions, excluded) == ((), ("fp16",))
    assert (ordinary.fixed, captured.fixed) == ("nnpack=False", "nnpack=False,cuda_graphs")
    assert captured.text() != ordinary.text()


def test_cyclegan_tune_cuda_graphs_without_a_gpu_times_the_ordinary_step_as_train_does(cache, capsys):
    argv = ["tune", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--size", "32", "--budget", "1",
            "--device", "cpu", "--cuda-graphs"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("--cuda-graphs: no CUDA GPU here (cpu); timing the ordinary step, "
                                   "as `train --cuda-graphs` runs it")
    assert "captured" not in out.splitlines()[1]
    (entry,) = json.loads(cache.path.read_text())["decisions"].values()
    assert entry["key"]["fixed"] == ""  # the key a CPU run with --cuda-graphs reads


def test_cyclegan_tune_refuses_cuda_graphs_for_translation(cache, capsys):
    assert main(["tune", "--job", "translate", "--cuda-graphs", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == ("cyclegan tune: error: --cuda-graphs captures a training iteration; "
                                               "leave it out with --job translate")
    assert not cache.path.exists()


def test_cyclegan_tune_times_a_tiny_model_prints_the_table_and_caches_the_choice(cache, capsys):
    # A budget that whole iterations of this tiny model fit on a loaded machine too: with 1 s, a slow
    # first iteration (the suite's other worker running) sent the probe to the stand-in.
    argv = ["tune", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--size", "32", "--budget", "30",
            "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    labels = [candidate.label for candidate in candidates(CPU)]
    table = out.splitlines()[1:2 + len(labels)]
    assert table[0].split() == ["candidate", "s/it", "vs", "fp32"]
    assert sorted(line.split()[0] for line in table[1:]) == sorted(labels)
    assert next(line for line in table if line.startswith("fp32 ")).split()[2] == "1.00x"
    assert "precision: " in out and f"cached in {cache.path}" in out
    stored = json.loads(cache.path.read_text())["decisions"]
    (entry,) = stored.values()
    assert entry["key"]["job"] == "train" and entry["key"]["size"] == 32
    assert set(entry["seconds"]) == set(labels)
    assert main(argv[:-2] + ["--job", "translate", "--device", "cpu"]) == 0
    assert "s/image" in capsys.readouterr().out
    assert len(json.loads(cache.path.read_text())["decisions"]) == 2


def test_cyclegan_tune_of_training_at_a_side_the_generator_does_not_take_times_the_side_training_rounds_to(
        cache, capsys):
    # Training rounds --crop-size 30 to 32 for a ResNet; the probe fed 30x30 tensors and died with a traceback.
    argv = ["tune", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--size", "30", "--budget", "0.1",
            "--device", "cpu"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    (entry,) = json.loads(cache.path.read_text())["decisions"].values()
    assert entry["key"]["size"] == 30  # the key a `train --crop-size 30` run looks up


@pytest.mark.parametrize("net_g, size, side", [("resnet_6blocks", 30, 32), ("unet_128", 64, 128)])
def test_cyclegan_tune_of_translation_at_a_side_the_generator_does_not_take_times_the_side_translate_pads_to(
        cache, capsys, net_g, size, side):
    argv = ["tune", "--job", "translate", "--netG", net_g, "--ngf", "8", "--size", str(size), "--budget", "0.1",
            "--device", "cpu"]
    assert main(argv) == 0
    multiple = 4 if net_g.startswith("resnet") else 128
    assert capsys.readouterr().out.splitlines()[0] == (
        f"--crop-size {size}: {net_g} takes sides that are multiples of {multiple}; timing {side}x{side}, "
        "as translate would")
    (entry,) = json.loads(cache.path.read_text())["decisions"].values()
    assert entry["key"]["size"] == side


def test_a_training_run_whose_crop_the_generator_does_not_take_probes_its_arithmetic_without_a_traceback(
        tmp_path, cache, capsys):
    data = tmp_path / "data"
    write_images(data / "trainA", 2, size=(36, 36))
    write_images(data / "trainB", 2, size=(36, 36))
    argv = ["train", "--data", str(data), "--runs-dir", str(tmp_path / "runs"), "--netG", "resnet_6blocks",
            "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "30", "--num-workers", "0",
            "--no-progress", "--no-tensorboard", "--max-iters", "50", "--save-every", "0", "--device", "cpu"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("precision: ")
    (entry,) = json.loads(cache.path.read_text())["decisions"].values()
    assert (entry["key"]["job"], entry["key"]["size"]) == ("train", 30)


def test_training_and_inference_can_both_import_the_probe_without_a_cycle():
    from test_architecture import import_graph

    graph = import_graph()
    assert not any(name.startswith("cyclegan.training") for name in graph["cyclegan.tuning"])
    assert "cyclegan.training.trainer" not in graph["cyclegan.training.arithmetic_probe"]


def test_a_translation_is_keyed_by_the_generators_layers():
    def key_of(**options):
        return ProbeKey.for_network(CPU, build_generator("resnet_6blocks", ngf=8, **options), "translate", 64, 1)

    assert key_of().text() == key_of().text()
    assert key_of().architecture.startswith("ResnetGenerator ")
    assert key_of(upsample="resize_conv").text() != key_of().text()
    assert key_of(antialias=True).text() != key_of().text()


class Waiting(torch.nn.Module):
    """A 'network' whose call waits 0.3 s for something else (as a process does for a core another
    program holds), computing almost nothing."""

    def forward(self, x):
        import time
        time.sleep(0.3)
        return x


def test_one_cpu_thread_is_timed_by_cpu_time_so_waiting_does_not_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert tuning.call_clock(CPU) is time.process_time
        assert translation_measure(Waiting(), CPU, 8)(REFERENCE) < 0.1
        torch.set_num_threads(2)  # CPU times of several threads add up: the wall clock then
        assert tuning.call_clock(CPU) is time.perf_counter
        assert translation_measure(Waiting(), CPU, 8)(REFERENCE) >= 0.3
    finally:
        torch.set_num_threads(threads)
    assert tuning.call_clock(torch.device("cuda")) is time.perf_counter
