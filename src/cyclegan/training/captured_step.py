"""The whole training iteration as one CUDA graph (`--cuda-graphs`).

At batch 1 an iteration is several hundred small kernels, and on a fast GPU the host launching
them one at a time, not the GPU computing them, sets the pace (docs/PERFORMANCE.md). Captured
once, the iteration's kernels (both generators' and both discriminators' passes and backward
passes, the losses, the image history's choice and both Adam updates) are replayed by one call.
What stays on the host is what has to: the image history's random draw, made before each replay
into small tensors the graph reads, and reading the losses back after it.

The uncaptured step checks the losses on the host before its optimizers step; a replay cannot
stop halfway for the host, so here the check runs on the device: Adam's fused kernel leaves the
weights (and its step count) as they were when its `found_inf` tensor is set, the mechanism loss
scaling uses, and the history keeps its old images. A non-finite loss therefore changes no weight
and no stored image, as without graphs; the trainer then reports it, or counts the skipped step,
from the values read back, exactly as it does for the uncaptured step.

The first WARM_UP_ITERATIONS iterations of a run (and of a resumed one) are ordinary steps:
cuDNN's choice of algorithms and Adam's state must exist before a capture. A batch of another
shape (the last, smaller batch of an epoch) is also trained by an ordinary step, the history
handed over to it and taken back.

`CapturedStep(trainer, replay=False)` runs the very same step eagerly, without a graph: that is
how the tests check on a CPU that it computes what the ordinary step computes.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
from tqdm import tqdm

from cyclegan.config import ONE_DIRECTION_MODELS, TrainConfig
from cyclegan.device import autocast
from cyclegan.errors import ConfigError
from cyclegan.training.objective import LossTerms, stacked
from cyclegan.training.pool import ImagePool

# Ordinary steps before the capture: enough for cuDNN's algorithm search (torch.backends.cudnn.benchmark)
# and Adam's lazily created moments, as PyTorch's whole-network capture recipe does.
WARM_UP_ITERATIONS = 3
# fp16's loss scaling decides on the host after each backward pass, which a replay cannot do.
UNCAPTURABLE_PRECISIONS = ("fp16",)


def check_capturable(config: TrainConfig, distributed: bool) -> None:
    """ConfigError for a --cuda-graphs run on a CUDA GPU whose step cannot be one graph, saying why."""
    model, loss, run = config.model, config.loss, config.run
    reasons = []
    if model.model in ONE_DIRECTION_MODELS:
        reasons.append(f"--model {model.model} draws its PatchNCE patch positions on the host every iteration, "
                       "which a replayed graph would repeat")
    if run.precision in UNCAPTURABLE_PRECISIONS:
        reasons.append("--precision fp16's loss scaling decides on the host after each backward pass; "
                       "use bf16 (or auto, which leaves fp16 out with --cuda-graphs)")
    if loss.d_steps != 1:
        reasons.append(f"--d-steps {loss.d_steps} alternates two kinds of iteration")
    if run.compile:
        reasons.append("--compile's networks are not captured inside a graph of the whole step")
    if distributed:
        reasons.append("under torchrun the gradients are averaged between processes outside the graph")
    if reasons:
        raise ConfigError("--cuda-graphs cannot capture this run's training step: " + "; ".join(reasons)
                          + ". Leave out --cuda-graphs for it")


class CapturedHistory:
    """One domain's image history (an ImagePool) held in device memory for a captured step.

    The pool's own random stream decides, per image and before the replay, where the new image
    goes and whether an old one is returned instead (`ImagePool.choose`, the rule its `query`
    applies); the graph then moves the images. The pool's `images` list is brought up to date
    (`to_pool`) before anything else reads it: a checkpoint, an ordinary step."""

    def __init__(self, pool: ImagePool, batch: int, device: torch.device, memory_format: torch.memory_format):
        if not pool.images:
            raise AssertionError("the history is taken over after the warm-up steps have filled it")
        example = pool.images[0]
        self.pool = pool
        self.memory_format = memory_format
        self.images = torch.zeros((pool.size, *example.shape[1:]), dtype=example.dtype, device=device)
        self.filled = 0
        self.from_pool()
        # Per image of a batch: the slot it concerns, 1 if the slot's old image is returned, 1 if it is stored.
        self.plan = torch.zeros((batch, 3), dtype=torch.long, device=device)

    def from_pool(self) -> None:
        self.filled = len(self.pool.images)
        if self.filled:
            self.images[:self.filled].copy_(torch.cat(self.pool.images))

    def to_pool(self) -> None:
        self.pool.images = [self.images[slot:slot + 1].clone() for slot in range(self.filled)]

    def draw(self) -> None:
        """This iteration's choices, from the pool's random stream, into `plan`."""
        rows = []
        for _ in range(self.plan.shape[0]):
            slot, returns_stored = self.pool.choose(self.filled)
            if slot is None:
                rows.append((0, 0, 0))
                continue
            rows.append((slot, int(returns_stored), 1))
            self.filled += not returns_stored
        self.plan.copy_(torch.tensor(rows, dtype=torch.long), non_blocking=True)

    def snapshot(self) -> tuple:
        return self.filled, self.pool.snapshot()

    def restore(self, snapshot: tuple) -> None:
        self.filled, pool_snapshot = snapshot
        self.pool.restore(pool_snapshot)

    def query(self, fakes: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees for `fakes` (the graph's part of ImagePool.query); new images
        are stored only where `keep` (the generators' losses were finite). Image by image, so that
        a slot chosen twice in one batch returns the image stored a moment before, as the pool does."""
        chosen = []
        for index in range(fakes.shape[0]):
            slot, returns_stored, stores = self.plan[index, 0:1], self.plan[index, 1].bool(), self.plan[index, 2].bool()
            fake = fakes[index:index + 1].to(self.images.dtype)
            stored = self.images.index_select(0, slot)
            chosen.append(torch.where(returns_stored, stored, fake))
            self.images.index_copy_(0, slot, torch.where(stores & keep, fake, stored))
        return torch.cat(chosen).contiguous(memory_format=self.memory_format)


def _nonfinite(terms: LossTerms) -> torch.Tensor:
    """1.0 when any of the terms is NaN or infinite, else 0.0, on the device (Adam's `found_inf`)."""
    return (~torch.isfinite(stacked(terms.terms.values()))).any().float()


def make_capturable(optimizer: torch.optim.Adam, device: torch.device) -> None:
    """Switch a built Adam to its fused, capturable form: the learning rate a tensor that the
    schedule changes in place (a captured float would stay what it was at capture) and the step
    counts on the device. The arithmetic of an update is Adam's either way."""
    for group in optimizer.param_groups:
        lr = group["lr"]
        group.update(fused=True, capturable=True, foreach=False,
                     lr=lr if isinstance(lr, torch.Tensor) else torch.tensor(float(lr), device=device))
    for state in optimizer.state.values():
        if "step" in state:
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


def ordinary_state(optimizer: torch.optim.Optimizer) -> dict:
    """`optimizer.state_dict()` as an uncaptured run's Adam saves it (float learning rate, step
    counts on the host, not fused), so that any run can resume a captured run's checkpoint."""
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"] = float(group["lr"])
        if group.get("capturable"):
            group.update(fused=None, capturable=False, foreach=None)
    state["state"] = {index: {name: value.cpu() if name == "step" else value for name, value in entry.items()}
                      for index, entry in state["state"].items()}
    return state


class CapturedStep:
    """The trainer's iteration, captured in one CUDA graph after the warm-up (see the module).
    Call it as `step(real_a, real_b, ordinary)`, `ordinary` being the trainer's uncaptured step,
    which it uses while warming up and for a batch of another shape."""

    def __init__(self, trainer, replay: bool = True):
        self.trainer = trainer
        self.replay = replay
        self.warm_ups_left = WARM_UP_ITERATIONS
        self.graph: torch.cuda.CUDAGraph | None = None
        self.shapes: tuple | None = None
        self.histories: dict[str, CapturedHistory] = {}
        self.names: list[str] = []  # of the values the step logs, in the order `values` holds them
        self.names_g: list[str] = []
        self.names_d: list[str] = []
        self.values: torch.Tensor | None = None
        self._graph_gradients: list[tuple[torch.nn.Parameter, torch.Tensor]] = []  # where the replays write them
        self._side_stream = torch.cuda.Stream() if replay else None
        self.failure: str | None = None  # why the capture failed, if it did: then every step is ordinary

    @property
    def captured(self) -> bool:
        return self.shapes is not None

    def __call__(self, real_a: torch.Tensor, real_b: torch.Tensor,
                 ordinary: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]) -> dict[str, float]:
        if self.failure is not None:
            return ordinary(real_a, real_b)
        if self.warm_ups_left > 0 or not (self.captured or self._history_started()):
            self.warm_ups_left = max(0, self.warm_ups_left - 1)
            return self._warm_up(real_a, real_b, ordinary)
        if not self.captured:
            return self._first_step(real_a, real_b, ordinary)
        if (real_a.shape, real_b.shape) != self.shapes:
            return self._uncaptured(real_a, real_b, ordinary)
        return self._step(real_a, real_b)

    def _first_step(self, real_a, real_b, ordinary) -> dict[str, float]:
        """Capture, then the first replay. Should torch refuse to capture this step (a CUDA or
        library version whose kernels cannot be captured), the run goes on with ordinary steps
        and says so: nothing of the capture was executed, so the weights, Adam's state and the
        history are as before it (the pools' random streams are put back too)."""
        pools = {domain: pool.snapshot() for domain, pool in self.trainer.pools.items()}
        try:
            self._capture(real_a, real_b)
            return self._step(real_a, real_b)
        except RuntimeError as error:
            for domain, snapshot in pools.items():
                self.trainer.pools[domain].restore(snapshot)
            self._give_up(error)
            return ordinary(real_a, real_b)

    def _give_up(self, error: RuntimeError) -> None:
        self.failure = (str(error).strip().splitlines() or [type(error).__name__])[0]
        self.graph, self.shapes, self.values = None, None, None
        self.histories, self._graph_gradients = {}, []
        self.trainer.optimizer_g.zero_grad(set_to_none=True)
        self.trainer.optimizer_d.zero_grad(set_to_none=True)
        tqdm.write(f"--cuda-graphs: this training step could not be captured ({self.failure}); "
                   "training goes on without CUDA graphs")

    def _history_started(self) -> bool:
        """Whether every image history the step uses holds an image (the capture takes its shape
        and type from one; warm-up steps skipped for a non-finite loss may have stored none)."""
        trainer = self.trainer
        return not trainer.objective.trains_discriminators or all(
            pool.images for pool in trainer.pools.values() if pool.size > 0)

    def _warm_up(self, real_a, real_b, ordinary) -> dict[str, float]:
        if not self.replay:
            return ordinary(real_a, real_b)
        # On a side stream, as the capture will be: lazily made state (cuDNN's, cuBLAS's) then
        # belongs to work the capture can replay.
        side, current = self._side_stream, torch.cuda.current_stream()
        side.wait_stream(current)
        with torch.cuda.stream(side):
            values = ordinary(real_a, real_b)
        current.wait_stream(side)
        return values

    def _uncaptured(self, real_a, real_b, ordinary) -> dict[str, float]:
        for history in self.histories.values():
            history.to_pool()
        values = ordinary(real_a, real_b)
        for history in self.histories.values():
            history.from_pool()
        # The ordinary step made gradients of its own; the parameters point at the graph's again.
        for parameter, gradient in self._graph_gradients:
            parameter.grad = gradient
        return values

    def sync_pools(self) -> None:
        """Bring the trainer's ImagePools up to date with the device's history (before a checkpoint)."""
        for history in self.histories.values():
            history.to_pool()

    # ---------------------------------------------------------------------------------- capture
    def _capture(self, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
        trainer = self.trainer
        device = trainer.device
        self.shapes = (real_a.shape, real_b.shape)
        self.real_a = torch.empty_like(real_a)
        self.real_b = torch.empty_like(real_b)
        for domain, pool in trainer.pools.items():
            if pool.size > 0 and trainer.objective.trains_discriminators:
                self.histories[domain] = CapturedHistory(pool, real_a.shape[0], device, trainer.memory_format)
        self.skip_g = torch.zeros((), device=device)
        self.skip_d = torch.zeros((), device=device)
        for optimizer in (trainer.optimizer_g, trainer.optimizer_d):
            make_capturable(optimizer, device)
        if self.replay:
            # Gradients must not exist yet: the captured backward passes then write them afresh at every replay.
            trainer.optimizer_g.zero_grad(set_to_none=True)
            trainer.optimizer_d.zero_grad(set_to_none=True)
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: the data loader's pin-memory thread may call CUDA while this thread captures.
            with self._found_inf(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.values = self._body()
            self._graph_gradients = [(parameter, parameter.grad) for parameter in trainer.model.parameters()
                                     if parameter.grad is not None]

    @contextlib.contextmanager
    def _found_inf(self):
        """Adam reads `found_inf` from its own attribute when it steps; set only while the step is
        built (captured, or run eagerly), so that an ordinary step never sees it."""
        optimizers = self.trainer.optimizer_g, self.trainer.optimizer_d
        for optimizer, flag in zip(optimizers, (self.skip_g, self.skip_d)):
            optimizer.found_inf = flag
        try:
            yield
        finally:
            for optimizer in optimizers:
                del optimizer.found_inf

    def _body(self) -> torch.Tensor:
        """One iteration on the static inputs; returns every logged value stacked in one tensor
        (generator terms, discriminator terms, then the reported accuracies)."""
        trainer = self.trainer
        objective = trainer.objective
        # autocast's cache of cast weights would be freed with the context, under the graph's feet.
        precision = autocast(trainer.device, trainer.config.run.precision, cache=False)
        with precision, trainer.judges_fixed():
            terms_g, outputs = objective.generator_terms(self.real_a, self.real_b)
            loss_g = terms_g.total
        loss_g.backward()
        skip_g = _nonfinite(terms_g)
        terms_d = LossTerms()
        if objective.trains_discriminators:
            keep = skip_g == 0
            history = {domain: (self.histories[domain].query(fake.detach(), keep) if domain in self.histories
                                else fake.detach()) for domain, fake in outputs.fakes.items()}
            with precision:
                terms_d = objective.discriminator_terms(self.real_a, self.real_b, history)
                loss_d = terms_d.total
            loss_d.backward()
            self.skip_d.copy_(torch.maximum(skip_g, _nonfinite(terms_d)))
        self.skip_g.copy_(skip_g)
        trainer.optimizer_g.step()
        if terms_d.terms:
            trainer.optimizer_d.step()
        self.names_g, self.names_d = list(terms_g.terms), list(terms_d.terms)
        record = {**terms_g.to_record(), **terms_d.to_record()}
        self.names = list(record)
        return stacked(record.values())

    # ---------------------------------------------------------------------------------- replay
    def _step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        trainer = self.trainer
        self.real_a.copy_(real_a)
        self.real_b.copy_(real_b)
        snapshots = {domain: history.snapshot() for domain, history in self.histories.items()}
        for history in self.histories.values():
            history.draw()
        if self.replay:
            self.graph.replay()
        else:
            trainer.optimizer_g.zero_grad(set_to_none=True)
            trainer.optimizer_d.zero_grad(set_to_none=True)
            with self._found_inf():
                self.values = self._body()
        values = trainer.dist.mean(dict(zip(self.names, self.values.tolist())))

        def restore_history() -> None:
            for domain, snapshot in snapshots.items():
                self.histories[domain].restore(snapshot)

        # The device applied each update only where its losses were finite; the trainer accounts for it.
        return trainer.settle(values, self.names_g, self.names_d, restore_history, step_g=None, step_d=None)
