"""ONNX export of a generator, and running such an export with onnxruntime.

`export_onnx(checkpoint, out)` writes one direction's generator with dynamic batch, height and
width, records what translation needs in the model's metadata (net_g, input_nc, output_nc, the
size multiple; the intensity windows of its input and output domains, `input_window` and
`output_window` as `--window-a/-b` spell them, and in words `input_values` and `output_values`;
the volumes' `slice_axis`) and checks the file against PyTorch with onnxruntime on an input of
another size than the one traced. The network itself maps [-1, 1] to [-1, 1]: a user of the file
maps the stored values through the windows, as `cyclegan translate` of the file does.
`load_onnx_generator(path)` gives a module-like wrapper around an onnxruntime session that
`inference.Translator` drives like any generator (padding, tiling), with the windows in its spec.

The graph is traced with PyTorch's TorchScript-based exporter (`dynamo=False`): for these
convolution-only networks it gives the same graph as the newer torch.export-based one, many times
faster on a small CPU, and without the extra `onnxscript` dependency.
Both onnx and onnxruntime come with the optional extra: `pip install 'cyclegan[onnx]'`.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cyclegan.checkpoint import GeneratorSpec, load_generator
from cyclegan.config import DIRECTIONS, GENERATORS
from cyclegan.data.intensity import IntensityWindow, describe_values
from cyclegan.errors import CheckpointError, ConfigError
from cyclegan.fileio import unwritable_file_reason, write_atomic
from cyclegan.layers.test_time_norm import each_image_normalised

FORMAT = "cyclegan-onnx/1"
DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "translated"
# The exported graph is accepted when it matches PyTorch this closely on [-1, 1] outputs.
TOLERANCE = 1e-4


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(f"{module} is not installed; install the ONNX extra: pip install 'cyclegan[onnx]'") from error


@dataclass
class ExportReport:
    path: Path
    spec: GeneratorSpec  # of the exported generator, as loaded from the checkpoint
    check_shape: tuple[int, ...]
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= TOLERANCE


def export_onnx(checkpoint: str | Path, out: str | Path, direction: str = "AtoB",
                opset: int = DEFAULT_OPSET, overwrite: bool = False) -> ExportReport:
    """Export the `direction` generator of `checkpoint` (anything `checkpoint.load_generator`
    takes) to `out`, which must not exist unless `overwrite`.

    Batch, height and width are dynamic; height and width must be multiples of the generator's
    size multiple (stored as metadata `size_multiple`; `cyclegan translate` pads to it). The
    result is compared with PyTorch on a random batch of 2 at a size other than the traced one.
    """
    onnx = _require("onnx")
    _require("onnxruntime")
    if opset < 17:
        raise ConfigError(f"opset {opset} is too old; use 17 or newer")
    newest = _newest_opset()
    if newest is not None and opset > newest:
        raise ConfigError(f"opset {opset} is newer than this PyTorch's ONNX exporter writes; use 17 to {newest}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"the ONNX file should end in .onnx, got {out}")
    unwritable = unwritable_file_reason(out)
    if unwritable:
        raise ConfigError(f"cannot write {out}: {unwritable}; give another file path as --onnx")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it, or give another file path as --onnx")
    if Path(checkpoint).suffix.lower() == ".onnx":
        raise ConfigError(f"{checkpoint} is already an ONNX model")
    generator, spec = load_generator(checkpoint, direction)
    generator = each_image_normalised(generator)  # as `cyclegan translate` runs it (layers.test_time_norm)
    multiple = spec.size_multiple
    side = max(64, multiple)
    traced = torch.rand(1, spec.input_nc, side, side) * 2 - 1

    def write(temporary: Path) -> None:
        dynamic = {0: "batch", 2: "height", 3: "width"}
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation notices, meaningless to users
            # `.model` is the network proper: the wrapper's only addition is a size check, which
            # the caller's padding makes unnecessary and which tracing would freeze.
            torch.onnx.export(generator.model, (traced,), str(temporary), opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic}, **legacy)
        model = onnx.load(str(temporary))
        metadata = {"format": FORMAT, "net_g": spec.net_g, "input_nc": str(spec.input_nc),
                    "output_nc": str(spec.output_nc), "ngf": _text(spec.ngf), "norm": _text(spec.norm),
                    "size_multiple": str(multiple), "direction": _text(spec.direction),
                    "source": Path(spec.source).name, "input_window": _text(spec.input_window),
                    "output_window": _text(spec.output_window), "slice_axis": _text(spec.slice_axis),
                    "input_values": describe_values(spec.input_nc, spec.input_window),
                    "output_values": describe_values(spec.output_nc, spec.output_window)}
        onnx.helper.set_model_props(model, metadata)
        onnx.checker.check_model(model)
        onnx.save(model, str(temporary))

    write_atomic(out, write)

    check = torch.rand(2, spec.input_nc, side + multiple, side + 2 * multiple) * 2 - 1
    with torch.no_grad():
        expected = generator(check).numpy()
    session, _ = _session(out, "cpu")
    actual = session.run([OUTPUT_NAME], {INPUT_NAME: check.numpy()})[0]
    if actual.shape != expected.shape:
        raise CheckpointError(f"the exported model gives shape {actual.shape} for input {tuple(check.shape)}, "
                              f"PyTorch {expected.shape}")
    return ExportReport(out, spec, tuple(check.shape), float(np.abs(actual - expected).max()))


def _newest_opset() -> int | None:
    """The newest opset the TorchScript-based exporter writes (which a larger one makes fail with a
    traceback deep in the tracer); None where this PyTorch does not say."""
    try:
        from torch.onnx import _constants
    except ImportError:
        return None
    return getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", None))


def _text(value) -> str:
    """A metadata value: ONNX metadata holds strings, "" for what is unknown."""
    return "" if value is None else str(value)


def _providers(device: str) -> list:
    ort = _require("onnxruntime")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device in ("auto", "cuda") or device.startswith("cuda:"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            index = device.partition(":")[2]
            cuda = ("CUDAExecutionProvider", {"device_id": int(index)}) if index.isdigit() else "CUDAExecutionProvider"
            return [cuda, "CPUExecutionProvider"]
        if device == "auto":
            return ["CPUExecutionProvider"]
        raise ConfigError(f"--device {device}: this onnxruntime has no CUDA support (install onnxruntime-gpu); "
                          "use --device cpu")
    raise ConfigError(f"--device {device} is not supported by the onnxruntime backend; use auto, cpu or cuda[:N]")


def _session(path: Path, device: str):
    ort = _require("onnxruntime")
    if not Path(path).is_file():
        raise CheckpointError(f"ONNX model {path} does not exist")
    try:
        session = ort.InferenceSession(str(path), providers=_providers(device))
    except ConfigError:
        raise
    except Exception as error:  # onnxruntime raises its own types for unreadable or invalid models
        raise CheckpointError(f"{path} cannot be loaded by onnxruntime ({error})") from error
    return session, dict(session.get_modelmeta().custom_metadata_map)


class OnnxRuntimeGenerator(torch.nn.Module):
    """An onnxruntime session behind the generator interface: (N, C, H, W) -> (N, C', H, W).

    Inputs are handed over as CPU float32 arrays; onnxruntime places the work itself.
    """

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: array})[0])


def load_onnx_generator(path: str | Path, device: str = "auto") -> tuple[OnnxRuntimeGenerator, GeneratorSpec]:
    """An exported generator ready to run, and its description. It holds a single generator, so
    the spec's `direction` is None; `exported_direction` says which one it was exported from.

    Raises CheckpointError for a file that onnxruntime cannot load or that was not written by
    `export_onnx` (the metadata that says how to feed the model is missing).
    """
    path = Path(path)
    session, metadata = _session(path, device)
    if metadata.get("format") != FORMAT or metadata.get("net_g") not in GENERATORS:
        raise CheckpointError(f"{path} lacks cyclegan metadata (net_g, input_nc, output_nc); only models "
                              "written by `cyclegan export` can be used, as their input size rules are known")
    try:
        input_nc, output_nc = int(metadata["input_nc"]), int(metadata["output_nc"])
        ngf = int(metadata["ngf"]) if metadata.get("ngf", "").isdigit() else None
        # Exports older than the windows hold none: 8-bit (and full-range 16-bit) as before.
        windows = [metadata.get(key) or None for key in ("input_window", "output_window")]
        for window in windows:
            if window is not None:
                IntensityWindow.parse(window)
        slice_axis = int(metadata["slice_axis"]) if metadata.get("slice_axis") else None
    except (KeyError, ValueError, ConfigError) as error:
        raise CheckpointError(f"{path} has damaged cyclegan metadata ({error})") from error
    exported = metadata.get("direction")
    spec = GeneratorSpec(metadata["net_g"], input_nc, output_nc, ngf, metadata.get("norm") or None, str(path),
                         direction=None, backend="onnxruntime", providers=tuple(session.get_providers()),
                         exported_direction=exported if exported in DIRECTIONS else None, input_window=windows[0],
                         output_window=windows[1], slice_axis=slice_axis)
    return OnnxRuntimeGenerator(session), spec


__all__ = ["export_onnx", "load_onnx_generator", "OnnxRuntimeGenerator", "ExportReport", "DEFAULT_OPSET"]
