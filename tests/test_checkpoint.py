"""The checkpoint file format: what its metadata records, what a reader refuses, and that reading
it needs nothing of the trainer."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from cyclegan import checkpoint as ckpt
from cyclegan.config import ModelConfig
from cyclegan.errors import CheckpointError
from cyclegan.inference import Translator
from cyclegan.training.model import build_model


def save_tiny_checkpoint(folder, kind: str = "cyclegan"):
    torch.manual_seed(0)
    model = build_model(ModelConfig(model=kind, net_g="resnet_6blocks", ngf=8, ndf=8))
    return ckpt.save_checkpoint(folder, model.networks(), model.config, None, epoch=1, iteration=10).weights


def rewrite_metadata(path, **changes: str | None) -> None:
    """Rewrite a weights file's metadata: a value replaces an entry, None removes it."""
    tensors, metadata = load_file(str(path)), ckpt.read_metadata(path)
    for key, value in changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    save_file(tensors, str(path), metadata=metadata)


def with_extra_key(path) -> str:
    config = json.loads(ckpt.read_metadata(path)["model_config"])
    return json.dumps({**config, "attention_layers": 2})


def test_a_checkpoint_records_the_cyclegan_version_that_wrote_it(tmp_path):
    weights = save_tiny_checkpoint(tmp_path)
    assert ckpt.read_metadata(weights)["cyclegan_version"] == ckpt.package_version()


def test_a_model_config_with_keys_this_version_does_not_know_is_refused_naming_them_and_the_writer(tmp_path):
    weights = save_tiny_checkpoint(tmp_path)
    rewrite_metadata(weights, model_config=with_extra_key(weights), cyclegan_version="9.1.0")
    with pytest.raises(CheckpointError) as raised:
        ckpt.load_model_config(weights)
    assert str(raised.value) == (
        f"{weights} has model settings this version does not know (attention_layers): written by cyclegan "
        f"9.1.0, this is cyclegan {ckpt.package_version()}; upgrade cyclegan (or use the version that wrote it)")
    with pytest.raises(CheckpointError, match="attention_layers"):
        Translator.from_checkpoint(tmp_path, device="cpu")


def test_unknown_model_config_keys_in_a_file_without_a_version_name_an_unknown_version(tmp_path):
    weights = save_tiny_checkpoint(tmp_path)
    rewrite_metadata(weights, model_config=with_extra_key(weights), cyclegan_version=None)
    with pytest.raises(CheckpointError, match=r"\(attention_layers\): written by an unknown \(older or newer\) "
                                              r"version, this is cyclegan "):
        ckpt.load_model_config(weights)


def test_a_file_without_a_version_and_with_known_keys_still_loads(tmp_path):
    weights = save_tiny_checkpoint(tmp_path)
    rewrite_metadata(weights, cyclegan_version=None)
    assert ckpt.load_model_config(weights) == ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8)


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
            "import cyclegan.inference.onnx\n"
            "assert 'cyclegan.inference.translator' not in sys.modules, 'export imports inference'\n"
            "import cyclegan.inference, cyclegan.zoo, cyclegan.evaluation.evaluate\n"
            "if importlib.util.find_spec('starlette') and importlib.util.find_spec('uvicorn'):\n"
            "    import cyclegan.serving\n"
            "print(sorted(name for name in sys.modules if name.startswith('cyclegan.training')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_latest_json_that_is_not_text_is_a_damaged_pointer_naming_the_file(tmp_path):
    # Bytes that are not UTF-8 (a disk error, a file copied over it) used to raise UnicodeDecodeError.
    save_tiny_checkpoint(tmp_path)
    (tmp_path / ckpt.LATEST).write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(CheckpointError) as damaged:
        ckpt.read_latest(tmp_path)
    assert str(damaged.value) == (f"{tmp_path / ckpt.LATEST} is damaged ('utf-8' codec can't decode byte 0x89 in "
                                  "position 0: invalid start byte); pass one of the iter_*.safetensors files in that "
                                  "folder explicitly")
