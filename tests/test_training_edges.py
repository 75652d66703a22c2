"""Training at the edges: images of several sizes, pix2pix's own options and defaults, the epoch count."""
import json

import pytest

from cyclegan.cli import main
from cyclegan.config import ModelConfig, TrainConfig
from cyclegan.errors import ConfigError, DatasetError
from cyclegan.training.trainer import Trainer

from conftest import tiny_config, write_images


@pytest.fixture
def mixed_sizes(tmp_path):
    """Both domains hold images of several sizes (and A's differ from B's)."""
    root = tmp_path / "mixed"
    for index, size in enumerate([(40, 36), (48, 32), (36, 44)]):
        write_images(root / "trainA", 1, size=size, seed=index, prefix=f"a{index}")
    for index, size in enumerate([(44, 40), (32, 52)]):
        write_images(root / "trainB", 1, size=size, seed=10 + index, prefix=f"b{index}")
    return root


def test_images_of_different_sizes_train_through_the_image_history(mixed_sizes, tmp_path):
    # --preprocess none keeps each image's size; the history (pool of 2) soon hands the
    # discriminators an older image of another size than this iteration's.
    config = tiny_config(mixed_sizes, tmp_path / "runs", max_iters=24)
    config.data.preprocess = "none"
    config.loss.pool_size = 2
    config.optim.epochs = config.optim.epochs_decay = 4  # 3 iterations an epoch
    trainer = Trainer(config)
    assert trainer.train().iteration == 24
    assert len({tuple(image.shape[-2:]) for image in trainer.pool_a.images + trainer.pool_b.images}) > 1


def test_scale_width_with_mixed_aspect_ratios_trains(mixed_sizes, tmp_path):
    config = tiny_config(mixed_sizes, tmp_path / "runs", max_iters=6)
    config.data.preprocess, config.data.load_size, config.data.crop_size = "scale_width", 32, 24
    assert Trainer(config).train().iteration == 6


def test_batches_of_mixed_sizes_are_refused_before_training_naming_the_sizes(mixed_sizes, tmp_path):
    config = tiny_config(mixed_sizes, tmp_path / "runs", max_iters=2)
    config.data.preprocess, config.data.batch_size = "none", 2
    with pytest.raises(DatasetError, match=r"--batch-size 2 needs images of one size.*domain A has 40x36 "
                                           r"\(a0_000.png\) and 48x32 \(a1_000.png\); use --batch-size 1"):
        Trainer(config)
    assert not (tmp_path / "runs" / "tiny").exists()


def test_batches_of_mixed_sizes_from_the_command_line_give_one_line_and_exit_code_2(mixed_sizes, tmp_path, capsys):
    code = main(["train", "--data", str(mixed_sizes), "--runs-dir", str(tmp_path), "--preprocess", "none",
                 "--batch-size", "2", "--no-progress"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cyclegan train: error: --batch-size 2 needs images of one size") and "\n" not in error


def test_cropped_batches_of_mixed_sources_train(mixed_sizes, tmp_path):
    config = tiny_config(mixed_sizes, tmp_path / "runs", max_iters=3)
    config.data.batch_size = 2
    assert Trainer(config).train().iteration == 3


# --- pix2pix: its own options and defaults --------------------------------------------------------

@pytest.mark.parametrize("flags, named", [
    (["--no-gan"], "--no-gan"),
    (["--d-steps", "2"], "--d-steps"),
    (["--pool-size", "50"], "--pool-size"),
    (["--cycle", "forward"], "--cycle"),
    (["--lambda-identity", "0.5"], "--lambda-identity"),
    (["--pool-size", "10", "--lambda-A", "5"], "--pool-size, --lambda-A"),
])
def test_pix2pix_refuses_cyclegan_options_naming_them(tiny_dataset, tmp_path, capsys, flags, named):
    code = main(["train", "--model", "pix2pix", "--data", str(tiny_dataset), "--runs-dir", str(tmp_path),
                 "--no-progress", *flags])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert f"{named} do" in error and "not apply to --model pix2pix" in error
    assert not (tmp_path / "experiment").exists()


def test_cyclegan_refuses_the_pix2pix_l1_weight(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "runs", max_iters=1)
    config.loss.lambda_l1 = 50.0
    with pytest.raises(ConfigError, match="--lambda-L1 only applies to --model pix2pix"):
        Trainer(config)


def test_pix2pix_defaults_are_the_same_from_the_cli_a_config_file_and_python(tmp_path):
    from cyclegan.cli import build_parser
    from cyclegan.cli.options import config_from_args

    from_cli = config_from_args(build_parser().parse_args(["train", "--model", "pix2pix", "--data", "d"]))
    (tmp_path / "c.json").write_text(json.dumps({"model": {"model": "pix2pix"}, "data": {"data": "d"}}))
    from_file = config_from_args(build_parser().parse_args(["train", "--config", str(tmp_path / "c.json")]))
    from_python = TrainConfig(model=ModelConfig(model="pix2pix"))
    from_python.data.data = "d"
    assert from_cli == from_file == from_python
    assert (from_python.model.net_g, from_python.model.norm, from_python.loss.gan_mode, from_python.loss.pool_size,
            from_python.loss.lambda_identity) == ("unet_256", "batch", "vanilla", 0, 0.0)
    assert (TrainConfig().model.net_g, TrainConfig().loss.pool_size, TrainConfig().loss.lambda_identity) == (
        "resnet_9blocks", 50, 0.5)


def test_a_model_default_given_explicitly_wins_over_the_model_default():
    config = TrainConfig.from_dict({"model": {"model": "pix2pix", "norm": "instance"}, "loss": {"gan_mode": "lsgan"}})
    assert (config.model.norm, config.model.net_g, config.loss.gan_mode) == ("instance", "unet_256", "lsgan")


# --- the end-of-training summary --------------------------------------------------------------------

def test_a_run_that_trains_every_epoch_reports_all_of_them(tiny_dataset, tmp_path, capsys):
    # 6 images of A: 6 iterations an epoch; 2 + 2 epochs are 24 iterations.
    code = main(["train", "--data", str(tiny_dataset), "--runs-dir", str(tmp_path), "--name", "full",
                 "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32",
                 "--num-workers", "0", "--epochs", "2", "--epochs-decay", "2", "--no-progress", "--no-tensorboard"])
    assert code == 0
    assert "iterations:  24 in" in capsys.readouterr().out
    state = json.loads((tmp_path / "full" / "checkpoints" / "latest.json").read_text())
    assert (state["iteration"], state["epoch"]) == (24, 4)


def test_the_summary_line_counts_completed_epochs(tiny_dataset, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_dataset), "--runs-dir", str(tmp_path), "--name", "full",
                 "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32",
                 "--num-workers", "0", "--epochs", "1", "--epochs-decay", "1", "--no-progress", "--no-tensorboard"])
    assert code == 0
    assert "iterations:  12 in" in (out := capsys.readouterr().out) and "epochs completed: 2" in out


def test_a_run_stopped_inside_an_epoch_counts_only_the_completed_ones(tiny_dataset, tmp_path):
    result = Trainer(tiny_config(tiny_dataset, tmp_path / "runs", max_iters=8)).train()
    assert (result.iteration, result.epoch) == (8, 1)


# --- fast paths that apply elsewhere ---------------------------------------------------------------

def test_cuda_graphs_change_nothing_on_a_cpu(tiny_dataset, tmp_path, monkeypatch):
    # Without a CUDA device the option must leave the step as it is: no compiled networks, no
    # graph capture (either would fail below), and the very same weights.
    import torch
    from safetensors.torch import load_file

    def no_graphs(*args, **kwargs):
        raise AssertionError("a CPU run used CUDA graphs or torch.compile")

    monkeypatch.setattr(torch.cuda, "CUDAGraph", no_graphs)
    monkeypatch.setattr(torch, "compile", no_graphs)
    weights = {}
    for graphs in (False, True):
        config = tiny_config(tiny_dataset, tmp_path / "runs", max_iters=3)
        config.run.name, config.run.cuda_graphs = f"graphs_{graphs}", graphs
        trainer = Trainer(config)
        assert trainer.captured_step is None and trainer.generators is trainer.model.generators
        result = trainer.train()
        weights[graphs] = load_file(str(result.checkpoint))
    assert weights[False].keys() == weights[True].keys()
    assert all(torch.equal(weights[False][key], weights[True][key]) for key in weights[False])
