"""The training loop (paper section 4: Adam, batch 1, history pool, 100 + 100 epochs).

A run is fully described by its TrainConfig and its latest checkpoint: resuming restores the
networks, both optimisers, both schedules, both image pools, the RNG state and the position
inside the current epoch, so N iterations, a stop, and M more give the same weights as N + M
iterations in one go (on the CPU, in fp32).
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cyclegan.config import TrainConfig
from cyclegan.data.check import fatal_problems
from cyclegan.data.datasets import collate_samples
from cyclegan.data.layout import check_batchable, iterations_per_epoch, layout_of, training_dataset
from cyclegan.device import autocast, select_device
from cyclegan.errors import CheckpointError, ConfigError, CycleGANError, DatasetError
from cyclegan.fileio import unwritable_reason
from cyclegan import checkpoint as ckpt
from cyclegan.distributed import Distributed
from cyclegan.training.arithmetic_probe import TrainingProbe, training_probe_key
from cyclegan.training.captured_step import CapturedStep, check_capturable, ordinary_state
from cyclegan.training.gallery import Gallery
from cyclegan.training.model import build_model
from cyclegan.training.objective import LossTerms, build_objective, check_objective_options, stacked
from cyclegan.training.pool import ImagePool
from cyclegan.training.logging import MetricsLog, truncate_log
from cyclegan.training.plots import plot_history
from cyclegan.training.trackers import Trackers, check_available, open_trackers, tracker_names
from cyclegan.training.schedules import LearningRateSchedule
from cyclegan.training.validation import QualityTracker
from cyclegan.tuning import (MAX_PROBE_SECONDS, PLANNED_TIME_SHARE, REFERENCE, ProbeResult, UserFlags,
                             choose_arithmetic)


class NonFiniteLossError(CycleGANError):
    """A loss became NaN or infinite; the run stops before the bad update touches the weights."""


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    epoch: int
    checkpoint: Path | None
    skipped_files: list[str] = field(default_factory=list)
    nonfinite_skipped: int = 0
    stopped_by_signal: int | None = None
    seconds: float = 0.0
    is_main_process: bool = True
    eval_seconds: float = 0.0  # of `seconds`, spent scoring the validation images
    best_checkpoint: Path | None = None
    clipped_values: int = 0  # training-image values outside the domains' windows (--window-a/-b)


def epoch_order(length: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The order in which an epoch visits the dataset: a permutation that depends only on
    (seed, epoch), so that a resumed run continues the very same sequence."""
    if not shuffle:
        return np.arange(length)
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(length)


class Trainer:
    """Owns one run: its folder, model, optimisers, data and bookkeeping."""

    def __init__(self, config: TrainConfig, resume: ckpt.CheckpointFiles | None = None,
                 announce: Callable[[str], None] | None = None):
        """`announce(line)`, if given, hears before `--precision auto` times anything that it will."""
        config.validate()
        self.config = config
        device = select_device(config.run.device)
        self.dist = Distributed.from_environment(device)
        self.device = self.dist.device(device)
        self.run_dir = Path(config.run.runs_dir) / config.run.name
        self.checkpoint_dir = self.run_dir / "checkpoints"
        unwritable = unwritable_reason(self.run_dir)
        if unwritable:
            raise ConfigError(f"cannot write the run folder {self.run_dir}: {unwritable}; "
                              "choose another --runs-dir or --name")
        if resume is None and ckpt.read_latest(self.checkpoint_dir) is not None:
            raise ConfigError(f"run folder {self.run_dir} already holds checkpoints; continue it with "
                              f"`cyclegan train --resume {self.run_dir}` or choose another --name")

        check_objective_options(config)
        _check_compilable(config, self.device)
        self.cuda_graphs = config.run.cuda_graphs and self.device.type == "cuda"
        if self.cuda_graphs:
            check_capturable(config, self.dist.enabled)
        # A tracker whose package is missing stops the run here, before any data is read.
        self.tracker_names = tracker_names(config.run)
        check_available(self.tracker_names)
        self.trackers = Trackers([])

        # Data first: a dataset that cannot be used is reported before any model is built.
        layout = layout_of(config)
        problems = fatal_problems(layout.train_a, layout.train_b, preprocess=config.data.preprocess)
        if problems:
            # Each problem ends in its own full stop.
            raise DatasetError("cannot train on this data: " + "; ".join(problem.rstrip(".") for problem in problems)
                               + ". `cyclegan data check` reports every problem of a dataset folder")
        self.dataset = training_dataset(config, layout)
        check_batchable(self.dataset, config.data.batch_size)
        self.skipped_files: set[str] = {str(path) for path, _reason in self.dataset.skipped}
        self.clipped_values = 0
        self.iterations_per_epoch = iterations_per_epoch(len(self.dataset), config.data.batch_size,
                                                         self.dist.world_size)
        self.quality = QualityTracker(config, layout, self.device, self.run_dir)
        # Timed before this run seeds torch and builds its model, so the probe changes nothing of it.
        self.arithmetic = self._choose_arithmetic(resume, announce)

        if self.device.type == "cuda":
            # The shapes repeat every iteration, so cuDNN's measured choice of algorithm pays for
            # its first-iteration cost many times over (the reference code turns it on too).
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(config.run.seed)
        self.model = build_model(config.model, config.run.batch_generator_calls).to(self.device)
        self.memory_format = self.arithmetic.chosen.apply(self.model, self.device)
        # The modules whose forward does one update's work; under torchrun wrapped in DDP.
        self.generators = self.dist.wrap(self.model.generators, self.device)
        self.discriminators = self.dist.wrap(self.model.discriminators, self.device)
        if config.run.compile:
            self.generators = torch.compile(self.generators)
            self.discriminators = torch.compile(self.discriminators)
        self.objective = build_objective(config, self.generators, self.discriminators, self.model.judges())

        optim = config.optim
        self.optimizer_g = torch.optim.Adam(self.model.generator_parameters(), lr=optim.lr,
                                            betas=(optim.beta1, optim.beta2))
        lr_d = optim.lr_d if optim.lr_d is not None else optim.lr
        self.optimizer_d = torch.optim.Adam(self.model.discriminator_parameters(), lr=lr_d,
                                            betas=(optim.beta1, optim.beta2))
        self.schedule_g = LearningRateSchedule(self.optimizer_g, optim.lr_policy, optim.lr, optim.epochs,
                                               optim.epochs_decay, optim.lr_decay_epochs, optim.lr_gamma)
        self.schedule_d = LearningRateSchedule(self.optimizer_d, optim.lr_policy, lr_d, optim.epochs,
                                               optim.epochs_decay, optim.lr_decay_epochs, optim.lr_gamma)
        self.pool_a = ImagePool(config.loss.pool_size, seed=config.run.seed * 2 + 1)
        self.pool_b = ImagePool(config.loss.pool_size, seed=config.run.seed * 2 + 2)
        self.pools = {"A": self.pool_a, "B": self.pool_b}  # the history of generated images per domain
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.run.precision == "fp16")

        self.epoch = 0
        self.iteration = 0
        self.position = 0  # batches of the current epoch already trained
        self.epoch_loss_sum = 0.0
        self.epoch_loss_count = 0
        self.nonfinite_skipped = 0
        self.stop_signal: int | None = None
        self.saved_at: int | None = None  # the iteration of the last checkpoint this process wrote
        self.progress_totals: dict[str, float] = {}  # the last step's generator ("G") and discriminator ("D") losses
        self.init_notes: list[str] = []  # what --init-from loaded and what starts fresh, for the user
        self.resumed = resume is not None  # then the trackers continue their runs (trackers.json)
        if resume is not None:
            self._restore(resume)
        elif config.run.init_from:
            from cyclegan.training.init_from import initialise_from

            # config.json and the trackers then name the exact Hub commit the weights came from.
            self.init_notes, config.run.init_from = initialise_from(self.model, config.run.init_from)

        self.gallery = Gallery(config, layout, self.device)
        # The whole iteration replayed as one CUDA graph after a few ordinary ones (training.captured_step).
        self.captured_step = CapturedStep(self) if self.cuda_graphs else None

    def _choose_arithmetic(self, resume: ckpt.CheckpointFiles | None,
                           announce: Callable[[str], None] | None = None) -> ProbeResult:
        """The run's precision, layout and convolutions (`cyclegan.tuning.choose_arithmetic`), written
        into its config as concrete values, so that config.json says what was used and a resumed run
        keeps it without probing. The probe's budget is also a share of --max-minutes when given."""
        run, data = self.config.run, self.config.data
        if run.precision != "auto":
            autocast(self.device, run.precision)  # fp16 or tf32 on a CPU: said now, not after the probe
        user_flags = UserFlags.from_options(run.precision, run.channels_last, run.nnpack)
        if resume is not None:
            result = ProbeResult(user_flags.impose(REFERENCE), "resumed", reason="as recorded in the resumed run")
        else:
            key, excluded = training_probe_key(self.device, self.config.model, self.config.loss, data.crop_size,
                                               data.batch_size, user_flags, captured=self.cuda_graphs)
            budget = MAX_PROBE_SECONDS
            if run.max_minutes is not None:
                budget = min(budget, PLANNED_TIME_SHARE * run.max_minutes * 60)
            # Under torchrun the ranks must compute alike, and a second Trainer could not join the
            # process group: the cached decision (from `cyclegan tune`) or plain fp32 then.
            with contextlib.ExitStack() as stack:
                measure = None if self.dist.enabled else stack.enter_context(
                    TrainingProbe(self.config, Trainer, captured=self.cuda_graphs))
                stand_in = None if measure is None else measure.stand_in()
                result = choose_arithmetic(self.device, key, measure, self.planned_iterations(), user_flags, budget,
                                           exclude=excluded, stand_in=stand_in, announce=announce)
            if self.dist.enabled and result.source == "default":
                result = replace(result, reason="not measured under torchrun and no decision is cached; "
                                                            "`cyclegan tune` with this run's flags caches one")
        run.precision, run.channels_last, run.nnpack = (result.chosen.precision, result.chosen.channels_last,
                                                        result.chosen.nnpack)
        return result

    # ----------------------------------------------------------------------------- checkpoints
    def training_state(self) -> dict:
        """Everything besides the weights that a resumed run needs. Pools and RNG states differ
        per rank under torchrun, so they are gathered from every rank."""
        if self.captured_step is not None:
            self.captured_step.sync_pools()
        per_rank = {
            "pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "objective": self.objective.state_dict(),  # e.g. CUT's own random stream
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        return {
            "epoch": self.epoch, "iteration": self.iteration, "position": self.position,
            "epoch_loss_sum": self.epoch_loss_sum, "epoch_loss_count": self.epoch_loss_count,
            "nonfinite_skipped": self.nonfinite_skipped,
            "optimizer_g": ordinary_state(self.optimizer_g), "optimizer_d": ordinary_state(self.optimizer_d),
            "schedule_g": self.schedule_g.state_dict(), "schedule_d": self.schedule_d.state_dict(),
            "grad_scaler": self.scaler.state_dict(),
            "ranks": self.dist.gather(per_rank),
        }

    def save(self) -> Path:
        """Write a checkpoint (rank 0 only; every rank must call this, it gathers their state)."""
        state = self.training_state()
        weights = self.checkpoint_dir / f"{ckpt.checkpoint_stem(self.iteration)}.safetensors"
        if self.dist.is_main:
            try:
                weights = ckpt.save_checkpoint(self.checkpoint_dir, self.model.networks(), self.config.model, state,
                                               epoch=self.epoch, iteration=self.iteration,
                                               keep_last=self.config.run.keep_last).weights
            except CheckpointError as error:
                raise CheckpointError(f"{error}. Free some space, then continue with "
                                      f"`cyclegan train --resume {self.run_dir}`") from error
        self.dist.barrier()
        self.saved_at = self.iteration
        return weights

    def _restore(self, files: ckpt.CheckpointFiles) -> None:
        if files.state is None or not files.state.exists():
            raise CheckpointError(f"{files.weights} has no training state beside it ({ckpt.STATE_SUFFIX}); "
                                  "it can be used for translation but not to resume training")
        ckpt.load_weights(files.weights, self.model.networks(), self.device)
        state = ckpt.load_training_state(files.state)
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.schedule_g.load_state_dict(state["schedule_g"])
        self.schedule_d.load_state_dict(state["schedule_d"])
        self.scaler.load_state_dict(state["grad_scaler"])
        ranks = state["ranks"]
        # Same number of processes: each rank continues its own stream; otherwise rank 0's.
        own = ranks[self.dist.rank] if len(ranks) == self.dist.world_size else ranks[0]
        self.pool_a.load_state_dict(own["pool_a"], self.device)
        self.pool_b.load_state_dict(own["pool_b"], self.device)
        torch.set_rng_state(own["torch_rng"])
        self.objective.load_state_dict(own.get("objective", {}))
        if torch.cuda.is_available() and own["cuda_rng"]:
            torch.cuda.set_rng_state_all(own["cuda_rng"])
        self.epoch, self.iteration, self.position = state["epoch"], state["iteration"], state["position"]
        self.epoch_loss_sum, self.epoch_loss_count = state["epoch_loss_sum"], state["epoch_loss_count"]
        self.nonfinite_skipped = state["nonfinite_skipped"]

    # ----------------------------------------------------------------------------- one iteration
    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        """One iteration: a generator update (every d_steps-th iteration), then a discriminator update.

        Returns the loss terms and discriminator accuracies as floats. Raises NonFiniteLossError
        before any weight changes if a loss is NaN/inf (unless --skip-nonfinite). With
        --cuda-graphs on a GPU the iteration is replayed from one CUDA graph (training.captured_step).
        """
        if self.captured_step is not None:
            return self.captured_step(real_a, real_b, self._uncaptured_step)
        return self._uncaptured_step(real_a, real_b)

    def _uncaptured_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        # Last step's gradients are dropped before the forward pass rather than after it, so they
        # are not held in memory at the peak (the reference code's order raises it; docs/PERFORMANCE.md).
        self.optimizer_g.zero_grad(set_to_none=True)
        self.optimizer_d.zero_grad(set_to_none=True)
        objective = self.objective
        precision = autocast(self.device, self.config.run.precision)

        # Both backward passes are queued before the losses are read back: reading a loss waits
        # for the device, so on a GPU one read of all the loss values (not one per term) keeps it
        # busy. The values are checked before either optimizer steps, so a NaN changes no weight
        # (nor, once the pools are restored, the discriminators' history). The discriminator sees
        # this iteration's generated images either way, and the generator update only changes the
        # generators, so the order of the two updates is the reference's.
        terms_g = LossTerms()
        if (self.iteration + 1) % self.config.loss.d_steps == 0:
            with precision, self.judges_fixed():
                terms_g, outputs = objective.generator_terms(real_a, real_b)
                loss_g = terms_g.total
            self._backward(loss_g)
        else:
            with torch.no_grad(), precision:
                outputs = objective.translate(real_a, real_b)

        fakes = outputs.fakes
        terms_d = LossTerms()
        pools = None
        if objective.trains_discriminators:
            # Discriminators see a history of generated images, not only this iteration's. The
            # pools are restored if the generator's losses turn out non-finite below, so that a
            # skipped step leaves no NaN image in the history.
            pools = {domain: self.pools[domain].snapshot() for domain in fakes}
            history = {domain: self.pools[domain].query(fake.detach()) for domain, fake in fakes.items()}
            with precision:
                terms_d = objective.discriminator_terms(real_a, real_b, history)
                loss_d = terms_d.total
            self._backward(loss_d)
        return self._apply_updates(terms_g, terms_d, pools)

    def judges_fixed(self):
        """A context in which the discriminators are fixed critics (no gradients): the generator update."""
        return frozen(self.model.judges().values())

    def _backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def _apply_updates(self, terms_g: LossTerms, terms_d: LossTerms, pools: dict | None = None) -> dict[str, float]:
        """Read every value back at once, then step the generators' and the discriminators'
        optimizers, each only if its losses are finite (see `settle`). `pools`, the image pools'
        snapshots from before this iteration's queries, are restored when the generator's losses
        are not finite."""
        values = self._read({**terms_g.to_record(), **terms_d.to_record()})

        def restore_pools() -> None:
            for domain, snapshot in (pools or {}).items():
                self.pools[domain].restore(snapshot)

        return self.settle(values, list(terms_g.terms), list(terms_d.terms), restore_pools,
                           step_g=lambda: self.scaler.step(self.optimizer_g),
                           step_d=lambda: self.scaler.step(self.optimizer_d))

    def settle(self, values: dict[str, float], names_g: list[str], names_d: list[str],
               restore_history: Callable[[], None], step_g: Callable[[], None] | None,
               step_d: Callable[[], None] | None) -> dict[str, float]:
        """The bookkeeping of an iteration whose values have been read: the generators' update
        (`step_g`) only if its terms are finite, then the discriminators' (`step_d`) only if theirs
        are too; the image history put back (`restore_history`) when the generators' are not.
        A step None was applied already, on the device, under the same rule (a captured step).
        Returns the values, or {"skipped": 1.0} merged in where a step was skipped."""
        values_g = {name: values[name] for name in names_g}
        values_d = {name: values[name] for name in names_d}
        self.progress_totals = {}
        if not all(math.isfinite(value) for value in values_g.values()):
            restore_history()  # before _nonfinite, which may raise
        if self._nonfinite(values_g):
            return {"skipped": 1.0}
        if values_g:
            if step_g is not None:
                step_g()
            self.progress_totals["G"] = sum(values_g.values())
            self.epoch_loss_sum += self.progress_totals["G"]
            self.epoch_loss_count += 1
        if self._nonfinite(values_d):
            self.scaler.update()  # the generator's optimizer did step (fp16 needs one update per step)
            return {**values_g, "skipped": 1.0}
        if values_d and step_d is not None:
            step_d()
        if values_d:
            self.progress_totals["D"] = sum(values_d.values())
        self.scaler.update()  # once per iteration, after every optimizer has stepped (fp16 only)
        return values

    def _read(self, tensors: dict[str, torch.Tensor]) -> dict[str, float]:
        """The tensors as floats, averaged over ranks, in one copy from the device (one wait)."""
        if not tensors:
            return {}
        return self.dist.mean(dict(zip(tensors, stacked(tensors.values()).tolist())))

    def _nonfinite(self, values: dict[str, float]) -> bool:
        """True when a term is NaN/inf and --skip-nonfinite asks to skip the update; raises
        NonFiniteLossError when it does not. Called before the optimizer steps."""
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if not bad:
            return False
        if self.config.run.skip_nonfinite:
            self.nonfinite_skipped += 1
            return True
        raise NonFiniteLossError(
            f"non-finite loss at iteration {self.iteration + 1} (epoch {self.epoch + 1}): "
            + ", ".join(f"{name} = {values[name]}" for name in bad)
            + ". The update was not applied; the last checkpoint is intact. Lower --lr, check the data, "
              "or pass --skip-nonfinite to skip such steps")

    # ----------------------------------------------------------------------------- the loop
    def planned_iterations(self) -> int:
        total = self.config.total_epochs * self.iterations_per_epoch
        max_iters = self.config.run.max_iters
        return min(total, max_iters) if max_iters is not None else total

    def _loader(self) -> DataLoader:
        self.dataset.set_epoch(self.epoch)
        shuffle = self.config.model.model == "pix2pix" or not self.config.data.serial_batches
        order = self.dist.shard(epoch_order(len(self.dataset), self.config.run.seed, self.epoch, shuffle))
        indices = order[self.position * self.config.data.batch_size:].tolist()
        workers = self.config.data.num_workers
        return DataLoader(self.dataset, batch_size=self.config.data.batch_size, sampler=indices,
                          num_workers=workers, collate_fn=collate_samples,
                          pin_memory=self.device.type == "cuda", persistent_workers=False,
                          # Its own generator: worker seeding must not consume the global RNG,
                          # or a resumed run would diverge from an uninterrupted one.
                          generator=torch.Generator().manual_seed(self.config.run.seed),
                          worker_init_fn=_leave_stopping_to_the_main_process,
                          prefetch_factor=4 if workers > 0 else None)

    def train(self) -> TrainResult:
        started = time.perf_counter()
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.save(self.run_dir / "config.json")
            truncate_log(self.run_dir / "log.jsonl", self.iteration)
        if main:
            self.trackers = open_trackers(self.tracker_names, self.run_dir, self.config, resumed=self.resumed)
        log = MetricsLog(self.run_dir / "log.jsonl", self.config.run.log_every, self.trackers, enabled=main)
        if main:
            self.quality.start(self.iteration, log)
        planned = self.planned_iterations()
        progress = tqdm(total=planned, initial=min(self.iteration, planned), unit="it", dynamic_ncols=True,
                        disable=not (self.config.run.progress and main), desc=self.config.run.name)
        previous_handlers = self._install_signal_handlers()
        last_checkpoint = None
        stopping = False
        try:
            while self.epoch < self.config.total_epochs and self.iteration < planned:
                self.schedule_g.start_epoch(self.epoch)
                self.schedule_d.start_epoch(self.epoch)
                for batch in self._loader():
                    self.skipped_files.update(batch["skipped"])
                    self.clipped_values += sum(batch.get("clipped", ()))
                    step_started = time.perf_counter()
                    real_a = batch["A"].to(self.device, non_blocking=True, memory_format=self.memory_format)
                    real_b = batch["B"].to(self.device, non_blocking=True, memory_format=self.memory_format)
                    values = self.train_step(real_a, real_b)
                    self.iteration += 1
                    self.position += 1
                    values["seconds_per_iteration"] = time.perf_counter() - step_started
                    log.add(values)
                    if log.due(self.iteration):
                        self.quality.observe_log(log.flush(self.iteration, self.epoch + 1,
                                                           {"lr_G": self.schedule_g.lr, "lr_D": self.schedule_d.lr}))
                    progress.update(1)
                    progress.set_postfix({name: f"{total:.3f}" for name, total in self.progress_totals.items()},
                                         refresh=False)
                    if self.quality.due_after(self.iteration):
                        self._evaluate()
                    stopping = self.dist.any(self.stop_signal is not None or self._out_of_time(started)) \
                        or self.iteration >= planned
                    if stopping:
                        break
                    if self.config.run.save_every and self.iteration % self.config.run.save_every == 0:
                        last_checkpoint = self.save()
                if stopping and self.position < self.iterations_per_epoch:  # stopped inside an epoch
                    self.quality.observe_log(log.flush(self.iteration, self.epoch + 1))
                    return self._result(self._end_of_period(final=True), started)
                self._end_epoch()
                self.quality.observe_log(log.flush(self.iteration, self.epoch))
                last_checkpoint = self._end_of_period(final=stopping or self.epoch >= self.config.total_epochs)
                if stopping:
                    break
            return self._result(last_checkpoint, started)
        finally:
            self._restore_signal_handlers(previous_handlers)
            progress.close()
            self.trackers.close()

    def _end_epoch(self) -> None:
        mean_loss = self.epoch_loss_sum / max(1, self.epoch_loss_count)
        self.schedule_g.end_epoch(mean_loss)
        self.schedule_d.end_epoch(mean_loss)
        self.epoch += 1
        self.position = 0
        self.epoch_loss_sum, self.epoch_loss_count = 0.0, 0

    def _out_of_time(self, started: float) -> bool:
        minutes = self.config.run.max_minutes
        return minutes is not None and time.perf_counter() - started >= minutes * 60

    def _end_of_period(self, final: bool) -> Path:
        """At an epoch end, and when stopping early: checkpoint, evaluation, plots and gallery (if due)."""
        checkpoint_path = self.save()
        if self.position == 0 and self.quality.due_at_epoch_end():
            self._evaluate()
        if self.dist.is_main:
            plot_history(self.run_dir / "log.jsonl", self.run_dir)
            completed_epochs = self.epoch
            if final or completed_epochs % max(1, self.config.run.gallery_every) == 0:
                self.gallery.write(self.model, self.run_dir,
                                   max(completed_epochs, 1) if self.position == 0 else completed_epochs + 1,
                                   self.trackers, self.iteration)
        return checkpoint_path

    def _evaluate(self) -> None:
        """Score the generators on the validation images (training.validation). A new best score
        keeps this iteration's checkpoint as the best one, written now if there is none yet."""
        epoch = self.epoch + (self.position > 0)  # the epoch under way, or the one just completed
        record = self.quality.evaluate(self.model, self.iteration, epoch) if self.dist.is_main else None
        improves = self.dist.any(self.quality.improves(record))
        if improves and self.saved_at != self.iteration:
            self.save()
        if self.dist.is_main:
            self.quality.record(record, improves)

    def _result(self, checkpoint_path: Path | None, started: float) -> TrainResult:
        return TrainResult(self.run_dir, self.iteration, self.epoch, checkpoint_path, sorted(self.skipped_files),
                           self.nonfinite_skipped, self.stop_signal, time.perf_counter() - started,
                           self.dist.is_main, self.quality.seconds, self.quality.best_checkpoint(),
                           self.clipped_values)

    # ----------------------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def request_stop(signum, _frame):
            if self.stop_signal is not None:  # a second signal: leave at once
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)
                return
            self.stop_signal = signum
            tqdm.write(f"\n{signal.Signals(signum).name} received: finishing this step and saving a checkpoint "
                       "(send it again to exit at once)")

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _leave_stopping_to_the_main_process(worker_id: int) -> None:
    """A data-loading worker ignores SIGTERM. Sent to the whole process group (by `timeout`,
    Slurm, systemd), it would kill the worker, and the loader would end the run in an error in the
    middle of a step; the main process instead finishes the step, saves, and shuts its workers down.
    (SIGINT, as Ctrl-C sends it to the group, already ends a worker quietly.)"""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _check_compilable(config: TrainConfig, device: torch.device) -> None:
    """ConfigError for a --compile run that torch cannot compile: on the CPU, inductor's code for
    the gradient of the anti-aliased up-sampling's replicated border fails at the first backward
    pass (an assertion on strides inside torch), so it is refused before anything is built."""
    model = config.model
    if (config.run.compile and device.type == "cpu" and model.net_g.startswith("resnet")
            and model.upsample == "antialias"):
        raise ConfigError("--compile cannot compile the backward pass of --upsample antialias on the CPU (a fault of "
                          "torch's inductor); leave out --compile, or pass --upsample transposed")


@contextlib.contextmanager
def frozen(modules):
    """Parameters of `modules` need no gradient inside the block (D while G is updated)."""
    parameters = [p for module in modules for p in module.parameters()]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)
