"""`cyclegan serve` under load, on 127.0.0.1 only, with bounded request counts and times.

Many concurrent clients lose nothing and leak no memory; a full queue is answered 503 at once
rather than left hanging; a request that takes too long is answered 504.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from conftest import require_module

require_module("starlette", "web")
require_module("uvicorn", "web")

from test_serve_api import make_tiny_checkpoint, png_bytes, post_image, request  # noqa: E402

from cyclegan.inference import Translator  # noqa: E402
from cyclegan.serving import Limits, ServerThread, create_app, load_translators  # noqa: E402


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("serve") / "checkpoints")


def resident_memory_bytes() -> int:
    """This process's resident set size (the server runs in this process)."""
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("reads the resident memory from /proc/self/status (Linux)")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line in /proc/self/status")


class GatedTranslator(Translator):
    """A real translator that waits until the test opens its gate: a deliberately slow model."""

    def __init__(self, translator: Translator):
        super().__init__(translator.generator, translator.spec, "cpu")
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def __call__(self, image):
        self.started.release()
        assert self.gate.wait(timeout=60), "the test never opened the gate"
        return super().__call__(image)


def seconds_of_one_request(url: str, image: bytes) -> float:
    """How long this machine takes to answer one translation request, now: the unit of the time
    bounds below, so that they hold on a slow or loaded machine and still catch a server that waits."""
    began = time.monotonic()
    assert post_image(url, image).status == 200
    return time.monotonic() - began


def wait_until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the server"
        time.sleep(0.01)


@pytest.mark.timeout(120)
def test_200_requests_from_8_clients_all_succeed_without_memory_growth(tiny_checkpoint):
    translators = load_translators(tiny_checkpoint, device="cpu")
    limits = Limits(max_upload_bytes=1_000_000, max_pixels=1_000_000, workers=2, queue=16, timeout_s=30)
    images = [png_bytes(32, 32, seed=seed) for seed in range(8)]
    with ServerThread(create_app(translators, limits)) as server:
        def one(index: int):
            direction = ("AtoB", "BtoA")[index % 2]
            reply = post_image(server.url, images[index % 8], filename=f"img{index}.png", direction=direction)
            return index, reply

        with ThreadPoolExecutor(8) as clients:
            list(clients.map(one, range(24)))  # warm-up: allocator pools, thread stacks, first-call caches
            one_request = min(seconds_of_one_request(server.url, images[0]) for _ in range(3))
            memory_before = resident_memory_bytes()
            started = time.monotonic()
            replies = list(clients.map(one, range(200)))
            elapsed = time.monotonic() - started
            memory_after = resident_memory_bytes()
        assert server.server.started and request(server.url + "/health").status == 200

    assert sorted(index for index, _ in replies) == list(range(200))
    failures = [(index, reply.status, reply.body[:200]) for index, reply in replies if reply.status != 200]
    assert not failures
    for index, reply in replies:
        image = Image.open(BytesIO(reply.body))
        assert image.format == "PNG" and image.size == (32, 32)
        assert reply.headers["content-disposition"].endswith(f'img{index}_{("AtoB", "BtoA")[index % 2]}.png"')
    growth = memory_after - memory_before
    assert growth < 100 * 2**20, f"resident memory grew by {growth / 2**20:.0f} MiB over 200 requests"
    # The workers answer the clients in about the time one client asking for each image in turn
    # would take (the interpreter lock keeps them from doing much better on a small model).
    assert elapsed < 200 * one_request * 5, f"200 requests took {elapsed:.1f} s, one alone {one_request:.3f} s"


@pytest.mark.timeout(120)
def test_a_full_queue_is_answered_503_at_once_and_the_admitted_requests_still_finish(tiny_checkpoint):
    slow = GatedTranslator(load_translators(tiny_checkpoint, ["AtoB"], device="cpu")["AtoB"])
    app = create_app({"AtoB": slow}, Limits(workers=1, queue=2, timeout_s=60))
    with ServerThread(app) as server, ThreadPoolExecutor(3) as clients:
        slow.gate.set()
        seconds_of_one_request(server.url, png_bytes(16, 16))  # warm-up: first calls are slow
        one_request = seconds_of_one_request(server.url, png_bytes(16, 16))
        slow.gate.clear()
        admitted = [clients.submit(post_image, server.url, png_bytes(16, 16)) for _ in range(3)]
        assert slow.started.acquire(timeout=20)  # one is running ...
        wait_until(lambda: app.state.pool.admitted == 3)  # ... and two are waiting: capacity reached

        began = time.monotonic()
        refused = [post_image(server.url, png_bytes(16, 16), timeout=10) for _ in range(5)]
        refusing_took = time.monotonic() - began

        slow.gate.set()
        finished = [future.result(timeout=60) for future in admitted]

    assert [reply.status for reply in refused] == [503] * 5
    assert refused[0].json()["error"].startswith("busy, retry: all 1 workers are translating and 2 more")
    assert refused[0].headers["retry-after"] == "2"
    # A refusal does no translation: the refusals take less than a few translated requests (a
    # server that made clients wait for a slot would keep them until the gate opens).
    assert refusing_took < 5 * one_request * 4, (
        f"a full server must refuse at once, not make clients wait: {refusing_took:.2f} s for 5 refusals, "
        f"{one_request:.3f} s for one translation")
    assert [reply.status for reply in finished] == [200] * 3
    assert all(reply.image().size == (16, 16) for reply in finished)
    assert app.state.pool.admitted == 0


@pytest.mark.timeout(120)
def test_a_request_that_takes_too_long_gets_504_and_its_slot_is_freed_when_the_work_ends(tiny_checkpoint):
    slow = GatedTranslator(load_translators(tiny_checkpoint, ["AtoB"], device="cpu")["AtoB"])
    app = create_app({"AtoB": slow}, Limits(workers=1, queue=0, timeout_s=2))
    with ServerThread(app) as server:
        slow.gate.set()
        seconds_of_one_request(server.url, png_bytes(16, 16))  # warm-up: first calls are slow
        one_request = seconds_of_one_request(server.url, png_bytes(16, 16))
        slow.gate.clear()
        began = time.monotonic()
        timed_out = post_image(server.url, png_bytes(16, 16), timeout=20)
        waited = time.monotonic() - began
        still_working = app.state.pool.admitted  # the abandoned translation still holds its worker
        busy = post_image(server.url, png_bytes(16, 16), timeout=20)
        slow.gate.set()
        wait_until(lambda: app.state.pool.admitted == 0)
        after = post_image(server.url, png_bytes(16, 16), timeout=20)

    assert timed_out.status == 504
    assert timed_out.json()["error"].startswith("the translation did not finish within 2 s")
    assert 2 <= waited < 2 + 100 * one_request, f"answered after {waited:.2f} s; one request takes {one_request:.3f} s"
    assert still_working == 1 and busy.status == 503
    assert after.status == 200 and after.image().size == (16, 16)
