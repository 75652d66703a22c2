"""The page of `cyclegan serve` used as a person would, in Debian's headless Chromium driven by Playwright.

Playwright never downloads a browser here: it drives /usr/bin/chromium (`make test` installs it
with apt). Without chromium or the playwright package these tests are skipped, saying why; under
CI=true they fail instead, so that a CI run never passes without them.
"""
from __future__ import annotations

import base64
import importlib
import os
import shutil
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import conftest


def unavailable(reason: str):
    conftest.unavailable(reason, "the browser tests")


def require(module: str, reason: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        unavailable(reason)


require("starlette", "the web extra is not installed: pip install -e '.[web]'")
require("uvicorn", "the web extra is not installed: pip install -e '.[web]'")
sync_api = require("playwright.sync_api", "the playwright package is not installed: pip install -e '.[test]'")

from test_serve_api import make_tiny_checkpoint, png_bytes  # noqa: E402

from cyclegan.serving import Limits, ServerThread, create_app, load_translators  # noqa: E402


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("serve") / "checkpoints")

CHROMIUM = os.environ.get("CYCLEGAN_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path("/tmp/cyclegan_serve_page.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    limits = Limits(max_upload_bytes=300_000, max_pixels=1_000_000, workers=2, queue=4, timeout_s=30)
    with ServerThread(create_app(load_translators(tiny_checkpoint, device="cpu"), limits)) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        unavailable(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium, "
                    "which `make test` does when apt is available)")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except sync_api.Error as error:
            unavailable(f"{CHROMIUM} does not start under Playwright: {str(error).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 800})
    opened = context.new_page()
    problems = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    opened.goto(server.url + "/")
    opened.wait_for_selector("input[name=direction]", state="attached")  # /info has been read
    yield opened
    context.close()
    assert not [problem for problem in problems if "400" not in problem and "415" not in problem], problems


def natural_size(page, selector: str) -> tuple[int, int]:
    return tuple(page.eval_on_selector(selector, "image => [image.naturalWidth, image.naturalHeight]"))


def test_choose_a_file_pick_a_direction_translate_and_download(page, tmp_path):
    page.set_input_files("#file-input", files=[{"name": "street photo.png", "mimeType": "image/png",
                                                "buffer": png_bytes(96, 64, seed=3)}])
    page.wait_for_function("document.getElementById('input-image').naturalWidth > 0")
    page.check("input[name=direction][value=BtoA]")
    page.click("#translate-button")
    page.wait_for_selector("#download-link", state="visible", timeout=30_000)
    page.wait_for_function("document.getElementById('output-image').naturalWidth > 0")

    assert natural_size(page, "#input-image") == (96, 64)
    assert natural_size(page, "#output-image") == (96, 64)
    assert page.is_visible("#output-image") and page.is_visible("#input-image")
    assert page.text_content("#output-size") == "96 × 64 px"
    assert page.text_content("#status").startswith("Done in ")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    saved = click_download(page, tmp_path)
    assert saved.name == "street_photo_BtoA.png"
    assert saved.read_bytes().startswith(PNG_SIGNATURE)
    assert Image.open(saved).size == (96, 64)


def click_download(page, folder):
    """Click the page's download link and save the file under the name the page suggests."""
    with page.expect_download() as download_info:
        page.click("#download-link")
    download = download_info.value
    saved = folder / download.suggested_filename
    download.save_as(saved)
    return saved


def test_a_16_bit_tiff_translated_on_the_page_downloads_as_tiff(page, tmp_path):
    tifffile = conftest.require_module("tifffile", "medical")
    buffer = BytesIO()
    tifffile.imwrite(buffer, np.random.default_rng(5).integers(0, 65536, (24, 32, 3)).astype(np.uint16),
                     photometric="rgb")
    page.set_input_files("#file-input", files=[{"name": "slide.tif", "mimeType": "image/tiff",
                                                "buffer": buffer.getvalue()}])
    page.click("#translate-button")
    page.wait_for_selector("#download-link", state="visible", timeout=30_000)

    saved = click_download(page, tmp_path)
    assert saved.name == "slide_AtoB.tif"
    back = tifffile.imread(saved)
    assert back.dtype == np.uint16 and back.shape == (24, 32, 3)


def test_an_image_dropped_on_the_drop_zone_is_translated(page):
    data = png_bytes(40, 56, seed=4)
    transfer = page.evaluate_handle(
        """([name, base64]) => {
            const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            return transfer;
        }""", ["dropped.png", base64.b64encode(data).decode()])
    page.dispatch_event("#drop-zone", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})

    assert page.text_content("#file-name").startswith("dropped.png")
    page.click("#translate-button")
    page.wait_for_selector("#download-link", state="visible", timeout=30_000)
    page.wait_for_function("document.getElementById('output-image').naturalWidth > 0")

    assert natural_size(page, "#output-image") == (40, 56)
    assert page.get_attribute("#download-link", "download") == "dropped_AtoB.png"
    assert "dragging" not in page.get_attribute("#drop-zone", "class")


def test_the_server_refusal_is_shown_to_the_person(page):
    page.set_input_files("#file-input", files=[{"name": "notes.png", "mimeType": "image/png",
                                                "buffer": b"this is not a picture"}])
    page.click("#translate-button")
    page.wait_for_selector("#status.error", timeout=30_000)

    assert page.text_content("#status").startswith("Not translated: notes.png is not an image in a supported format")
    assert page.is_hidden("#download-link") and page.is_hidden("#output-image")
    page.screenshot(path=str(SCREENSHOT.with_name("cyclegan_serve_error.png")))


def test_a_file_over_the_upload_limit_is_refused_before_uploading(page):
    page.set_input_files("#file-input", files=[{"name": "huge.png", "mimeType": "image/png",
                                                "buffer": b"\0" * 400_000}])
    assert page.text_content("#status").startswith("huge.png is 391 KiB, over this server's limit of 293 KiB")
    assert page.is_disabled("#translate-button")


def test_the_page_offers_only_the_directions_the_model_has(browser, tiny_checkpoint):
    single = load_translators(tiny_checkpoint, ["BtoA"], device="cpu")
    with ServerThread(create_app(single, Limits())) as server:
        context = browser.new_context()
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("input[name=direction]", state="attached")
        radios = page.eval_on_selector_all("input[name=direction]", "els => els.map(e => [e.value, e.checked])")
        context.close()
    assert radios == [["BtoA", True]]
