"""Where a run's numbers go besides its own files: TensorBoard, Weights & Biases, MLflow (`--log-to`).

Each is a `Tracker`, and `Trackers` hands every call to each of them: the scalars of log.jsonl, the
validation scores (prefixed "validation/"), the warnings (as text) and the gallery strips. Each one
is optional: `check_available`, called when the trainer is built, turns a missing package into a
ConfigError naming the extra that installs it, before anything trains. A tracker that raises
during the run (a network gone, a full disk) is reported once and left out from then on; the run's
own files (log.jsonl, metrics.jsonl, gallery/) are the record, a tracker holds a copy. The W&B and
MLflow runs' ids are kept in the run folder's trackers.json, so that a resumed run goes on logging
to the same tracker runs.

The packages are imported only when a tracker is asked for.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

from PIL import Image

from cyclegan.config import RunConfig, TrainConfig, parse_trackers
from cyclegan.errors import ConfigError

IDS_FILE = "trackers.json"  # in the run folder: the tracker runs' ids, for --resume
# Tracker name -> (the module it needs, the extra that installs it).
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


class Tracker:
    """One place a run is watched from. `step` is the training iteration."""

    name = "tracker"
    run_id: str | None = None  # the tracker's own run, continued when the run is resumed

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def log_text(self, tag: str, text: str, step: int) -> None:
        raise NotImplementedError

    def log_images(self, images: dict[str, Image.Image], step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Trackers:
    """Every tracker of a run, called in turn; one that raises is reported once and dropped."""

    def __init__(self, trackers: list[Tracker]):
        self.active = list(trackers)
        self.failed: list[tuple[str, str]] = []  # (tracker, what went wrong)

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        self._each(lambda tracker: tracker.log_scalars(values, step))

    def log_text(self, tag: str, text: str, step: int) -> None:
        self._each(lambda tracker: tracker.log_text(tag, text, step))

    def log_images(self, images: dict[str, Image.Image], step: int) -> None:
        if images:
            self._each(lambda tracker: tracker.log_images(images, step))

    def close(self) -> None:
        self._each(lambda tracker: tracker.close())
        self.active = []

    def _each(self, call) -> None:
        for tracker in list(self.active):
            try:
                call(tracker)
            except Exception as error:  # a tracker is a copy of the run's files: never stop training for it
                self.active.remove(tracker)
                reason = f"{type(error).__name__}: {error}".strip().splitlines()[0]
                self.failed.append((tracker.name, reason))
                _report(f"warning: --log-to {tracker.name} failed and is left out for the rest of the run "
                        f"({reason}); log.jsonl, metrics.jsonl and gallery/ keep everything")


def tracker_names(run: RunConfig) -> tuple[str, ...]:
    """The trackers a run logs to: its --log-to, else TensorBoard when installed and not --no-tensorboard."""
    names = parse_trackers(run.log_to)
    if names is None:
        return ("tensorboard",) if run.tensorboard and _installed("tensorboard") else ()
    if "tensorboard" in names and not run.tensorboard:
        raise ConfigError(f"--log-to {run.log_to} asks for TensorBoard and --no-tensorboard turns it off; "
                          "leave one of them out")
    return names


def check_available(names: tuple[str, ...]) -> None:
    """ConfigError for the first tracker in `names` whose package is not installed."""
    for name in names:
        module, extra = PACKAGES[name]
        if not _installed(module):
            raise ConfigError(f"--log-to {name} needs the {module} package, which is not installed: "
                              f"pip install 'cyclegan[{extra}]', or leave {name} out of --log-to")


def open_trackers(names: tuple[str, ...], run_dir: Path, config: TrainConfig, resumed: bool = False) -> Trackers:
    """Start each tracker of `names` for the run in `run_dir` (a `resumed` run continues the
    tracker runs it logged to before). One that cannot start is a ConfigError (nothing has
    trained yet, so the user can fix it and start again)."""
    check_available(names)
    ids_path = Path(run_dir) / IDS_FILE
    ids = _read_ids(ids_path) if resumed else {}
    opened: list[Tracker] = []
    for name in names:
        try:
            opened.append(TRACKER_CLASSES[name](Path(run_dir), config, ids.get(name)))
        except Exception as error:
            Trackers(opened).close()
            reason = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            raise ConfigError(f"--log-to {name} could not start ({reason}); {START_ADVICE[name]}") from error
    ids.update({tracker.name: tracker.run_id for tracker in opened if tracker.run_id is not None})
    if ids:
        from cyclegan.fileio import write_text_atomic

        write_text_atomic(ids_path, json.dumps(ids, indent=2) + "\n")
    return Trackers(opened)


def _read_ids(path: Path) -> dict[str, str]:
    try:
        ids = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {name: value for name, value in ids.items() if isinstance(value, str)} if isinstance(ids, dict) else {}


START_ADVICE = {
    "tensorboard": "check that the run folder is writable",
    "wandb": "log in with `wandb login`, or set WANDB_MODE=offline and sync the run later with `wandb sync`",
    "mlflow": "set MLFLOW_TRACKING_URI to your tracking server (or to file:PATH for a local store)",
}


class TensorBoardTracker(Tracker):
    """Event files in <run>/tensorboard/, for `tensorboard --logdir runs`."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, config: TrainConfig, run_id: str | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)
        self.writer.flush()

    def log_images(self, images: dict[str, Image.Image], step: int) -> None:
        import numpy as np

        for key, image in images.items():
            self.writer.add_image(key, np.asarray(image.convert("RGB")), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """A W&B run named as the run, in project --tracker-project, with the run's config. Its files go
    to WANDB_DIR when set, else to the run folder (<run>/wandb/)."""

    name = "wandb"

    def __init__(self, run_dir: Path, config: TrainConfig, run_id: str | None = None):
        import wandb

        self.wandb = wandb
        # console="off": W&B would otherwise wrap stdout and stderr, under the progress bar.
        self.run = wandb.init(project=config.run.tracker_project, name=config.run.name,
                              dir=os.environ.get("WANDB_DIR") or str(run_dir), config=config.to_dict(),
                              id=run_id, resume="allow" if run_id else None, settings=wandb.Settings(console="off"))
        self.run_id = self.run.id

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def log_text(self, tag: str, text: str, step: int) -> None:
        self.run.log({tag: text}, step=step)

    def log_images(self, images: dict[str, Image.Image], step: int) -> None:
        self.run.log({key: self.wandb.Image(image) for key, image in images.items()}, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker(Tracker):
    """An MLflow run named as the run, in experiment --tracker-project, with the config as
    parameters ("model.ngf"); the tracking store is MLflow's own choice (MLFLOW_TRACKING_URI)."""

    name = "mlflow"

    def __init__(self, run_dir: Path, config: TrainConfig, run_id: str | None = None):
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        if run_id is not None:
            try:
                self.run_id = self.client.get_run(run_id).info.run_id
            except MlflowException:  # deleted, or another tracking store: a new run then
                run_id = None
            else:
                self.client.update_run(self.run_id, status="RUNNING")
                return
        project = config.run.tracker_project
        experiment = self.client.get_experiment_by_name(project)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(project)
        self.run_id = self.client.create_run(experiment_id, run_name=config.run.name).info.run_id
        params = [Param(f"{section}.{name}", str(value)) for section, fields in config.to_dict().items()
                  for name, value in fields.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step) for key, value in values.items()])

    def log_text(self, tag: str, text: str, step: int) -> None:
        self.client.log_text(self.run_id, text, f"{tag}/iteration_{step:08d}.txt")

    def log_images(self, images: dict[str, Image.Image], step: int) -> None:
        for key, image in images.items():
            self.client.log_image(self.run_id, image, key=key, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


TRACKER_CLASSES: dict[str, type[Tracker]] = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker,
                                              "mlflow": MlflowTracker}


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _report(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


__all__ = ["Tracker", "Trackers", "tracker_names", "check_available", "open_trackers"]
