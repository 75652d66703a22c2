"""`--log-to tensorboard,wandb,mlflow`: the run's scalars and gallery go to each tracker, read back with the
tracker's own files and client; a missing package stops the run before it trains; a tracker that
fails during the run is reported once and the run completes."""
from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

import pytest

from cyclegan.cli import main
from cyclegan.training import trackers

from conftest import require_module, tiny_train_argv

ITERATIONS = 3
WARNING = "D_A wins (a warning made up for the test)"


def warn_at_iteration_two(monkeypatch) -> None:
    """Make the run's health monitor raise one warning, at iteration 2."""
    from cyclegan.training.health import HealthMonitor, HealthWarning

    def observe_log(self, record):
        return ([HealthWarning("discriminator_wins", "D_A", 2, record["epoch"], WARNING)]
                if record["iteration"] == 2 else [])

    monkeypatch.setattr(HealthMonitor, "observe_log", observe_log)


def logged(run_dir) -> list[dict]:
    """The loss records of log.jsonl (not its warnings)."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [record for record in records if "warning" not in record]


def wandb_records(path):
    """The protobuf Records of an offline W&B run file: a LevelDB-style log (7-byte header ":W&B" +
    magic + version, then records of crc32, length, type in 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, offset, pending = 32768, 7, b""
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # a block's tail too short for a header is padding
            offset += block - offset % block
            continue
        length, kind = struct.unpack_from("<HB", data, offset + 4)
        pending += data[offset + 7:offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def finished_wandb_run_file(wandb_dir: Path) -> Path:
    """The offline run file under `wandb_dir` once W&B's service has written its last record (exit):
    the service writes the file in its own process, and may still be writing when `finish()` returns."""
    deadline = time.monotonic() + 30
    while True:
        files = list(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
        try:
            if len(files) == 1 and any(record.WhichOneof("record_type") == "exit" for record in wandb_records(files[0])):
                return files[0]
        except Exception:  # noqa: BLE001 - a record still being written does not parse yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished W&B run file under {wandb_dir}: {files}")
        time.sleep(0.1)


def wandb_history(path) -> list[dict]:
    """The history rows of an offline W&B run file."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for record in wandb_records(path) if record.WhichOneof("record_type") == "history"]


def test_wandb_offline_run_holds_the_logged_scalars_and_gallery(tiny_dataset, tmp_path, monkeypatch):
    require_module("wandb", "wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb_dir").mkdir()
    warn_at_iteration_two(monkeypatch)
    argv = tiny_train_argv(tiny_dataset, tmp_path / "runs", "w", "--max-iters", str(ITERATIONS), "--log-to", "wandb")
    assert main(argv) == 0
    rows = wandb_history(finished_wandb_run_file(tmp_path / "wandb_dir"))
    steps = {row["_step"]: row for row in rows}
    for record in logged(tmp_path / "runs" / "w"):
        row = steps[record["iteration"]]
        for key in ("loss_G_AB", "loss_cycle_A", "loss_D_B", "acc_D_A", "lr_G"):
            assert row[key] == record[key]
    gallery = [key.removesuffix("/_type") for row in rows for key, value in row.items()
               if key.startswith("gallery/") and key.endswith("/_type") and value == "image-file"]
    assert sorted(gallery) == ["gallery/AtoB_0", "gallery/AtoB_1", "gallery/BtoA_0", "gallery/BtoA_1"]
    assert [(row["_step"], row["warnings/discriminator_wins"]) for row in rows
            if "warnings/discriminator_wins" in row] == [(2, WARNING)]


def test_tensorboard_event_files_hold_the_logged_scalars_and_gallery(tiny_dataset, tmp_path, monkeypatch):
    require_module("tensorboard", "tensorboard")
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    warn_at_iteration_two(monkeypatch)
    argv = tiny_train_argv(tiny_dataset, tmp_path / "runs", "t", "--max-iters", str(ITERATIONS), "--log-to", "tensorboard")
    argv.remove("--no-tensorboard")
    assert main(argv) == 0
    events = EventAccumulator(str(tmp_path / "runs" / "t" / "tensorboard"), size_guidance={"images": 0}).Reload()
    records = logged(tmp_path / "runs" / "t")
    assert [record["iteration"] for record in records] == list(range(1, ITERATIONS + 1))
    for key in ("loss_G_AB", "loss_cycle_A", "loss_D_B", "acc_D_A", "lr_G"):
        # event files hold 32-bit floats
        assert [(event.step, event.value) for event in events.Scalars(key)] == [
            (record["iteration"], float(np.float32(record[key]))) for record in records]
    assert sorted(tag for tag in events.Tags()["images"]) == ["gallery/AtoB_0", "gallery/AtoB_1",
                                                              "gallery/BtoA_0", "gallery/BtoA_1"]
    assert "warnings/discriminator_wins/text_summary" in events.Tags()["tensors"]


def test_mlflow_file_store_holds_the_logged_scalars_params_and_gallery(tiny_dataset, tmp_path, monkeypatch):
    require_module("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this to use a local folder
    warn_at_iteration_two(monkeypatch)
    argv = tiny_train_argv(tiny_dataset, tmp_path / "runs", "m", "--max-iters", str(ITERATIONS), "--log-to", "mlflow",
                           "--tracker-project", "tests")
    assert main(argv) == 0
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.run_name == "m" and run.info.status == "FINISHED"
    assert run.data.params["model.ngf"] == "8" and run.data.params["run.log_to"] == "mlflow"
    records = logged(tmp_path / "runs" / "m")
    history = client.get_metric_history(run.info.run_id, "loss_G_AB")
    assert [(metric.step, metric.value) for metric in history] == [(r["iteration"], r["loss_G_AB"]) for r in records]
    images = {item.path for item in client.list_artifacts(run.info.run_id, "images")}
    assert len(images) == 8  # 4 gallery strips, each as PNG and as MLflow's compressed preview
    assert all(path.startswith("images/gallery~") for path in images)
    [warning] = client.list_artifacts(run.info.run_id, "warnings/discriminator_wins")
    assert warning.path == "warnings/discriminator_wins/iteration_00000002.txt"
    assert Path(client.download_artifacts(run.info.run_id, warning.path, str(tmp_path))).read_text() == WARNING


def test_a_resumed_run_goes_on_logging_to_the_same_mlflow_run(tiny_dataset, tmp_path, monkeypatch):
    require_module("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    runs = tmp_path / "runs"
    assert main(tiny_train_argv(tiny_dataset, runs, "r", "--max-iters", "2", "--log-to", "mlflow")) == 0
    assert main(["train", "--resume", str(runs / "r"), "--max-iters", "4"]) == 0
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("cyclegan").experiment_id])
    assert json.loads((runs / "r" / "trackers.json").read_text()) == {"mlflow": run.info.run_id}
    history = client.get_metric_history(run.info.run_id, "loss_G_AB")
    assert [(metric.step, metric.value) for metric in history] == [(r["iteration"], r["loss_G_AB"])
                                                                   for r in logged(runs / "r")]
    assert [metric.step for metric in history] == [1, 2, 3, 4]


class FlakyTracker(trackers.Tracker):
    """Stands in for a tracker whose server goes away after its first call."""

    name = "mlflow"
    calls = 0

    def __init__(self, run_dir, config, run_id=None):
        self.scalars = []

    def log_scalars(self, values, step):
        FlakyTracker.calls += 1
        if FlakyTracker.calls > 1:
            raise ConnectionError("tracking server unreachable\nsecond line")

    def log_text(self, tag, text, step):
        raise ConnectionError("tracking server unreachable")

    def log_images(self, images, step):
        raise ConnectionError("tracking server unreachable")


def test_a_tracker_failing_mid_run_is_reported_once_and_training_completes(tiny_dataset, tmp_path, monkeypatch,
                                                                           capsys):
    monkeypatch.setitem(trackers.TRACKER_CLASSES, "mlflow", FlakyTracker)
    monkeypatch.setattr(trackers, "_installed", lambda module: True)
    argv = tiny_train_argv(tiny_dataset, tmp_path / "runs", "f", "--max-iters", str(ITERATIONS), "--log-to", "mlflow")
    assert main(argv) == 0
    assert [record["iteration"] for record in logged(tmp_path / "runs" / "f")] == [1, 2, 3]
    failures = [line for line in capsys.readouterr().err.splitlines() if "--log-to mlflow failed" in line]
    assert failures == ["warning: --log-to mlflow failed and is left out for the rest of the run (ConnectionError: "
                        "tracking server unreachable); log.jsonl, metrics.jsonl and gallery/ keep everything"]
    assert FlakyTracker.calls == 2


@pytest.mark.parametrize("tracker, module, extra", [("wandb", "wandb", "wandb"), ("mlflow", "mlflow", "mlflow"),
                                                    ("tensorboard", "tensorboard", "tensorboard")])
def test_a_missing_tracker_package_stops_the_run_before_it_trains(tracker, module, extra, tiny_dataset, tmp_path,
                                                                   monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    argv = tiny_train_argv(tiny_dataset, tmp_path / "runs", "x", "--log-to", tracker)
    argv.remove("--no-tensorboard")
    assert main(argv) == 2
    assert capsys.readouterr().err == (f"cyclegan train: error: --log-to {tracker} needs the {module} package, which "
                                       f"is not installed: pip install 'cyclegan[{extra}]', or leave {tracker} out "
                                       "of --log-to\n")
    assert not (tmp_path / "runs" / "x").exists()


@pytest.mark.parametrize("argv, message", [
    (["--log-to", "wandb,comet"], "unknown tracker(s) in --log-to 'wandb,comet': comet; use a comma-separated list "
                                  "of tensorboard, wandb, mlflow, or none"),
    (["--log-to", "tensorboard"], "--log-to tensorboard asks for TensorBoard and --no-tensorboard turns it off; "
                                  "leave one of them out"),
])
def test_a_wrong_log_to_is_one_line_error(argv, message, tiny_dataset, tmp_path, capsys):
    assert main(tiny_train_argv(tiny_dataset, tmp_path / "runs", "x", *argv)) == 2
    assert capsys.readouterr().err == f"cyclegan train: error: {message}\n"


def test_log_to_none_and_the_default_without_tensorboard_open_no_tracker(monkeypatch):
    from cyclegan.config import RunConfig

    monkeypatch.setattr(trackers, "_installed", lambda module: False)
    assert trackers.tracker_names(RunConfig()) == ()
    assert trackers.tracker_names(RunConfig(log_to="none")) == ()
    monkeypatch.setattr(trackers, "_installed", lambda module: True)
    assert trackers.tracker_names(RunConfig()) == ("tensorboard",)
    assert trackers.tracker_names(RunConfig(tensorboard=False)) == ()
    assert trackers.tracker_names(RunConfig(log_to="mlflow, wandb,mlflow")) == ("mlflow", "wandb")
