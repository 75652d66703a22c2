"""Specification of cyclegan.reference_format: recognising, cleaning and loading the reference's weights."""

import pytest
import torch

from cyclegan.errors import CheckpointError
from cyclegan.networks import ResnetGenerator, UnetGenerator, build_discriminator, build_generator
from cyclegan.reference_format import clean_reference_state_dict, generator_from_state_dict, infer_generator_architecture


# --- reference state dicts -----------------------------------------------------------------------

# resnet_6blocks at ngf 8: norms after the 7x7 conv (8 ch), the downsamplings (16, 32), the blocks
# (32) and the upsamplings model.17 (16) and model.20 (8); the last conv is model.23.
INSTANCE_NORMS_RESNET_6 = ["model.2", "model.5", "model.8", "model.17", "model.20"] + [
    f"model.{i}.conv_block.{j}" for i in range(10, 16) for j in (2, 6)
]


def dirty_like_reference_file(state_dict):
    """What old reference files look like: DataParallel prefix plus InstanceNorm running stats."""
    dirty = {f"module.{k}": v.clone() for k, v in state_dict.items()}
    for norm in INSTANCE_NORMS_RESNET_6:
        channels = 8 if norm in ("model.2", "model.20") else 16 if norm in ("model.5", "model.17") else 32
        dirty[f"module.{norm}.running_mean"] = torch.zeros(channels)
        dirty[f"module.{norm}.running_var"] = torch.ones(channels)
        dirty[f"module.{norm}.num_batches_tracked"] = torch.tensor(0)
    return dirty


def test_clean_reference_state_dict_drops_prefix_and_instance_norm_stats_and_loads_strictly():
    net = build_generator("resnet_6blocks", ngf=8)
    dirty = dirty_like_reference_file(net.state_dict())
    cleaned = clean_reference_state_dict(dirty)
    assert type(cleaned) is dict
    assert sorted(cleaned) == sorted(net.state_dict())
    build_generator("resnet_6blocks", ngf=8).load_state_dict(cleaned, strict=True)


def test_clean_reference_state_dict_keeps_batch_norm_running_stats():
    state = UnetGenerator(3, 3, 7, ngf=2, norm="batch").state_dict()
    assert clean_reference_state_dict({f"module.{k}": v for k, v in state.items()}).keys() == state.keys()


def test_dirty_reference_file_reloads_with_bit_identical_outputs():
    torch.manual_seed(0)
    original = build_generator("resnet_6blocks", ngf=8).eval()
    loaded, architecture = generator_from_state_dict(dirty_like_reference_file(original.state_dict()))
    assert architecture == {"net_g": "resnet_6blocks", "input_nc": 3, "output_nc": 3, "ngf": 8,
                            "norm": "instance", "use_dropout": False}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), original(x))


def test_clean_reference_state_dict_rejects_a_non_tensor_entry():
    with pytest.raises(CheckpointError, match="not a tensor"):
        clean_reference_state_dict({"epoch": 3})


# --- architecture inference ----------------------------------------------------------------------

@pytest.mark.parametrize("net_g, input_nc, output_nc, ngf, norm", [
    ("resnet_6blocks", 3, 3, 8, "instance"),
    ("resnet_9blocks", 1, 3, 4, "batch"),
    ("resnet_9blocks", 3, 1, 4, "none"),
    ("unet_128", 3, 3, 2, "batch"),
    ("unet_128", 1, 3, 2, "instance"),
    ("unet_256", 3, 1, 2, "none"),
])
def test_infer_generator_architecture_recovers_build_arguments(net_g, input_nc, output_nc, ngf, norm):
    state = build_generator(net_g, input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm=norm).state_dict()
    assert infer_generator_architecture(state) == {
        "net_g": net_g, "input_nc": input_nc, "output_nc": output_nc, "ngf": ngf,
        "norm": norm, "use_dropout": False,
    }


def test_infer_generator_architecture_detects_dropout_in_resnet_blocks():
    state = build_generator("resnet_6blocks", ngf=4, use_dropout=True).state_dict()
    assert infer_generator_architecture(state)["use_dropout"] is True
    generator_from_state_dict(state)  # loads strictly


def test_infer_generator_architecture_rejects_a_discriminator():
    with pytest.raises(CheckpointError, match="unexpected keys: model.0.bias"):
        infer_generator_architecture(build_discriminator(ndf=4).state_dict())


def test_infer_generator_architecture_rejects_unsupported_block_count():
    state = ResnetGenerator(3, 3, ngf=4, n_blocks=7).state_dict()
    with pytest.raises(CheckpointError, match="7 residual blocks"):
        infer_generator_architecture(state)


def test_generator_from_state_dict_reports_missing_keys():
    state = build_generator("resnet_6blocks", ngf=4).state_dict()
    del state["model.23.bias"]
    with pytest.raises(CheckpointError, match="missing keys: model.23.bias"):
        generator_from_state_dict(state)


@pytest.mark.parametrize("content, reason", [
    # torch's messages spanned lines, and advised weights_only=False, which would run the file's code.
    (b"", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n", "it is not a PyTorch file: neither a zip archive nor a pickle"),
    ("pickle", "it holds pickled objects other than tensors"),
])
def test_a_reference_file_that_is_no_state_dict_is_refused_in_one_line(tmp_path, content, reason):
    import datetime

    from cyclegan.reference_format import load_reference_generator

    path = tmp_path / "latest_net_G_A.pth"
    if content == "pickle":
        torch.save({"saved": datetime.date(2020, 1, 1)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as refused:
        load_reference_generator(path)
    assert str(refused.value) == (f"{path} cannot be loaded as a plain state dict of tensors ({reason}); only "
                                  "weights are accepted, never pickled code")
