"""The official pretrained-model zoo: catalogue, download (from a real server on 127.0.0.1),
conversion to our safetensors checkpoints, and use of converted files for translation."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from cyclegan import zoo
from cyclegan.checkpoint import load_generator, read_metadata
from cyclegan.cli import main
from cyclegan.errors import CheckpointError, DownloadError
from cyclegan.fileio import CACHE_ENV
from cyclegan.inference import Translator
from cyclegan.networks import NLayerDiscriminator, ResnetGenerator, UnetGenerator
from http_server import serve_files

OFFICIAL_NAMES = [
    "apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
    "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
    "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
    "iphone2dslr_flower",
]
# The reference's download_pix2pix_model.sh names; three of them are CycleGAN models' too.
PIX2PIX_NAMES = ["pix2pix/edges2shoes", "pix2pix/sat2map", "pix2pix/map2sat", "pix2pix/facades_label2photo",
                 "pix2pix/day2night"]
SERVED_PATH = "cyclegan/pretrained_models/horse2zebra.pth"
PIX2PIX_SERVED_PATH = "pix2pix/models-pytorch/facades_label2photo.pth"


def official_style_generator(seed: int = 0, ngf: int = 8) -> tuple[ResnetGenerator, dict]:
    """A ResNet-9 generator and its state dict as the reference files hold it: InstanceNorm
    layers carry running statistics (saved by PyTorch < 0.4), which our networks do not have."""
    torch.manual_seed(seed)
    generator = ResnetGenerator(3, 3, ngf=ngf, n_blocks=9).eval()
    state = dict(generator.state_dict())
    for name, module in generator.named_modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return generator, state


def pth_bytes(state: dict) -> bytes:
    """Saved in the legacy (pre-zip) format of PyTorch 0.x, as the 2017 zoo files are."""
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def official():
    generator, state = official_style_generator()
    assert any(key.endswith("running_mean") for key in state)
    return generator, pth_bytes(state)


def cache_tree(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- catalogue -----------------------------------------------------------------------------------

def test_catalogue_lists_the_18_cyclegan_and_5_pix2pix_generators_with_their_reference_urls():
    assert list(zoo.OFFICIAL_MODELS) == OFFICIAL_NAMES + PIX2PIX_NAMES
    assert zoo.get_model("pix2pix/facades_label2photo").url() == \
        "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/facades_label2photo.pth"
    assert zoo.get_model("facades_label2photo").url() == \
        "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/facades_label2photo.pth"
    assert all(entry.description for entry in zoo.OFFICIAL_MODELS.values())
    assert zoo.get_model("horse2zebra").url() == \
        "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth"
    assert zoo.get_model("style_monet").url("http://mirror.test/") == \
        "http://mirror.test/cyclegan/pretrained_models/style_monet.pth"


def test_unknown_model_name_is_refused_with_the_closest_known_name():
    with pytest.raises(CheckpointError, match="unknown pretrained model 'horse2zebr'.*'horse2zebra'"):
        zoo.get_model("horse2zebr")


def test_cache_folder_comes_from_argument_then_environment_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert zoo.cache_dir() == Path("~/.cache/cyclegan/models").expanduser()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))  # the cache root: models go to its models/
    assert zoo.cache_dir() == tmp_path / "env" / "models"
    assert zoo.cache_dir(tmp_path / "flag") == tmp_path / "flag"


def test_models_list_shows_every_name_and_marks_downloaded_ones(tmp_path, capsys, official):
    (tmp_path / "zebra2horse.safetensors").write_bytes(b"")
    (tmp_path / "pix2pix_sat2map.safetensors").write_bytes(b"")
    assert main(["models", "list", "--cache", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in OFFICIAL_NAMES + PIX2PIX_NAMES:
        assert any(line.split()[:1] == [name] for line in lines), name
    assert [line.split()[0] for line in lines if "[downloaded]" in line] == ["zebra2horse", "pix2pix/sat2map"]
    pix2pix = lines.index("Official pix2pix pretrained generators (U-Net, batch norm)")
    assert [line.split()[0] for line in lines[pix2pix + 1:pix2pix + 6]] == PIX2PIX_NAMES


# --- download and conversion ---------------------------------------------------------------------

def test_download_converts_to_a_checkpoint_that_translates_exactly_as_the_original(tmp_path, official):
    generator, data = official
    with serve_files({SERVED_PATH: data}) as server:
        path = zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)
    assert path == tmp_path / "horse2zebra.safetensors"
    assert cache_tree(tmp_path) == ["horse2zebra.safetensors"]  # the .pth is removed once converted
    metadata = read_metadata(path)
    assert metadata["networks"] == "G_AB"
    assert metadata["source"] == server.url_for(SERVED_PATH)
    assert metadata["source_sha256"] == hashlib.sha256(data).hexdigest()
    config = json.loads(metadata["model_config"])
    assert (config["net_g"], config["ngf"], config["norm"], config["input_nc"], config["output_nc"]) == \
        ("resnet_9blocks", 8, "instance", 3, 3)

    translator = Translator.from_checkpoint(path, device="cpu", channels_last=False, nnpack=False)
    assert translator.spec.direction is None  # a single generator, of no direction of its own
    image = torch.rand(1, 3, 36, 52) * 2 - 1
    with torch.no_grad():
        assert torch.equal(translator.translate_tensor(image), generator(image))


def test_a_pix2pix_model_downloads_beside_the_cyclegan_one_of_its_name_and_translates_as_the_reference_tests(
        tmp_path):
    # A U-Net with batch norm whose running averages are far from any image's statistics, saved as the
    # reference's pix2pix files are; the reference's test.py runs it in training mode, image by image.
    torch.manual_seed(0)
    generator = UnetGenerator(3, 3, num_downs=8, ngf=4, norm="batch")
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.2, 3.0)
    data = pth_bytes(generator.state_dict())
    with serve_files({PIX2PIX_SERVED_PATH: data}) as server:
        path = zoo.download_model("pix2pix/facades_label2photo", cache=tmp_path, base_url=server.url,
                                  progress=False)
    assert path == tmp_path / "pix2pix_facades_label2photo.safetensors"
    assert cache_tree(tmp_path) == ["pix2pix_facades_label2photo.safetensors"]
    metadata = read_metadata(path)
    assert metadata["source"] == server.url_for(PIX2PIX_SERVED_PATH)
    config = json.loads(metadata["model_config"])
    assert (config["net_g"], config["ngf"], config["norm"]) == ("unet_256", 4, "batch")

    translator = Translator.from_checkpoint(path, device="cpu", precision="fp32", channels_last=False, nnpack=False)
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = generator.train()(image)
        torch.testing.assert_close(translator.translate_tensor(image), expected, atol=2e-5, rtol=0)


def test_a_converted_model_is_used_from_the_cache_without_network_access(tmp_path, official):
    _, data = official
    with serve_files({SERVED_PATH: data}) as server:
        first = zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)
        second = zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)
        assert first == second
        assert len(server.requests_for(SERVED_PATH)) == 1


def test_a_cut_off_download_is_resumed_by_the_next_call(tmp_path, official):
    generator, data = official
    with serve_files({SERVED_PATH: data}) as server:
        server.truncate_next[SERVED_PATH] = len(data) // 3
        with pytest.raises(DownloadError, match="incomplete"):
            zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)
        assert cache_tree(tmp_path) == ["horse2zebra.pth.part"]
        path = zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)
        resumed = server.requests_for(SERVED_PATH)[-1]
    assert resumed.headers["Range"] == f"bytes={len(data) // 3}-"
    assert read_metadata(path)["source_sha256"] == hashlib.sha256(data).hexdigest()
    assert cache_tree(tmp_path) == ["horse2zebra.safetensors"]


def test_a_server_error_is_a_download_error_and_leaves_nothing(tmp_path, official):
    _, data = official
    with serve_files({SERVED_PATH: data}) as server:
        server.status_for[SERVED_PATH] = 500
        with pytest.raises(DownloadError, match="HTTP 500"):
            zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)
    assert cache_tree(tmp_path) == []


def test_a_wrong_checksum_is_refused_and_the_file_deleted(tmp_path, official):
    _, data = official
    with serve_files({SERVED_PATH: data}) as server:
        with pytest.raises(DownloadError, match="checksum mismatch"):
            zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, sha256="0" * 64,
                               progress=False)
    assert cache_tree(tmp_path) == []


def test_known_hashes_are_checked_and_pin_the_cached_conversion(tmp_path, official, monkeypatch):
    _, data = official
    monkeypatch.setitem(zoo.KNOWN_SHA256, "horse2zebra", hashlib.sha256(data).hexdigest())
    with serve_files({SERVED_PATH: data}) as server:
        path = zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)
        assert path.is_file()
        monkeypatch.setitem(zoo.KNOWN_SHA256, "horse2zebra", "f" * 64)
        with pytest.raises(DownloadError, match="checksum mismatch"):
            # The cached file came from another hash, so it is fetched again, and refused.
            zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)


def test_a_download_that_is_not_a_generator_is_a_checkpoint_error_and_deleted(tmp_path):
    discriminator = pth_bytes(NLayerDiscriminator(3, ndf=8).state_dict())
    with serve_files({SERVED_PATH: discriminator}) as server:
        with pytest.raises(CheckpointError, match="not a usable generator.*deleted"):
            zoo.download_model("horse2zebra", cache=tmp_path, base_url=server.url, progress=False)
    assert cache_tree(tmp_path) == []


def test_cli_download_honours_the_environment_and_translate_takes_the_model_name(
        tmp_path, official, monkeypatch, capsys):
    _, data = official
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    Image.new("RGB", (30, 22), (120, 80, 40)).save(tmp_path / "photo.png")
    with serve_files({SERVED_PATH: data}) as server:
        monkeypatch.setenv(zoo.BASE_URL_ENV, server.url)
        assert main(["models", "download", "horse2zebra", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"horse2zebra is ready in {tmp_path / 'cache' / 'models' / 'horse2zebra.safetensors'}" in out
    assert hashlib.sha256(data).hexdigest() in out

    assert main(["translate", "horse2zebra", str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 0
    assert Image.open(tmp_path / "out" / "photo.png").size == (30, 22)


def test_translate_with_a_model_name_not_yet_downloaded_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert main(["translate", "style_monet", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "run `cyclegan models download style_monet` first" in capsys.readouterr().err


# --- convert -------------------------------------------------------------------------------------

def test_convert_writes_a_checkpoint_equivalent_to_the_pth(tmp_path, official, capsys):
    generator, data = official
    source = tmp_path / "latest_net_G_A.pth"
    source.write_bytes(data)
    assert main(["models", "convert", str(source), str(tmp_path / "g.safetensors")]) == 0
    assert "resnet_9blocks 3->3 channels, ngf 8, instance norm" in capsys.readouterr().out
    converted, spec = load_generator(tmp_path / "g.safetensors")
    original, _ = load_generator(source)
    assert spec.net_g == "resnet_9blocks" and spec.ngf == 8
    image = torch.rand(2, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        assert torch.equal(converted(image), original(image))
        assert torch.equal(converted(image), generator(image))


def test_convert_refuses_a_discriminator_with_a_clear_error(tmp_path, capsys):
    source = tmp_path / "latest_net_D_A.pth"
    torch.save(NLayerDiscriminator(3, ndf=8).state_dict(), source)
    assert main(["models", "convert", str(source), str(tmp_path / "d.safetensors")]) == 2
    assert "not a ResNet or U-Net generator state dict" in capsys.readouterr().err
    assert not (tmp_path / "d.safetensors").exists()


def test_a_converted_file_whose_config_does_not_fit_its_weights_is_a_checkpoint_error(tmp_path):
    generator = ResnetGenerator(3, 3, ngf=8, n_blocks=6)
    wrong = {"net_g": "resnet_6blocks", "input_nc": 3, "output_nc": 3, "ngf": 16, "norm": "instance"}
    zoo.save_generator(tmp_path / "g.safetensors", generator, wrong)
    with pytest.raises(CheckpointError, match="weights of G_AB do not fit the model"):
        Translator.from_checkpoint(tmp_path / "g.safetensors", device="cpu")


def test_a_single_generator_file_is_used_whatever_the_direction(tmp_path):
    generator = ResnetGenerator(3, 1, ngf=8, n_blocks=6).eval()
    architecture = {"net_g": "resnet_6blocks", "input_nc": 3, "output_nc": 1, "ngf": 8, "norm": "instance"}
    zoo.save_generator(tmp_path / "g.safetensors", generator, architecture)
    loaded, spec = load_generator(tmp_path / "g.safetensors", "BtoA")
    assert (spec.input_nc, spec.output_nc, spec.direction) == (3, 1, None)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(image), generator(image))
