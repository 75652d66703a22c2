"""`cyclegan serve` with 16-bit and float uploads, over real sockets on 127.0.0.1: answered at the
upload's depth through the model's intensity windows, as `cyclegan translate` writes the file."""
from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_module

require_module("starlette", "web")
require_module("uvicorn", "web")

from test_serve_api import TEST_LIMITS, post_image  # noqa: E402

from cyclegan.checkpoint import GeneratorSpec, save_checkpoint  # noqa: E402
from cyclegan.cli import main  # noqa: E402
from cyclegan.config import ModelConfig  # noqa: E402
from cyclegan.inference import Translator  # noqa: E402
from cyclegan.serving import ServerThread, create_app, load_translators  # noqa: E402
from cyclegan.training.model import CycleGAN  # noqa: E402

TWELVE_BIT = "0,4095"


def tifffile():
    return require_module("tifffile", "medical")


def identity(window: str | None, direction: str, channels: int = 1) -> Translator:
    """A stand-in generator that returns its input: what comes back is the conversion alone."""
    spec = GeneratorSpec("resnet_6blocks", channels, channels, 8, "instance", "identity", direction,
                         input_window=window, output_window=window)
    return Translator(torch.nn.Identity(), spec, device="cpu")


def png16(values: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def tiff(values: np.ndarray, **options) -> bytes:
    buffer = BytesIO()
    tifffile().imwrite(buffer, values, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def identity_server():
    """AtoB: identity through a 12-bit window; BtoA: identity without a window (16-bit full range)."""
    app = create_app({"AtoB": identity(TWELVE_BIT, "AtoB"), "BtoA": identity(None, "BtoA")}, TEST_LIMITS)
    with ServerThread(app) as running:
        yield running


@pytest.fixture(scope="module")
def windowed_run(tmp_path_factory):
    """A tiny untrained 1-channel CycleGAN run trained with --window-a -1000,2000 --window-b 0,4095."""
    run = tmp_path_factory.mktemp("serve_scientific") / "run"
    torch.manual_seed(0)
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8, input_nc=1, output_nc=1, window_a="-1000,2000",
                         window_b=TWELVE_BIT)
    model = CycleGAN(config)
    save_checkpoint(run / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A,
                                          "D_B": model.D_B}, config, None, epoch=0, iteration=0)
    return run


@pytest.fixture(scope="module")
def windowed_server(windowed_run):
    with ServerThread(create_app(load_translators(windowed_run, device="cpu"), TEST_LIMITS)) as running:
        yield running


def test_a_16_bit_png_comes_back_as_a_16_bit_png_through_the_window_with_clipped_values_said(identity_server):
    values = np.linspace(0, 5000, 30 * 44).round().astype(np.uint16).reshape(30, 44)

    reply = post_image(identity_server.url, png16(values), filename="scan.png", direction="AtoB")

    assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    with Image.open(BytesIO(reply.body)) as result:
        assert result.mode == "I;16" and result.size == (44, 30)
        back = np.array(result).astype(np.int64)
    expected = np.clip(values, 0, 4095).astype(np.int64)  # the window's ends
    assert np.abs(back - expected).max() <= 1
    clipped = int(np.count_nonzero(values > 4095))
    assert reply.headers["x-translation-note"] == f"{clipped} value(s) outside the model's intensity window were clipped"
    assert reply.headers["content-disposition"] == 'inline; filename="scan_AtoB.png"'


def test_a_16_bit_tiff_comes_back_as_a_16_bit_tiff_within_one_level(identity_server):
    values = np.random.default_rng(0).integers(0, 65536, (24, 20)).astype(np.uint16)

    reply = post_image(identity_server.url, tiff(values), filename="slide.tif", direction="BtoA",
                       content_type="image/tiff")

    assert reply.status == 200 and reply.headers["content-type"] == "image/tiff"
    back = tifffile().imread(BytesIO(reply.body))
    assert back.dtype == np.uint16 and back.shape == (24, 20)
    assert np.abs(back.astype(np.int64) - values).max() <= 1
    assert reply.headers["content-disposition"] == 'inline; filename="slide_BtoA.tif"'
    assert "x-translation-note" not in reply.headers


def test_a_served_16_bit_tiff_is_exactly_what_cyclegan_translate_writes(windowed_run, windowed_server, tmp_path):
    hu = np.linspace(-1200, 2300, 36 * 40).round().astype(np.int16).reshape(36, 40)
    data = tiff(hu)
    (tmp_path / "ct.tif").write_bytes(data)
    assert main(["translate", str(windowed_run), str(tmp_path / "ct.tif"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 0

    reply = post_image(windowed_server.url, data, filename="ct.tif", direction="AtoB", content_type="image/tiff")

    assert reply.status == 200
    served, written = tifffile().imread(BytesIO(reply.body)), tifffile().imread(tmp_path / "out" / "ct.tif")
    assert served.dtype == written.dtype == np.int16
    assert np.array_equal(served, written)


def test_an_8_bit_upload_to_a_windowed_model_is_translated_as_before(windowed_run, windowed_server):
    gray = np.random.default_rng(1).integers(0, 256, (20, 28)).astype(np.uint8)
    buffer = BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")

    reply = post_image(windowed_server.url, buffer.getvalue(), filename="gray.png", direction="BtoA")

    assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    translator = load_translators(windowed_run, ["BtoA"], device="cpu")["BtoA"]
    with Image.open(BytesIO(reply.body)) as result:
        assert result.mode == "L"
        assert np.array_equal(np.asarray(result), np.asarray(translator(Image.fromarray(gray))))


def test_a_float_tiff_for_a_model_without_a_window_is_refused_with_the_reason(identity_server):
    reply = post_image(identity_server.url, tiff(np.linspace(0, 3.5, 64, dtype=np.float32).reshape(8, 8)),
                       filename="dose.tif", direction="BtoA", content_type="image/tiff")

    assert reply.status == 422
    message = reply.json()["error"]
    assert message.startswith("dose.tif: float images need a window (train with --window-a/--window-b)")
    assert "cyclegan-upload" not in message  # the server's temporary file is not shown


def test_channels_the_model_does_not_take_are_refused_with_the_reason(identity_server):
    rgb = np.zeros((8, 8, 3), np.uint16)

    reply = post_image(identity_server.url, tiff(rgb, photometric="rgb"), filename="rgb.tif",
                       content_type="image/tiff")

    assert reply.status == 422
    assert reply.json()["error"] == ("rgb.tif: holds 3 channels but the model takes 1; train with --input-nc 3 "
                                     "or convert the file")


def test_a_16_bit_upload_in_a_format_read_only_at_8_bits_is_refused_rather_than_squeezed(identity_server):
    buffer = BytesIO()
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(buffer, format="PPM")  # a 16-bit PGM

    reply = post_image(identity_server.url, buffer.getvalue(), filename="scan.pgm", content_type="image/x-portable-graymap")

    assert reply.status == 415
    assert reply.json()["error"] == ("scan.pgm: holds more than 8 bits per value and this server reads them at full "
                                     "precision from PNG and TIFF only; send a 16-bit PNG or TIFF, or an 8-bit image")
