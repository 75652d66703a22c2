"""`cyclegan serve`'s HTTP API, spoken to over real sockets on 127.0.0.1 (a tiny ResNet-6, ngf 8).

The helpers at the top (tiny checkpoint, PNG bytes, multipart posts) are used by the load and
browser tests too.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_module

require_module("starlette", "web")
require_module("uvicorn", "web")

from cyclegan.checkpoint import save_checkpoint  # noqa: E402
from cyclegan.cli import main  # noqa: E402
from cyclegan.config import ModelConfig  # noqa: E402
from cyclegan.errors import ConfigError  # noqa: E402
from cyclegan.serving import Limits, ServerThread, bind_socket, create_app, is_loopback_host, load_translators  # noqa: E402
from cyclegan.training.model import CycleGAN, build_model  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- helpers

def make_tiny_checkpoint(folder: Path) -> Path:
    """A run's checkpoints/ folder holding an untrained ResNet-6 CycleGAN with ngf = ndf = 8."""
    torch.manual_seed(0)
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8)
    model = CycleGAN(config)
    save_checkpoint(folder, {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A, "D_B": model.D_B},
                    config, None, epoch=0, iteration=0)
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("serve") / "checkpoints")


def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    """A real PNG with smooth random content."""
    base = np.random.default_rng(seed).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(base).resize((width, height), Image.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is a few bytes: decoding it would fail."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        assert self.headers["content-type"].startswith("application/json"), self.headers
        return json.loads(self.body)

    def image(self) -> Image.Image:
        assert self.headers["content-type"] == "image/png" and self.body.startswith(PNG_SIGNATURE)
        return Image.open(BytesIO(self.body))


def multipart_body(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]],
                   boundary: str = "cyclegan-test-boundary") -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data form; files: name -> (filename, data, type)."""
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    for name, (filename, data, content_type) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url: str, body: bytes | None = None, content_type: str | None = None, method: str | None = None,
            timeout: float = 30) -> Reply:
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method=method),
                                    timeout=timeout) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def post_image(base_url: str, data: bytes, filename: str = "photo.png", direction: str | None = None,
               content_type: str = "image/png", timeout: float = 30) -> Reply:
    fields = {"direction": direction} if direction is not None else {}
    body, form_type = multipart_body(fields, {"image": (filename, data, content_type)})
    return request(base_url + "/translate", body, form_type, timeout=timeout)


# ----------------------------------------------------------------------------- fixtures

TEST_LIMITS = Limits(max_upload_bytes=200_000, max_pixels=1_000_000, workers=2, queue=4, timeout_s=30)


@pytest.fixture(scope="module")
def translators(tiny_checkpoint):
    return load_translators(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def server(translators):
    with ServerThread(create_app(translators, TEST_LIMITS)) as running:
        yield running


# ----------------------------------------------------------------------------- translation

@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_translate_returns_a_png_of_the_input_size_made_by_that_directions_generator(server, translators, direction):
    data = png_bytes(45, 30)  # not square, and not a multiple of the ResNet's 4

    reply = post_image(server.url, data, filename="street.png", direction=direction)

    assert reply.status == 200
    result = reply.image()
    assert result.size == (45, 30) and result.mode == "RGB"
    expected = translators[direction](Image.open(BytesIO(data)).convert("RGB"))
    assert np.array_equal(np.asarray(result), np.asarray(expected))
    assert reply.headers["content-disposition"] == f'inline; filename="street_{direction}.png"'


def test_the_two_directions_use_different_generators_and_AtoB_is_the_default(server):
    data = png_bytes(32, 32, seed=1)
    default, a_to_b, b_to_a = (post_image(server.url, data, direction=d).body for d in (None, "AtoB", "BtoA"))
    assert default == a_to_b
    assert a_to_b != b_to_a


def test_jpeg_and_grayscale_uploads_are_decoded_like_files(server):
    buffer = BytesIO()
    Image.open(BytesIO(png_bytes(40, 24))).convert("L").save(buffer, format="JPEG")
    reply = post_image(server.url, buffer.getvalue(), filename="gray.jpg", content_type="image/jpeg")
    assert reply.status == 200
    assert reply.image().size == (40, 24) and reply.image().mode == "RGB"


# ----------------------------------------------------------------------------- health, info, page

def test_health_says_ok(server):
    reply = request(server.url + "/health")
    assert reply.status == 200 and reply.json() == {"status": "ok"}


def test_info_describes_the_model_directions_and_limits(server):
    info = request(server.url + "/info").json()
    assert info["architecture"] == "resnet_6blocks"
    assert info["ngf"] == 8
    assert info["checkpoint"] == "iter_00000000.safetensors"
    assert info["device"] == "cpu"
    assert info["directions"] == {"AtoB": {"input_channels": 3, "output_channels": 3},
                                  "BtoA": {"input_channels": 3, "output_channels": 3}}
    assert info["default_direction"] == "AtoB"
    assert {"PNG", "JPEG"} <= set(info["formats"])
    assert info["limits"] == {"max_upload_bytes": 200_000, "max_pixels": 1_000_000, "workers": 2, "queue": 4,
                              "timeout_s": 30}


def test_the_page_and_its_assets_are_served_and_need_nothing_from_elsewhere(server):
    page = request(server.url + "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.body.decode()
    for element in ('id="file-input"', 'id="drop-zone"', 'id="directions"', 'id="translate-button"',
                    'id="output-image"', 'id="download-link"'):
        assert element in html
    script = request(server.url + "/static/app.js")
    style = request(server.url + "/static/style.css")
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    for text in (html, script.body.decode(), style.body.decode()):
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), "the page must work offline"


def test_unknown_paths_and_methods_get_json_errors(server):
    missing = request(server.url + "/static/../../etc/passwd")
    assert missing.status == 404 and "error" in missing.json()
    assert request(server.url + "/static/secret.py").status == 404
    wrong_method = request(server.url + "/translate")
    assert wrong_method.status == 405 and "error" in wrong_method.json()


# ----------------------------------------------------------------------------- refusals

def test_an_upload_over_the_byte_limit_is_refused_with_413(server):
    reply = post_image(server.url, os.urandom(250_000))
    assert reply.status == 413
    assert "larger than this server's limit of 200,000 bytes" in reply.json()["error"]


def test_an_oversized_chunked_upload_is_cut_off_while_it_streams_in(server):
    body, content_type = multipart_body({}, {"image": ("big.png", os.urandom(1_000_000), "image/png")})
    connection = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30)
    try:
        chunks = (body[start:start + 16_384] for start in range(0, len(body), 16_384))
        try:
            connection.request("POST", "/translate", body=chunks, headers={"Content-Type": content_type},
                               encode_chunked=True)  # no Content-Length to check up front
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has answered; the reply is still there
        response = connection.getresponse()
        assert response.status == 413
        assert "larger than this server's limit" in json.loads(response.read())["error"]
    finally:
        connection.close()


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding(server):
    reply = post_image(server.url, png_header_only(50_000, 50_000), filename="bomb.png")
    assert reply.status == 413
    assert reply.json()["error"].startswith("bomb.png: the image header declares more pixels")


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(server):
    # 2 M pixels: under Pillow's own limit, over the server's 1 M. Its pixel data is garbage,
    # so a 413 (not a 422 "cannot be decoded") shows that nothing was decoded.
    reply = post_image(server.url, png_header_only(2000, 1000), filename="huge.png")
    assert reply.status == 413
    assert reply.json()["error"] == ("huge.png: 2000x1000 = 2,000,000 pixels, over this server's limit of "
                                     "1,000,000 pixels; downscale the image")


def test_a_text_file_is_refused_as_not_an_image(server):
    reply = post_image(server.url, b"hello, I am not a picture\n", filename="notes.txt", content_type="text/plain")
    assert reply.status == 415
    assert reply.json()["error"].startswith("notes.txt is not an image in a supported format (")


def test_a_truncated_image_is_refused_as_undecodable(server):
    data = png_bytes(64, 64)
    reply = post_image(server.url, data[: len(data) // 2], filename="cut.png")
    assert reply.status == 422
    message = reply.json()["error"]
    assert message.startswith("cut.png: the image data cannot be decoded")
    assert "cyclegan-upload-" not in message  # the temporary file's name is not leaked


def test_a_form_without_the_image_field_is_a_bad_request(server):
    body, content_type = multipart_body({"direction": "AtoB"}, {"picture": ("a.png", png_bytes(8, 8), "image/png")})
    reply = request(server.url + "/translate", body, content_type)
    assert reply.status == 400
    assert "field 'image'" in reply.json()["error"]


def test_a_body_that_is_not_a_multipart_form_is_a_bad_request(server):
    reply = request(server.url + "/translate", png_bytes(8, 8), "image/png")
    assert reply.status == 400 and "field 'image'" in reply.json()["error"]
    broken = request(server.url + "/translate", b"garbage", "multipart/form-data; boundary=xyz")
    assert broken.status == 400 and "error" in broken.json()


def test_an_unknown_direction_is_a_bad_request_naming_the_offered_ones(server):
    reply = post_image(server.url, png_bytes(16, 16), direction="AtoC")
    assert reply.status == 400
    assert reply.json() == {"error": "unknown direction 'AtoC'; this model offers AtoB, BtoA"}


def test_an_empty_file_is_a_bad_request(server):
    reply = post_image(server.url, b"", filename="empty.png")
    assert reply.status == 400 and reply.json() == {"error": "empty.png is empty"}


# ----------------------------------------------------------------------------- loading, binding

def test_an_official_single_generator_is_served_as_AtoB_only(tmp_path, translators):
    path = tmp_path / "latest_net_G.pth"
    torch.save(translators["AtoB"].generator.state_dict(), path)

    single = load_translators(path, device="cpu")

    assert list(single) == ["AtoB"]
    with pytest.raises(ConfigError, match="single generator, which is served as AtoB"):
        load_translators(path, ["BtoA"], device="cpu")
    with ServerThread(create_app(single, TEST_LIMITS)) as running:
        assert list(request(running.url + "/info").json()["directions"]) == ["AtoB"]
        assert post_image(running.url, png_bytes(20, 12)).image().size == (20, 12)
        assert post_image(running.url, png_bytes(20, 12), direction="BtoA").status == 400


def test_a_pix2pix_run_is_served_in_its_one_direction(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(model="pix2pix", net_g="resnet_6blocks", ngf=8, ndf=8))
    weights = save_checkpoint(tmp_path / "checkpoints", model.networks(), model.config, None, epoch=1,
                              iteration=1).weights

    translators = load_translators(tmp_path, device="cpu")

    assert list(translators) == ["AtoB"]
    with pytest.raises(ConfigError, match=f"{re.escape(str(weights))} holds no BtoA generator, only AtoB"):
        load_translators(tmp_path, ["BtoA"], device="cpu")
    with ServerThread(create_app(translators, TEST_LIMITS)) as running:
        assert request(running.url + "/info").json()["directions"] == {
            "AtoB": {"input_channels": 3, "output_channels": 3}}
        assert post_image(running.url, png_bytes(20, 12)).image().size == (20, 12)


def test_directions_can_be_restricted(tiny_checkpoint):
    assert list(load_translators(tiny_checkpoint, ["BtoA"], device="cpu")) == ["BtoA"]


def test_only_loopback_addresses_count_as_local():
    assert all(is_loopback_host(host) for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback_host(host) for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"))


def test_a_port_in_use_is_reported_with_what_to_do():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:\d+ .*choose another --port"):
            bind_socket("127.0.0.1", taken.getsockname()[1])


def test_limits_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match=r"workers \(--workers\) must be at least 1"):
        Limits(workers=0)
    with pytest.raises(ConfigError, match=r"timeout_s \(--timeout\) must be positive"):
        Limits(timeout_s=0)


def start_serving(*arguments: str, env: dict | None = None) -> tuple[subprocess.Popen, list[str], str]:
    """`cyclegan serve ... --port 0` in a process: (process, the lines it printed up to "serving on", its URL)."""
    process = subprocess.Popen([sys.executable, "-m", "cyclegan", "serve", *arguments, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("serving on "):
            break
    match = re.match(r"serving on (http://127\.0\.0\.1:\d+)", lines[-1] if lines else "")
    if not match:
        process.kill()
        raise AssertionError("".join(lines) + process.stderr.read())
    return process, lines, match.group(1)


def test_the_serve_command_starts_answers_and_stops_on_ctrl_c(tiny_checkpoint):
    process, lines, url = start_serving(str(tiny_checkpoint), "--device", "cpu", "--workers", "1")
    try:
        assert lines[0].startswith("model: resnet_6blocks 3->3 channels, ngf 8")
        assert request(url + "/health", timeout=30).json() == {"status": "ok"}
        assert post_image(url, png_bytes(12, 20)).image().size == (12, 20)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "warning" not in process.stderr.read()  # loopback: no warning about being reachable
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_serve_command_takes_the_name_of_a_downloaded_official_model(tmp_path, translators):
    from cyclegan.fileio import CACHE_ENV
    from cyclegan.zoo import cached_model_path, save_generator

    architecture = {"net_g": "resnet_6blocks", "input_nc": 3, "output_nc": 3, "ngf": 8, "norm": "instance"}
    save_generator(cached_model_path("horse2zebra", tmp_path / "models"), translators["AtoB"].generator, architecture)
    process, lines, url = start_serving("horse2zebra", "--device", "cpu", "--workers", "1",
                                        env={**os.environ, CACHE_ENV: str(tmp_path)})
    try:
        assert lines[0].startswith("model: resnet_6blocks 3->3 channels, ngf 8")
        assert list(request(url + "/info", timeout=30).json()["directions"]) == ["AtoB"]
        expected = translators["AtoB"](Image.open(BytesIO(png_bytes(20, 12))).convert("RGB"))
        assert np.array_equal(np.asarray(post_image(url, png_bytes(20, 12)).image()), np.asarray(expected))
    finally:
        process.kill()
        process.wait()


def test_the_serve_command_says_how_to_download_an_official_model_it_does_not_have(tmp_path, monkeypatch, capsys):
    from cyclegan.fileio import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert main(["serve", "style_monet"]) == 2
    assert "run `cyclegan models download style_monet` first" in capsys.readouterr().err


def test_the_serve_command_reports_a_missing_checkpoint(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"cyclegan serve: error: checkpoint {tmp_path / 'nope'} does not exist\n"
