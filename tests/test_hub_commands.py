"""`hf://owner/name` wherever a model is given: `cyclegan serve`, `evaluate`, `export` (ONNX, and a
Hub folder exported again) and `train --init-from`, each through the command line against a Hub
on 127.0.0.1 (tests/fake_hub.py), each doing exactly what it does with the local Hub folder."""
from __future__ import annotations

import json
import os
import signal
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cyclegan.cli import main
from cyclegan.directions import Direction
from cyclegan.hub_folder import read_card
from cyclegan.inference import Translator
from cyclegan.training.trainer import Trainer

from conftest import require_module, tiny_config, tiny_train_argv, train_tiny_source
from fake_hub import FakeHub

REPO = "me/tiny"
SOURCE_SEED = "7"  # not the fine-tuned runs' seed, so that a run that loaded nothing translates otherwise


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """A tiny dataset, a run trained on it and its Hub folder, made once for the module."""
    root = tmp_path_factory.mktemp("hub_commands")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CYCLEGAN_CACHE", str(root / "cache"))
        source = train_tiny_source(root, SOURCE_SEED)
        assert main(["export", str(source), "--hub-folder", str(root / "hub"), "--repo-id", REPO]) == 0
    return root


@pytest.fixture
def hub(shared, tmp_path, monkeypatch):
    """The Hub folder served as hf://me/tiny; each test downloads it into its own cache."""
    require_module("huggingface_hub", "hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    server = FakeHub(REPO, shared / "hub")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.close()


def snapshot(hub: FakeHub, tmp_path: Path) -> Path:
    """Where the client keeps the downloaded folder (the private cache root of conftest)."""
    return tmp_path / "cache" / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / hub.commit


def test_serve_takes_an_hf_name_and_answers_as_the_local_hub_folder(shared, hub, tmp_path):
    require_module("starlette", "web")
    from test_serve_api import png_bytes, post_image, request, start_serving

    process, lines, url = start_serving(f"hf://{REPO}", "--device", "cpu", "--workers", "1", env=dict(os.environ))
    try:
        assert lines[0] == (f"model: resnet_6blocks 3->3 channels, ngf 8, instance norm, from "
                            f"{snapshot(hub, tmp_path) / 'model.safetensors'}\n")
        assert list(request(url + "/info", timeout=30).json()["directions"]) == ["AtoB", "BtoA"]
        photo = Image.open(BytesIO(png_bytes(20, 12))).convert("RGB")
        for direction in Direction:
            served = post_image(url, png_bytes(20, 12), direction=str(direction)).image()
            local = Translator.from_checkpoint(shared / "hub", direction=direction, device="cpu")(photo)
            assert np.array_equal(np.asarray(served), np.asarray(local)), direction
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert hub.downloads() == hub.files()


def test_evaluate_scores_an_hf_name_as_the_local_hub_folder(shared, hub, tmp_path, fake_inception, capsys):
    scores = {}
    for name, model in (("hub", f"hf://{REPO}"), ("local", str(shared / "hub"))):
        assert main(["evaluate", model, "--data", str(shared / "data"), "--device", "cpu", "--fid",
                     "--inception-weights", str(fake_inception), "--out", str(tmp_path / f"{name}.json"),
                     "--quiet"]) == 0
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert scores["hub"]["checkpoint"] == str(snapshot(hub, tmp_path) / "model.safetensors")
    assert scores["local"]["checkpoint"] == str(shared / "hub" / "model.safetensors")
    for key in ("directions", "dataset", "size", "segmentation", "notes"):
        assert scores["hub"][key] == scores["local"][key], key
    assert sorted(scores["hub"]["directions"]) == ["AtoB", "BtoA"]
    assert scores["hub"]["directions"]["AtoB"]["fid"] is not None
    assert scores["hub"]["size"] == 32  # the source run's crop size, which the folder's config.json carries


def test_export_onnx_from_an_hf_name_computes_as_the_local_hub_folders_export(shared, hub, tmp_path, capsys):
    require_module("onnx", "onnx")
    from cyclegan.inference.onnx import load_onnx_generator

    image = torch.rand(1, 3, 32, 40) * 2 - 1
    outputs = {}
    for name, model in (("hub", f"hf://{REPO}"), ("local", str(shared / "hub"))):
        capsys.readouterr()
        assert main(["export", model, "--onnx", str(tmp_path / f"{name}.onnx"), "--direction", "BtoA"]) == 0
        weights = snapshot(hub, tmp_path) if name == "hub" else shared / "hub"
        assert capsys.readouterr().out.splitlines()[0] == (
            f"wrote {tmp_path / f'{name}.onnx'}: resnet_6blocks 3->3 channels, ngf 8, instance norm, from "
            f"{weights / 'model.safetensors'}")
        generator, _spec = load_onnx_generator(tmp_path / f"{name}.onnx", "cpu")
        outputs[name] = generator(image)
    assert torch.equal(outputs["hub"], outputs["local"])
    torch_generator = Translator.from_checkpoint(shared / "hub", direction="BtoA", device="cpu").generator
    with torch.no_grad():
        assert torch.allclose(outputs["hub"], torch_generator(image), atol=1e-4)


def test_export_hub_folder_from_an_hf_name_keeps_the_model_and_its_card(shared, hub, tmp_path, capsys):
    again = tmp_path / "mirror"
    capsys.readouterr()
    assert main(["export", f"hf://{REPO}", "--hub-folder", str(again), "--repo-id", "you/tiny",
                 "--license", "mit"]) == 0
    assert capsys.readouterr().out == (f"wrote {again}: model.safetensors, config.json, example_input.png, "
                                       "example_output.png, README.md (G_AB, G_BA)\n")
    assert load_file(str(again / "model.safetensors")).keys() == load_file(str(shared / "hub" /
                                                                                "model.safetensors")).keys()
    photo = Image.open(sorted((shared / "data" / "testA").iterdir())[0])
    for direction in Direction:
        mirrored = Translator.from_checkpoint(again, direction=direction, device="cpu")(photo)
        original = Translator.from_checkpoint(shared / "runs" / "source", direction=direction, device="cpu")(photo)
        assert np.array_equal(np.asarray(mirrored), np.asarray(original)), direction
    front, body = read_card((again / "README.md").read_text())
    assert front["license"] == "mit"
    # the training details come from the Hub folder's config.json, as there is no run folder
    for line in ("cyclegan translate hf://you/tiny photos/ --out translated/", "- iterations: 2 (epochs completed: 0)",
                 "- data: `data/trainA` (6 images), `data/trainB` (5 images)",
                 "cyclegan train --netG resnet_6blocks --ngf 8 --ndf 8"):
        assert line in body, line
    assert json.loads((again / "config.json").read_text())["training"] == json.loads(
        (shared / "runs" / "source" / "config.json").read_text())


def test_export_from_an_hf_name_refuses_what_a_hub_folder_cannot_give(shared, hub, tmp_path, capsys):
    assert main(["export", f"hf://{REPO}", "--hub-folder", str(tmp_path / "d"), "--with-discriminators"]) == 2
    *download_progress, error = capsys.readouterr().err.splitlines()
    assert error == (f"cyclegan export: error: {snapshot(hub, tmp_path) / 'model.safetensors'} holds no "
                     "discriminators; leave out --with-discriminators")
    assert all("error" not in line for line in download_progress)
    assert main(["export", f"hf://{REPO}", "--hub-folder", str(tmp_path / "b"), "--pick", "best"]) == 2
    assert capsys.readouterr().err == (f"cyclegan export: error: hf://{REPO} is a Hub model, which holds one model; "
                                       "leave out --pick best\n")
    assert not (tmp_path / "d").exists() and not (tmp_path / "b").exists()


def test_train_init_from_an_hf_name_translates_as_the_source_before_its_first_update(shared, hub, tmp_path, capsys):
    weights = snapshot(hub, tmp_path) / "model.safetensors"
    notes = [f"init from:   {weights}: G_AB, G_BA; optimisers and schedule start new",
             "             trained from scratch: D_A, D_B (the file holds no discriminators)"]
    trainer = Trainer(tiny_config(shared / "data", tmp_path / "runs", name="tuned", init_from=f"hf://{REPO}"))
    assert trainer.init_notes == notes
    trainer.save()  # iteration 0: the weights before the first update, translated as a user would
    fresh = Trainer(tiny_config(shared / "data", tmp_path / "runs", name="fresh"))
    fresh.save()
    photo = Image.open(sorted((shared / "data" / "testA").iterdir())[0])
    for direction in Direction:
        def translate(model):
            return np.asarray(Translator.from_checkpoint(model, direction=direction, device="cpu")(photo))

        assert np.array_equal(translate(tmp_path / "runs" / "tuned"), translate(shared / "hub")), direction
        assert not np.array_equal(translate(tmp_path / "runs" / "fresh"), translate(shared / "hub")), direction

    capsys.readouterr()
    assert main(tiny_train_argv(shared / "data", tmp_path / "runs", "cli", "--max-iters", "1",
                                "--init-from", f"hf://{REPO}")) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:3] == notes  # after the precision line, before training
    assert json.loads((tmp_path / "runs" / "cli" / "config.json").read_text())["run"]["init_from"] == f"hf://{REPO}@{hub.commit}"
