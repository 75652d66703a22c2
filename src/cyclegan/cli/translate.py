"""`cyclegan translate`: apply a trained generator to images and folders."""
from __future__ import annotations

import argparse
import sys

from cyclegan.config import DIRECTIONS, PICKS, PRECISIONS

from tqdm import tqdm


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "translate", help="Translate images with a trained model.",
        description="Translate image files and folders with a run folder, a checkpoint file, an official "
                    "reference-code generator (*.pth), a downloaded pretrained model (by name, see "
                    "`cyclegan models`) or an ONNX export. The architecture is read from the file. Images "
                    "keep their size and file name; unreadable files are reported and the rest still "
                    "translated.")
    parser.add_argument("checkpoint", help="Run folder (runs/<name>), checkpoint .safetensors, official *_net_G*.pth, "
                                           "downloaded model name (horse2zebra) or exported .onnx.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="Image files and/or folders of images.")
    parser.add_argument("--out", required=True, help="Output folder (created if needed).")
    parser.add_argument("--pick", choices=PICKS, default="latest",
                        help="Which checkpoint of a run folder: latest, or best (the best validation score of "
                             "training, checkpoints/best.json) (default: latest).")
    parser.add_argument("--direction", choices=DIRECTIONS, default="AtoB",
                        help="Which generator to apply (ignored for files holding one generator: .pth, "
                             "downloaded models, .onnx).")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps.")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="Arithmetic precision.")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                        help="Run the model with PyTorch or onnxruntime (auto: onnxruntime for .onnx files).")
    parser.add_argument("--tile", type=int, default=None, metavar="SIZE",
                        help="Translate images larger than SIZE px in overlapping SIZE x SIZE tiles, so memory "
                             "is bounded by the tile rather than the image (e.g. 512).")
    parser.add_argument("--overlap", type=int, default=32, metavar="PX",
                        help="Overlap of neighbouring tiles, blended smoothly (default: %(default)s).")
    parser.add_argument("--nnpack", action=argparse.BooleanOptionalAction, default=True,
                        help="On the CPU, run the generator's stride-1 3x3 and 7x7 convolutions through NNPACK "
                             "(Winograd / FFT) where they measured faster (float32, large enough images); the "
                             "same convolutions up to float rounding (default: on).")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="Channels-last memory layout (default: the faster one measured for the device: "
                             "contiguous, except on a CPU without the NNPACK path).")
    parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cyclegan.inference import Translator, describe
    from cyclegan.training.checkpoint import find_checkpoint
    from cyclegan.zoo import resolve_model_argument

    checkpoint = find_checkpoint(resolve_model_argument(args.checkpoint), args.pick).weights
    translator = Translator.from_checkpoint(checkpoint, args.direction, args.device, args.precision,
                                            backend=args.backend, tile=args.tile, overlap=args.overlap,
                                            channels_last=args.channels_last, nnpack=args.nnpack)
    print(f"model: {describe(translator.info)}")

    def progress(paths):
        return tqdm(paths, unit="img", disable=args.no_progress, dynamic_ncols=True)

    report = translator.translate_files(args.inputs, args.out, progress=progress)
    print(f"translated {len(report.written)} image(s) into {args.out}")
    if report.failed:
        print(f"could not translate {len(report.failed)} file(s):", file=sys.stderr)
        for _path, reason in report.failed:
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0
