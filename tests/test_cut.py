"""CUT and FastCUT (`--model cut|fastcut`): their defaults, their objective, and a tiny run that
trains, resumes exactly, is validated, translates its one direction and refuses the other."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cyclegan import checkpoint as ckpt
from cyclegan.cli import build_parser, main
from cyclegan.cli.options import config_from_args
from cyclegan.config import ModelConfig, TrainConfig
from cyclegan.directions import Direction
from cyclegan.errors import ConfigError
from cyclegan.evaluation import fid as fid_metrics
from cyclegan.networks import encode_features
from cyclegan.training.model import ContrastiveModel, build_model
from cyclegan.training.objective import CUTObjective, build_objective, check_objective_options
from cyclegan.training.patchnce import patch_nce

from conftest import tiny_train_argv, write_images


def tiny_cut(model: str = "cut", **loss) -> tuple[TrainConfig, ContrastiveModel, CUTObjective]:
    config = TrainConfig(model=ModelConfig(model=model))
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 4, 4
    for name, value in loss.items():
        setattr(config.loss, name, value)
    torch.manual_seed(0)
    networks = build_model(config.model)
    return config, networks, build_objective(config, networks.generators, networks.discriminators, networks.judges())


def images(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1 for _ in range(2))


# --- defaults and options ---------------------------------------------------------------------------

@pytest.mark.parametrize("model, expected", [
    ("cut", {"lambda_nce": 1.0, "nce_idt": True, "flip_equivariance": False, "epochs": 200, "epochs_decay": 200}),
    ("fastcut", {"lambda_nce": 10.0, "nce_idt": False, "flip_equivariance": True, "epochs": 150, "epochs_decay": 50}),
])
def test_each_model_has_the_papers_defaults_from_the_cli_a_config_file_and_python(model, expected, tmp_path):
    from_cli = config_from_args(build_parser().parse_args(["train", "--model", model, "--data", "d"]))
    (tmp_path / "c.json").write_text(json.dumps({"model": {"model": model}, "data": {"data": "d"}}))
    from_file = config_from_args(build_parser().parse_args(["train", "--config", str(tmp_path / "c.json")]))
    from_python = TrainConfig(model=ModelConfig(model=model))
    from_python.data.data = "d"
    assert from_cli == from_file == from_python
    loss, optim, networks = from_python.loss, from_python.optim, from_python.model
    assert {name: getattr(loss, name, getattr(optim, name, None)) for name in expected} == expected
    assert (loss.lambda_gan, loss.num_patches, loss.nce_temperature, loss.gan_mode, loss.pool_size,
            loss.lambda_identity) == (1.0, 256, 0.07, "lsgan", 0, 0.0)
    # CUT's networks: the anti-aliased ResNet-9 and PatchGAN, xavier-initialised with gain 0.02
    assert (networks.net_g, networks.norm, networks.antialias, networks.upsample, networks.init_type,
            networks.init_gain, networks.direction, networks.nce_layers) == (
        "resnet_9blocks", "instance", True, "antialias", "xavier", 0.02, "AtoB", None)
    # CycleGAN keeps its own
    cyclegan = TrainConfig()
    assert (cyclegan.optim.epochs, cyclegan.model.antialias, cyclegan.model.init_type, cyclegan.loss.lambda_nce) == (
        100, False, "normal", None)


def test_the_default_nce_layers_are_the_papers_0_4_8_12_16_of_the_antialiased_generator():
    config = TrainConfig(model=ModelConfig(model="cut"))
    assert build_model(config.model).generators.nce_layers == (0, 4, 8, 12, 16)
    config.model.nce_layers = "0,12"
    assert build_model(config.model).generators.projector.channel_counts == (3, 256)


def test_the_help_shows_each_models_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: cut: 1.0; fastcut: 10.0)" in help_text
    assert "(default: 100; cut: 200; fastcut: 150)" in help_text


@pytest.mark.parametrize("model, values, message", [
    ("cyclegan", {"loss.lambda_nce": 1.0}, "--lambda-NCE only applies to --model cut and fastcut; leave it out"),
    ("pix2pix", {"model.nce_layers": "0,4"}, "--nce-layers only applies to --model cut and fastcut; leave it out"),
    ("cut", {"loss.lambda_a": 5.0, "loss.cycle": "none"},
     "--cycle, --lambda-A do not apply to --model cut, which has one generator and no cycle; leave them out"),
    ("fastcut", {"model.net_g": "unet_256"}, "--model fastcut reads the encoder of a ResNet generator, not --netG "
                                             "unet_256; use --netG resnet_9blocks or resnet_6blocks"),
    ("cut", {"model.output_nc": 1}, "--nce-idt feeds target-domain images to the generator, which needs "
                                    "--input-nc == --output-nc (got 3 and 1); pass --no-nce-idt"),
])
def test_options_that_do_not_fit_the_model_are_refused_by_name(model, values, message):
    config = TrainConfig(model=ModelConfig(model=model))
    for key, value in values.items():
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
    with pytest.raises(ConfigError) as error:
        check_objective_options(config)
    assert str(error.value) == message


@pytest.mark.parametrize("values, message", [
    ({"model": {"direction": "BtoA"}}, "--direction BtoA applies to --model cut and fastcut"),
    ({"model": {"model": "cut", "nce_layers": "0,x"}}, "--nce-layers '0,x' is not a comma-separated list"),
    ({"model": {"model": "cut"}, "loss": {"num_patches": 0}}, "--num-patches must be at least 1, got 0"),
    ({"model": {"model": "cut"}, "validation": {"select_by": "kid_BtoA"}},
     "--select-by kid_BtoA is not a score of --model cut"),
])
def test_the_config_refuses_what_no_run_can_use(values, message):
    config = TrainConfig.from_dict({**values, "data": {"data": "d"}})
    with pytest.raises(ConfigError, match=message):
        config.validate()


# --- the objective ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model, direction, generator_names, discriminator_names, fakes", [
    ("cut", "AtoB", ["loss_G_GAN", "loss_NCE", "loss_NCE_idt"], ["loss_D_B", "acc_D_B"], ["B"]),
    ("fastcut", "AtoB", ["loss_G_GAN", "loss_NCE"], ["loss_D_B", "acc_D_B"], ["B"]),
    ("cut", "BtoA", ["loss_G_GAN", "loss_NCE", "loss_NCE_idt"], ["loss_D_A", "acc_D_A"], ["A"]),
])
def test_loss_terms_and_networks_are_named_by_the_direction(model, direction, generator_names, discriminator_names,
                                                            fakes):
    config = TrainConfig(model=ModelConfig(model=model, direction=direction))
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 4, 4
    networks = build_model(config.model)
    objective = build_objective(config, networks.generators, networks.discriminators, networks.judges())
    terms_g, outputs = objective.generator_terms(*images(0))
    assert list(terms_g.terms) == generator_names and sorted(outputs.fakes) == fakes
    terms_d = objective.discriminator_terms(*images(0), {fakes[0]: outputs.fakes[fakes[0]].detach()})
    assert [name for name, _value in terms_d.items()] == discriminator_names
    d = Direction(direction)
    assert list(networks.networks()) == [d.generator, d.discriminator, "projector"]
    # G and the heads share the generator's optimizer
    assert len(networks.generator_parameters()) == (len(list(networks.G.parameters()))
                                                    + len(list(networks.projector.parameters())))


def test_the_nce_terms_are_lambda_nce_times_patchnce_halved_when_the_identity_term_joins():
    real_a, real_b = images(1)
    _config, networks, objective = tiny_cut("cut", nce_idt=False, lambda_nce=3.0)
    expected_rng = torch.Generator().set_state(objective.rng.get_state())
    without = objective.generator_terms(real_a, real_b)[0].terms["loss_NCE"]
    # by hand: PatchNCE between a and G(a), locations drawn as the objective draws them
    layers = networks.generators.nce_layers
    by_hand = patch_nce(networks.projector, encode_features(networks.G, networks.G(real_a), layers),
                        encode_features(networks.G, real_a, layers), expected_rng)
    assert without.item() == pytest.approx(3.0 * by_hand.item(), rel=1e-5)
    _config, _networks, objective = tiny_cut("cut", nce_idt=True, lambda_nce=3.0)
    terms = objective.generator_terms(real_a, real_b)[0].terms
    # the source's locations are drawn first either way, so the source's term is the same PatchNCE
    assert terms["loss_NCE"].item() == pytest.approx(0.5 * without.item(), rel=1e-5)
    assert terms["loss_NCE_idt"].item() > 0


def test_the_adversarial_term_is_lambda_gan_times_lsgan_of_the_target_discriminator():
    real_a, real_b = images(2)
    _config, networks, objective = tiny_cut("fastcut", lambda_gan=2.0, flip_equivariance=False)
    terms, outputs = objective.generator_terms(real_a, real_b)
    prediction = networks.D(outputs.fakes["B"])
    assert terms.terms["loss_G_GAN"].item() == pytest.approx(2.0 * ((prediction - 1) ** 2).mean().item(), rel=1e-6)


def test_flip_equivariance_translates_the_mirrored_input_and_compares_features_mirrored_back():
    real_a, real_b = images(3)
    _config, networks, _objective = tiny_cut("fastcut")
    rng = torch.Generator().manual_seed(5)
    out = networks.generators(real_a, real_b, identity=False, flipped=True, rng=rng, num_patches=16,
                              temperature=0.07)
    assert torch.equal(out["fake"], networks.G(torch.flip(real_a, dims=(-1,))))
    layers = networks.generators.nce_layers
    queries = [torch.flip(feature, dims=(-1,)) for feature in encode_features(networks.G, out["fake"], layers)]
    by_hand = patch_nce(networks.projector, queries, encode_features(networks.G, real_a, layers),
                        torch.Generator().manual_seed(5), num_patches=16)
    assert out["nce"].item() == pytest.approx(by_hand.item(), rel=1e-6)


# --- a tiny run -------------------------------------------------------------------------------------

def cut_argv(data, runs, name, model, *extra):
    # Two PatchNCE layers and 16 locations keep the tiny run fast; the rest is each model's default.
    return tiny_train_argv(data, runs, name, "--model", model, "--nce-layers", "0,4", "--num-patches", "16", *extra)


def test_fastcut_with_the_identity_term_resumes_exactly(tiny_dataset, tmp_path):
    runs = tmp_path / "runs"
    assert main(cut_argv(tiny_dataset, runs, "straight", "fastcut", "--nce-idt", "--max-iters", "3")) == 0
    assert main(cut_argv(tiny_dataset, runs, "split", "fastcut", "--nce-idt", "--max-iters", "1")) == 0
    assert main(["train", "--resume", str(runs / "split"), "--max-iters", "3", "--no-progress"]) == 0
    straight = load_file(str(ckpt.find_checkpoint(runs / "straight").weights))
    resumed = load_file(str(ckpt.find_checkpoint(runs / "split").weights))
    assert sorted({key.split(".")[0] for key in straight}) == ["D_B", "G_AB", "projector"]
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    states = [ckpt.load_training_state(ckpt.find_checkpoint(runs / name).state) for name in ("straight", "split")]
    assert torch.equal(states[0]["ranks"][0]["objective"]["rng"], states[1]["ranks"][0]["objective"]["rng"])
    records = [json.loads(line) for line in (runs / "straight" / "log.jsonl").read_text().splitlines()]
    assert [sorted(key for key in record if key.startswith(("loss", "acc"))) for record in records] == 3 * [
        ["acc_D_B", "loss_D_B", "loss_G_GAN", "loss_NCE", "loss_NCE_idt"]]
    saved = json.loads((runs / "straight" / "config.json").read_text())
    assert (saved["model"]["model"], saved["loss"]["lambda_nce"], saved["loss"]["flip_equivariance"],
            saved["optim"]["epochs"]) == ("fastcut", 10.0, True, 2)


def test_a_btoa_cut_run_is_validated_translates_b_to_a_by_default_and_refuses_a_to_b(tiny_dataset, tmp_path, monkeypatch,
                                                                          fake_inception, capsys):
    monkeypatch.setenv(fid_metrics.WEIGHTS_ENV, str(fake_inception))
    write_images(tiny_dataset / "valA", 3, seed=5, prefix="va")
    write_images(tiny_dataset / "valB", 3, seed=6, prefix="vb")
    runs = tmp_path / "runs"
    assert main(cut_argv(tiny_dataset, runs, "ba", "cut", "--direction", "BtoA", "--eval-every", "1",
                         "--max-iters", "2", "--keep-last", "1")) == 0
    run = runs / "ba"
    assert ckpt.generator_directions(run) == (Direction.B_TO_A,)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluations = [record for record in records if "warning" not in record]
    assert [record["iteration"] for record in evaluations] == [1, 2]
    assert all(record["kid"] == record["kid_BtoA"] and "kid_AtoB" not in record and "cycle" not in record
               for record in evaluations)
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert best["select_by"] == "kid" and best["iteration"] in (1, 2)
    assert (run / "gallery" / "index.html").exists()

    source = tiny_dataset / "testB" / "tb_000.png"
    assert main(["translate", str(run), str(source), "--out", str(tmp_path / "out"), "--direction", "BtoA",
                 "--pick", "best", "--device", "cpu", "--no-progress"]) == 0
    assert Image.open(tmp_path / "out" / "tb_000.png").size == Image.open(source).size
    # Without --direction the run's one direction is applied, as `serve` serves it.
    assert main(["translate", str(run), str(source), "--out", str(tmp_path / "implicit"), "--pick", "best",
                 "--device", "cpu", "--no-progress"]) == 0
    assert (np.asarray(Image.open(tmp_path / "implicit" / "tb_000.png"))
            == np.asarray(Image.open(tmp_path / "out" / "tb_000.png"))).all()
    capsys.readouterr()
    assert main(["translate", str(run), str(source), "--out", str(tmp_path / "other"), "--direction", "AtoB",
                 "--device", "cpu", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith("holds no AtoB generator, only BtoA; ask for BtoA")
    assert not (tmp_path / "other").exists()


def test_a_btoa_checkpoint_exports_its_generator_to_onnx_and_refuses_the_other_direction(tmp_path):
    from conftest import require_module

    require_module("onnxruntime", "onnx")
    from cyclegan.inference.onnx import export_onnx

    config = ModelConfig(model="fastcut", direction="BtoA", net_g="resnet_6blocks", ngf=4, ndf=4)
    torch.manual_seed(0)
    model = build_model(config)
    files = ckpt.save_checkpoint(tmp_path / "checkpoints", model.networks(), config, None, epoch=0, iteration=1)
    report = export_onnx(files.weights, tmp_path / "g.onnx", "BtoA")
    assert report.ok and report.spec.direction == "BtoA"
    loaded, _spec = ckpt.load_generator(files.weights, "BtoA")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.G.state_dict().values()))
    with pytest.raises(ckpt.CheckpointError, match="holds no AtoB generator .G_AB., only G_BA, D_A, projector; use direction BtoA$"):
        export_onnx(files.weights, tmp_path / "other.onnx", "AtoB")
    # `cyclegan export` without --direction exports the one direction the file holds.
    assert main(["export", str(files.weights), "--onnx", str(tmp_path / "implicit.onnx")]) == 0
    assert (tmp_path / "implicit.onnx").read_bytes() == (tmp_path / "g.onnx").read_bytes()
