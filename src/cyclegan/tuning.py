"""Choosing a run's arithmetic by timing it on the user's machine, not by a table of CPU flags.

Which precision, memory layout and convolution algorithm is fastest depends on the machine, the
model, the image size and the batch, and measured differently on every kind of CPU and GPU tried
(docs/PERFORMANCE.md). So `--precision auto` times the candidates a device can run (`candidates`)
on the actual job, in alternation, and keeps the fastest (`probe`). The device's capabilities
only decide which candidates are tried, and the reference code's plain float32 path is always
one of them, so the choice can lose to it by noise at most.

A decision is cached under the cache root, keyed by what decides it (`ProbeKey`), so a second
run starts at once; `choose_arithmetic` puts cache, probe and the user's own flags together.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from cyclegan.config import LossConfig, ModelConfig
from cyclegan.device import (ARITHMETIC_PRECISIONS, apply_layout, autocast, device_name, has_native_bf16,
                             synchronize)
from cyclegan.errors import ConfigError
from cyclegan.fileio import cache_root, write_text_atomic
from cyclegan.layers.nnpack import available as nnpack_available

JOBS = ("train", "translate")
# A run this short would spend on the probe a good part of what the probe could save it.
MIN_PROBED_ITERATIONS = 50
# The probe's cost: at most this many seconds, and at most this share of the run's planned time.
MAX_PROBE_SECONDS = 20.0
PLANNED_TIME_SHARE = 0.02
# Timed rounds at most: beyond them the median of a candidate hardly moves.
MAX_ROUNDS = 7
# A candidate this many times slower than the fastest after a timed round cannot win by noise,
# so it is not timed again and the remaining budget goes to the close contenders.
ELIMINATION_RATIO = 1.5
CACHE_FORMAT = 1

Measure = Callable[["Arithmetic"], float]


@dataclass(frozen=True)
class Arithmetic:
    """How a run computes: the precision (fp32, tf32 on CUDA, bf16 or fp16 autocast), the
    channels-last memory layout, and the NNPACK convolutions (CPU, fp32 and contiguous only)."""

    precision: str = "fp32"
    channels_last: bool = False
    nnpack: bool = False

    def __post_init__(self) -> None:
        if self.precision not in ARITHMETIC_PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}'; choose {', '.join(ARITHMETIC_PRECISIONS)}")

    @property
    def label(self) -> str:
        """Short and unique: `fp32`, `fp32+nnpack`, `bf16+cl`."""
        return "+".join([self.precision] + ["cl"] * self.channels_last + ["nnpack"] * self.nnpack)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def apply(self, network: torch.nn.Module, device: torch.device) -> torch.memory_format:
        """Set `network`'s layout and convolutions to this arithmetic; returns the memory format
        for its inputs. The precision is applied per call, with `autocast`."""
        return apply_layout(network, device, self.channels_last, self.nnpack)

    def autocast(self, device: torch.device):
        return autocast(device, self.precision)

    def to_record(self) -> dict:
        """The fields as RunConfig names them, for config.json and the decision cache."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> "Arithmetic":
        names = {field.name for field in dataclasses.fields(cls)}
        if set(record) != names:
            raise ConfigError(f"an arithmetic record needs exactly {', '.join(sorted(names))}; got "
                              f"{', '.join(sorted(record)) or 'nothing'}")
        return cls(str(record["precision"]), bool(record["channels_last"]), bool(record["nnpack"]))


# The reference code's path: float32, contiguous memory, PyTorch's own convolutions.
REFERENCE = Arithmetic()


@dataclass(frozen=True)
class UserFlags:
    """What the user fixed with --precision, --channels-last / --no-channels-last and --nnpack /
    --no-nnpack; None is a dimension left free for the probe."""

    precision: str | None = None
    channels_last: bool | None = None
    nnpack: bool | None = None

    @classmethod
    def from_options(cls, precision: str, channels_last: bool | None = None,
                     nnpack: bool | None = None) -> "UserFlags":
        """From option values where precision "auto" and None mean "not given"."""
        return cls(None if precision == "auto" else precision, channels_last, nnpack)

    def fixed(self) -> dict:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    def impose(self, arithmetic: Arithmetic) -> Arithmetic:
        return dataclasses.replace(arithmetic, **self.fixed())

    @property
    def complete(self) -> bool:
        return len(self.fixed()) == len(dataclasses.fields(self))


def device_candidates(device: torch.device) -> list[Arithmetic]:
    """The arithmetic worth timing on `device`, the reference path first. What the device lacks
    (NNPACK, native bf16, TF32) is left out rather than timed: emulated bf16 is several times slower."""
    if device.type == "cpu":
        found = [REFERENCE]
        if nnpack_available():
            found.append(Arithmetic("fp32", nnpack=True))
        if has_native_bf16(device):
            found += [Arithmetic("bf16"), Arithmetic("bf16", channels_last=True)]
        return found
    if device.type == "cuda":
        native = has_native_bf16(device)  # Ampere or newer: TF32 and bf16 alike
        precisions = ["fp32"] + ["tf32", "bf16"] * native + ["fp16"]
        return [Arithmetic(precision, channels_last) for precision in precisions for channels_last in (False, True)]
    return [REFERENCE, Arithmetic("fp32", channels_last=True)]


def _computed_alike(arithmetic: Arithmetic) -> Arithmetic:
    """`arithmetic` without an NNPACK switch that cannot apply: NNPACK runs fp32 in the contiguous layout only."""
    return dataclasses.replace(arithmetic, nnpack=arithmetic.nnpack and arithmetic.precision == "fp32"
                               and not arithmetic.channels_last)


def candidates(device: torch.device, user_flags: UserFlags = UserFlags(),
               exclude: tuple[str, ...] = ()) -> list[Arithmetic]:
    """The device's candidates with what the user fixed imposed on each (so only the free
    dimensions vary), in order, leaving out any that would compute as an earlier one does and
    the precisions in `exclude` (those the run cannot use)."""
    found: dict[Arithmetic, Arithmetic] = {}
    for candidate in device_candidates(device):
        if candidate.precision in exclude:
            continue
        imposed = user_flags.impose(candidate)
        found.setdefault(_computed_alike(imposed), imposed)
    return list(found.values())


@dataclass(frozen=True)
class ProbeResult:
    """The arithmetic chosen and how: `source` is "measured", "cached", "as asked" or "default";
    `seconds` holds each timed candidate's median (label -> seconds of one `unit`); `reason` says
    why nothing was measured, or why a stand-in was."""

    chosen: Arithmetic
    source: str
    job: str = "train"
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    rounds: int = 0
    unit: str = "s/it"
    reason: str = ""

    @property
    def reference_seconds(self) -> float | None:
        """The reference-style fp32 path's median, when it was a candidate."""
        return self.seconds.get(REFERENCE.label)

    def describe(self) -> str:
        """One line: `precision: bf16+cl (measured 0.52 s/it; fp32 1.40 s, bf16 0.71 s)`."""
        if not self.seconds:
            return f"precision: {self.chosen.label} ({self.reason or self.source})"
        others = ", ".join(f"{label} {seconds:.3g} s" for label, seconds in self.seconds.items()
                           if label != self.chosen.label)
        verb = "measured" if self.source == "measured" else "cached measurement"
        return (f"precision: {self.chosen.label} ({verb} {self.seconds[self.chosen.label]:.3g} {self.unit}"
                + (f"; {others})" if others else ")"))

    def table(self) -> list[str]:
        """One line per candidate, fastest first: its median and the reference path's time over it."""
        reference = self.reference_seconds
        lines = [f"{'candidate':<16} {self.unit:>10}  vs fp32"]
        for label, seconds in sorted(self.seconds.items(), key=lambda item: item[1]):
            ratio = f"{reference / seconds:.2f}x" if reference else "-"
            mark = "  <- chosen" if label == self.chosen.label else ""
            lines.append(f"{label:<16} {seconds:>10.4f}  {ratio:>7}{mark}")
        return lines


@dataclass(frozen=True)
class StandIn:
    """A call cheaper than the measured one that ranks the candidates as it does, for a probe whose
    whole calls cannot fit its budget: its `measure(candidate) -> seconds`, the `unit` they are in,
    and `ratio(candidate)`: how many stand-in calls one whole call of `candidate` costs, measured
    without a whole call at the job's size, or None where it cannot be (a whole call then tells)."""

    measure: Measure
    unit: str
    ratio: Callable[[Arithmetic], float | None]


def probe(candidates: list[Arithmetic], measure: Measure, budget_seconds: float = MAX_PROBE_SECONDS,
          planned_iterations: int | None = None, job: str = "train", unit: str = "s/it",
          clock: Callable[[], float] = time.perf_counter, stand_in: StandIn | None = None) -> ProbeResult:
    """Time `candidates` with `measure(candidate) -> seconds of one call` and choose the fastest median.

    One untimed warm-up call each, then rounds of one timed call each, in turn, so that a change
    in the machine's load falls on all of them alike. A round starts only while the probe's time
    so far plus that of the round before stays within the budget: `budget_seconds`, and
    PLANNED_TIME_SHARE of `planned_iterations` at the fastest time seen. Whatever the budget,
    every candidate gets its warm-up and one timed call.

    With a `stand_in`, the probe first finds out whether whole calls fit the budget at all. Where
    the stand-in has a ratio, its warm-ups and one round are timed first, and the ratio times their
    cost (plus the time spent so far) is when the whole calls' warm-ups and round would end;
    without one, the first candidate's whole warm-up call tells. Where whole calls would pass the
    budget, the candidates are ranked by the stand-in, in rounds as above within the budget, and
    its medians are reported in its unit, with the estimate in the result's `reason`."""
    if not candidates:
        raise ConfigError("no arithmetic to probe: the candidates are empty")
    started = clock()
    whole = _Rounds(candidates, measure, clock)
    if stand_in is not None and len(candidates) > 1:
        ratio = stand_in.ratio(candidates[0])
        ranked = _Rounds(candidates, stand_in.measure, clock)
        if ratio is None:
            whole.warm_up(candidates[:1])
            first_call = clock() - started
            budget = _budget(budget_seconds, planned_iterations, first_call)
            ends_at = first_call * 2 * len(candidates)
        else:
            stand_in_started = clock()
            ranked.warm_up(candidates)
            ranked.next_round()
            now = clock()
            budget = _budget(budget_seconds, planned_iterations, ratio * ranked.fastest)
            ends_at = now - started + ratio * (now - stand_in_started)
        if ends_at > budget:
            if ratio is None:  # the stand-in's warm-ups and first round, which the ratio's case has had
                ranked.warm_up(candidates)
                ranked.next_round()
            ranked.more_rounds(lambda fastest: budget, started)
            reason = (f"timing whole calls once each after a warm-up would end at about {ends_at:.3g} s, past the "
                      f"budget of {budget:.3g} s"
                      + (f" (one costs about {ratio:.3g} stand-in calls)" if ratio is not None else ""))
            return ranked.result(job, stand_in.unit, reason)
    whole.warm_up(candidates)
    whole.next_round()
    whole.more_rounds(lambda fastest: _budget(budget_seconds, planned_iterations, fastest), started)
    return whole.result(job, unit)


def _budget(budget_seconds: float, planned_iterations: int | None, iteration_seconds: float) -> float:
    if planned_iterations is None:
        return budget_seconds
    return min(budget_seconds, PLANNED_TIME_SHARE * planned_iterations * iteration_seconds)


class _Rounds:
    """`probe`'s calls of one measure: an untimed warm-up per candidate, then timed rounds of the
    candidates still contending (those within ELIMINATION_RATIO of the fastest median)."""

    def __init__(self, candidates: list[Arithmetic], measure: Measure, clock: Callable[[], float]):
        self.candidates, self.measure, self.clock = candidates, measure, clock
        self.warmed: set[Arithmetic] = set()
        self.times: dict[Arithmetic, list[float]] = {candidate: [] for candidate in candidates}
        self.contenders = list(candidates)
        self.rounds = 0
        self.last_round_seconds = 0.0

    def warm_up(self, candidates: list[Arithmetic]) -> None:
        for candidate in candidates:
            if candidate not in self.warmed:
                self.measure(candidate)
                self.warmed.add(candidate)

    @property
    def medians(self) -> dict[Arithmetic, float]:
        return {candidate: statistics.median(values) for candidate, values in self.times.items() if values}

    @property
    def fastest(self) -> float:
        medians = self.medians
        return min(medians[candidate] for candidate in self.contenders)

    def next_round(self) -> None:
        round_started = self.clock()
        for candidate in self.contenders:
            self.times[candidate].append(self.measure(candidate))
        self.rounds += 1
        fastest = self.fastest
        medians = self.medians
        self.contenders = [candidate for candidate in self.contenders if medians[candidate] <= fastest * ELIMINATION_RATIO]
        self.last_round_seconds = self.clock() - round_started

    def more_rounds(self, budget_at: Callable[[float], float], started: float) -> None:
        """Further rounds while they are fewer than MAX_ROUNDS, two candidates contend and the time
        since `started` plus the last round's stays within `budget_at(fastest median)`."""
        while (self.rounds < MAX_ROUNDS and len(self.contenders) >= 2
               and self.clock() - started + self.last_round_seconds <= budget_at(self.fastest)):
            self.next_round()

    def result(self, job: str, unit: str, reason: str = "") -> ProbeResult:
        medians = self.medians
        chosen = min(self.candidates, key=lambda candidate: medians[candidate])
        return ProbeResult(chosen, "measured", job, {candidate.label: medians[candidate] for candidate in self.candidates},
                           self.rounds, unit, reason)


@dataclass(frozen=True)
class ProbeKey:
    """What decides which arithmetic is fastest, and so what a cached decision is kept under."""

    device: str
    torch_version: str
    job: str
    architecture: str
    size: int
    batch: int
    threads: int
    fixed: str

    @classmethod
    def for_job(cls, device: torch.device, model: ModelConfig, job: str, size: int, batch: int,
                user_flags: UserFlags = UserFlags(), loss: LossConfig | None = None) -> "ProbeKey":
        """The key of `job` ("train": both generators and discriminators; "translate": one
        generator's forward) on `device`, at `size` x `size` pixels and `batch` images, for a model
        described by its config; a training key also holds the terms of `loss` that change how
        much an iteration computes (identity passes, PatchNCE's layers and patches...). Translation
        is keyed by the loaded network (`for_network`)."""
        parts = [model.net_g, f"ngf {model.ngf}", f"norm {model.norm}", f"upsample {model.upsample}",
                 f"antialias {model.antialias}", f"channels {model.input_nc}->{model.output_nc}"]
        if job == "train":
            parts += [model.model, model.net_d, f"ndf {model.ndf}", f"n_layers_d {model.n_layers_d}",
                      f"spectral_norm {model.spectral_norm}"]
            if loss is not None:
                parts += _training_work(model, loss)
        return cls.for_architecture(device, job, ", ".join(parts), size, batch, user_flags)

    @classmethod
    def for_network(cls, device: torch.device, network: torch.nn.Module, job: str, size: int, batch: int,
                    user_flags: UserFlags = UserFlags()) -> "ProbeKey":
        """The key of `job` on a built `network` (a loaded generator, for "translate"), whose
        architecture is told by its layers: every layer's type and shape is in its repr."""
        digest = hashlib.sha256(repr(network).encode()).hexdigest()[:16]
        return cls.for_architecture(device, job, f"{type(network).__name__} {digest}", size, batch, user_flags)

    @classmethod
    def for_architecture(cls, device: torch.device, job: str, architecture: str, size: int, batch: int,
                         user_flags: UserFlags = UserFlags()) -> "ProbeKey":
        if job not in JOBS:
            raise ConfigError(f"unknown job '{job}'; choose {' or '.join(JOBS)}")
        threads = torch.get_num_threads() if device.type == "cpu" else 0
        fixed = ",".join(f"{name}={value}" for name, value in sorted(user_flags.fixed().items()))
        return cls(device_name(device), torch.__version__, job, architecture, size, batch, threads, fixed)

    def text(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)



def _training_work(model: ModelConfig, loss: LossConfig) -> list[str]:
    """The loss settings that change what a training iteration computes (and so which arithmetic
    is fastest): passes added or left out, PatchNCE's work; weights that only scale a term are not."""
    parts = [f"gan {loss.gan_mode if loss.gan else 'off'}", f"d_steps {loss.d_steps}"]
    if loss.diff_augment:
        parts.append(f"diff_augment {loss.diff_augment}")
    if model.model == "cyclegan":
        parts += [f"cycle {loss.cycle}", f"identity {bool(loss.lambda_identity)}"]
    elif model.model in ("cut", "fastcut"):
        parts += [f"nce_layers {model.nce_layers or 'default'}", f"num_patches {loss.num_patches}",
                  f"nce_idt {loss.nce_idt}", f"flip_equivariance {loss.flip_equivariance}"]
    return parts

class DecisionCache:
    """Measured decisions in one JSON file under the cache root, `arithmetic/decisions.json`.

    An unreadable or foreign file counts as empty (it is only a cache); every write is atomic."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else cache_root() / "arithmetic" / "decisions.json"

    def _entries(self) -> dict:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT:
            return {}
        entries = document.get("decisions")
        return entries if isinstance(entries, dict) else {}

    def read(self, key: ProbeKey) -> ProbeResult | None:
        entry = self._entries().get(key.text())
        try:
            return ProbeResult(Arithmetic.from_record(entry["chosen"]), "cached", key.job,
                               {str(label): float(seconds) for label, seconds in entry["seconds"].items()},
                               int(entry["rounds"]), str(entry["unit"]))
        except (TypeError, KeyError, ValueError, AttributeError, ConfigError):
            return None  # absent, or written by another version of this file's format

    def write(self, key: ProbeKey, result: ProbeResult) -> None:
        entries = self._entries()
        entries[key.text()] = {"key": dataclasses.asdict(key), "chosen": result.chosen.to_record(),
                               "seconds": result.seconds, "rounds": result.rounds, "unit": result.unit,
                               "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_text_atomic(self.path, json.dumps({"format": CACHE_FORMAT, "decisions": entries}, indent=1) + "\n")


def choose_arithmetic(device: torch.device, key: ProbeKey, measure: Measure | None, planned_iterations: int,
                      user_flags: UserFlags = UserFlags(), budget_seconds: float = MAX_PROBE_SECONDS,
                      cache: DecisionCache | None = None, unit: str = "s/it",
                      clock: Callable[[], float] = time.perf_counter, exclude: tuple[str, ...] = (),
                      stand_in: StandIn | None = None, announce: Callable[[str], None] | None = None) -> ProbeResult:
    """The arithmetic for a run of `planned_iterations` calls of `key.job`, in this order: all of
    it fixed by the user (no probe); a cached decision; plain fp32 (with the user's flags) for a
    run shorter than MIN_PROBED_ITERATIONS or without a `measure`; else the probe's choice (by
    `stand_in` where whole calls overrun the budget), which is then cached. The user's flags are never overridden: only the free dimensions are probed;
    precisions in `exclude` are not candidates (those the run cannot use). `announce(line)` is told,
    just before a probe, what is timed and for about how long: the pause would otherwise be silent."""
    cache = cache or DecisionCache()
    if user_flags.complete:
        return ProbeResult(user_flags.impose(REFERENCE), "as asked", key.job, unit=unit, reason="as asked")
    cached = cache.read(key)
    if cached is not None:
        return cached
    options = candidates(device, user_flags, exclude)
    if len(options) == 1:
        return ProbeResult(options[0], "as asked", key.job, unit=unit, reason="the only candidate here")
    if measure is None or planned_iterations < MIN_PROBED_ITERATIONS:
        why = (f"a run of {planned_iterations} iterations is not worth measuring" if measure is not None
               else "nothing to measure with")
        return ProbeResult(user_flags.impose(REFERENCE), "default", key.job, unit=unit,
                           reason=f"{why}, and no decision is cached")
    if announce is not None:
        announce(f"precision: timing {', '.join(option.label for option in options)} on this job (up to about "
                 f"{budget_seconds:.3g} s, once: the choice is cached)")
    result = probe(options, measure, budget_seconds, planned_iterations, key.job, unit, clock, stand_in)
    cache.write(key, result)
    return result


def call_clock(device: torch.device) -> Callable[[], float]:
    """The clock a candidate's call is timed by. On a CPU computing with one torch thread, the
    process's CPU time: on a machine that other programs share, the wall clock also counts the
    time spent waiting for a core, which varies from call to call and, with one timed call per
    candidate, can reorder them (benchmarks/speed/probe_under_load.py, docs/PERFORMANCE.md). With
    more threads (whose CPU times add up, spinning included) and on a GPU, the wall clock."""
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time
    return time.perf_counter


def translation_side(width: int, height: int, multiple: int) -> int:
    """The side of the square image a translation of `width` x `height` images is timed and keyed at:
    their area's, rounded to the generator's size `multiple` (the generator takes no other sides)."""
    return max(multiple, round(math.sqrt(width * height) / multiple) * multiple)


def translation_measure(generator: torch.nn.Module, device: torch.device, size: int, batch: int = 1,
                        channels: int = 3, timer: Callable[[], float] | None = None) -> Measure:
    """`measure(arithmetic) -> seconds` of one forward pass of `generator` (in eval mode) over a
    batch of `batch` images of `size` x `size`, as `Translator` runs it, timed by `timer`
    (default: `call_clock(device)`). It leaves the generator in the layout of the last candidate
    measured: apply the chosen one afterwards."""
    timer = timer or call_clock(device)
    images = (torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)

    def measure(arithmetic: Arithmetic) -> float:
        memory_format = arithmetic.apply(generator, device)
        inputs = images.contiguous(memory_format=memory_format)
        synchronize(device)
        start = timer()
        with torch.no_grad(), arithmetic.autocast(device):
            generator(inputs)
        synchronize(device)
        return timer() - start

    return measure
