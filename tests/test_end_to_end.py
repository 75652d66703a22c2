"""The commands a user types, run as real processes."""
import os
import subprocess
import sys

import pytest
from PIL import Image

from conftest import shared_dataset

TINY = ["--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--num-workers", "0", "--no-progress",
        "--no-tensorboard"]


def cyclegan(*args, cwd, env=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    result = subprocess.run([sys.executable, "-m", "cyclegan", *map(str, args)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_train_resume_and_translate_on_real_cityscapes_at_64_px(tmp_path):
    data = shared_dataset("cityscapes")
    trained = cyclegan("train", "--data", data, "--load-size", "72", "--crop-size", "64", "--name", "city",
                       *TINY, "--max-iters", "3", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "iter_00000003.safetensors" in trained.stdout

    resumed = cyclegan("train", "--resume", "runs/city", "--max-iters", "5", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming runs/city at iteration 3" in resumed.stdout
    assert (tmp_path / "runs/city/checkpoints/iter_00000005.safetensors").exists()

    translated = cyclegan("translate", "runs/city", data / "testA", "--out", "out", "--direction", "AtoB",
                          "--no-progress", cwd=tmp_path)
    assert translated.returncode == 0, translated.stderr
    originals = sorted((data / "testA").iterdir())
    outputs = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in outputs] == [p.name for p in originals]
    assert Image.open(outputs[0]).size == Image.open(originals[0]).size


def test_demo_runs_end_to_end_on_its_own_data(tmp_path):
    result = cyclegan("demo", "--out", "demo", "--iterations", "4", "--train-size", "6", "--test-size", "3",
                      "--segmenter-steps", "2", "--no-progress", cwd=tmp_path,
                      env={"CYCLEGAN_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert "gallery:" in result.stdout
    assert "photo -> labels" in result.stdout and "labels -> photo (FCN score)" in result.stdout
    assert len(list((tmp_path / "demo" / "translated_AtoB").glob("*.png"))) == 3
    assert len(list((tmp_path / "demo" / "translated_BtoA").glob("*.png"))) == 3
    assert (tmp_path / "demo" / "runs" / "demo" / "gallery" / "index.html").exists()


@pytest.mark.parametrize("argv, message", [
    # These were reported under training's names (--max-iters, --max-minutes) or none (n_train).
    (["--iterations", "0"], "--iterations must be at least 1, got 0"),
    (["--minutes", "0"], "--minutes must be a positive number, got 0"),
    (["--train-size", "0"], "--train-size must be at least 1, got 0"),
    (["--test-size", "0"], "--test-size must be at least 1, got 0"),
])
def test_a_demo_count_out_of_range_is_refused_by_its_own_flag_before_any_data_is_generated(tmp_path, capsys, argv,
                                                                                            message):
    from cyclegan.cli import main

    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress", *argv]) == 2
    assert capsys.readouterr().err == f"cyclegan demo: error: {message}\n"
    assert list(tmp_path.iterdir()) == []
