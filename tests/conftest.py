"""Shared fixtures: tiny real image folders and tiny model configs (ngf 8, 32x32)."""
from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.config import ONE_DIRECTION_MODELS, ModelConfig, TrainConfig
from cyclegan.evaluation import fid as fid_metrics

@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run several times faster on one thread than on two contended ones (the test
    processes run two at a time on two cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_cache_root(tmp_path, monkeypatch):
    """Each test its own cache root, so that an arithmetic decision measured (or faked) by one test
    is never read by another, and no test writes to the user's ~/.cache/cyclegan."""
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def running_under_ci() -> bool:
    """CI=true (.ci/run) claims to test every part of the package."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def unavailable(reason: str, needed: str = "this test") -> NoReturn:
    """Skip the test (or, at import, its module) saying why; under CI=true fail it saying why, so
    that CI never passes without a part it claims to test. Every test that needs the shared data,
    an installed extra, the Inception weights or a browser goes through here."""
    if running_under_ci():
        pytest.fail(f"CI=true needs {needed}, but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def shared_dataset(name: str) -> Path:
    """A folder of ../shared/data; without it, `unavailable` says what is missing."""
    path = SHARED_DATA / name
    if not path.is_dir():
        unavailable(f"the shared test data at {path} is missing (see ../shared/data/README.md)")
    return path


def require_module(name: str, extra: str):
    """The module `name`, imported; without it, `unavailable` names the extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        unavailable(f"{name} is not installed ({error}): pip install -e '.[{extra}]'")


def write_images(folder: Path, count: int, size=(40, 36), seed: int = 0, prefix: str = "img") -> list[Path]:
    """Real PNG files with smooth random content (so translations have structure to learn)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        base = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize(size, Image.BILINEAR)
        path = folder / f"{prefix}_{index:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


def write_ct_volumes(folder: Path, count: int, shape=(16, 16, 4), seed: int = 0, prefix: str = "ct") -> list[Path]:
    """Real NIfTI files written by nibabel: int16 Hounsfield units, every slice a body of tissue
    (-200..1500 HU) inside air (-1000 HU)."""
    nibabel = require_module("nibabel", "medical")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        raw = np.full(shape, -1000, np.int16)
        raw[2:-2, 2:-2, :] = rng.integers(-200, 1500, size=(shape[0] - 4, shape[1] - 4, shape[2]))
        image = nibabel.Nifti1Image(raw, np.diag([0.75, 0.75, 2.5, 1.0]))
        image.header.set_data_dtype(np.int16)
        path = folder / f"{prefix}_{index:03d}.nii.gz"
        nibabel.save(image, path)
        paths.append(path)
    return paths


def write_tiny_dataset(root: Path) -> Path:
    """trainA/trainB/testA/testB with a handful of 40x36 images each, in `root`."""
    write_images(root / "trainA", 6, seed=1, prefix="a")
    write_images(root / "trainB", 5, seed=2, prefix="b")
    write_images(root / "testA", 2, seed=3, prefix="ta")
    write_images(root / "testB", 2, seed=4, prefix="tb")
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """trainA/trainB/testA/testB with a handful of 40x36 images each."""
    return write_tiny_dataset(tmp_path / "data")


def tiny_train_argv(data, runs, name, *extra, gallery_size: int = 2) -> list[str]:
    """`cyclegan train` arguments for the model of `tiny_config`: 2 + 2 epochs, a log line per iteration."""
    return ["train", "--data", str(data), "--runs-dir", str(runs), "--name", name, "--netG", "resnet_6blocks",
            "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32", "--num-workers", "0",
            "--epochs", "2", "--epochs-decay", "2", "--no-progress", "--no-tensorboard", "--log-every", "1",
            "--gallery-size", str(gallery_size), *extra]


def train_tiny_source(root: Path, seed: str) -> Path:
    """A tiny dataset in root/data and a run "source" trained on it for 2 iterations with `seed`
    (root/runs/source), the model other tests export, load or start from."""
    from cyclegan.cli import main

    write_tiny_dataset(root / "data")
    assert main(tiny_train_argv(root / "data", root / "runs", "source", "--max-iters", "2", "--seed", seed)) == 0
    return root / "runs" / "source"


def tiny_config(data: Path, runs_dir: Path, model: str = "cyclegan", **run) -> TrainConfig:
    """A model small enough for tests: ResNet-6, ngf/ndf 8, 32x32 crops, no workers; for CUT and
    FastCUT also two PatchNCE layers and 16 locations (as tests/test_cut.py's runs)."""
    config = TrainConfig(model=ModelConfig(model=model))
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 8, 8
    if model in ONE_DIRECTION_MODELS:
        config.model.nce_layers, config.loss.num_patches = "0,4", 16
    config.data.data, config.data.load_size, config.data.crop_size = str(data), 36, 32
    config.data.num_workers = 0
    config.optim.epochs, config.optim.epochs_decay = 2, 2
    config.run.runs_dir, config.run.name = str(runs_dir), "tiny"
    config.run.progress, config.run.tensorboard, config.run.log_every = False, False, 1
    config.run.gallery_size = 2
    for key, value in run.items():
        setattr(config.run, key, value)
    return config


class FakeInception(torch.nn.Module):
    """Stands in for the FID network: same input contract (3 x 299 x 299), 2048 features, cheap."""

    def __init__(self):
        super().__init__()
        self.project = torch.nn.Linear(48, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 3 and x.shape[2] == 299 and x.shape[3] == 299
        assert bool(x.min() >= -1.0) and bool(x.max() <= 0.9921875)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return torch.relu(self.project(pooled))


@pytest.fixture
def fake_inception(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "fake_inception.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch; the real network is one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(FakeInception()).save(str(path))
    return path


@pytest.fixture
def no_inception(monkeypatch):
    monkeypatch.delenv(fid_metrics.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(fid_metrics, "WEIGHTS_PACKAGE", "no_such_package_for_cyclegan_tests")
