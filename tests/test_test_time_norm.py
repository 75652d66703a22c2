"""Batch norm at test time as the pix2pix paper and the reference's test.py run it: each image
normalised by its own statistics (layers.test_time_norm), in translation, export and a run's scores."""
from __future__ import annotations

import copy

import numpy as np
import torch

from cyclegan.checkpoint import GeneratorSpec, save_checkpoint
from cyclegan.config import ModelConfig
from cyclegan.inference import Translator
from cyclegan.inference.tiling import translate_tiled
from cyclegan.layers.test_time_norm import each_image_normalised, normalising_each_image
from cyclegan.networks import build_generator

from conftest import require_module
from test_tiling import levels, photo_like

UNET_SPEC = GeneratorSpec("unet_128", 3, 3, 8, "batch", "random weights")
# Seven levels: a norm after each down-sampling but the first and the innermost (5) and after each
# up-sampling but the outermost (6).
UNET_128_NORMS = 11


def trained_looking_unet(seed: int = 0) -> torch.nn.Module:
    """A batch-norm U-Net whose running averages are far from any one image's statistics, as
    after training (fresh ones, mean 0 and variance 1, would make eval mode an identity)."""
    torch.manual_seed(seed)
    generator = build_generator("unet_128", 3, 3, 8, norm="batch")
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.2, 3.0)
    return generator


def images(count: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(count, 3, 128, 128, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def as_the_reference_tests(generator: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """What the reference's test.py computes for one image (batch 1): the network left in training
    mode, so torch's BatchNorm2d uses the image's statistics (on a copy: it also moves the averages)."""
    twin = copy.deepcopy(generator).train()
    with torch.no_grad():
        return twin(image)


def test_a_batch_norm_generator_translates_each_image_with_its_own_statistics_as_the_reference_does():
    generator = trained_looking_unet()
    before = copy.deepcopy(generator.state_dict())
    translator = Translator(generator, UNET_SPEC, "cpu", precision="fp32", channels_last=False, nnpack=False)
    batch = images(2)
    with torch.no_grad():
        translated = translator.translate_tensor(batch)
        averaged = copy.deepcopy(generator).eval()(batch)
    for index in range(2):  # two images in one call: each gets what it gets alone
        expected = as_the_reference_tests(generator, batch[index:index + 1])
        torch.testing.assert_close(translated[index:index + 1], expected, atol=2e-5, rtol=0)
    # The running averages would give something else entirely: the test can tell the two apart.
    assert (averaged - translated).abs().max() > 0.1
    # The caller's generator is untouched: its layers, running averages and all.
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules()) == UNET_128_NORMS
    assert all(torch.equal(before[key], value) for key, value in generator.state_dict().items())


def test_a_generator_without_batch_norm_is_used_as_it_is():
    torch.manual_seed(0)
    generator = build_generator("resnet_6blocks", 3, 3, 8)
    assert each_image_normalised(generator) is generator


def test_inside_the_block_a_model_normalises_each_image_and_afterwards_is_exactly_as_before():
    # The scores and the gallery a training run makes of its own model (training.validation, .gallery).
    generator = trained_looking_unet()
    layers = list(generator.modules())
    state = copy.deepcopy(generator.state_dict())
    image = images(1)
    expected = as_the_reference_tests(generator, image)
    with normalising_each_image(generator.eval()), torch.no_grad():
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules())
        torch.testing.assert_close(generator(image), expected, atol=2e-5, rtol=0)
    assert list(generator.modules()) == layers  # the very same layer objects are back
    assert list(generator.state_dict()) == list(state)
    assert all(torch.equal(state[key], value) for key, value in generator.state_dict().items())


def test_the_weight_and_bias_are_shared_so_a_training_step_inside_the_block_reaches_the_model():
    generator = trained_looking_unet()
    batch_norm = next(m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with normalising_each_image(generator):
        swapped = [m for m in generator.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
        assert swapped[0].weight is batch_norm.weight and swapped[0].bias is batch_norm.bias


def test_tiles_of_a_batch_norm_generator_are_normalised_with_the_statistics_of_the_whole_image():
    generator, image = trained_looking_unet(), photo_like(256, 256)
    options = dict(precision="fp32", channels_last=False, nnpack=False)
    whole = Translator(generator, UNET_SPEC, "cpu", **options)
    tiled = Translator(generator, UNET_SPEC, "cpu", tile=128, overlap=32, **options)
    assert len(tiled._tiled_norms) == UNET_128_NORMS  # each per-image norm pools its statistics over the tiles
    untiled = levels(whole(image))
    per_tile = levels(translate_tiled(image, whole.translate_tensor, 128, 32))
    # A U-Net sees the whole tile, so tiles differ by their context too; the pooled statistics still
    # bring them closer (measured here: 2.4 levels off on average, against 3.1 with each tile's own).
    assert np.abs(levels(tiled(image)) - untiled).mean() < np.abs(per_tile - untiled).mean()


def test_the_onnx_export_of_a_batch_norm_model_computes_what_translate_does(tmp_path):
    require_module("onnx", "onnx")
    ort = require_module("onnxruntime", "onnx")
    from cyclegan.inference.onnx import export_onnx

    config = ModelConfig(model="pix2pix", net_g="unet_128", ngf=8, ndf=8, norm="batch")
    generator = trained_looking_unet()
    weights = save_checkpoint(tmp_path / "run" / "checkpoints", {"G_AB": generator}, config, None,
                              epoch=1, iteration=1).weights
    report = export_onnx(weights, tmp_path / "g.onnx", "AtoB")
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    batch = images(2, seed=3)
    (exported,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    for index in range(2):
        expected = as_the_reference_tests(generator, batch[index:index + 1]).numpy()
        np.testing.assert_allclose(exported[index:index + 1], expected, atol=1e-4, rtol=0)
