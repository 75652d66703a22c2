"""`cyclegan translate`: apply a trained generator to images and folders."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cyclegan.config import DIRECTIONS, PRECISIONS
from cyclegan.video import DEFAULT_CRF, parse_time

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
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="Image files, videos and/or folders of them (videos are recognised by content).")
    parser.add_argument("--out", required=True, help="Output folder (created if needed).")
    parser.add_argument("--direction", choices=DIRECTIONS, default="AtoB",
                        help="Which generator to apply (ignored for files holding one generator: .pth, "
                             "downloaded models, .onnx).")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps.")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="Arithmetic precision (auto: the fastest measured for the device and image size).")
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
    video = parser.add_argument_group(
        "videos", "Videos (mp4, mov, mkv, webm, avi) keep their frame count, timestamps, size, sound and "
                  "orientation. Needs PyAV: pip install 'cyclegan[video]'.")
    video.add_argument("--batch-size", type=int, default=4, metavar="N",
                       help="Video frames per generator call: on a GPU larger batches can keep it busier, on a "
                            "CPU they do not speed it up (default: %(default)s).")
    video.add_argument("--video-codec", default=None, metavar="CODEC",
                       help="Encoder of the translated videos (default: libx264, i.e. H.264; libvpx-vp9 for "
                            "WebM).")
    video.add_argument("--video-crf", type=int, default=None, metavar="CRF",
                       help="Constant quality of the encoder, lower is better and larger (default: "
                            + ", ".join(f"{crf} for {codec}" for codec, crf in DEFAULT_CRF.items()) + ").")
    video.add_argument("--frames-dir", default=None, metavar="DIR",
                       help="Also write every translated frame as PNG, to DIR/<video name>/000001.png...")
    video.add_argument("--start", type=parse_time, default=0.0, metavar="TIME",
                       help="Translate from TIME (seconds, MM:SS or HH:MM:SS) into the video; the output starts "
                            "there.")
    video.add_argument("--duration", type=parse_time, default=None, metavar="TIME",
                       help="Translate only TIME (seconds, MM:SS or HH:MM:SS) of each video.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cyclegan.device import describe_translation_precision
    from cyclegan.inference import Translator, describe
    from cyclegan.video import VideoOptions
    from cyclegan.zoo import resolve_model_argument

    checkpoint = resolve_model_argument(args.checkpoint)
    translator = Translator.from_checkpoint(checkpoint, args.direction, args.device, args.precision,
                                            backend=args.backend, tile=args.tile, overlap=args.overlap,
                                            channels_last=args.channels_last, nnpack=args.nnpack)
    print(f"model: {describe(translator.info)}")
    print(f"precision: {describe_translation_precision(translator.precision, translator.device)}")

    def progress(paths):
        return tqdm(paths, unit="img", disable=args.no_progress, dynamic_ncols=True)

    def video_progress(total, name):
        return tqdm(total=total, desc=name, unit="frame", disable=args.no_progress, dynamic_ncols=True)

    video = VideoOptions(batch_size=args.batch_size, codec=args.video_codec, crf=args.video_crf,
                         start=args.start, duration=args.duration,
                         frames_dir=args.frames_dir and Path(args.frames_dir), progress=video_progress)
    report = translator.translate_files(args.inputs, args.out, progress=progress, video=video)
    print(f"translated {len(report.written)} file(s) into {args.out}")
    for note in report.notes:
        print(f"note: {note}")
    if report.failed:
        print(f"could not translate {len(report.failed)} file(s):", file=sys.stderr)
        for _path, reason in report.failed:
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0
