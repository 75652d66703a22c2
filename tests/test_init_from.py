"""`cyclegan train --init-from MODEL`: a new run whose networks start as the source's, so that
before its first update it translates exactly as the source does; mismatched layers are named;
--resume is refused with it."""
from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from cyclegan import checkpoint as ckpt
from cyclegan.cli import main
from cyclegan.directions import Direction
from cyclegan.inference import Translator
from cyclegan.inference.resolve import resolve
from cyclegan.training.trainer import Trainer

from conftest import shared_dataset, tiny_config, tiny_train_argv

REFERENCE_GENERATOR = "r6_ngf8_net_G_A.pth"


def translated(generator: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    generator.eval()
    with torch.no_grad():
        return generator(image)


def test_init_from_a_reference_pth_translates_as_the_pth_before_the_first_update(tiny_dataset, tmp_path):
    pth = shared_dataset("reference_outputs") / REFERENCE_GENERATOR
    # Without NNPACK the training model's convolutions are torch's own, as the loaded generator's.
    config = tiny_config(tiny_dataset, tmp_path / "runs", init_from=str(pth), nnpack=False)
    trainer = Trainer(config)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    source, _spec = resolve(pth).load_generator(Direction.A_TO_B)
    assert torch.equal(translated(trainer.model.G_AB, image), translated(source, image))
    assert trainer.init_notes == [
        f"init from:   {pth}: G_AB; optimisers and schedule start new",
        "             trained from scratch: G_BA, D_A, D_B (the file holds no discriminators)"]
    assert (trainer.iteration, trainer.epoch, trainer.optimizer_g.state) == (0, 0, {})


def test_init_from_a_run_loads_all_four_networks_and_is_recorded(tiny_dataset, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(tiny_train_argv(tiny_dataset, runs, "source", "--max-iters", "2")) == 0
    source_weights = ckpt.find_checkpoint(runs / "source").weights
    config = tiny_config(tiny_dataset, runs, name="tuned", init_from=str(runs / "source"))
    trainer = Trainer(config)
    held = load_file(str(source_weights))
    for name, network in trainer.model.networks().items():
        for key, value in network.state_dict().items():
            assert torch.equal(value, held[f"{name}.{key}"]), f"{name}.{key}"
    trainer.save()  # iteration 0: the weights before the first update, translated as a user would
    photo = Image.open(sorted((tiny_dataset / "testA").iterdir())[0])
    for direction in Direction:
        before = Translator.from_checkpoint(runs / "tuned", direction=direction, device="cpu")(photo)
        source = Translator.from_checkpoint(runs / "source", direction=direction, device="cpu")(photo)
        assert np.array_equal(np.asarray(before), np.asarray(source))
    assert trainer.init_notes == [f"init from:   {source_weights}: G_AB, G_BA, D_A, D_B; optimisers and schedule "
                                  "start new"]
    capsys.readouterr()
    assert main(tiny_train_argv(tiny_dataset, runs, "cli", "--max-iters", "1", "--init-from", str(runs / "source"))) == 0
    assert f"init from:   {source_weights}: G_AB, G_BA, D_A, D_B" in capsys.readouterr().out
    saved = json.loads((runs / "cli" / "config.json").read_text())
    assert saved["run"]["init_from"] == str(runs / "source")


def test_init_from_a_model_of_another_size_names_the_layers_that_differ(tiny_dataset, tmp_path, capsys):
    pth = shared_dataset("reference_outputs") / REFERENCE_GENERATOR
    argv = tiny_train_argv(tiny_dataset, tmp_path / "runs", "wide", "--init-from", str(pth))
    argv[argv.index("--ngf") + 1] = "16"
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(f"cyclegan train: error: --init-from {pth}: G_AB does not fit this run's generator "
                            "(shapes differ: model.1.weight (8x3x7x7 there, 16x3x7x7 here), ")
    assert error.endswith("It is resnet_6blocks 3->3 channels, ngf 8, instance norm, from "
                          f"{pth}: give the same --netG, --ngf, --norm and channels\n")


def test_init_from_with_resume_is_refused(tiny_dataset, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "runs" / "x"), "--init-from", "horse2zebra"]) == 2
    assert capsys.readouterr().err == ("cyclegan train: error: --init-from starts a new run from a model and "
                                       "--resume continues a run from its own checkpoint; give one of them\n")
