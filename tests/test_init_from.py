"""`cyclegan train --init-from MODEL`: a new run whose networks start as the source's, so that
before its first update it translates exactly as the source does, from a run, a reference .pth, a
downloaded zoo model, a pix2pix run or a Hub folder (with or without its discriminators); it says
at start which networks were loaded and which train fresh; mismatched layers are named; --resume is
refused with it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cyclegan import checkpoint as ckpt
from cyclegan.cli import build_parser, main
from cyclegan.cli.train import resolve_config
from cyclegan.directions import Direction
from cyclegan.inference import Translator
from cyclegan.inference.resolve import resolve
from cyclegan.training.trainer import Trainer

from conftest import shared_dataset, tiny_config, tiny_train_argv, train_tiny_source, write_images

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


# --- from the other sources: a zoo model, a pix2pix run, a Hub folder -------------------------------

SOURCE_SEED = "7"  # not the new runs' seed, so that a network left fresh differs from the source's


def cli_trainer(argv: list[str]) -> Trainer:
    """The trainer `cyclegan train ARGV` builds, before its first update."""
    config, _resume = resolve_config(build_parser().parse_args(argv))
    return Trainer(config)


def init_lines(printed: str) -> list[str]:
    """What `cyclegan train` says about --init-from at start."""
    lines = printed.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("init from:"))
    return [lines[start]] + [line for line in lines[start + 1:start + 2] if line.startswith("             ")]


def same_weights(network: torch.nn.Module, held: dict[str, torch.Tensor], name: str) -> bool:
    return all(torch.equal(value, held[f"{name}.{key}"]) for key, value in network.state_dict().items())


def same_translations(run: Path, source: Path, photo: Image.Image, directions=tuple(Direction)) -> bool:
    return all(np.array_equal(np.asarray(Translator.from_checkpoint(run, direction=d, device="cpu")(photo)),
                              np.asarray(Translator.from_checkpoint(source, direction=d, device="cpu")(photo)))
               for d in directions)


@pytest.fixture(scope="module")
def cyclegan_source(tmp_path_factory) -> Path:
    """A tiny dataset, a CycleGAN run on it, and its Hub folders with and without discriminators."""
    root = tmp_path_factory.mktemp("init_sources")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CYCLEGAN_CACHE", str(root / "cache"))
        source = train_tiny_source(root, SOURCE_SEED)
        assert main(["export", str(source), "--hub-folder", str(root / "hub")]) == 0
        assert main(["export", str(source), "--hub-folder", str(root / "hub_d"), "--with-discriminators"]) == 0
    return root


@pytest.fixture(scope="module")
def pix2pix_source(tmp_path_factory) -> Path:
    """Paired data (same names in trainA and trainB) and a tiny pix2pix run on it (batch norm, its default)."""
    root = tmp_path_factory.mktemp("pix2pix_source")
    write_images(root / "paired" / "trainA", 4, seed=1, prefix="p")
    write_images(root / "paired" / "trainB", 4, seed=2, prefix="p")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CYCLEGAN_CACHE", str(root / "cache"))
        assert main(pix2pix_argv(root / "paired", root / "runs", "source", "--max-iters", "2",
                                 "--seed", SOURCE_SEED)) == 0
    return root


def pix2pix_argv(data: Path, runs: Path, name: str, *extra: str) -> list[str]:
    return ["train", "--model", "pix2pix"] + tiny_train_argv(data, runs, name, *extra)[1:]


def test_init_from_a_downloaded_zoo_model_translates_as_it_before_the_first_update(tiny_dataset, tmp_path,
                                                                                  monkeypatch, capsys):
    from cyclegan import zoo
    from http_server import serve_files
    from test_zoo import SERVED_PATH, official_style_generator, pth_bytes

    _generator, state = official_style_generator(seed=3)  # a ResNet-9 with ngf 8, saved as the 2017 files are
    with serve_files({SERVED_PATH: pth_bytes(state)}) as server:
        monkeypatch.setenv(zoo.BASE_URL_ENV, server.url)
        assert main(["models", "download", "horse2zebra", "--no-progress"]) == 0
    cached = zoo.cached_model_path("horse2zebra")
    argv = tiny_train_argv(tiny_dataset, tmp_path / "runs", "zebras", "--init-from", "horse2zebra",
                           "--no-nnpack")  # then the training model's convolutions are torch's own, as the zoo's
    argv[argv.index("--netG") + 1] = "resnet_9blocks"
    trainer = cli_trainer(argv)
    assert trainer.init_notes == [f"init from:   {cached}: G_AB; optimisers and schedule start new",
                                  "             trained from scratch: G_BA, D_A, D_B (the file holds no "
                                  "discriminators)"]
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    source, _spec = resolve("horse2zebra").load_generator(Direction.A_TO_B)
    assert torch.equal(translated(trainer.model.G_AB, image), translated(source, image))
    fresh = cli_trainer([word for word in argv if word not in ("--init-from", "horse2zebra")])
    assert not torch.equal(translated(fresh.model.G_AB, image), translated(source, image))


def test_init_from_a_pix2pix_run_gives_a_pix2pix_run_its_generator_and_discriminator(pix2pix_source, tmp_path,
                                                                                     capsys):
    source = pix2pix_source / "runs" / "source"
    weights = ckpt.find_checkpoint(source).weights
    argv = pix2pix_argv(pix2pix_source / "paired", tmp_path / "runs", "tuned", "--init-from", str(source))
    trainer = cli_trainer(argv)
    held = load_file(str(weights))
    assert all(same_weights(network, held, name) for name, network in trainer.model.networks().items())
    assert trainer.init_notes == [f"init from:   {weights}: G_AB, D; optimisers and schedule start new"]
    trainer.save()
    photo = Image.open(pix2pix_source / "paired" / "trainA" / "p_000.png")
    assert same_translations(tmp_path / "runs" / "tuned", source, photo, [Direction.A_TO_B])
    capsys.readouterr()
    assert main(pix2pix_argv(pix2pix_source / "paired", tmp_path / "runs", "cli", "--max-iters", "1",
                             "--init-from", str(source))) == 0
    assert init_lines(capsys.readouterr().out) == trainer.init_notes


def test_a_pix2pix_run_gives_a_cyclegan_run_its_generator_only(pix2pix_source, tmp_path, capsys):
    """A pix2pix model has no B->A generator, and its discriminator judges (A, B) pairs: the
    CycleGAN run takes its G_AB (the same architecture, here batch norm) and trains the rest fresh."""
    source = pix2pix_source / "runs" / "source"
    weights = ckpt.find_checkpoint(source).weights
    # The same architecture as pix2pix's defaults here: batch norm, and dropout in the ResNet blocks.
    argv = tiny_train_argv(pix2pix_source / "paired", tmp_path / "runs", "cycle", "--norm", "batch", "--dropout",
                           "--init-from", str(source))
    trainer = cli_trainer(argv)
    assert trainer.init_notes == [
        f"init from:   {weights}: G_AB; optimisers and schedule start new",
        "             trained from scratch: G_BA, D_A, D_B (a pix2pix model holds one generator, and its D judges "
        "(A, B) pairs, not one domain's images)"]
    held = load_file(str(weights))
    assert same_weights(trainer.model.G_AB, held, "G_AB")
    fresh = cli_trainer(argv[:argv.index("--init-from")])
    for name in ("G_BA", "D_A", "D_B"):  # as a run without --init-from starts them
        assert same_weights(trainer.model.networks()[name], {f"{name}.{key}": value for key, value in
                                                             fresh.model.networks()[name].state_dict().items()}, name)

    assert main(argv[:argv.index("--norm")] + argv[argv.index("--norm") + 2:]) == 2  # instance norm, the default
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(f"cyclegan train: error: --init-from {weights}: G_AB does not fit this run's generator (")
    assert error.endswith("). It was trained with --norm batch: give the same\n")
    assert main([value for value in argv if value != "--dropout"]) == 2  # CycleGAN's default: no dropout
    assert capsys.readouterr().err.endswith("). It was trained with --dropout: give the same\n")


def test_a_cyclegan_model_gives_a_pix2pix_run_its_generator_only(cyclegan_source, pix2pix_source, tmp_path):
    weights = cyclegan_source / "hub_d" / "model.safetensors"
    trainer = cli_trainer(pix2pix_argv(pix2pix_source / "paired", tmp_path / "runs", "p2p", "--norm", "instance",
                                       "--no-dropout", "--init-from", str(cyclegan_source / "hub_d")))
    assert trainer.init_notes == [
        f"init from:   {weights}: G_AB; optimisers and schedule start new",
        "             trained from scratch: D (pix2pix's D judges (A, B) pairs, and the file's D_A, D_B one "
        "domain's images)"]
    assert same_weights(trainer.model.G_AB, load_file(str(weights)), "G_AB")


@pytest.mark.parametrize("folder, loaded, expected", [
    ("hub", ["G_AB", "G_BA"], ["init from:   {weights}: G_AB, G_BA; optimisers and schedule start new",
                               "             trained from scratch: D_A, D_B (the file holds no discriminators)"]),
    ("hub_d", ["G_AB", "G_BA", "D_A", "D_B"],
     ["init from:   {weights}: G_AB, G_BA, D_A, D_B; optimisers and schedule start new"]),
])
def test_init_from_a_hub_folder_says_which_networks_load_and_which_train_fresh(folder, loaded, expected,
                                                                              cyclegan_source, tmp_path, capsys):
    hub = cyclegan_source / folder
    capsys.readouterr()
    assert main(tiny_train_argv(cyclegan_source / "data", tmp_path / "runs", "tuned", "--max-iters", "1",
                                "--init-from", str(hub))) == 0
    assert init_lines(capsys.readouterr().out) == [line.format(weights=hub / "model.safetensors")
                                                   for line in expected]
    trainer = cli_trainer(tiny_train_argv(cyclegan_source / "data", tmp_path / "runs", "before",
                                          "--init-from", str(hub)))
    held = load_file(str(hub / "model.safetensors"))
    assert sorted({key.split(".")[0] for key in held}) == sorted(loaded)
    assert all(same_weights(trainer.model.networks()[name], held, name) for name in loaded)
    trainer.save()
    photo = Image.open(sorted((cyclegan_source / "data" / "testA").iterdir())[0])
    assert same_translations(tmp_path / "runs" / "before", cyclegan_source / "runs" / "source", photo)


def test_init_from_discriminators_of_another_size_names_the_layers_in_one_line(cyclegan_source, tmp_path, capsys):
    weights = cyclegan_source / "hub_d" / "model.safetensors"
    argv = tiny_train_argv(cyclegan_source / "data", tmp_path / "runs", "wide", "--init-from",
                           str(cyclegan_source / "hub_d"))
    argv[argv.index("--ndf") + 1] = "16"
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"cyclegan train: error: --init-from {weights}: D_A does not fit this run's discriminator (shapes differ: "
        "model.0.weight (8x3x4x4 there, 16x3x4x4 here), model.0.bias (8 there, 16 here), model.2.weight "
        "(16x8x4x4 there, 32x16x4x4 here), model.2.bias (16 there, 32 here) and 5 more). It was trained with "
        "--ndf 8: give the same\n")
    assert not (tmp_path / "runs" / "wide" / "checkpoints").exists()


def test_a_cut_run_takes_the_generator_and_discriminator_of_its_direction(cyclegan_source, tmp_path, capsys):
    weights = cyclegan_source / "hub_d" / "model.safetensors"
    argv = tiny_train_argv(cyclegan_source / "data", tmp_path / "runs", "cut", "--model", "cut", "--direction",
                           "BtoA", "--init-from", str(cyclegan_source / "hub_d"))
    assert main(argv) == 2  # CUT's own networks are anti-aliased; the CycleGAN's are not
    assert capsys.readouterr().err.endswith("). It was trained with --no-antialias, --upsample transposed: give "
                                            "the same\n")
    trainer = cli_trainer(argv + ["--no-antialias", "--upsample", "transposed"])
    assert trainer.init_notes == [
        f"init from:   {weights}: G_BA, D_A; optimisers and schedule start new",
        "             trained from scratch: projector (the file holds D_A, D_B, G_AB, G_BA only)"]
    held = load_file(str(weights))
    assert same_weights(trainer.model.G, held, "G_BA") and same_weights(trainer.model.D, held, "D_A")


def test_init_from_a_model_holding_none_of_the_runs_networks_is_refused(tiny_dataset, tmp_path, capsys):
    pth = shared_dataset("reference_outputs") / REFERENCE_GENERATOR  # one generator, which is G_AB
    assert main(tiny_train_argv(tiny_dataset, tmp_path / "runs", "back", "--model", "cut", "--direction", "BtoA",
                                "--init-from", str(pth))) == 2
    assert capsys.readouterr().err == (f"cyclegan train: error: --init-from {pth} holds none of this run's networks "
                                       "(it holds G_AB; this run trains G_BA, D_A, projector); give a model of the "
                                       "same kind and direction\n")
    assert not (tmp_path / "runs" / "back").exists()
