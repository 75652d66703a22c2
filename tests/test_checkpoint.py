"""The checkpoint file format: what a reader tells apart and refuses, and that reading it needs
nothing of the trainer."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from cyclegan import checkpoint as ckpt
from cyclegan.config import ModelConfig
from cyclegan.errors import CheckpointError
from cyclegan.training.model import build_model


def save_tiny_checkpoint(folder, kind: str = "cyclegan"):
    torch.manual_seed(0)
    model = build_model(ModelConfig(model=kind, net_g="resnet_6blocks", ngf=8, ndf=8))
    return ckpt.save_checkpoint(folder, model.networks(), model.config, None, epoch=1, iteration=10).weights


def test_generator_directions_tell_cyclegan_pix2pix_and_single_generator_files_apart(tmp_path):
    assert ckpt.generator_directions(save_tiny_checkpoint(tmp_path / "cyclegan")) == ("AtoB", "BtoA")
    assert ckpt.generator_directions(save_tiny_checkpoint(tmp_path / "pix2pix", "pix2pix")) == ("AtoB",)
    single = ckpt.save_single_generator(tmp_path / "single.safetensors", build_model(ModelConfig(ngf=4)).G_AB,
                                        ModelConfig(ngf=4))
    assert ckpt.generator_directions(single) == ()


def test_the_spec_of_a_checkpoint_generator_names_its_direction_and_describes_it(tmp_path):
    weights = save_tiny_checkpoint(tmp_path)
    _, spec = ckpt.load_generator(tmp_path, "BtoA")
    assert spec == ckpt.GeneratorSpec("resnet_6blocks", 3, 3, 8, "instance", str(weights), "BtoA")
    assert spec.size_multiple == 4
    assert spec.describe() == f"resnet_6blocks 3->3 channels, ngf 8, instance norm, from {weights}"


def test_the_pix2pix_btoa_generator_is_a_checkpoint_error_naming_the_file(tmp_path):
    weights = save_tiny_checkpoint(tmp_path, "pix2pix")
    with pytest.raises(CheckpointError) as raised:
        ckpt.load_generator(tmp_path, "BtoA")
    assert str(raised.value) == f"{weights} holds no BtoA generator (G_BA), only G_AB, D; use direction AtoB"


def test_reading_models_imports_nothing_of_training_and_export_does_not_import_inference():
    code = ("import sys, importlib.util\n"
            "import cyclegan.export\n"
            "assert 'cyclegan.inference' not in sys.modules, 'export imports inference'\n"
            "import cyclegan.inference, cyclegan.zoo, cyclegan.evaluation.evaluate\n"
            "if importlib.util.find_spec('starlette') and importlib.util.find_spec('uvicorn'):\n"
            "    import cyclegan.serving\n"
            "print(sorted(name for name in sys.modules if name.startswith('cyclegan.training')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
