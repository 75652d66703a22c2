"""Quality tracked during training: validation images, metrics.jsonl, the best checkpoint, --pick."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cyclegan.cli import main
from cyclegan.config import TrainConfig
from cyclegan.data.layout import held_out_images, training_dataset, validation_images
from cyclegan.errors import ConfigError, DatasetError
from cyclegan.evaluation import fid as fid_metrics
from cyclegan import checkpoint as ckpt
from cyclegan.training.trackers import Tracker, Trackers
from cyclegan.training.trainer import Trainer
from cyclegan.training.validation import QualityTracker

from conftest import require_module, tiny_config, tiny_train_argv, unavailable, write_ct_volumes, write_images

DIRECTION_KEYS = ["images_{d}", "kid_{d}", "kid_{d}_std", "fid_{d}", "cycle_{d}", "change_{d}", "spread_{d}"]


@pytest.fixture
def dataset(tmp_path):
    """8 + 8 training images (a quarter held out: epochs of 6 iterations) and 2 + 2 test images."""
    root = tmp_path / "data"
    write_images(root / "trainA", 8, seed=1, prefix="a")
    write_images(root / "trainB", 8, seed=2, prefix="b")
    write_images(root / "testA", 2, seed=3, prefix="ta")
    write_images(root / "testB", 2, seed=4, prefix="tb")
    return root


def train_argv(data, runs, name, *extra):
    return tiny_train_argv(data, runs, name, *extra, gallery_size=1)


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def evaluations(run):
    return [record for record in records(run / "metrics.jsonl") if "warning" not in record]


@pytest.fixture
def scripted_cycle(monkeypatch):
    """Replace the "cycle" score of each evaluation by the next of a list, so that a test decides
    which evaluation is the best (the scores themselves are tested on their own)."""
    def script(values):
        remaining = iter(values)
        evaluate = QualityTracker.evaluate

        def scripted(self, model, iteration, epoch):
            return {**evaluate(self, model, iteration, epoch), "cycle": next(remaining)}

        monkeypatch.setattr(QualityTracker, "evaluate", scripted)
    return script


@pytest.fixture
def inception(monkeypatch, fake_inception):
    monkeypatch.setenv(fid_metrics.WEIGHTS_ENV, str(fake_inception))


# ----------------------------------------------------------------------------------- validation images
def test_held_out_images_are_chosen_by_the_seed_and_never_trained_on(dataset, tmp_path):
    config = tiny_config(dataset, tmp_path / "runs")
    config.validation.val_fraction = 0.25
    held_out = held_out_images(config)
    assert held_out == held_out_images(config)
    assert sorted(path.parent.name for path in held_out) == ["trainA", "trainA", "trainB", "trainB"]
    training = training_dataset(config)
    assert len(training) == 6
    assert not held_out & set(training.paths_a + training.paths_b)
    assert held_out | set(training.paths_a + training.paths_b) == set((dataset / "trainA").iterdir()) | set(
        (dataset / "trainB").iterdir())
    validation = validation_images(config)
    assert set(validation.domains["A"].paths + validation.domains["B"].paths) == held_out
    config.run.seed = 1
    assert held_out_images(config) != held_out


def test_a_resumed_run_holds_out_the_same_images_and_keeps_its_fraction(dataset, tmp_path, no_inception):
    config = tiny_config(dataset, tmp_path / "runs", max_iters=3)
    config.validation.val_fraction = 0.25
    first = Trainer(config)
    first.train()
    config.run.max_iters = 4
    resumed = Trainer(config, resume=ckpt.find_checkpoint(first.run_dir))
    assert (resumed.dataset.paths_a, resumed.dataset.paths_b) == (first.dataset.paths_a, first.dataset.paths_b)
    assert [resumed.quality.images.domains[d].paths for d in "AB"] == [first.quality.images.domains[d].paths
                                                                         for d in "AB"]
    assert TrainConfig.load(first.run_dir / "config.json").validation.val_fraction == 0.25
    assert main(["train", "--resume", str(first.run_dir), "--val-fraction", "0.5"]) == 2  # another split: refused


def test_the_test_folders_are_never_validation_images(tmp_path, inception):
    root = tmp_path / "data"
    write_images(root / "trainA", 4, seed=1, prefix="a")
    write_images(root / "trainB", 4, seed=2, prefix="b")
    write_images(root / "valA", 3, seed=3, prefix="va")
    write_images(root / "valB", 2, seed=4, prefix="vb")
    for folder in ("testA", "testB"):  # files that cannot be read: any use of them would fail
        (root / folder).mkdir()
        (root / folder / "t.png").write_bytes(b"not a png")
    config = tiny_config(root, tmp_path / "runs", max_iters=4)
    config.optim.epochs, config.optim.epochs_decay = 1, 0
    trainer = Trainer(config)
    validation = trainer.quality.images
    assert validation.source == "valA/ and valB/"
    assert [path.parent.name for path in validation.domains["A"].paths + validation.domains["B"].paths] == [
        "valA"] * 3 + ["valB"] * 2
    trainer.train()
    (record,) = evaluations(tmp_path / "runs" / "tiny")
    assert (record["images_AtoB"], record["images_BtoA"]) == (3, 2)


def test_validation_options_that_cannot_work_are_refused(dataset, tmp_path):
    config = tiny_config(dataset, tmp_path / "runs")
    config.validation.eval_every = 5
    with pytest.raises(ConfigError, match="--eval-every 5 needs validation images.*--val-fraction"):
        Trainer(config)
    write_images(dataset / "valA", 2, prefix="va")
    write_images(dataset / "valB", 2, prefix="vb")
    config.validation.val_fraction = 0.1
    with pytest.raises(ConfigError, match="has valA/ and valB/.*leave out --val-fraction"):
        Trainer(config)
    pix2pix = TrainConfig.from_dict({"model": {"model": "pix2pix"}, "data": {"data": str(dataset)},
                                     "validation": {"select_by": "cycle"}})
    with pytest.raises(ConfigError, match="--select-by cycle is not a score of --model pix2pix"):
        pix2pix.validate()


# ----------------------------------------------------------------------------------- metrics.jsonl
def test_each_evaluation_writes_one_record_with_exact_keys_a_plot_and_the_gallery_table(dataset, tmp_path,
                                                                                         inception, capsys):
    runs = tmp_path / "runs"
    assert main(train_argv(dataset, runs, "m", "--val-fraction", "0.25", "--max-iters", "12")) == 0
    run = runs / "m"
    found = evaluations(run)
    expected = ["iteration", "epoch", *(key.format(d="AtoB") for key in DIRECTION_KEYS),
                *(key.format(d="BtoA") for key in DIRECTION_KEYS), "kid", "fid", "cycle", "seconds",
                "train_seconds", "best"]
    assert [list(record) for record in found] == [expected, expected]
    assert [(r["iteration"], r["epoch"], r["images_AtoB"], r["images_BtoA"]) for r in found] == [(6, 1, 2, 2),
                                                                                                 (12, 2, 2, 2)]
    for record in found:
        assert record["kid"] == pytest.approx(record["kid_AtoB"] + record["kid_BtoA"])
        assert record["cycle"] == pytest.approx(record["cycle_AtoB"] + record["cycle_BtoA"])
        assert record["seconds"] > 0 and record["train_seconds"] > 0
    assert found[0]["best"] is True
    assert (run / "metrics.png").stat().st_size > 0
    page = (run / "gallery" / "index.html").read_text()
    assert "Validation scores" in page and "../metrics.png" in page
    output = capsys.readouterr()
    assert "validation: up to 50 images per direction from 25% of the training images (held out)" in output.out
    assert "of evaluations (" in output.out and "% of the training time)" in output.out


def tiny_pix2pix_config(tmp_path) -> TrainConfig:
    """A 4-iteration pix2pix run on 4 training and 3 validation pairs, with the pix2pix paper's
    defaults for what is not given (batch norm among them)."""
    root = tmp_path / "paired"
    for folder, seed in (("trainA", 1), ("trainB", 2), ("valA", 3), ("valB", 4)):
        write_images(root / folder, 4 if folder.startswith("train") else 3, seed=seed, prefix="p")
    values = tiny_config(root, tmp_path / "runs", max_iters=4).to_dict()
    values["model"], values["loss"] = {"model": "pix2pix", "net_g": "resnet_6blocks", "ngf": 8, "ndf": 8}, {}
    config = TrainConfig.from_dict(values)
    config.optim.epochs, config.optim.epochs_decay = 1, 0
    return config


def test_pix2pix_scores_its_paired_validation_set_by_kid_and_l1(tmp_path, inception):
    Trainer(tiny_pix2pix_config(tmp_path)).train()
    (record,) = evaluations(tmp_path / "runs" / "tiny")
    assert list(record) == ["iteration", "epoch", "images_AtoB", "kid_AtoB", "kid_AtoB_std", "fid_AtoB", "l1_AtoB",
                            "change_AtoB", "spread_AtoB", "kid", "fid", "l1", "seconds", "train_seconds", "best"]
    assert record["images_AtoB"] == 3 and record["kid"] == record["kid_AtoB"] and record["l1"] > 0


def test_without_the_inception_network_the_run_says_so_and_tracks_the_cycle_error(dataset, tmp_path, no_inception,
                                                                                  capsys):
    runs = tmp_path / "runs"
    assert main(train_argv(dataset, runs, "n", "--val-fraction", "0.25", "--max-iters", "6")) == 0
    assert "pip install 'cyclegan[metrics]'; validation tracks the cycle error only, and keeps no best " \
           "checkpoint by kid" in capsys.readouterr().out
    (record,) = evaluations(runs / "n")
    assert (record["kid"], record["fid"], record["kid_AtoB_std"], record["best"]) == (None, None, None, False)
    assert record["cycle"] > 0
    assert not (runs / "n" / "checkpoints" / "best.json").exists()


def test_a_four_channel_run_says_fid_needs_1_or_3_channels_and_tracks_the_cycle_error(tmp_path, inception, capsys):
    for domain, seed, count in (("trainA", 1, 4), ("trainB", 2, 4), ("valA", 3, 2), ("valB", 4, 2)):
        (tmp_path / "data" / domain).mkdir(parents=True)
        for index in range(count):
            bands = np.random.default_rng(seed * 10 + index).integers(0, 65536, (36, 40, 4)).astype(np.uint16)
            np.save(tmp_path / "data" / domain / f"bands{index}.npy", bands)
    runs = tmp_path / "runs"
    assert main(train_argv(tmp_path / "data", runs, "four", "--input-nc", "4", "--output-nc", "4",
                           "--max-iters", "4")) == 0
    assert "FID/KID compare 1- or 3-channel images, and domain B has 4 channels; validation tracks the cycle " \
           "error only" in capsys.readouterr().out
    (record,) = evaluations(runs / "four")
    assert (record["kid"], record["fid"]) == (None, None) and record["cycle"] > 0


def test_eval_every_zero_adds_nothing_and_evaluations_change_no_weight(dataset, tmp_path, inception, capsys):
    runs = tmp_path / "runs"
    assert main(train_argv(dataset, runs, "on", "--val-fraction", "0.25", "--max-iters", "8",
                           "--eval-every", "4")) == 0
    capsys.readouterr()
    assert main(train_argv(dataset, runs, "off", "--val-fraction", "0.25", "--max-iters", "8",
                           "--eval-every", "0")) == 0
    output = capsys.readouterr()
    assert "validation" not in output.err and "validation" not in output.out
    assert sorted(path.name for path in (runs / "off").iterdir()) == [
        ".lock", "accuracy.png", "checkpoints", "config.json", "gallery", "log.jsonl", "losses.png"]
    assert sorted(path.name for path in (runs / "off" / "checkpoints").iterdir()) == [
        "iter_00000006.safetensors", "iter_00000006.state.pt", "iter_00000008.safetensors", "iter_00000008.state.pt",
        "latest.json"]
    assert "Validation" not in (runs / "off" / "gallery" / "index.html").read_text()
    on = load_file(str(ckpt.find_checkpoint(runs / "on").weights))
    off = load_file(str(ckpt.find_checkpoint(runs / "off").weights))
    assert all(torch.equal(on[key], off[key]) for key in off)


def test_a_resumed_run_with_evaluations_matches_one_in_one_go(dataset, tmp_path, inception):
    runs = tmp_path / "runs"
    flags = ("--val-fraction", "0.25", "--eval-every", "2")
    assert main(train_argv(dataset, runs, "straight", *flags, "--max-iters", "8")) == 0
    assert main(train_argv(dataset, runs, "split", *flags, "--max-iters", "5")) == 0
    assert main(["train", "--resume", str(runs / "split"), "--max-iters", "8", "--no-progress"]) == 0
    straight = load_file(str(ckpt.find_checkpoint(runs / "straight").weights))
    resumed = load_file(str(ckpt.find_checkpoint(runs / "split").weights))
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
    timing = ("seconds", "train_seconds")
    assert [{k: v for k, v in r.items() if k not in timing} for r in evaluations(runs / "split")] == [
        {k: v for k, v in r.items() if k not in timing} for r in evaluations(runs / "straight")]


# ----------------------------------------------------------------------------------- the best checkpoint
def test_best_json_names_the_lowest_score_and_survives_keep_last_1(dataset, tmp_path, no_inception, scripted_cycle):
    scripted_cycle([3.0, 1.0, 2.0, 4.0])
    runs = tmp_path / "runs"
    assert main(train_argv(dataset, runs, "b", "--val-fraction", "0.25", "--eval-every", "2", "--max-iters", "8",
                           "--select-by", "cycle", "--keep-last", "1")) == 0
    folder = runs / "b" / "checkpoints"
    assert [(r["iteration"], r["cycle"], r["best"]) for r in evaluations(runs / "b")] == [
        (2, 3.0, True), (4, 1.0, True), (6, 2.0, False), (8, 4.0, False)]
    best = json.loads((folder / "best.json").read_text())
    assert best == {"weights": "iter_00000004.safetensors", "state": "iter_00000004.state.pt", "epoch": 1,
                    "iteration": 4, "select_by": "cycle", "score": 1.0}
    assert sorted(path.name for path in folder.glob("iter_*")) == [
        "iter_00000004.safetensors", "iter_00000004.state.pt", "iter_00000008.safetensors", "iter_00000008.state.pt"]
    assert ckpt.find_checkpoint(runs / "b", pick="best").weights == folder / "iter_00000004.safetensors"


def test_resume_keeps_the_best_record(dataset, tmp_path, no_inception, scripted_cycle):
    scripted_cycle([3.0, 1.0, 2.0, 4.0])
    runs = tmp_path / "runs"
    flags = ("--val-fraction", "0.25", "--eval-every", "2", "--select-by", "cycle")
    assert main(train_argv(dataset, runs, "r", *flags, "--max-iters", "4")) == 0
    assert main(["train", "--resume", str(runs / "r"), "--max-iters", "8", "--no-progress"]) == 0
    assert [r["best"] for r in evaluations(runs / "r")] == [True, True, False, False]
    assert json.loads((runs / "r" / "checkpoints" / "best.json").read_text())["iteration"] == 4


def test_pick_best_and_latest_translate_and_evaluate_with_their_own_weights(dataset, tmp_path, no_inception,
                                                                           scripted_cycle, capsys):
    from cyclegan.inference import Translator

    scripted_cycle([1.0, 2.0])
    runs = tmp_path / "runs"
    assert main(train_argv(dataset, runs, "p", "--val-fraction", "0.25", "--eval-every", "3", "--max-iters", "6",
                           "--select-by", "cycle")) == 0
    run = runs / "p"
    source = dataset / "testA" / "ta_000.png"
    expected = {pick: Translator.from_checkpoint(run / "checkpoints" / name, device="cpu")(Image.open(source))
                for pick, name in (("best", "iter_00000003.safetensors"), ("latest", "iter_00000006.safetensors"))}
    assert expected["best"].tobytes() != expected["latest"].tobytes()
    for pick in ("best", "latest"):
        assert main(["translate", str(run), str(source), "--out", str(tmp_path / pick), "--pick", pick,
                     "--device", "cpu", "--no-progress"]) == 0
        assert Image.open(tmp_path / pick / "ta_000.png").tobytes() == expected[pick].tobytes()
        assert main(["evaluate", str(run), "--data", str(dataset), "--pick", pick, "--no-fid", "--quiet",
                     "--device", "cpu", "--out", str(tmp_path / f"{pick}.json")]) == 0
    assert json.loads((tmp_path / "best.json").read_text())["checkpoint"].endswith("iter_00000003.safetensors")
    assert json.loads((tmp_path / "latest.json").read_text())["checkpoint"].endswith("iter_00000006.safetensors")


def test_pick_best_on_a_run_without_evaluations_says_how_to_get_one(dataset, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(train_argv(dataset, runs, "plain", "--max-iters", "1")) == 0
    capsys.readouterr()
    assert main(["translate", str(runs / "plain"), str(dataset / "testA"), "--out", str(tmp_path / "out"),
                 "--pick", "best", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "has no best checkpoint" in error and "--val-fraction" in error and "--pick latest" in error


def test_pruning_never_removes_the_checkpoints_latest_and_best_name(tmp_path):
    model = torch.nn.Linear(2, 2)
    config = TrainConfig().model
    for iteration in (1, 2, 3, 4):
        files = ckpt.save_checkpoint(tmp_path, {"G_AB": model}, config, {"step": iteration}, epoch=1,
                                     iteration=iteration)
        if iteration == 2:
            ckpt.write_best(tmp_path, files, {"iteration": 2, "select_by": "kid", "score": 0.5})
    ckpt.prune_checkpoints(tmp_path, keep_last=1)
    assert sorted(path.name for path in tmp_path.glob("iter_*.safetensors")) == [
        "iter_00000002.safetensors", "iter_00000004.safetensors"]
    assert ckpt.find_checkpoint(tmp_path, "best").weights.name == "iter_00000002.safetensors"
    assert ckpt.find_checkpoint(tmp_path).weights.name == "iter_00000004.safetensors"


def test_with_the_installed_inception_network_the_scores_are_real_numbers(dataset, tmp_path):
    try:
        fid_metrics.find_inception_weights()
    except fid_metrics.InceptionWeightsNotFound as error:
        unavailable(f"the Inception weights are not installed ({error})")
    config = tiny_config(dataset, tmp_path / "runs", max_iters=6)
    config.validation.val_fraction = 0.25
    Trainer(config).train()
    (record,) = evaluations(tmp_path / "runs" / "tiny")
    assert record["fid_AtoB"] > 0 and record["fid_BtoA"] > 0 and record["kid"] is not None
    assert json.loads((tmp_path / "runs" / "tiny" / "checkpoints" / "best.json").read_text())["iteration"] == 6


def test_a_folder_of_one_image_cannot_hold_one_out(tmp_path):
    write_images(tmp_path / "data" / "trainA", 1, prefix="a")
    write_images(tmp_path / "data" / "trainB", 4, prefix="b")
    config = tiny_config(tmp_path / "data", tmp_path / "runs")
    config.validation.val_fraction = 0.5
    with pytest.raises(DatasetError, match="trainA holds 1 image.*too few to hold one out"):
        Trainer(config)


def volume_run_config(root, runs):
    """Two NIfTI CT volumes per domain (4 slices each), half held out, read through a HU window."""
    write_ct_volumes(root / "trainA", 2, seed=1, prefix="a")
    write_ct_volumes(root / "trainB", 2, seed=2, prefix="b")
    config = tiny_config(root, runs, max_iters=4)
    config.model.input_nc = config.model.output_nc = 1
    config.model.window_a = config.model.window_b = "-1000,2000"
    config.optim.epochs, config.optim.epochs_decay = 1, 0
    config.validation.val_fraction = 0.5
    return config


def test_held_out_volumes_are_validated_on_all_their_slices_through_the_domains_window(tmp_path):
    nibabel = require_module("nibabel", "medical")
    config = volume_run_config(tmp_path / "data", tmp_path / "runs")
    config.data.preprocess = "none"
    (held_out,) = [path for path in held_out_images(config) if path.parent.name == "trainA"]

    validation = validation_images(config).domains["A"]

    assert [(piece.path, piece.index) for piece in validation.paths] == [(held_out, index) for index in range(4)]
    raw = np.asarray(nibabel.load(held_out).dataobj)  # int16 HU, as nibabel stored them
    expected = (raw[:, :, 2].astype(np.float32) + 1000) / 1500 - 1
    assert torch.equal(validation[2]["image"][0], torch.from_numpy(expected))


def test_a_run_on_volumes_scores_itself_on_the_slices_of_its_held_out_volumes(tmp_path, no_inception):
    config = volume_run_config(tmp_path / "data", tmp_path / "runs")
    trainer = Trainer(config)
    trained = {piece.path for piece in trainer.dataset.paths_a + trainer.dataset.paths_b}
    validating = {piece.path for domain in "AB" for piece in trainer.quality.images.domains[domain].paths}
    assert not trained & validating and len(trained) == len(validating) == 2
    trainer.train()
    (record,) = evaluations(tmp_path / "runs" / "tiny")
    assert (record["iteration"], record["images_AtoB"], record["images_BtoA"]) == (4, 4, 4)
    assert record["cycle"] is not None


class RecordingTracker(Tracker):
    """Stands in for a tracker (TensorBoard, W&B, MLflow: optional extras) and keeps the scalars it is given."""

    def __init__(self):
        self.scalars = {}

    def log_scalars(self, values, step):
        self.scalars.update({tag: (value, step) for tag, value in values.items()})


def test_the_scores_are_mirrored_to_the_trackers(dataset, tmp_path, inception):
    from cyclegan.training.logging import MetricsLog

    config = tiny_config(dataset, tmp_path / "runs")
    config.validation.val_fraction = 0.25
    trainer = Trainer(config)
    trainer.run_dir.mkdir(parents=True)
    tracker = RecordingTracker()
    log = MetricsLog(trainer.run_dir / "log.jsonl", trackers=Trackers([tracker]))
    trainer.quality.start(0, log)
    record = trainer.quality.evaluate(trainer.model, 0, 1)
    trainer.quality.record(record, improves=False)
    assert tracker.scalars["validation/kid_AtoB"] == (record["kid_AtoB"], 0)
    assert set(tracker.scalars) == {f"validation/{key}" for key in (
        *(key.format(d=d) for d in ("AtoB", "BtoA") for key in DIRECTION_KEYS), "kid", "fid", "cycle", "seconds",
        "train_seconds")}


def test_a_batch_norm_run_scores_the_translations_that_translate_will_make(tmp_path, no_inception):
    # Batch norm normalises each image by its own statistics at test time (layers.test_time_norm),
    # in `cyclegan translate` and so in the scores that choose a run's best checkpoint.
    from cyclegan.evaluation.scoring import mean_absolute_error
    from cyclegan.inference import Translator

    config = tiny_pix2pix_config(tmp_path)
    assert config.model.norm == "batch"  # pix2pix's default
    trainer = Trainer(config)
    trainer.train()
    (record,) = evaluations(tmp_path / "runs" / "tiny")
    inputs = trainer.quality._inputs
    translator = Translator.from_checkpoint(tmp_path / "runs" / "tiny", device="cpu", precision="fp32")
    with torch.no_grad():
        translated = [translator.translate_tensor(image[None])[0] for image in inputs["A"]]
        averaged = [trainer.model.G_AB.eval()(image[None])[0] for image in inputs["A"]]
    assert record["l1_AtoB"] == pytest.approx(mean_absolute_error(zip(translated, inputs["B"])), rel=1e-6)
    assert abs(mean_absolute_error(zip(averaged, inputs["B"])) - record["l1_AtoB"]) > 1e-3
