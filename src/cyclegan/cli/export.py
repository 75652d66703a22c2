"""`cyclegan export`: write a generator as an ONNX model and check it against PyTorch."""
from __future__ import annotations

import argparse
import sys

from cyclegan.cli.arguments import add_direction_argument, add_pick_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a generator to ONNX",
        description="Export one generator to ONNX with dynamic batch, height and width (sides must be "
                    "multiples of the generator's size multiple, which the file records). The export is "
                    "checked with onnxruntime against PyTorch on an input of another size. Run it with "
                    "`cyclegan translate OUT.onnx INPUT... --out DIR`. Needs: pip install 'cyclegan[onnx]'.")
    parser.add_argument("checkpoint", help="run folder, checkpoint .safetensors, official *.pth or a "
                                           "downloaded model's name")
    parser.add_argument("--onnx", required=True, help="the .onnx file to write")
    add_pick_argument(parser)
    add_direction_argument(parser, help="which generator to export (ignored for files holding one generator)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: 17)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cyclegan.inference.onnx import DEFAULT_OPSET, TOLERANCE, export_onnx
    from cyclegan.inference.resolve import resolve

    checkpoint = resolve(args.checkpoint, args.pick)
    report = export_onnx(checkpoint.weights, args.onnx, args.direction, args.opset or DEFAULT_OPSET)
    print(f"wrote {report.path}: {report.spec.describe()}")
    shape = "x".join(str(n) for n in report.check_shape)
    print(f"max abs difference from PyTorch on a random {shape} input: {report.max_abs_diff:.3g}")
    if not report.ok:
        print(f"cyclegan export: error: the difference is above the tolerance {TOLERANCE:g}; the exported "
              "model does not reproduce PyTorch (try another --opset)", file=sys.stderr)
        return 1
    return 0
