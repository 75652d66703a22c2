"""Translation: any size and aspect ratio, checkpoints carry their architecture, official weights load."""
import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.checkpoint import save_checkpoint
from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.layers import nnpack
from cyclegan.errors import CheckpointError, ConfigError
from cyclegan.inference import Translator, load_translators, pad_to_multiple
from cyclegan.networks import ResnetGenerator
from cyclegan.training.model import CycleGAN
from cyclegan.layers.nnpack import NnpackConv2d

from conftest import write_images


@pytest.fixture
def checkpoint(tmp_path):
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8)
    torch.manual_seed(0)
    model = CycleGAN(config)
    files = save_checkpoint(tmp_path / "run" / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA,
                                                                "D_A": model.D_A, "D_B": model.D_B},
                            config, None, epoch=0, iteration=0)
    return tmp_path / "run", files.weights, model


@pytest.mark.parametrize("size", [(37, 23), (64, 64), (5, 90), (128, 40)])
def test_translation_keeps_any_size_and_aspect_ratio(checkpoint, size):
    run, _weights, _model = checkpoint
    translator = Translator.from_checkpoint(run, device="cpu")
    out = translator(Image.new("RGB", size, (120, 40, 200)))
    assert out.size == size and out.mode == "RGB"


def test_translator_output_equals_the_generator_applied_to_the_reflect_padded_image(checkpoint):
    run, weights, model = checkpoint
    # Contiguous and without NNPACK, as the generator below: the same arithmetic.
    translator = Translator.from_checkpoint(weights, direction="BtoA", device="cpu", channels_last=False, nnpack=False)
    image = torch.rand(1, 3, 30, 42) * 2 - 1
    padded = torch.nn.functional.pad(image, (0, 2, 0, 2), mode="reflect")
    with torch.no_grad():
        expected = model.G_BA.eval()(padded)[..., :30, :42]
    assert torch.allclose(translator.translate_tensor(image), expected, atol=1e-6)


def test_translator_layout_defaults_and_both_layouts_give_the_same_result(checkpoint):
    run, _weights, _model = checkpoint
    # On a CPU: contiguous, which the NNPACK convolutions need (fp32 only); channels-last without them.
    expected = torch.contiguous_format if nnpack.available() else torch.channels_last
    assert Translator.from_checkpoint(run, device="cpu").memory_format == expected
    assert Translator.from_checkpoint(run, device="cpu", nnpack=False).memory_format == torch.channels_last
    assert Translator.from_checkpoint(run, device="cpu", precision="bf16").memory_format == torch.channels_last
    channels_last = Translator.from_checkpoint(run, device="cpu", channels_last=True)
    contiguous = Translator.from_checkpoint(run, device="cpu", channels_last=False)
    assert channels_last.memory_format == torch.channels_last
    image = torch.rand(2, 3, 36, 44) * 2 - 1
    assert torch.allclose(channels_last.translate_tensor(image), contiguous.translate_tensor(image), atol=1e-5)


def test_translate_command_passes_the_layout_and_nnpack_flags(checkpoint, tmp_path, monkeypatch):
    run, _weights, _model = checkpoint
    write_images(tmp_path / "in", 2, size=(20, 28))
    built = []
    original = Translator.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        layers = [m for m in self.generator.modules() if isinstance(m, NnpackConv2d)]
        assert layers
        built.append((self.memory_format, all(layer.nnpack for layer in layers)))

    monkeypatch.setattr(Translator, "__init__", recording)
    outputs = {}
    for flags in (["--channels-last"], ["--no-channels-last", "--no-nnpack"]):
        out = tmp_path / flags[0].strip("-")
        assert main(["translate", str(run), str(tmp_path / "in"), "--out", str(out), "--device", "cpu",
                     *flags, "--no-progress"]) == 0
        outputs[flags[0]] = {path.name: np.asarray(Image.open(path)) for path in sorted(out.iterdir())}
    assert built == [(torch.channels_last, True), (torch.contiguous_format, False)]
    assert sorted(outputs["--channels-last"]) == sorted(outputs["--no-channels-last"]) == ["img_000.png", "img_001.png"]
    for name, pixels in outputs["--channels-last"].items():
        assert np.abs(pixels.astype(int) - outputs["--no-channels-last"][name].astype(int)).max() <= 1


def test_load_translators_gives_every_direction_of_a_cyclegan_checkpoint_with_its_own_generator(checkpoint):
    run, _weights, model = checkpoint
    translators = load_translators(run, device="cpu", channels_last=False, nnpack=False)
    assert list(translators) == ["AtoB", "BtoA"]
    assert [translator.spec.direction for translator in translators.values()] == ["AtoB", "BtoA"]
    image = torch.rand(1, 3, 32, 36) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(translators["AtoB"].translate_tensor(image), model.G_AB.eval()(image), atol=1e-6)
        assert torch.allclose(translators["BtoA"].translate_tensor(image), model.G_BA.eval()(image), atol=1e-6)
    assert list(load_translators(run, ["BtoA", "AtoB"], device="cpu")) == ["BtoA", "AtoB"]


def test_load_translators_gives_a_single_generator_as_AtoB_and_refuses_BtoA_naming_the_file(tmp_path):
    torch.manual_seed(0)
    torch.save(ResnetGenerator(3, 3, ngf=4, n_blocks=6).state_dict(), tmp_path / "latest_net_G.pth")
    single = load_translators(tmp_path / "latest_net_G.pth", device="cpu")
    assert list(single) == ["AtoB"] and single["AtoB"].spec.direction is None
    with pytest.raises(ConfigError) as raised:
        load_translators(tmp_path / "latest_net_G.pth", ["AtoB", "BtoA"], device="cpu")
    assert str(raised.value) == (f"{tmp_path / 'latest_net_G.pth'} holds a single generator, which is served as "
                                 "AtoB; ask for AtoB or leave the direction out")


def test_load_translators_refuses_an_unknown_direction(checkpoint):
    run, _weights, _model = checkpoint
    with pytest.raises(ConfigError, match="unknown direction 'AtoC'; choose AtoB or BtoA"):
        load_translators(run, ["AtoC"], device="cpu")


def test_padding_reaches_the_multiple_and_is_cropped_back():
    batch = torch.zeros(1, 3, 30, 41)
    padded, (height, width) = pad_to_multiple(batch, 4)
    assert padded.shape[-2:] == (32, 44) and (height, width) == (30, 41)
    tiny, _ = pad_to_multiple(torch.zeros(1, 1, 1, 2), 4)  # too small to reflect: replicated
    assert tiny.shape[-2:] == (4, 4)


def test_unet_checkpoint_pads_to_its_larger_multiple(tmp_path):
    config = ModelConfig(net_g="unet_128", ngf=4, ndf=4, norm="batch")
    model = CycleGAN(config)
    save_checkpoint(tmp_path / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A,
                                               "D_B": model.D_B}, config, None, epoch=0, iteration=0)
    out = Translator.from_checkpoint(tmp_path, device="cpu")(Image.new("RGB", (150, 60)))
    assert out.size == (150, 60)


def test_official_reference_state_dict_loads_and_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    reference = ResnetGenerator(3, 3, ngf=8, n_blocks=9).eval()
    state = dict(reference.state_dict())
    state["model.2.running_mean"] = torch.zeros(8)  # as old PyTorch saved InstanceNorm layers
    state["model.2.running_var"] = torch.ones(8)
    torch.save(state, tmp_path / "latest_net_G_A.pth")
    translator = Translator.from_checkpoint(tmp_path / "latest_net_G_A.pth", device="cpu", channels_last=False,
                                            nnpack=False)
    assert translator.spec.net_g == "resnet_9blocks" and translator.spec.ngf == 8
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(translator.translate_tensor(image), reference(image))


def test_a_pickle_with_code_is_refused(tmp_path):
    torch.save({"model": ResnetGenerator(3, 3, ngf=4, n_blocks=6)}, tmp_path / "evil.pth")  # a whole module object
    with pytest.raises(CheckpointError, match="never pickled code"):
        Translator.from_checkpoint(tmp_path / "evil.pth", device="cpu")


def test_a_truncated_checkpoint_is_a_clear_error(checkpoint, tmp_path):
    _run, weights, _model = checkpoint
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        Translator.from_checkpoint(broken, device="cpu")


def test_translate_command_keeps_names_reports_unreadable_files_and_finishes_the_rest(checkpoint, tmp_path, capsys):
    run, _weights, _model = checkpoint
    images = write_images(tmp_path / "in", 3, size=(45, 30))
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    code = main(["translate", str(run), str(tmp_path / "in"), str(tmp_path / "nothing.jpg"),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in images)
    assert all(Image.open(tmp_path / "out" / p.name).size == (45, 30) for p in images)
    error = capsys.readouterr().err
    assert "broken.png" in error and "nothing.jpg" in error and "Traceback" not in error


def test_grayscale_model_translates_grayscale_images(tmp_path):
    config = ModelConfig(net_g="resnet_6blocks", ngf=4, ndf=4, input_nc=1, output_nc=1)
    model = CycleGAN(config)
    save_checkpoint(tmp_path / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A,
                                               "D_B": model.D_B}, config, None, epoch=0, iteration=0)
    out = Translator.from_checkpoint(tmp_path, device="cpu")(Image.new("RGB", (28, 28), (10, 200, 30)))
    assert out.mode == "L" and out.size == (28, 28)
