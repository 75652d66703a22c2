"""Sharing a model as the ecosystem does, end to end through the command line: a run logged to
MLflow, exported as a Hub folder, served by a Hub on 127.0.0.1 as hf://me/tiny, translated from
there, fine-tuned from there while logged to W&B (offline), and both trackers read back with their
own readers."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cyclegan.cli import main
from cyclegan.inference import Translator

from conftest import require_module, tiny_train_argv
from fake_hub import FakeHub
from test_trackers import finished_wandb_run_file, logged, wandb_history, wandb_records

REPO = "me/tiny"


def test_train_export_serve_translate_and_fine_tune_from_the_hub(tiny_dataset, tmp_path, monkeypatch, capsys):
    require_module("huggingface_hub", "hub")
    require_module("mlflow", "mlflow")
    require_module("wandb", "wandb")
    from mlflow.tracking import MlflowClient

    runs = tmp_path / "runs"
    mlflow_uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this to use a local folder
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb_dir").mkdir()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    # 1. A run, logged to MLflow.
    assert main(tiny_train_argv(tiny_dataset, runs, "source", "--max-iters", "3", "--log-to", "mlflow",
                                "--tracker-project", "story", "--seed", "7")) == 0

    # 2. Its Hub folder.
    hub_folder = tmp_path / "hub"
    capsys.readouterr()
    assert main(["export", str(runs / "source"), "--hub-folder", str(hub_folder), "--repo-id", REPO]) == 0
    assert capsys.readouterr().out == (
        f"wrote {hub_folder}: model.safetensors, config.json, example_input.png, example_output.png, README.md "
        "(G_AB, G_BA)\nnote: discriminators (D_A, D_B) left out; --with-discriminators adds them\n")

    # 3. Served by the Hub, translated from there as the run translates.
    hub = FakeHub(REPO, hub_folder)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    try:
        assert main(["translate", f"hf://{REPO}", str(tiny_dataset / "testA"), "--out", str(tmp_path / "translated"),
                     "--device", "cpu", "--no-progress"]) == 0
        assert hub.downloads() == hub.files()

        # 4. Fine-tuned from the Hub, logged to W&B.
        capsys.readouterr()
        assert main(tiny_train_argv(tiny_dataset, runs, "tuned", "--max-iters", "2", "--log-to", "wandb",
                                    "--init-from", f"hf://{REPO}")) == 0
    finally:
        hub.close()
    assert hub.downloads() == hub.files()  # the fine-tuning found the download in the cache
    weights = next((tmp_path / "cache" / "hub").glob("models--me--tiny/snapshots/*/model.safetensors"))
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:3] == [f"init from:   {weights}: G_AB, G_BA; optimisers and schedule start new",
                            "             trained from scratch: D_A, D_B (the file holds no discriminators)"]

    source = Translator.from_checkpoint(runs / "source", device="cpu")
    photos = sorted((tiny_dataset / "testA").iterdir())
    assert sorted(path.name for path in (tmp_path / "translated").iterdir()) == [photo.name for photo in photos]
    for photo in photos:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "translated" / photo.name)),
                              np.asarray(source(Image.open(photo).convert("RGB"))))

    # 5. The scalars, read back by MLflow's client and from W&B's run file.
    client = MlflowClient(tracking_uri=mlflow_uri)
    [run] = client.search_runs([client.get_experiment_by_name("story").experiment_id])
    assert (run.info.run_name, run.info.status) == ("source", "FINISHED")
    assert [(metric.step, metric.value) for metric in client.get_metric_history(run.info.run_id, "loss_G_AB")] == [
        (record["iteration"], record["loss_G_AB"]) for record in logged(runs / "source")]
    run_file = finished_wandb_run_file(tmp_path / "wandb_dir")
    steps = {row["_step"]: row for row in wandb_history(run_file) if "loss_G_AB" in row}
    assert {step: row["loss_G_AB"] for step, row in steps.items()} == {
        record["iteration"]: record["loss_G_AB"] for record in logged(runs / "tuned")}
    assert sorted(steps) == [1, 2]

    # 6. The fine-tuned run records where it started, in its config.json and in W&B's copy of it.
    assert json.loads((runs / "tuned" / "config.json").read_text())["run"]["init_from"] == f"hf://{REPO}@{hub.commit}"
    [wandb_config] = [json.loads(item.value_json) for record in wandb_records(run_file)
                      if record.WhichOneof("record_type") == "run" for item in record.run.config.update
                      if item.key == "run"]
    assert wandb_config["init_from"] == f"hf://{REPO}@{hub.commit}"
