"""The training job of `cyclegan.tuning`'s probe: one full iteration of a run's own model.

`TrainingProbe(config, Trainer)` is a `measure(arithmetic) -> seconds` for `cyclegan.tuning.probe`
and `choose_arithmetic`. It builds, on its first call, a throwaway Trainer of the same model,
losses, crop size and batch as `config` (over a one-image dataset: `train_step` never reads it)
and switches that one Trainer between the candidates, so the probe holds one run's memory
whatever the number of candidates. Run before the run's own Trainer seeds torch and builds its
model, and closed first, it leaves the run's weights, optimizer state and random streams as they
would be without it.

With `captured=True` (a `--cuda-graphs` run) each call times a replay of the whole iteration
captured as one CUDA graph (training.captured_step), the way that run will train: the graph's
kernels without the host's launches can favour another arithmetic than the ordinary step does.
A capture holds the weights' storage, which a candidate's layout replaces, so every call warms
up and captures afresh, from empty image histories, before the one replay it times.

`GeneratorPass(probe)` is the probe's stand-in (`cyclegan.tuning.StandIn`) where whole iterations
cannot fit its budget (ResNet generators at 256 px on a CPU): one forward and backward pass of the
run's first generator on the same throwaway Trainer, which cost a fraction of an iteration and
ranked the candidates as whole iterations did in benchmarks/speed/probe_stand_in.py
(docs/PERFORMANCE.md says where it did not). Its ratio, how many passes an iteration costs, is
timed on images of RATIO_SIDE pixels, so that the probe can tell whether whole iterations would
fit its budget without timing one at the crop.

The Trainer class is passed in rather than imported, so that the trainer itself can probe.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from cyclegan.config import LossConfig, ModelConfig, TrainConfig
from cyclegan.data.transforms import preprocessed_size
from cyclegan.device import synchronize
from cyclegan.networks import size_multiple
from cyclegan.training.captured_step import UNCAPTURABLE_PRECISIONS, WARM_UP_ITERATIONS, CapturedStep
from cyclegan.tuning import Arithmetic, ProbeKey, StandIn, UserFlags, call_clock

# The side of the images an iteration's cost in generator passes is timed on: small, so that it
# costs little, the ratio it gave coming near the crop's for the ResNet jobs (docs/PERFORMANCE.md);
# where it is off, it is more often high, with the fixed costs (the optimizer steps) weighing more.
RATIO_SIDE = 32


def training_probe_key(device: torch.device, model: ModelConfig, loss: LossConfig, size: int, batch: int,
                       user_flags: UserFlags = UserFlags(), captured: bool = False) -> tuple[ProbeKey, tuple[str, ...]]:
    """The cache key of a training run's decision and the precisions it cannot use: a run whose
    iteration is one CUDA graph is timed (and its decision kept) apart from an ordinary one."""
    key = ProbeKey.for_job(device, model, "train", size, batch, user_flags, loss)
    if not captured:
        return key, ()
    return dataclasses.replace(key, fixed=",".join(filter(None, (key.fixed, "cuda_graphs")))), UNCAPTURABLE_PRECISIONS


def switch_arithmetic(trainer, arithmetic: Arithmetic) -> None:
    """Make a Trainer's next `train_step` compute in `arithmetic`, as if it had been built so."""
    run = trainer.config.run
    run.precision, run.channels_last, run.nnpack = arithmetic.precision, arithmetic.channels_last, arithmetic.nnpack
    trainer.memory_format = arithmetic.apply(trainer.model, trainer.device)
    trainer.scaler = torch.amp.GradScaler(trainer.device.type, enabled=arithmetic.precision == "fp16")


def probe_config(config: TrainConfig, workdir: Path) -> TrainConfig:
    """`config`'s model, losses, crop size and batch, training on a one-image dataset in `workdir`
    into a run folder there, in eager mode and without validation."""
    probe = copy.deepcopy(config)
    probe.data.data, probe.data.domain_a, probe.data.domain_b = str(workdir / "data"), None, None
    probe.data.load_size, probe.data.preprocess, probe.data.num_workers = probe.data.crop_size, "resize_and_crop", 0
    probe.validation.eval_every, probe.validation.val_fraction = 0, 0.0
    run = probe.run
    run.runs_dir, run.name = str(workdir / "runs"), "arithmetic-probe"
    run.precision, run.channels_last, run.nnpack = "fp32", False, False  # switched per candidate
    # Compiled or captured networks would be compiled again for every candidate.
    run.compile, run.cuda_graphs = False, False
    # Random inputs in fp16 may overflow; the probe times the step, it does not train.
    run.skip_nonfinite, run.progress, run.tensorboard, run.gallery_size = True, False, False, 1
    return probe


def write_probe_dataset(folder: Path, size: int, channels: tuple[int, int]) -> None:
    """trainA/ and trainB/ with one random image each (named alike, so pix2pix pairs them)."""
    rng = np.random.default_rng(0)
    for domain, channel_count in zip(("trainA", "trainB"), channels):
        (folder / domain).mkdir(parents=True)
        shape = (size, size, 3) if channel_count == 3 else (size, size)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / domain / "0.png")


class TrainingProbe:
    """`measure(arithmetic) -> seconds` of one training iteration of `config`'s model at its crop
    size and batch, on a `build(config)` (the Trainer class), timed by `timer` (default: the
    device's `call_clock`); with `captured`, of one replay of the captured iteration (run eagerly
    where there are no CUDA graphs: the tests' CPU). Use it as a context manager (or call `close`)
    to free the throwaway Trainer."""

    def __init__(self, config: TrainConfig, build: Callable[[TrainConfig], object],
                 timer: Callable[[], float] | None = None, captured: bool = False):
        self.config = config
        self.build = build
        self.timer = timer
        self.captured = captured
        self.trainer = None
        self.small_inputs: list[torch.Tensor] | None = None
        self.workdir: Path | None = None

    def ensure_built(self):
        """The throwaway Trainer, built on the first call."""
        if self.trainer is None:
            self.trainer = self._build()
        return self.trainer

    def stand_in(self) -> StandIn | None:
        """What the probe ranks by where whole iterations cannot fit its budget: a GeneratorPass;
        none for a captured iteration, which has no cheaper part to time (it is one graph)."""
        if self.captured:
            return None
        generator_pass = GeneratorPass(self)
        return StandIn(generator_pass, "s/generator pass", generator_pass.iteration_ratio)

    def _build(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="cyclegan-probe-"))
        config = probe_config(self.config, self.workdir)
        write_probe_dataset(self.workdir / "data", config.data.crop_size,
                            (config.model.input_nc, config.model.output_nc))
        trainer = self.build(config)
        generator = torch.Generator().manual_seed(1)
        data, model = config.data, config.model
        # Training rounds every image to the generator's size multiple (--crop-size 30 trains at 32).
        width, height = preprocessed_size((data.crop_size, data.crop_size), data.preprocess, data.load_size,
                                          data.crop_size, size_multiple(model.net_g))
        self.inputs = [(torch.rand((data.batch_size, channels, height, width),
                                   generator=generator) * 2 - 1).to(trainer.device)
                       for channels in (model.input_nc, model.output_nc)]
        side = max(size_multiple(model.net_g), RATIO_SIDE)
        self.small_inputs = ([(torch.rand((data.batch_size, images.shape[1], side, side), generator=generator) * 2 - 1)
                              .to(trainer.device) for images in self.inputs] if side < min(height, width) else None)
        return trainer

    def __call__(self, arithmetic: Arithmetic) -> float:
        trainer = self.ensure_built()
        switch_arithmetic(trainer, arithmetic)
        for optimizer in (trainer.optimizer_g, trainer.optimizer_d):
            # Adam's moments are created in the layout of the weights they follow.
            optimizer.state.clear()
        real_a, real_b = (images.contiguous(memory_format=trainer.memory_format) for images in self.inputs)
        if self.captured:
            self._empty_pools()
            trainer.captured_step = CapturedStep(trainer, replay=trainer.device.type == "cuda")
            # The warm-up steps, then the capture and its first replay.
            for _ in range(WARM_UP_ITERATIONS + 1):
                self._step(real_a, real_b)
        synchronize(trainer.device)
        timer = self.timer or call_clock(trainer.device)
        start = timer()
        self._step(real_a, real_b)
        synchronize(trainer.device)
        seconds = timer() - start
        trainer.captured_step = None  # and with it the graph and its memory
        return seconds

    def _step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
        trainer = self.trainer
        trainer.train_step(real_a, real_b)
        trainer.iteration += 1
        trainer.position += 1

    @contextlib.contextmanager
    def on_small_images(self):
        """Calls within time the iteration on `small_inputs` rather than the crop's (and the
        stand-in's pass too); the image histories are emptied on entry and exit, as they hold
        images of one size."""
        crop_inputs, self.inputs = self.inputs, self.small_inputs
        self._empty_pools()
        try:
            yield
        finally:
            self.inputs = crop_inputs
            self._empty_pools()

    def _empty_pools(self) -> None:
        for pool in self.trainer.pools.values():
            pool.images = []

    def close(self) -> None:
        self.trainer = None
        self.inputs = []
        self.small_inputs = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "TrainingProbe":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class GeneratorPass:
    """`measure(arithmetic) -> seconds` of one forward and backward pass of the first generator (A
    to B, or the one direction a model learns) of `iteration`'s throwaway Trainer (a TrainingProbe)
    on its own random batch at the run's crop, timed by the same clock."""

    def __init__(self, iteration: TrainingProbe):
        self.iteration = iteration

    def iteration_ratio(self, arithmetic: Arithmetic) -> float | None:
        """How many of these passes one iteration costs in `arithmetic`, both timed (after an
        untimed call each) on images of RATIO_SIDE pixels; None where the crop is no larger (or the
        generator takes no smaller images), where only an iteration at the crop can tell."""
        iteration = self.iteration
        iteration.ensure_built()
        if iteration.small_inputs is None:
            return None
        with iteration.on_small_images():
            iteration(arithmetic)
            iteration_seconds = iteration(arithmetic)
            self(arithmetic)
            return iteration_seconds / self(arithmetic)

    def real_images(self, trainer, name: str) -> torch.Tensor:
        return self.iteration.inputs[0 if name == "G_AB" else 1]

    def __call__(self, arithmetic: Arithmetic) -> float:
        trainer = self.iteration.ensure_built()
        switch_arithmetic(trainer, arithmetic)
        name, generator = next((name, network) for name, network in trainer.model.networks().items()
                               if name.startswith("G_"))
        real = self.real_images(trainer, name).contiguous(memory_format=trainer.memory_format)
        synchronize(trainer.device)
        timer = self.iteration.timer or call_clock(trainer.device)
        start = timer()
        with arithmetic.autocast(trainer.device):
            fake = generator(real)
        fake.float().mean().backward()
        synchronize(trainer.device)
        seconds = timer() - start
        for parameter in generator.parameters():
            parameter.grad = None
        return seconds
