"""The training loop (paper section 4: Adam, batch 1, history pool, 100 + 100 epochs).

A run is fully described by its TrainConfig and its latest checkpoint: resuming restores the
networks, both optimisers, both schedules, both image pools, the RNG state and the position
inside the current epoch, so N iterations, a stop, and M more give the same weights as N + M
iterations in one go (on the CPU, in fp32).
"""
from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cyclegan import losses
from cyclegan.config import TrainConfig
from cyclegan.data.datasets import UnalignedDataset, collate_samples
from cyclegan.data.images import image_to_tensor, list_images, load_image, tensor_to_image
from cyclegan.data.transforms import preprocess
from cyclegan.device import autocast, select_device
from cyclegan.errors import CheckpointError, ConfigError, CycleGANError, DatasetError, UnreadableImageError
from cyclegan.networks import size_multiple
from cyclegan.training import checkpoint as ckpt
from cyclegan.training.model import CycleGAN
from cyclegan.training.pool import ImagePool
from cyclegan.training.report import MetricsLog, plot_history, save_gallery
from cyclegan.training.schedules import LearningRateSchedule


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


def training_folders(config: TrainConfig) -> tuple[Path, Path, Path | None, Path | None]:
    """(trainA, trainB, testA or None, testB or None) from --data or --domain-a/--domain-b."""
    if config.data.domain_a and config.data.domain_b:
        return Path(config.data.domain_a), Path(config.data.domain_b), None, None
    root = Path(config.data.data)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    missing = [name for name in ("trainA", "trainB") if not (root / name).is_dir()]
    if missing:
        raise DatasetError(f"{root} has no {' or '.join(missing)}/ folder; a dataset needs trainA/ and trainB/ "
                           "(or give two folders with --domain-a and --domain-b)")
    test_a, test_b = root / "testA", root / "testB"
    return root / "trainA", root / "trainB", test_a if test_a.is_dir() else None, test_b if test_b.is_dir() else None


def epoch_order(length: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The order in which an epoch visits the dataset: a permutation that depends only on
    (seed, epoch), so that a resumed run continues the very same sequence."""
    if not shuffle:
        return np.arange(length)
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(length)


def set_requires_grad(modules, flag: bool) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(flag)


class Trainer:
    """Owns one run: its folder, model, optimisers, data and bookkeeping."""

    def __init__(self, config: TrainConfig, resume: ckpt.CheckpointFiles | None = None):
        config.validate()
        self.config = config
        self.device = select_device(config.run.device)
        self.run_dir = Path(config.run.runs_dir) / config.run.name
        self.checkpoint_dir = self.run_dir / "checkpoints"
        if resume is None and ckpt.read_latest(self.checkpoint_dir) is not None:
            raise ConfigError(f"run folder {self.run_dir} already holds checkpoints; continue it with "
                              f"`cyclegan train --resume {self.run_dir}` or choose another --name")

        # Data first: a dataset that cannot be used is reported before any model is built.
        data = config.data
        train_a, train_b, test_a, test_b = training_folders(config)
        self.dataset = UnalignedDataset(
            train_a, train_b, input_nc=config.model.input_nc, output_nc=config.model.output_nc,
            preprocess=data.preprocess, load_size=data.load_size, crop_size=data.crop_size, flip=data.flip,
            serial_batches=data.serial_batches, seed=config.run.seed, size_multiple=size_multiple(config.model.net_g))
        self.skipped_files: set[str] = {str(path) for path, _reason in self.dataset.skipped}
        self.iterations_per_epoch = math.ceil(len(self.dataset) / data.batch_size)

        torch.manual_seed(config.run.seed)
        self.model = CycleGAN(config.model).to(self.device)
        self.memory_format = torch.channels_last if config.run.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        # Batch norm mixes the images of a batch, so only instance/no norm may be batched.
        self.batch_generator_calls = config.run.batch_generator_calls and config.model.norm != "batch"
        self.generators = {"AB": self.model.G_AB, "BA": self.model.G_BA}
        self.discriminators = {"A": self.model.D_A, "B": self.model.D_B}
        if config.run.compile:
            self.generators = {key: torch.compile(net) for key, net in self.generators.items()}
            self.discriminators = {key: torch.compile(net) for key, net in self.discriminators.items()}
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
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.run.precision == "fp16")

        self.epoch = 0
        self.iteration = 0
        self.position = 0  # batches of the current epoch already trained
        self.epoch_loss_sum = 0.0
        self.epoch_loss_count = 0
        self.nonfinite_skipped = 0
        self.stop_signal: int | None = None
        if resume is not None:
            self._restore(resume)

        self.gallery_inputs = self._gallery_inputs(test_a or train_a, test_b or train_b)

    # ----------------------------------------------------------------------------- checkpoints
    def training_state(self) -> dict:
        return {
            "epoch": self.epoch, "iteration": self.iteration, "position": self.position,
            "epoch_loss_sum": self.epoch_loss_sum, "epoch_loss_count": self.epoch_loss_count,
            "nonfinite_skipped": self.nonfinite_skipped,
            "optimizer_g": self.optimizer_g.state_dict(), "optimizer_d": self.optimizer_d.state_dict(),
            "schedule_g": self.schedule_g.state_dict(), "schedule_d": self.schedule_d.state_dict(),
            "pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict(),
            "grad_scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def save(self) -> Path:
        modules = {"G_AB": self.model.G_AB, "G_BA": self.model.G_BA, "D_A": self.model.D_A, "D_B": self.model.D_B}
        files = ckpt.save_checkpoint(self.checkpoint_dir, modules, self.config.model, self.training_state(),
                                     epoch=self.epoch, iteration=self.iteration, keep_last=self.config.run.keep_last)
        return files.weights

    def _restore(self, files: ckpt.CheckpointFiles) -> None:
        if files.state is None or not files.state.exists():
            raise CheckpointError(f"{files.weights} has no training state beside it (.state.pt); "
                                  "it can be used for translation but not to resume training")
        ckpt.load_weights(files.weights, {"G_AB": self.model.G_AB, "G_BA": self.model.G_BA,
                                          "D_A": self.model.D_A, "D_B": self.model.D_B}, self.device)
        state = ckpt.load_training_state(files.state)
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.schedule_g.load_state_dict(state["schedule_g"])
        self.schedule_d.load_state_dict(state["schedule_d"])
        self.pool_a.load_state_dict(state["pool_a"], self.device)
        self.pool_b.load_state_dict(state["pool_b"], self.device)
        self.scaler.load_state_dict(state["grad_scaler"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch, self.iteration, self.position = state["epoch"], state["iteration"], state["position"]
        self.epoch_loss_sum, self.epoch_loss_count = state["epoch_loss_sum"], state["epoch_loss_count"]
        self.nonfinite_skipped = state["nonfinite_skipped"]

    # ----------------------------------------------------------------------------- one iteration
    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        """One iteration: a generator update (every d_steps-th iteration), then a discriminator update.

        Returns the loss terms and discriminator accuracies as floats. Raises NonFiniteLossError
        before any weight changes if a loss is NaN/inf (unless --skip-nonfinite).
        """
        model, loss_cfg = self.model, self.config.loss
        mode = loss_cfg.gan_mode
        values: dict[str, float] = {}
        update_generators = (self.iteration + 1) % loss_cfg.d_steps == 0
        precision = autocast(self.device, self.config.run.precision)

        if update_generators:
            set_requires_grad([model.D_A, model.D_B], False)  # D is a fixed judge during the G update
            with precision:
                images = self._generator_outputs(real_a, real_b, identity=loss_cfg.lambda_identity > 0)
                terms = {
                    "loss_G_AB": losses.generator_adversarial_loss(mode, self.discriminators["B"](images["fake_b"])),
                    "loss_G_BA": losses.generator_adversarial_loss(mode, self.discriminators["A"](images["fake_a"])),
                    "loss_cycle_A": losses.cycle_loss(images["reconstructed_a"], real_a) * loss_cfg.lambda_a,
                    "loss_cycle_B": losses.cycle_loss(images["reconstructed_b"], real_b) * loss_cfg.lambda_b,
                }
                if loss_cfg.lambda_identity > 0:
                    terms["loss_idt_A"] = (losses.identity_loss(images["identity_a"], real_a)
                                           * loss_cfg.lambda_a * loss_cfg.lambda_identity)
                    terms["loss_idt_B"] = (losses.identity_loss(images["identity_b"], real_b)
                                           * loss_cfg.lambda_b * loss_cfg.lambda_identity)
                loss_g = sum(terms.values())
            values.update(self._checked(terms))
            if values.get("skipped"):
                set_requires_grad([model.D_A, model.D_B], True)
                return values
            self.optimizer_g.zero_grad(set_to_none=True)
            self.scaler.scale(loss_g).backward()
            self.scaler.step(self.optimizer_g)
            set_requires_grad([model.D_A, model.D_B], True)
            self.epoch_loss_sum += values_sum(values)
            self.epoch_loss_count += 1
            fake_a, fake_b = images["fake_a"], images["fake_b"]
        else:
            with torch.no_grad(), precision:
                fake_b = self.generators["AB"](real_a)
                fake_a = self.generators["BA"](real_b)

        # Discriminators see a history of generated images, not only this iteration's.
        history_b = self.pool_b.query(fake_b.detach())
        history_a = self.pool_a.query(fake_a.detach())
        with precision:
            terms = {}
            accuracies = {}
            for name, real, fake in (("A", real_a, history_a), ("B", real_b, history_b)):
                discriminator = self.discriminators[name]
                pred_real, pred_fake = self._judge(discriminator, real, fake)
                loss_d = losses.discriminator_adversarial_loss(mode, pred_real, pred_fake)
                if mode == "wgangp":
                    loss_d = loss_d + loss_cfg.gp_weight * losses.gradient_penalty(discriminator, real, fake)
                terms[f"loss_D_{name}"] = loss_d / loss_cfg.d_ratio
                accuracies[f"acc_D_{name}"] = losses.discriminator_accuracy(mode, pred_real, pred_fake)
            loss_d = terms["loss_D_A"] + terms["loss_D_B"]
        checked = self._checked(terms)
        values.update(checked)
        if not checked.get("skipped"):
            values.update(accuracies)
            self.optimizer_d.zero_grad(set_to_none=True)
            self.scaler.scale(loss_d).backward()
            self.scaler.step(self.optimizer_d)
        self.scaler.update()
        return values

    def _generator_outputs(self, real_a: torch.Tensor, real_b: torch.Tensor, identity: bool) -> dict[str, torch.Tensor]:
        """G_AB(a), G_BA(G_AB(a)), G_BA(b), G_AB(G_BA(b)) and, with identity, G_BA(a) and G_AB(b).

        Batched, the six generator calls become three: images that one generator processes
        independently of each other are concatenated (instance norm works per image, so the
        result is the same as separate calls).
        """
        g_ab, g_ba = self.generators["AB"], self.generators["BA"]
        if not self.batch_generator_calls:
            out = {"fake_b": g_ab(real_a), "fake_a": g_ba(real_b)}
            out["reconstructed_a"], out["reconstructed_b"] = g_ba(out["fake_b"]), g_ab(out["fake_a"])
            if identity:
                out["identity_a"], out["identity_b"] = g_ba(real_a), g_ab(real_b)
            return out
        n = real_a.shape[0]
        if identity:
            fake_b, identity_b = g_ab(torch.cat([real_a, real_b])).split(n)
            fake_a, reconstructed_a, identity_a = g_ba(torch.cat([real_b, fake_b, real_a])).split(n)
        else:
            fake_b = g_ab(real_a)
            fake_a, reconstructed_a = g_ba(torch.cat([real_b, fake_b])).split(n)
        out = {"fake_b": fake_b, "fake_a": fake_a, "reconstructed_a": reconstructed_a,
               "reconstructed_b": g_ab(fake_a)}
        if identity:
            out["identity_a"], out["identity_b"] = identity_a, identity_b
        return out

    def _judge(self, discriminator, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D(real), D(fake) - in one batched call where that gives the same result."""
        if not self.batch_generator_calls:
            return discriminator(real), discriminator(fake)
        return discriminator(torch.cat([real, fake])).split(real.shape[0])

    def _checked(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        values = {name: float(value.detach()) for name, value in terms.items()}
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if not bad:
            return values
        if self.config.run.skip_nonfinite:
            self.nonfinite_skipped += 1
            return {"skipped": 1.0}
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
        order = epoch_order(len(self.dataset), self.config.run.seed, self.epoch,
                            shuffle=not self.config.data.serial_batches)
        indices = order[self.position * self.config.data.batch_size:].tolist()
        workers = self.config.data.num_workers
        return DataLoader(self.dataset, batch_size=self.config.data.batch_size, sampler=indices,
                          num_workers=workers, collate_fn=collate_samples,
                          pin_memory=self.device.type == "cuda", persistent_workers=False,
                          # Its own generator: worker seeding must not consume the global RNG,
                          # or a resumed run would diverge from an uninterrupted one.
                          generator=torch.Generator().manual_seed(self.config.run.seed),
                          prefetch_factor=4 if workers > 0 else None)

    def train(self) -> TrainResult:
        started = time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.save(self.run_dir / "config.json")
        tensorboard_dir = self.run_dir / "tensorboard" if self.config.run.tensorboard else None
        log = MetricsLog(self.run_dir / "log.jsonl", self.config.run.log_every, tensorboard_dir)
        planned = self.planned_iterations()
        progress = tqdm(total=planned, initial=min(self.iteration, planned), unit="it", dynamic_ncols=True,
                        disable=not self.config.run.progress, desc=self.config.run.name)
        previous_handlers = self._install_signal_handlers()
        last_checkpoint = None
        try:
            while self.epoch < self.config.total_epochs and self.iteration < planned:
                self.schedule_g.start_epoch(self.epoch)
                self.schedule_d.start_epoch(self.epoch)
                for batch in self._loader():
                    self.skipped_files.update(batch["skipped"])
                    step_started = time.perf_counter()
                    real_a = batch["A"].to(self.device, non_blocking=True, memory_format=self.memory_format)
                    real_b = batch["B"].to(self.device, non_blocking=True, memory_format=self.memory_format)
                    values = self.train_step(real_a, real_b)
                    self.iteration += 1
                    self.position += 1
                    values["seconds_per_iteration"] = time.perf_counter() - step_started
                    log.add(values)
                    if log.due(self.iteration):
                        log.flush(self.iteration, self.epoch + 1, {"lr_G": self.schedule_g.lr, "lr_D": self.schedule_d.lr})
                    progress.update(1)
                    progress.set_postfix(_postfix(values), refresh=False)
                    if self.stop_signal is not None or self.iteration >= planned:
                        log.flush(self.iteration, self.epoch + 1)
                        last_checkpoint = self._end_of_period(final=True)
                        return self._result(last_checkpoint, started)
                    if self.config.run.save_every and self.iteration % self.config.run.save_every == 0:
                        last_checkpoint = self.save()
                mean_loss = self.epoch_loss_sum / max(1, self.epoch_loss_count)
                self.schedule_g.end_epoch(mean_loss)
                self.schedule_d.end_epoch(mean_loss)
                self.epoch += 1
                self.position = 0
                self.epoch_loss_sum, self.epoch_loss_count = 0.0, 0
                log.flush(self.iteration, self.epoch)
                last_checkpoint = self._end_of_period(final=self.epoch >= self.config.total_epochs)
            return self._result(last_checkpoint, started)
        finally:
            self._restore_signal_handlers(previous_handlers)
            progress.close()
            log.close()

    def _end_of_period(self, final: bool) -> Path:
        """At an epoch end, and when stopping early: checkpoint, plots and (if due) the gallery."""
        checkpoint_path = self.save()
        plot_history(self.run_dir / "log.jsonl", self.run_dir)
        completed_epochs = self.epoch
        if final or completed_epochs % max(1, self.config.run.gallery_every) == 0:
            self.write_gallery(max(completed_epochs, 1) if self.position == 0 else completed_epochs + 1)
        return checkpoint_path

    def _result(self, checkpoint_path: Path | None, started: float) -> TrainResult:
        return TrainResult(self.run_dir, self.iteration, self.epoch, checkpoint_path, sorted(self.skipped_files),
                           self.nonfinite_skipped, self.stop_signal, time.perf_counter() - started)

    # ----------------------------------------------------------------------------- gallery
    def _gallery_inputs(self, folder_a: Path, folder_b: Path) -> dict[str, torch.Tensor]:
        """A fixed handful of images per domain, centre-cropped, shown at every epoch."""
        data = self.config.data
        multiple = size_multiple(self.config.model.net_g)
        inputs = {}
        for key, folder, channels in (("A", folder_a, self.config.model.input_nc),
                                      ("B", folder_b, self.config.model.output_nc)):
            tensors = []
            for path in list_images(folder):
                if len(tensors) == self.config.run.gallery_size:
                    break
                try:
                    image = load_image(path, channels)
                except UnreadableImageError:
                    continue
                image = preprocess(image, data.preprocess, data.load_size, data.crop_size, flip=False, rng=None,
                                   size_multiple=multiple)
                tensors.append(image_to_tensor(image))
            same_size = [t for t in tensors if t.shape == tensors[0].shape] if tensors else []
            inputs[key] = torch.stack(same_size).to(self.device) if same_size else None
        return inputs

    @torch.no_grad()
    def write_gallery(self, epoch: int) -> Path | None:
        if self.gallery_inputs.get("A") is None or self.gallery_inputs.get("B") is None:
            return None
        model = self.model
        # The gallery must not perturb training: its own RNG scope, eval mode, then back.
        with torch.random.fork_rng(devices=[]), autocast(self.device, self.config.run.precision):
            model.eval()
            try:
                rows = {}
                for direction, forward, backward, real in (
                    ("A to B", model.G_AB, model.G_BA, self.gallery_inputs["A"]),
                    ("B to A", model.G_BA, model.G_AB, self.gallery_inputs["B"]),
                ):
                    translated = forward(real)
                    reconstructed = backward(translated)
                    identity = backward(real) if real.shape[1] == translated.shape[1] else real
                    rows[direction] = [[tensor_to_image(t[i].float()) for t in (real, translated, reconstructed, identity)]
                                       for i in range(real.shape[0])]
            finally:
                model.train()
        return save_gallery(self.run_dir / "gallery", epoch, rows)

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


def values_sum(values: dict[str, float]) -> float:
    """The generator's total loss from its logged terms."""
    return sum(value for key, value in values.items() if key.startswith("loss_") and not key.startswith("loss_D"))


def _postfix(values: dict[str, float]) -> dict[str, str]:
    shown = {}
    generator = values_sum(values)
    if any(k.startswith("loss_G") for k in values):
        shown["G"] = f"{generator:.3f}"
    if "loss_D_A" in values:
        shown["D"] = f"{values['loss_D_A'] + values['loss_D_B']:.3f}"
    return shown
