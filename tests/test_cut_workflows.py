"""A CUT run through every command a CycleGAN run goes through: `--pick best` after validation,
translate of folders, videos and tiles, evaluate, serve, `--precision auto`, the failure warnings,
and `--compile` where torch cannot compile CUT's up-sampling. One tiny CUT run (A -> B) is trained
once for the module; its one direction is served and scored, the other refused by name."""
import json
import re
import warnings
from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cyclegan import checkpoint as ckpt
from cyclegan.cli import build_parser, main
from cyclegan.cli.options import config_from_args
from cyclegan.config import ModelConfig
from cyclegan.errors import ConfigError
from cyclegan.evaluation import fid as fid_metrics
from cyclegan.inference import Translator
from cyclegan.training import trainer as trainer_module
from cyclegan.training.arithmetic_probe import TrainingProbe
from cyclegan.training.health import HealthMonitor
from cyclegan.training.model import ContrastiveModel, build_model
from cyclegan.training.objective import CUTObjective, check_objective_options
from cyclegan.training.trainer import Trainer
from cyclegan.tuning import DecisionCache, candidates

from conftest import FakeInception, require_module, tiny_config, write_images
from test_cut import cut_argv

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cut_data(tmp_path_factory):
    """The images of conftest's tiny_dataset, made once for the module."""
    root = tmp_path_factory.mktemp("cut_data") / "data"
    write_images(root / "trainA", 6, seed=1, prefix="a")
    write_images(root / "trainB", 5, seed=2, prefix="b")
    write_images(root / "testA", 2, seed=3, prefix="ta")
    write_images(root / "testB", 2, seed=4, prefix="tb")
    return root


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("inception") / "fake_inception.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch; the real network is one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(FakeInception()).save(str(path))
    return path


@pytest.fixture(scope="module")
def cut_run(cut_data, inception_file, tmp_path_factory):
    """A CUT run (A -> B) of 3 iterations, validated after each on held-out training images."""
    runs = tmp_path_factory.mktemp("cut_runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(fid_metrics.WEIGHTS_ENV, str(inception_file))
        patch.setenv("CYCLEGAN_CACHE", str(runs / "cache"))
        try:
            assert main(cut_argv(cut_data, runs, "cut", "cut", "--val-fraction", "0.34", "--eval-every", "1",
                                 "--max-iters", "3")) == 0
        finally:
            torch.set_num_threads(threads)
    return runs / "cut"


def rgb_of(path) -> Image.Image:
    return Image.open(path).convert("RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


# --- --pick best, folders, tiles, videos ------------------------------------------------------------

def test_translate_pick_best_applies_the_checkpoint_with_the_lowest_validation_kid(cut_run, cut_data, tmp_path):
    evaluations = [json.loads(line) for line in (cut_run / "metrics.jsonl").read_text().splitlines()]
    evaluations = [record for record in evaluations if "warning" not in record]
    assert [record["iteration"] for record in evaluations] == [1, 2, 3]
    lowest = min(evaluations, key=lambda record: record["kid"])
    best = json.loads((cut_run / "checkpoints" / "best.json").read_text())
    assert (best["select_by"], best["iteration"], best["score"]) == ("kid", lowest["iteration"], lowest["kid"])
    # This seeded run's best is not its last, so --pick best is told apart from latest below.
    assert lowest["iteration"] != 3
    best_weights = ckpt.checkpoint_files(cut_run / "checkpoints", lowest["iteration"]).weights
    assert best_weights.exists()

    assert main(["translate", str(cut_run), str(cut_data / "testA"), "--out", str(tmp_path / "out"), "--pick", "best",
                 "--device", "cpu", "--no-progress"]) == 0
    expected = Translator.from_checkpoint(best_weights, device="cpu")
    latest = Translator.from_checkpoint(cut_run, device="cpu")
    for source in sorted((cut_data / "testA").iterdir()):
        result = pixels(rgb_of(tmp_path / "out" / source.name))
        assert np.array_equal(result, pixels(expected(rgb_of(source))))
        assert not np.array_equal(result, pixels(latest(rgb_of(source))))


def test_a_folder_is_translated_image_by_image_as_the_translator_translates_each(cut_run, cut_data, tmp_path):
    folder = tmp_path / "in"
    sources = write_images(folder, 3, size=(45, 30), seed=9, prefix="photo")  # not a multiple of 4
    assert main(["translate", str(cut_run), str(folder), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--no-progress"]) == 0
    translator = Translator.from_checkpoint(cut_run, device="cpu")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [path.name for path in sources]
    for source in sources:
        result = rgb_of(tmp_path / "out" / source.name)
        assert result.size == (45, 30)
        assert np.array_equal(pixels(result), pixels(translator(rgb_of(source))))


def test_tiles_give_the_pixels_of_the_tiled_translator(cut_run, tmp_path):
    (source,) = write_images(tmp_path / "in", 1, size=(56, 40), seed=10, prefix="wide")
    assert main(["translate", str(cut_run), str(source), "--out", str(tmp_path / "out"), "--tile", "24",
                 "--overlap", "4", "--device", "cpu", "--no-progress"]) == 0
    tiled = Translator.from_checkpoint(cut_run, device="cpu", tile=24, overlap=4)
    result = rgb_of(tmp_path / "out" / source.name)
    assert result.size == (56, 40)
    assert np.array_equal(pixels(result), pixels(tiled(rgb_of(source))))


def test_a_video_is_translated_frame_by_frame_as_the_translator_translates_each_frame(cut_run, tmp_path):
    require_module("av", "video")
    from test_video import as_yuv420, decoded_frames, make_clip, planes, rgb

    clip = make_clip(tmp_path / "clip.mp4", frames=6, rate=25, size=(48, 32), audio=False)
    assert main(["translate", str(cut_run), str(clip), "--out", str(tmp_path / "out"), "--video-crf", "0",
                 "--frames-dir", str(tmp_path / "frames"), "--device", "cpu", "--no-progress"]) == 0
    translator = Translator.from_checkpoint(cut_run, device="cpu")
    source, output = decoded_frames(clip), decoded_frames(tmp_path / "out" / "clip.mp4")
    pngs = sorted((tmp_path / "frames" / "clip").iterdir())
    assert len(output) == len(pngs) == 6
    for index in (0, 5):
        expected = translator(Image.fromarray(rgb(source[index]).astype(np.uint8)))
        assert np.array_equal(pixels(rgb_of(pngs[index])), pixels(expected))
        # Lossless H.264 (CRF 0): the encoder loses only what 4:2:0 chroma cannot hold.
        assert np.abs(planes(output[index]) - as_yuv420(expected, "ITU601")).max() <= 1


# --- evaluate -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction, other", [("AtoB", "BtoA"), ("BtoA", "AtoB")])
def test_evaluate_scores_the_one_direction_and_says_why_the_other_is_skipped(direction, other, cut_run, cut_data,
                                                                             inception_file, tmp_path, capsys):
    if direction == "AtoB":
        model = cut_run
    else:  # an untrained B -> A CUT checkpoint: G_BA, D_A and the projection heads
        torch.manual_seed(0)
        config = ModelConfig(model="cut", direction="BtoA", net_g="resnet_6blocks", ngf=8, ndf=8, nce_layers="0,4")
        networks = build_model(config)
        model = ckpt.save_checkpoint(tmp_path / "ba" / "checkpoints", networks.networks(), config, None, epoch=0,
                                     iteration=1).weights
    scores = tmp_path / "scores.json"
    assert main(["evaluate", str(model), "--data", str(cut_data), "--size", "32", "--fid", "--inception-weights",
                 str(inception_file), "--out", str(scores), "--device", "cpu", "--quiet"]) == 0
    record = json.loads(scores.read_text())["directions"]
    reason = f"the checkpoint has no generator for {other}; it translates {direction} only"
    assert record[other] == {"skipped": reason}
    scored = record[direction]
    assert (scored["source"], scored["target"], scored["images"], scored["cycle_l1"]) == (
        f"test{direction[0]}", f"test{direction[-1]}", 2, None)
    assert scored["fid"] is not None and np.isfinite(scored["fid"]) and scored["kid"] is not None
    assert f"{other:<10}skipped: {reason}" in capsys.readouterr().out


# --- serve --------------------------------------------------------------------------------------------

def test_the_server_translates_with_a_cut_model_and_names_its_direction_when_asked_for_the_other(cut_run, capsys):
    require_module("starlette", "web")
    require_module("uvicorn", "web")
    from cyclegan.serving import ServerThread, create_app, load_translators
    from test_serve_api import TEST_LIMITS, png_bytes, post_image, request

    translators = load_translators(cut_run, device="cpu")
    assert list(translators) == ["AtoB"]
    data = png_bytes(45, 30)
    with ServerThread(create_app(translators, TEST_LIMITS)) as server:
        info = request(server.url + "/info").json()
        assert (info["directions"], info["default_direction"]) == (
            {"AtoB": {"input_channels": 3, "output_channels": 3}}, "AtoB")
        for asked in (None, "AtoB"):
            reply = post_image(server.url, data, filename="street.png", direction=asked)
            assert reply.status == 200
            expected = translators["AtoB"](Image.open(BytesIO(data)).convert("RGB"))
            assert np.array_equal(pixels(reply.image()), pixels(expected))
        refused = post_image(server.url, data, direction="BtoA")
        assert refused.status == 400
        assert refused.json() == {"error": "this model has no BtoA generator; it offers AtoB"}

    weights = ckpt.find_checkpoint(cut_run).weights
    assert main(["serve", str(cut_run), "--direction", "BtoA", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (f"cyclegan serve: error: {weights} holds no BtoA generator, only AtoB; "
                                       "ask for AtoB or leave the direction out\n")


# --- --precision auto -----------------------------------------------------------------------------------

def test_precision_auto_times_a_cut_training_iteration_and_trains_as_the_chosen_arithmetic_would(cut_data, tmp_path,
                                                                                                 monkeypatch):
    timed = []

    class RecordingProbe(TrainingProbe):
        def __call__(self, arithmetic):
            seconds = super().__call__(arithmetic)
            trainer = self.trainer
            timed.append((arithmetic.label, type(trainer.model), type(trainer.objective),
                          trainer.model.projector.channel_counts))
            return seconds

    monkeypatch.setattr(trainer_module, "TrainingProbe", RecordingProbe)

    def planned(name, **run):
        config = tiny_config(cut_data, tmp_path / "runs", "cut", **run)
        # 100 epochs of 6 iterations: long enough to be timed by whole iterations (2% of the run
        # is the time of 12, the warm-ups and a round of up to four candidates take 8).
        config.run.name, config.optim.epochs = name, 98
        return config

    auto = Trainer(planned("auto"))
    assert auto.planned_iterations() == 600 and auto.arithmetic.source == "measured"
    labels = [candidate.label for candidate in candidates(CPU)]
    assert sorted({label for label, *_ in timed}) == sorted(labels)
    # The throwaway Trainer is CUT's: one generator with its PatchNCE heads, CUT's objective.
    assert {entry[1:] for entry in timed} == {(ContrastiveModel, CUTObjective, (3, 16))}
    (decision,) = json.loads(DecisionCache().path.read_text())["decisions"].values()
    assert ", cut, " in decision["key"]["architecture"]

    chosen = auto.arithmetic.chosen
    timed.clear()
    fixed = Trainer(planned("fixed", precision=chosen.precision, channels_last=chosen.channels_last,
                            nnpack=chosen.nnpack))
    assert timed == [] and fixed.arithmetic.chosen == chosen
    for trainer in (auto, fixed):
        trainer.config.run.max_iters = 2
        trainer.train()
    weights = [load_file(str(ckpt.find_checkpoint(tmp_path / "runs" / name).weights)) for name in ("auto", "fixed")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


# --- failure warnings -------------------------------------------------------------------------------------

# A value for each flag a warning may suggest, to check that the model accepts it.
FLAG_VALUES = {"--lr": "1e-4", "--lr-D": "1e-4", "--d-ratio": "2", "--diff-augment": "color", "--spectral-norm": None,
               "--pool-size": "100", "--lambda-A": "20", "--lambda-B": "20", "--lambda-identity": "0.1",
               "--no-gan": None, "--lambda-L1": "50", "--lambda-NCE": "2", "--lambda-GAN": "2"}


@pytest.mark.parametrize("model", ["cut", "fastcut", "cyclegan", "pix2pix"])
def test_every_option_a_warning_suggests_is_one_the_model_accepts(model):
    monitor = HealthMonitor(model)
    log = [{"iteration": i, "epoch": 1, "acc_D_B": 1.0} for i in range(1, 11)]
    scores = [{"iteration": i, "epoch": i, "spread_AtoB": 0.01, "change_AtoB": 0.001, "kid": 0.1 * i,
               "kid_AtoB_std": 0.01} for i in range(1, 5)]
    found = [w for record in log for w in monitor.observe_log(record)]
    found += [w for record in scores for w in monitor.observe_scores(record)]
    assert sorted({w.kind for w in found}) == ["collapse", "copy", "discriminator_wins", "kid_rising"]
    suggested = {flag for w in found for flag in re.findall(r"--[A-Za-z][\w-]*", w.message)} - {"--pick"}
    assert suggested and suggested <= set(FLAG_VALUES)
    for flag in sorted(suggested):
        value = FLAG_VALUES[flag]
        argv = ["train", "--model", model, "--data", "d", flag, *([value] if value is not None else [])]
        check_objective_options(config_from_args(build_parser().parse_args(argv)))  # raises if refused


def test_a_cut_run_whose_discriminator_wins_is_warned_about_with_cut_options(cut_data, tmp_path, capsys):
    # The generator never learns (--lr 0) and the discriminator learns fast: it soon wins.
    config = tiny_config(cut_data, tmp_path / "runs", "cut", max_iters=26)
    config.optim.lr, config.optim.lr_d, config.optim.epochs, config.optim.epochs_decay = 0.0, 2e-3, 3, 3
    config.loss.gan_mode = "vanilla"
    Trainer(config).train()
    records = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "log.jsonl").read_text().splitlines()]
    (warning,) = [record for record in records if "warning" in record]
    assert (warning["warning"], warning["subject"]) == ("discriminator_wins", "D_B")
    assert warning["message"].endswith("Try a lower --lr-D, a larger --d-ratio, --diff-augment "
                                       "color,translation,cutout (small datasets) or --spectral-norm")
    assert capsys.readouterr().err.count("D_B has told real from generated patches") == 1


# --- --compile --------------------------------------------------------------------------------------------

def test_compile_of_the_antialiased_upsampling_on_the_cpu_is_refused_in_one_line(cut_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(cut_argv(cut_data, runs, "compiled", "cut", "--compile", "--device", "cpu")) == 2
    assert capsys.readouterr().err == (
        "cyclegan train: error: --compile cannot compile the backward pass of --upsample antialias on the CPU (a "
        "fault of torch's inductor); leave out --compile, or pass --upsample transposed\n")
    assert not (runs / "compiled").exists()
    with pytest.raises(ConfigError, match="--compile cannot compile"):
        Trainer(tiny_config(cut_data, runs, "fastcut", compile=True, device="cpu"))
