"""Options: one source of truth, reference-compatible flag names, help on every option."""
import argparse
import json

import pytest

from cyclegan.cli import build_parser, main
from cyclegan.cli.options import add_config_arguments, config_from_args
from cyclegan.config import TrainConfig
from cyclegan.errors import ConfigError

REFERENCE_FLAGS = ["--netG", "--netD", "--n-layers-D", "--ngf", "--ndf", "--norm", "--init-type", "--init-gain",
                   "--no-dropout", "--gan-mode", "--lambda-A", "--lambda-B", "--lambda-identity", "--pool-size",
                   "--lr", "--beta1", "--epochs", "--epochs-decay", "--lr-policy", "--batch-size", "--load-size",
                   "--crop-size", "--preprocess", "--no-flip", "--input-nc", "--output-nc", "--serial-batches",
                   "--num-workers", "--name", "--seed", "--d-ratio", "--d-steps", "--max-iters", "--save-every",
                   "--keep-last", "--resume", "--data", "--domain-a", "--domain-b", "--lr-D", "--device"]


def train_parser():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["train"]


def test_train_accepts_every_reference_flag_name():
    flags = {flag for action in train_parser()._actions for flag in action.option_strings}
    assert [flag for flag in REFERENCE_FLAGS if flag not in flags] == []


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    missing = []

    def visit(p, path):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    visit(sub, f"{path} {name}")
            elif action.help in (None, "") and action.dest != "help":
                missing.append(f"{path}: {action.option_strings or action.dest}")

    visit(parser, "cyclegan")
    assert missing == []


def test_defaults_reproduce_the_paper():
    config = TrainConfig()
    assert (config.model.net_g, config.model.net_d, config.model.norm, config.model.use_dropout) == (
        "resnet_9blocks", "basic", "instance", False)
    assert (config.loss.gan_mode, config.loss.lambda_a, config.loss.lambda_b, config.loss.lambda_identity) == (
        "lsgan", 10.0, 10.0, 0.5)
    assert (config.loss.pool_size, config.loss.d_ratio, config.loss.d_steps) == (50, 2.0, 1)
    assert (config.optim.lr, config.optim.beta1, config.optim.beta2) == (2e-4, 0.5, 0.999)
    assert (config.optim.epochs, config.optim.epochs_decay, config.optim.lr_policy) == (100, 100, "linear")
    assert (config.data.batch_size, config.data.load_size, config.data.crop_size, config.data.flip) == (1, 286, 256, True)


def parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_flags_set_config_fields_and_negative_flags_turn_options_off():
    config = parse(["--netG", "unet_256", "--lambda-A", "5", "--no-flip", "--no-dropout", "--lr-D", "1e-4"])
    assert config.model.net_g == "unet_256"
    assert config.loss.lambda_a == 5.0 and config.loss.lambda_b == 10.0
    assert config.data.flip is False and config.model.use_dropout is False
    assert config.optim.lr_d == 1e-4


def test_command_line_flags_override_a_config_file(tmp_path):
    path = tmp_path / "config.json"
    values = TrainConfig().to_dict()
    values["model"]["ngf"], values["loss"]["lambda_a"] = 32, 3.0
    path.write_text(json.dumps(values))
    config = parse(["--config", str(path), "--lambda-A", "7"])
    assert config.model.ngf == 32 and config.loss.lambda_a == 7.0


def test_config_file_with_an_unknown_option_is_rejected_by_name(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": {"ngff": 3}}))
    with pytest.raises(ConfigError, match="ngff"):
        parse(["--config", str(path)])


@pytest.mark.parametrize("section, key, value, expected", [
    ("optim", "lr", "fast", "a number"),
    ("data", "batch_size", 1.5, "an integer"),
    ("data", "flip", "yes", "true or false"),
    ("data", "preprocess", 6, "a string"),
    ("optim", "lr_d", [1], "a number or null"),
    ("data", "batch_size", True, "an integer"),
])
def test_config_file_with_a_value_of_the_wrong_type_names_file_key_type_and_value(tmp_path, section, key, value,
                                                                                  expected):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({section: {key: value}}))
    with pytest.raises(ConfigError) as raised:
        parse(["--config", str(path)])
    assert str(raised.value) == f"{path}: {section}.{key} must be {expected}, got {json.dumps(value)}"


def test_config_file_values_of_the_right_type_load_and_integers_count_as_numbers(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"optim": {"lr": 1, "lr_d": None}, "data": {"flip": False}}))
    config = parse(["--config", str(path)])
    assert (config.optim.lr, config.optim.lr_d, config.data.flip) == (1, None, False)


def test_a_config_file_of_the_wrong_type_is_one_line_and_exit_code_2(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"optim": {"lr": "fast"}}))
    assert main(["train", "--config", str(path), "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"{path}: optim.lr must be a number, got \"fast\"")


def test_saved_config_round_trips(tmp_path):
    config = parse(["--ngf", "16", "--gan-mode", "hinge", "--max-iters", "5"])
    config.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == config


@pytest.mark.parametrize("argv, message", [
    (["--crop-size", "300"], "larger than --load-size"),
    (["--input-nc", "1"], "--lambda-identity 0"),
    ([], "--data"),
])
def test_impossible_option_combinations_fail_before_training(argv, message):
    config = parse(argv + (["--data", "x"] if argv else []))
    with pytest.raises(ConfigError, match=message):
        config.validate()


def test_cli_reports_errors_in_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--runs-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cyclegan train: error:") and "missing" in error and "\n" not in error


def test_config_to_argv_gives_a_command_line_that_rebuilds_the_config():
    from cyclegan.config import config_to_argv

    config = parse(["--netG", "resnet_6blocks", "--no-flip", "--lambda-A", "3", "--max-minutes", "2.5",
                    "--data", "d", "--cycle", "forward", "--no-gan"])
    argv = config_to_argv(config)
    assert "--no-flip" in argv and "--netG" in argv
    assert parse(argv) == config


@pytest.mark.parametrize("argv, message", [
    # Each of these used to fail deep inside Adam, the image pool or the step schedule with a traceback.
    (["--lr", "nan"], "--lr is a learning rate: a finite number, 0 or more, got nan"),
    (["--lr", "-1"], "--lr is a learning rate: a finite number, 0 or more, got -1.0"),
    (["--lr-D", "inf"], "--lr-D is a learning rate: a finite number, 0 or more, got inf"),
    (["--beta1", "2"], "--beta1 must be at least 0 and below 1 (Adam's decay rate), got 2.0"),
    (["--pool-size", "-1"], "--pool-size must be 0 or more, got -1"),
    (["--num-workers", "-1"], "--num-workers must be 0 or more, got -1"),
    (["--lr-policy", "step", "--lr-decay-epochs", "0"], "--lr-decay-epochs must be 1 or more, got 0"),
    # These trained nothing and exited 0 with "checkpoint: None".
    (["--max-iters", "-5"], "--max-iters must be 1 or more, got -5"),
    (["--max-minutes", "0"], "--max-minutes must be a positive number, got 0.0"),
    (["--epochs", "0", "--epochs-decay", "0"],
     "--epochs 0 with --epochs-decay 0 leaves no epoch to train; give either a positive count"),
    # These trained towards the wrong objective, or stopped at the first iteration on an infinite loss.
    (["--lambda-identity", "-1"], "--lambda-identity is a loss weight: a finite number, 0 or more, got -1.0"),
    (["--lambda-A", "inf"], "--lambda-A is a loss weight: a finite number, 0 or more, got inf"),
    (["--d-ratio", "nan"], "--d-ratio must be positive, got nan"),
    # These acted as 1 without a word.
    (["--log-every", "0"], "--log-every must be 1 or more, got 0"),
    (["--gallery-every", "0"], "--gallery-every must be 1 or more, got 0"),
])
def test_a_numeric_option_out_of_its_range_is_one_line_and_exit_code_2_before_the_run_folder_exists(
        tmp_path, capsys, argv, message):
    data = tmp_path / "data"
    for domain in ("trainA", "trainB"):
        (data / domain).mkdir(parents=True)
    assert main(["train", "--data", str(data), "--runs-dir", str(tmp_path / "runs"), *argv]) == 2
    assert capsys.readouterr().err == f"cyclegan train: error: {message}\n"
    assert not (tmp_path / "runs").exists()


def test_the_numeric_options_at_the_edges_of_their_ranges_are_accepted():
    config = parse(["--data", "d", "--lr", "0", "--lr-D", "0", "--pool-size", "0", "--num-workers", "0", "--beta1", "0", "--lambda-identity", "0",
                    "--epochs", "0", "--epochs-decay", "1", "--save-every", "0", "--keep-last", "0", "--max-iters", "1",
                    "--log-every", "1", "--gallery-every", "1"])
    config.validate()


def test_a_config_file_that_is_not_text_is_one_line_and_exit_code_2(tmp_path, capsys):
    # An image given as --config by mistake used to end in a UnicodeDecodeError traceback.
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["train", "--config", str(image), "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"cyclegan train: error: cannot read config {image}: it is not a UTF-8 text "
                                       "file (invalid start byte at byte 0); give a JSON config such as a run's "
                                       "config.json\n")


@pytest.mark.parametrize("name", ["", ".", "./"])
def test_a_run_name_that_names_no_folder_is_refused_before_the_runs_folder_is_written(tmp_path, capsys, name):
    # The run's checkpoints, config.json and gallery used to land in --runs-dir itself, among the other runs.
    data = tmp_path / "data"
    for domain in ("trainA", "trainB"):
        (data / domain).mkdir(parents=True)
    assert main(["train", "--data", str(data), "--runs-dir", str(tmp_path / "runs"), "--name", name]) == 2
    assert capsys.readouterr().err == (f"cyclegan train: error: --name {name!r} names no run folder; give the run "
                                       "a name, e.g. --name horse2zebra\n")
    assert not (tmp_path / "runs").exists()
