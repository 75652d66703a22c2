"""Translating many files: images of one size batched together, and the files shared among torchrun processes."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.config import ModelConfig
from cyclegan.device import MAX_TRANSLATION_BATCH, translation_batch_size, translation_io_threads
from cyclegan.inference import Translator
from cyclegan.checkpoint import save_checkpoint
from cyclegan.training.model import CycleGAN

from conftest import write_images

CUDA = torch.device("cuda")


@pytest.fixture
def run_dir(tmp_path):
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8)
    torch.manual_seed(0)
    model = CycleGAN(config)
    save_checkpoint(tmp_path / "run" / "checkpoints", model.networks(), config, None, epoch=0, iteration=0)
    return tmp_path / "run"


@pytest.fixture
def mixed_folder(tmp_path):
    """Seven images: a run of two 32x32, one 40x32, a run of four 32x32."""
    folder = tmp_path / "images"
    sizes = [(32, 32)] * 2 + [(40, 32)] + [(32, 32)] * 4
    for index, size in enumerate(sizes):
        write_images(folder, 1, size=size, seed=index, prefix=f"img{index}")
    return folder


def batch_sizes_seen(translator, monkeypatch):
    seen = []
    original = translator.translate_tensor
    monkeypatch.setattr(translator, "translate_tensor", lambda batch: seen.append(batch.shape[0]) or original(batch))
    return seen


def test_consecutive_images_of_one_size_share_a_call_up_to_the_batch_size(run_dir, mixed_folder, tmp_path,
                                                                           monkeypatch):
    translator = Translator.from_checkpoint(run_dir, device="cpu")
    seen = batch_sizes_seen(translator, monkeypatch)
    report = translator.translate_files([mixed_folder], tmp_path / "batched", batch_size=3)
    assert seen == [2, 1, 3, 1]
    assert [path.name for path in report.written] == [f"img{i}_000.png" for i in range(7)]


def test_batched_translations_equal_one_at_a_time(run_dir, mixed_folder, tmp_path):
    translator = Translator.from_checkpoint(run_dir, device="cpu")
    translator.translate_files([mixed_folder], tmp_path / "one", batch_size=1)
    translator.translate_files([mixed_folder], tmp_path / "four", batch_size=4)
    for path in sorted((tmp_path / "one").iterdir()):
        single = np.asarray(Image.open(path), dtype=int)
        batched = np.asarray(Image.open(tmp_path / "four" / path.name), dtype=int)
        assert np.abs(single - batched).max() <= 1, path.name


def test_on_a_cpu_the_default_is_one_image_per_call(run_dir, mixed_folder, tmp_path, monkeypatch):
    translator = Translator.from_checkpoint(run_dir, device="cpu")
    seen = batch_sizes_seen(translator, monkeypatch)
    translator.translate_files([mixed_folder], tmp_path / "out")
    assert seen == [1] * 7


def test_on_a_gpu_the_batch_fills_half_the_free_memory_up_to_a_limit(monkeypatch):
    free = 8 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * 2**30))
    # A 256x256 image with ngf 64 is budgeted 65,536 px * 64 filters * 64 bytes = 256 MiB; 4 GiB hold 16.
    assert translation_batch_size(CUDA, 256 * 256, 64) == 16
    assert translation_batch_size(CUDA, 4000 * 3000, 64) == 1
    assert translation_batch_size(CUDA, 64 * 64, 64) == MAX_TRANSLATION_BATCH
    assert translation_batch_size(torch.device("cpu"), 64 * 64, 64) == 1


def test_on_a_gpu_the_batch_holds_at_most_32_images_of_256_px_worth_of_pixels(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (139 * 2**30, 141 * 2**30))
    # Memory alone would allow 17 images of 1024 px (4 GiB each); the pixel cap allows 2,097,152 px.
    assert translation_batch_size(CUDA, 1024 * 1024, 64) == 2
    assert translation_batch_size(CUDA, 512 * 512, 64) == 8
    assert translation_batch_size(CUDA, 256 * 256, 64) == 32
    assert translation_batch_size(CUDA, 2048 * 2048, 64) == 1


def test_the_file_threads_change_no_output_and_fail_the_same_files(run_dir, mixed_folder, tmp_path, monkeypatch):
    (mixed_folder / "broken.png").write_bytes(b"not an image")
    translator = Translator.from_checkpoint(run_dir, device="cpu")
    threads_seen = []
    original = translator._translate_images
    monkeypatch.setattr(translator, "_translate_images",
                        lambda *args: threads_seen.append(args[-1]) or original(*args))
    reports = {threads: translator.translate_files([mixed_folder], tmp_path / f"io{threads}", batch_size=3,
                                                   io_threads=threads) for threads in (1, 5)}
    assert threads_seen == [1, 5]
    for report in reports.values():
        assert [path.name for path, _reason in report.failed] == ["broken.png"]
        assert [path.name for path in report.written] == [f"img{i}_000.png" for i in range(7)]
    for path in sorted((tmp_path / "io1").iterdir()):
        assert Image.open(path).tobytes() == Image.open(tmp_path / "io5" / path.name).tobytes(), path.name


def test_files_are_decoded_and_encoded_by_two_threads_on_a_cpu_and_up_to_eight_on_a_gpu(monkeypatch):
    assert translation_io_threads(torch.device("cpu")) == 2
    for cores, threads in ((1, 2), (4, 4), (16, 8), (None, 2)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert translation_io_threads(CUDA) == threads


def test_processes_started_by_torchrun_on_one_host_share_its_cores_for_file_threads(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    for processes, threads in ((1, 8), (2, 8), (4, 4), (8, 2), (16, 2), (0, 8)):
        assert translation_io_threads(CUDA, processes) == threads, processes
    assert translation_io_threads(torch.device("cpu"), 4) == 2


def test_io_threads_below_one_are_refused(run_dir, mixed_folder, tmp_path, capsys):
    from cyclegan.cli import main

    assert main(["translate", str(run_dir), str(mixed_folder), "--out", str(tmp_path / "o"), "--io-threads", "0",
                 "--no-progress"]) == 2
    assert "--io-threads must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_batch_size_below_one_is_refused(run_dir, mixed_folder, tmp_path, capsys):
    from cyclegan.cli import main

    assert main(["translate", str(run_dir), str(mixed_folder), "--out", str(tmp_path / "o"), "--batch-size", "0",
                 "--no-progress"]) == 2
    assert "--batch-size must be at least 1, got 0" in capsys.readouterr().err


def test_two_processes_translate_each_file_exactly_once_and_report_failures_once(run_dir, mixed_folder, tmp_path):
    other = tmp_path / "other"
    write_images(other, 1, size=(32, 32), seed=99, prefix="img0")  # the same name as a file of the first folder
    (other / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "cyclegan", "translate", str(run_dir), str(mixed_folder), str(other),
                             "--out", str(out), "--device", "cpu", "--no-progress"],
                            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode != 0  # the broken file
    expected = sorted([f"img{i}_000.png" for i in range(7)] + ["img0_000_1.png"])
    assert sorted(path.name for path in out.iterdir()) == expected
    assert result.stdout.count("translated 8 file(s) into") == 1
    assert result.stderr.count("could not translate 1 file(s):") == 1
    assert len([line for line in result.stderr.splitlines() if "broken.png" in line]) == 1
    single = tmp_path / "single"
    Translator.from_checkpoint(run_dir, device="cpu").translate_files([mixed_folder, other], single)
    for name in expected:  # the same outputs as one process
        assert np.array_equal(np.asarray(Image.open(out / name)), np.asarray(Image.open(single / name))), name
