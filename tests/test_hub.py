"""Models shared as the Hub shares them: `cyclegan export RUN --hub-folder DIR` writes a folder
(safetensors, config.json, a model card, an example pair) that loads back with the run's exact
translations, by path or as `hf://owner/name` from a Hub (here a local server on 127.0.0.1
speaking the file routes huggingface_hub uses), downloaded once and then usable offline;
`cyclegan push` uploads that folder (here to a patched client)."""
from __future__ import annotations

import json
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

from conftest import require_module, tiny_config, tiny_train_argv, write_ct_volumes
from fake_hub import FakeHub

ITERATIONS = 2


@pytest.fixture
def trained(tiny_dataset, tmp_path) -> Path:
    assert main(tiny_train_argv(tiny_dataset, tmp_path / "runs", "source", "--max-iters", str(ITERATIONS))) == 0
    return tmp_path / "runs" / "source"


def translations(model, photo: Image.Image) -> dict[Direction, np.ndarray]:
    return {direction: np.asarray(Translator.from_checkpoint(model, direction=direction, device="cpu")(photo))
            for direction in Direction}


def test_a_hub_folder_translates_as_its_run_and_its_card_has_the_fields(trained, tiny_dataset, tmp_path, capsys):
    folder = tmp_path / "hub"
    with open(trained / "metrics.jsonl", "a") as metrics:  # as validation writes them
        metrics.write(json.dumps({"iteration": 1, "epoch": 1, "kid_AtoB": 0.5, "kid_BtoA": 0.25, "kid": 0.75,
                                  "best": True}) + "\n")
        metrics.write(json.dumps({"iteration": 2, "epoch": 1, "kid_AtoB": 0.625, "kid_BtoA": 0.25, "kid": 0.875,
                                  "best": False}) + "\n")
    (tmp_path / "scores.json").write_text(json.dumps({"directions": {"AtoB": {"fid": 12.5}}}))
    assert main(["export", str(trained), "--hub-folder", str(folder), "--repo-id", "me/tiny", "--license", "mit",
                 "--scores", str(tmp_path / "scores.json")]) == 0
    assert f"wrote {folder}: model.safetensors, config.json, example_input.png, example_output.png, README.md " \
           "(G_AB, G_BA)" in capsys.readouterr().out
    photo = Image.open(sorted((tiny_dataset / "testA").iterdir())[0])
    exported, original = translations(folder, photo), translations(trained, photo)
    assert all(np.array_equal(exported[direction], original[direction]) for direction in Direction)
    assert sorted({key.split(".")[0] for key in load_file(str(folder / "model.safetensors"))}) == ["G_AB", "G_BA"]

    front, body = read_card((folder / "README.md").read_text())
    assert front == {"library_name": "cyclegan", "license": "mit",
                     "tags": ["cyclegan", "image-to-image", "gan", "pytorch", "safetensors"],
                     "pipeline_tag": "image-to-image"}
    for line in ("cyclegan translate hf://me/tiny photos/ --out translated/",
                 "- generator: `resnet_6blocks`, ngf 8, instance norm, 3 → 3 channels, dropout off",
                 "- discriminator: `basic`, ndf 8 (not included)",
                 "- data: `data/trainA` (6 images), `data/trainB` (5 images)",
                 f"- iterations: {ITERATIONS} (epochs completed: 0)", "- precision: fp32",
                 "cyclegan train --netG resnet_6blocks --ngf 8 --ndf 8", "![input](example_input.png)",
                 "| checkpoint | iteration | kid_AtoB | kid_BtoA | kid |", "| newest | 2 | 0.625 | 0.25 | 0.875 |",
                 "| best | 1 | 0.5 | 0.25 | 0.75 |", "| directions.AtoB.fid | 12.5 |",
                 "- A: 3 channels, 8-bit images, [0, 255] → [-1, 1]\n"
                 "- B: 3 channels, 8-bit images, [0, 255] → [-1, 1]\n"):
        assert line in body, line
    config = json.loads((folder / "config.json").read_text())
    assert (config["library_name"], config["networks"], config["directions"], config["iteration"]) == (
        "cyclegan", ["G_AB", "G_BA"], ["AtoB", "BtoA"], ITERATIONS)
    example_in, example_out = Image.open(folder / "example_input.png"), Image.open(folder / "example_output.png")
    assert example_in.size == example_out.size == (40, 36)
    assert np.array_equal(np.asarray(example_out), np.asarray(Translator.from_checkpoint(trained, device="cpu")(
        example_in.convert("RGB"))))


def test_the_card_of_a_windowed_run_says_which_stored_values_each_domain_expects_and_returns(tmp_path, capsys):
    data = tmp_path / "data"
    write_ct_volumes(data / "trainA", 2)  # int16 Hounsfield units, through a window
    (data / "trainB").mkdir()
    for index in range(3):  # 16-bit scans without a window: their full range
        Image.fromarray(np.full((36, 40), 1000 * (index + 1), np.uint16)).save(data / "trainB" / f"s{index}.png")
    assert main(tiny_train_argv(data, tmp_path / "runs", "ct", "--input-nc", "1", "--output-nc", "1",
                                "--window-a=-1000,2000", "--slice-axis", "2", "--max-iters", "1")) == 0
    capsys.readouterr()

    assert main(["export", str(tmp_path / "runs" / "ct"), "--hub-folder", str(tmp_path / "hub"),
                 "--repo-id", "me/ct"]) == 0

    _front, body = read_card((tmp_path / "hub" / "README.md").read_text())
    assert ("- A: 1 channel, window -1000..2000 (mapped to [-1, 1], clipped)\n"
            "- B: 1 channel, 16-bit images, [0, 65535] → [-1, 1]\n"
            "- volumes (NIfTI, DICOM series): slices along voxel axis 2\n") in body
    assert 'translate.translate_files(["scans/"], "translated/")' in body
    assert ("no example pair: domain A's files are read through an intensity window or have other than 1 or 3 "
            "channels") in capsys.readouterr().out


def test_a_hub_folder_with_discriminators_is_a_start_for_init_from(trained, tiny_dataset, tmp_path):
    folder = tmp_path / "hub"
    assert main(["export", str(trained), "--hub-folder", str(folder), "--with-discriminators"]) == 0
    held = load_file(str(folder / "model.safetensors"))
    assert sorted({key.split(".")[0] for key in held}) == ["D_A", "D_B", "G_AB", "G_BA"]
    trainer = Trainer(tiny_config(tiny_dataset, tmp_path / "runs", name="tuned", init_from=str(folder)))
    for name, network in trainer.model.networks().items():
        assert all(torch.equal(value, held[f"{name}.{key}"]) for key, value in network.state_dict().items())
    assert trainer.init_notes == [f"init from:   {folder / 'model.safetensors'}: G_AB, G_BA, D_A, D_B; optimisers "
                                  "and schedule start new"]


def test_an_hf_name_is_downloaded_once_then_works_offline(trained, tiny_dataset, tmp_path, monkeypatch, capsys):
    require_module("huggingface_hub", "hub")
    folder = tmp_path / "hub"
    assert main(["export", str(trained), "--hub-folder", str(folder)]) == 0
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = FakeHub("me/tiny", folder)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    photo = Image.open(sorted((tiny_dataset / "testA").iterdir())[0])
    try:
        from_hub = translations("hf://me/tiny", photo)
        assert hub.downloads() == hub.files()  # each file once, though each direction resolved the name
    finally:
        hub.close()
    original = translations(trained, photo)
    assert all(np.array_equal(from_hub[direction], original[direction]) for direction in Direction)
    assert (tmp_path / "cache" / "hub" / "models--me--tiny").is_dir()

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the server is gone too
    offline = translations("hf://me/tiny", photo)
    assert all(np.array_equal(offline[direction], original[direction]) for direction in Direction)
    [cached] = (tmp_path / "cache" / "hub").glob("models--me--tiny/snapshots/*/model.safetensors")
    damaged = bytearray(cached.read_bytes())
    damaged[-1] ^= 1
    cached.resolve().write_bytes(bytes(damaged))  # the snapshot's files are links to the cache's blobs
    capsys.readouterr()
    assert main(["translate", "hf://me/tiny", str(tiny_dataset / "testA"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"cyclegan translate: error: hf://me/tiny: {cached} does not match the sha256 "
                                       f"that its config.json records (a damaged download?); delete {cached.parents[2]} "
                                       "and load it again\n")
    assert main(["translate", "hf://me/other", str(tiny_dataset / "testA"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"cyclegan translate: error: hf://me/other is not in the cache "
                                       f"({tmp_path / 'cache' / 'hub'}) and HF_HUB_OFFLINE is set; download it once "
                                       "while online\n")


@pytest.mark.parametrize("name", ["hf://just-a-name", "hf://a/b/c", "hf://owner/name@"])
def test_a_malformed_hf_name_is_one_line_error(name, tmp_path, capsys):
    assert main(["translate", name, str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"cyclegan translate: error: {name} is not a Hub model name; write "
                                       "hf://owner/name (or hf://owner/name@revision)\n")


def test_push_uploads_the_hub_folder(trained, tmp_path, monkeypatch, capsys):
    huggingface_hub = require_module("huggingface_hub", "hub")
    calls = []

    class RecordingApi:
        def __init__(self, endpoint=None):
            pass

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, private, exist_ok))
            return f"https://hub.example/{repo_id}"

        def upload_folder(self, repo_id, folder_path, commit_message):
            uploaded = Path(folder_path)
            card, _body = read_card((uploaded / "README.md").read_text())
            calls.append(("upload_folder", repo_id, sorted(p.name for p in uploaded.iterdir()), commit_message,
                          card["license"]))

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    assert main(["push", str(trained), "me/tiny", "--private", "--license", "cc-by-4.0"]) == 0
    assert calls == [("create_repo", "me/tiny", True, True),
                     ("upload_folder", "me/tiny", ["README.md", "config.json", "example_input.png",
                                                   "example_output.png", "model.safetensors"],
                      "Upload source with cyclegan push", "cc-by-4.0")]
    assert capsys.readouterr().out.endswith("uploaded to https://hub.example/me/tiny; load it with hf://me/tiny\n")


def test_export_refuses_a_folder_that_is_not_empty_and_missing_discriminators(trained, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert main(["export", str(trained), "--hub-folder", str(tmp_path / "full")]) == 2
    assert capsys.readouterr().err == (f"cyclegan export: error: {tmp_path / 'full'} already exists and is not an "
                                       "empty folder; choose a new --hub-folder\n")
    assert main(["export", str(trained), "--hub-folder", str(tmp_path / "g")]) == 0
    assert main(["export", str(tmp_path / "g"), "--hub-folder", str(tmp_path / "d"), "--with-discriminators"]) == 2
    assert capsys.readouterr().err.endswith(f"error: {tmp_path / 'g' / 'model.safetensors'} holds no "
                                            "discriminators; leave out --with-discriminators\n")
