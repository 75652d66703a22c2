"""NNPACK convolutions (3x3 Winograd, 7x7): the same results as F.conv2d, used only where they apply."""
import pytest
import torch
import torch.nn.functional as F

from safetensors.torch import load_file

from cyclegan import checkpoint as ckpt
from cyclegan.layers import nnpack
from cyclegan.cli import main
from cyclegan.config import TrainConfig
from cyclegan.inference import Translator
from cyclegan.networks import ResnetGenerator
from cyclegan.training.trainer import Trainer
from cyclegan.layers.nnpack import NnpackConv2d, use_nnpack

from conftest import write_images

pytestmark = pytest.mark.skipif(not nnpack.available(), reason="this PyTorch has no NNPACK")


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture
def counted(monkeypatch):
    """Counts the convolutions that go through NNPACK."""
    calls = []
    original = nnpack.conv2d

    def counting(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(nnpack, "conv2d", counting)
    return calls


@pytest.mark.parametrize("kernel,batch,padding,bias", [(3, 1, 0, True), (3, 3, 0, False), (3, 2, 1, True),
                                                      (3, 1, 2, False), (7, 1, 0, True), (7, 2, 3, False),
                                                      (7, 1, 0, False)])
def test_output_and_all_gradients_equal_the_ordinary_convolution(kernel, batch, padding, bias):
    generator = torch.Generator().manual_seed(batch + padding + kernel)
    channels_in, channels_out = (16, 24) if kernel == 3 else (3, 16)
    x = torch.randn(batch, channels_in, 40, 42, generator=generator)
    w = torch.randn(channels_out, channels_in, kernel, kernel, generator=generator) * 0.1
    b = torch.randn(channels_out, generator=generator) if bias else None
    out_shape = (batch, channels_out, 40 + 2 * padding - kernel + 1, 42 + 2 * padding - kernel + 1)
    grad = torch.randn(out_shape, generator=generator)
    assert nnpack.applies(x, w, (1, 1), (padding, padding), (1, 1), 1)
    results = {}
    for name, conv in (("ordinary", lambda x, w, b: F.conv2d(x, w, b, padding=padding)),
                       ("nnpack", lambda x, w, b: nnpack.conv2d(x, w, b, padding))):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        bs = b.clone().requires_grad_() if bias else None
        out = conv(xs, ws, bs)
        out.backward(grad)
        results[name] = (out, xs.grad, ws.grad, bs.grad if bias else None)
    ordinary, fast = results["ordinary"], results["nnpack"]
    assert fast[0].shape == out_shape
    for expected, actual in zip(ordinary, fast):
        if expected is not None:
            assert relative_error(actual, expected) < 1e-4


def test_applies_only_to_large_float32_contiguous_3x3_stride_1_cpu_convolutions():
    big = torch.randn(1, 8, 34, 34)
    w3 = torch.randn(8, 8, 3, 3)

    def applies(x=big, w=w3, stride=(1, 1), padding=(0, 0), groups=1):
        return nnpack.applies(x, w, stride, padding, (1, 1), groups)

    assert applies()
    assert applies(torch.randn(2, 8, 32, 40), padding=(1, 1))          # 32x40 output
    assert not applies(torch.randn(1, 8, 33, 40))                       # 31x38 output: too small
    assert not applies(w=torch.randn(8, 8, 5, 5))                       # not 3x3 or 7x7
    assert applies(torch.randn(1, 3, 38, 38), torch.randn(8, 3, 7, 7))   # 7x7, 32x32 output
    assert not applies(stride=(2, 2))
    assert not applies(groups=2, w=torch.randn(8, 4, 3, 3))
    assert not applies(big.double(), w3.double())                        # float32 only
    assert not applies(big.contiguous(memory_format=torch.channels_last))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not applies()                                           # autocast decides the dtype


def test_layers_are_plain_convolutions_until_turned_on(counted):
    torch.manual_seed(0)
    generator = ResnetGenerator(3, 3, ngf=4, n_blocks=2).eval()
    layers = [m for m in generator.modules() if isinstance(m, NnpackConv2d)]
    assert len(layers) == 6 and all(type(m) is NnpackConv2d for m in layers)  # 2 per block, the two 7x7
    image = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        before = generator(image)
        assert counted == []
        assert use_nnpack(generator) == 6
        after = generator(image)
    assert len(counted) == 6  # both 3x3 of both blocks (32x32 maps) and the 7x7 ones (128x128)
    assert relative_error(after, before) < 1e-4
    assert list(generator.state_dict()) == list(ResnetGenerator(3, 3, ngf=4, n_blocks=2).state_dict())


def test_translator_uses_nnpack_on_the_cpu_unless_told_not_to(counted):
    torch.manual_seed(0)
    spec = ckpt.GeneratorSpec("resnet_6blocks", 3, 3, 4, "instance", "random weights")
    image = torch.rand(1, 3, 132, 128) * 2 - 1  # 33x32 feature maps in the residual blocks
    fast = Translator(ResnetGenerator(3, 3, ngf=4, n_blocks=6), spec, device="cpu")
    assert fast.memory_format == torch.contiguous_format
    out_fast = fast.translate_tensor(image)
    assert len(counted) == 14  # 12 in the blocks, 2 of 7x7
    plain = Translator(fast.generator, spec, device="cpu", nnpack=False, channels_last=False)
    out_plain = plain.translate_tensor(image)
    assert len(counted) == 14
    assert relative_error(out_fast, out_plain) < 1e-4


def test_a_training_step_with_nnpack_matches_one_without(tmp_path, counted):
    write_images(tmp_path / "data" / "trainA", 2, size=(128, 128))
    write_images(tmp_path / "data" / "trainB", 2, size=(128, 128), seed=1)
    losses, gradients = {}, {}
    for enabled in (True, False):
        config = TrainConfig()
        config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 4, 4
        config.data.data, config.data.load_size, config.data.crop_size = str(tmp_path / "data"), 128, 128
        config.data.num_workers = 0
        run = config.run
        run.runs_dir, run.name, run.device, run.nnpack = str(tmp_path / "runs"), f"wino_{enabled}", "cpu", enabled
        run.progress, run.tensorboard = False, False
        run.precision, run.channels_last = "fp32", False  # so that nothing else is timed and chosen
        trainer = Trainer(config)
        batch = next(iter(trainer._loader()))
        losses[enabled] = trainer.train_step(batch["A"], batch["B"])
        # The step leaves its gradients in place. (Weights after one Adam step are no test: Adam's
        # first step is about lr * sign(gradient), and the biases before an instance norm have a
        # true gradient of 0, whose rounding noise takes either sign.)
        gradients[enabled] = torch.cat([p.grad.flatten() for p in trainer.model.generator_parameters()])
    # Three generator calls, each through 12 residual-block and two 7x7 convolutions forward; the
    # backward passes go through NNPACK inside the autograd function and are not counted here.
    assert len(counted) == 3 * 14
    assert losses[True].keys() == losses[False].keys()
    for key, value in losses[False].items():
        assert losses[True][key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
    # The L1 terms' gradient is the sign of (reconstruction - image), which rounding can flip
    # where the two are nearly equal: measured 4.4e-4 here, and 1.1e-2 between the ordinary
    # convolution in the contiguous and channels-last layouts (float64 agrees to 1e-14).
    assert relative_error(gradients[True], gradients[False]) < 2e-3


def test_resuming_a_run_with_nnpack_repeats_it_exactly(tmp_path, counted):
    write_images(tmp_path / "data" / "trainA", 3, size=(128, 128))
    write_images(tmp_path / "data" / "trainB", 3, size=(128, 128), seed=1)

    def train(name, *extra):
        return main(["train", "--data", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs"), "--name", name,
                     "--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--load-size", "128",
                     "--crop-size", "128", "--num-workers", "0", "--epochs", "1", "--epochs-decay", "1",
                     "--no-progress", "--no-tensorboard", "--device", "cpu", "--nnpack", *extra])

    assert train("straight", "--max-iters", "4") == 0
    assert counted, "the NNPACK path was not taken"
    assert train("split", "--max-iters", "2") == 0
    assert main(["train", "--resume", str(tmp_path / "runs" / "split"), "--max-iters", "4", "--no-progress"]) == 0
    straight = load_file(str(ckpt.find_checkpoint(tmp_path / "runs" / "straight").weights))
    resumed = load_file(str(ckpt.find_checkpoint(tmp_path / "runs" / "split").weights))
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
