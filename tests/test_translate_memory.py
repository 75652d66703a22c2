"""Memory-aware translation: fewer images at a time or tiles when the free memory would not hold
them, and running out of memory as one clear message (CLI) or a 503 (serve), never a traceback."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.checkpoint import save_checkpoint
from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.errors import InsufficientMemoryError
from cyclegan.imageconv import image_to_tensor, tensor_to_image
from cyclegan.inference import load_translators
from cyclegan.inference import memory
from cyclegan.inference.memory import MemoryPlan, activation_bytes, plan_translation
from cyclegan.networks import ResnetGenerator
from cyclegan.training.model import CycleGAN

from conftest import write_images

# ngf 8: 8 * 32 + 128 bytes per pixel; ngf 64: 64 * 32 + 128.
NGF8_BYTES_PER_PIXEL = 384
NGF64_BYTES_PER_PIXEL = 2176
CPU_ALLOCATOR_FAILURE = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                         "you tried to allocate 268435456 bytes.")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memory") / "run"
    torch.manual_seed(0)
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8)
    model = CycleGAN(config)
    save_checkpoint(folder / "checkpoints", {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A,
                                             "D_B": model.D_B}, config, None, epoch=0, iteration=0)
    return folder


def test_the_estimate_is_the_calibrated_bytes_per_pixel_and_filter():
    assert activation_bytes(256 * 256, 64) == 256 * 256 * NGF64_BYTES_PER_PIXEL
    assert activation_bytes(100, 8) == 100 * NGF8_BYTES_PER_PIXEL
    assert activation_bytes(100, None) == 100 * NGF64_BYTES_PER_PIXEL  # a file without ngf: the paper's 64


def test_images_that_fit_go_all_at_once():
    assert plan_translation(256, 256, 4, 64, free=10**10) == MemoryPlan(4)
    assert plan_translation(4000, 3000, 8, 64, free=None) == MemoryPlan(8)  # free memory unknown: as asked


def test_a_batch_that_does_not_fit_is_cut_to_what_half_the_free_memory_holds():
    one = 256 * 256 * NGF64_BYTES_PER_PIXEL  # 142.6 MB
    plan = plan_translation(256, 256, 4, 64, free=2 * (2 * one + 1000))
    assert (plan.batch, plan.tile) == (2, None)
    assert plan.note == ("the network would need about 570.4 MB for 4 image(s) of 256x256 px, 570.4 MB free: "
                         "translating 2 at a time")


def test_an_image_that_does_not_fit_alone_is_tiled_with_the_largest_tile_that_fits():
    # Half of 2 GB, less the 16 bytes per pixel of the canvas, is 808 MB: sqrt(808e6 / 2176) = 609.4 px,
    # rounded down to the generator's multiple of 4.
    plan = plan_translation(4000, 3000, 1, 64, free=2 * 10**9, multiple=4)
    assert (plan.batch, plan.tile) == (1, 608)
    assert plan.note.endswith("translating in 608 px tiles (--tile sets the size)")


def test_the_tile_is_never_smaller_than_the_floor_and_tiny_memory_is_only_warned_about():
    assert plan_translation(1000, 1000, 1, 64, free=10**6).tile == 128
    plan = plan_translation(100, 100, 1, 64, free=1000)
    assert (plan.batch, plan.tile) == (1, None) and "may run out of memory" in plan.note


def test_a_share_of_the_memory_plans_for_that_share():
    one = 256 * 256 * NGF64_BYTES_PER_PIXEL
    assert plan_translation(256, 256, 2, 64, free=4 * one + 10).batch == 2
    assert plan_translation(256, 256, 2, 64, free=4 * one + 10, share=0.5).batch == 1


def test_free_cpu_memory_is_mem_available_or_the_cgroup_room_when_smaller(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:          100000 kB\nMemAvailable:    8000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text("max\n")
    monkeypatch.setattr(memory, "_MEMINFO", meminfo)
    monkeypatch.setattr(memory, "_CGROUP", cgroup)
    assert memory.free_memory(torch.device("cpu")) == 8_000_000 * 1024
    (cgroup / "memory.max").write_text("2000000000\n")
    (cgroup / "memory.current").write_text("500000000\n")
    assert memory.free_memory(torch.device("cpu")) == 1_500_000_000
    assert memory.free_memory(torch.device("meta")) is None


def test_short_memory_sends_fewer_images_per_call_and_says_so_once(run, monkeypatch, caplog):
    translator = load_translators(run, ["AtoB"], device="cpu")["AtoB"]
    one = 32 * 32 * NGF8_BYTES_PER_PIXEL
    monkeypatch.setattr("cyclegan.inference.translator.free_memory", lambda device: 2 * (2 * one + 100))
    calls = []
    translate_tensor = translator.translate_tensor
    monkeypatch.setattr(translator, "translate_tensor", lambda batch: calls.append(len(batch)) or translate_tensor(batch))
    images = [Image.new("RGB", (32, 32), (10 * index, 80, 160)) for index in range(5)]
    with caplog.at_level(logging.WARNING, logger="cyclegan.inference"):
        first = translator.translate_images(images, batch_size=5)
        translator.translate_images(images, batch_size=5)
    assert calls == [2, 2, 1, 2, 2, 1]
    assert [record.getMessage() for record in caplog.records] == [
        "note: the network would need about 2.0 MB for 5 image(s) of 32x32 px, 1.6 MB free: translating 2 at a time"]
    alone = [np.asarray(translator(image), dtype=int) for image in images]
    assert max(np.abs(np.asarray(image, dtype=int) - single).max() for image, single in zip(first, alone)) <= 1


def test_an_image_too_large_for_the_free_memory_is_tiled_as_with_that_tile(run, tmp_path, monkeypatch):
    translator = load_translators(run, ["AtoB"], device="cpu")["AtoB"]
    # Half the free memory holds the 16-byte canvas of 256 x 256 px and one 128 x 128 tile exactly.
    free = 2 * (16 * 256 * 256 + 128 * 128 * NGF8_BYTES_PER_PIXEL)
    assert plan_translation(256, 256, 1, 8, free).tile == 128
    monkeypatch.setattr("cyclegan.inference.translator.free_memory", lambda device: free)
    image = Image.open(write_images(tmp_path, 1, size=(256, 256))[0]).convert("RGB")
    tiled = load_translators(run, ["AtoB"], device="cpu", tile=128)["AtoB"]
    result = translator(image)
    assert result.size == (256, 256) and result.tobytes() == tiled(image).tobytes()
    whole = tensor_to_image(translator.translate_tensor(image_to_tensor(image)[None])[0])  # one pass, untiled
    assert result.tobytes() != whole.tobytes()


@pytest.mark.parametrize("failure", [RuntimeError(CPU_ALLOCATOR_FAILURE), MemoryError(),
                                     torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")])
def test_running_out_of_memory_in_translate_is_one_line_naming_the_size_and_what_to_do(run, tmp_path, monkeypatch,
                                                                                        capsys, failure):
    image = write_images(tmp_path / "in", 1, size=(40, 36))[0]

    def forward(self, x):
        raise failure

    monkeypatch.setattr(ResnetGenerator, "forward", forward)
    code = main(["translate", str(run), str(image), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("cyclegan translate: error: out of memory translating an image of 40x36 px on cpu "
                          "(the network needs about 553 kB")
    assert err.endswith("); use --tile 512 (or smaller tiles)\n")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_batch_that_runs_out_of_memory_suggests_a_smaller_batch(run, monkeypatch):
    translator = load_translators(run, ["AtoB"], device="cpu")["AtoB"]

    def forward(self, x):
        raise RuntimeError(CPU_ALLOCATOR_FAILURE)

    monkeypatch.setattr(ResnetGenerator, "forward", forward)
    with pytest.raises(InsufficientMemoryError, match=r"^out of memory translating 3 images of 32x32 px on cpu "
                                                      r"\(.*\); use --tile 512 \(or smaller tiles\), or a smaller "
                                                      r"--batch-size$") as raised:
        translator.translate_images([Image.new("RGB", (32, 32))] * 3, batch_size=3)
    assert (raised.value.width, raised.value.height, raised.value.count) == (32, 32, 3)


def test_other_runtime_errors_of_the_network_are_not_taken_for_memory(run, monkeypatch):
    translator = load_translators(run, ["AtoB"], device="cpu")["AtoB"]

    def forward(self, x):
        raise RuntimeError("Given groups=1, weight of size [8, 3, 7, 7], expected input to have 3 channels")

    monkeypatch.setattr(ResnetGenerator, "forward", forward)
    with pytest.raises(RuntimeError, match="expected input"):
        translator(Image.new("RGB", (32, 32)))


def test_serve_answers_503_with_a_json_message_when_memory_runs_out(run, monkeypatch):
    pytest.importorskip("starlette")
    from test_serve_api import png_bytes, post_image

    from cyclegan.serving import Limits, ServerThread, create_app

    translators = load_translators(run, ["AtoB"], device="cpu")

    def forward(self, x):
        raise RuntimeError(CPU_ALLOCATOR_FAILURE)

    with ServerThread(create_app(translators, Limits(workers=2))) as server:
        assert translators["AtoB"].memory_share == 0.5  # two workers share the free memory
        monkeypatch.setattr(ResnetGenerator, "forward", forward)
        reply = post_image(server.url, png_bytes(24, 16), filename="photo.png")
    assert reply.status == 503 and reply.headers["retry-after"] == "10"
    assert reply.json() == {"error": "not enough memory on this server to translate photo.png (24x16 px) now; "
                                     "retry later or send a smaller image"}


def test_video_frames_go_fewer_at_a_time_when_memory_is_short(run, tmp_path, monkeypatch):
    pytest.importorskip("av")
    from test_video import decoded_frames, make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=8, size=(48, 32), audio=False, quick=True)
    translator = load_translators(run, ["AtoB"], device="cpu")["AtoB"]
    one = 48 * 32 * NGF8_BYTES_PER_PIXEL
    monkeypatch.setattr("cyclegan.inference.translator.free_memory", lambda device: 2 * (2 * one + 100))
    calls = []
    translate_tensor = translator.translate_tensor
    monkeypatch.setattr(translator, "translate_tensor", lambda batch: calls.append(len(batch)) or translate_tensor(batch))
    translator.translate_video(clip, tmp_path / "out.mp4")  # 4 frames per call by default
    assert calls == [2, 2, 2, 2]
    assert len(decoded_frames(tmp_path / "out.mp4")) == 8


def test_a_video_that_runs_out_of_memory_is_reported_by_name_without_a_traceback(run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("av")
    from test_video import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=8, size=(48, 32), audio=False, quick=True)

    def forward(self, x):
        raise RuntimeError(CPU_ALLOCATOR_FAILURE)

    monkeypatch.setattr(ResnetGenerator, "forward", forward)
    code = main(["translate", str(run), str(clip), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"could not translate 1 file(s):\n  {clip}: out of memory translating 4 images of 48x32 px "
                          "on cpu")
    assert err.endswith("; use --tile 512 (or smaller tiles), or a smaller --batch-size\n")
    assert list((tmp_path / "out").iterdir()) == []
