"""`cyclegan translate`: apply a trained generator to images and folders."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from cyclegan.cli import reference
from cyclegan.cli.arguments import (add_backend_argument, add_device_argument, add_direction_argument,
                                    add_pick_argument, add_precision_argument, add_progress_argument)
from cyclegan.inference.video import DEFAULT_CRF, parse_time


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "translate", help="Translate images with a trained model.",
        description="Translate image files and folders with a run folder, a checkpoint file, an official "
                    "reference-code generator (*.pth), a downloaded pretrained model (by name, see "
                    "`cyclegan models`) or an ONNX export. The architecture is read from the file. Images "
                    "keep their size and file name; unreadable files are reported and the rest still "
                    "translated.",
        epilog="The reference's test script's spellings work too: --results_dir is --out, --gpu_ids -1 is "
               "--device cpu and --gpu_ids N is --device cuda:N; its other options get a note saying what to "
               "do instead.")
    parser.add_argument("checkpoint", help="Run folder (runs/<name>), checkpoint .safetensors, official *_net_G*.pth, "
                                           "downloaded model name (horse2zebra) or exported .onnx.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="Image files, videos and/or folders of them (videos are recognised by content).")
    parser.add_argument("--out", *reference.TRANSLATE_ALIASES["out"], required=True,
                        help="Output folder (created if needed).")
    add_pick_argument(parser)
    add_direction_argument(parser, help="Which generator to apply (ignored for files holding one generator: "
                                        ".pth, downloaded models, .onnx).")
    add_device_argument(parser)
    add_precision_argument(parser)
    add_backend_argument(parser)
    parser.add_argument("--tile", type=int, default=None, metavar="SIZE",
                        help="Translate images larger than SIZE px in overlapping SIZE x SIZE tiles, so memory "
                             "is bounded by the tile rather than the image (e.g. 512).")
    parser.add_argument("--overlap", type=int, default=32, metavar="PX",
                        help="Overlap of neighbouring tiles, blended smoothly (default: %(default)s).")
    parser.add_argument("--nnpack", action=argparse.BooleanOptionalAction, default=None,
                        help="On the CPU, run the generator's stride-1 3x3 and 7x7 convolutions through NNPACK "
                             "(Winograd / FFT) where they measured faster (float32, large enough images); the "
                             "same convolutions up to float rounding (default: chosen by --precision auto's timing; "
                             "on for fp32 on a CPU where nothing was timed).")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="Channels-last memory layout (default: the faster one measured for the device: "
                             "contiguous, except on a CPU without the NNPACK path).")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=None, metavar="N",
                        help="Images of one size, and video frames, per generator call (default: for images, "
                             "chosen for the device: 1 on a CPU, whose convolutions take one image at a time, as "
                             "many as half the free memory holds on a GPU, at most 32 images and 32 x 256^2 "
                             "pixels; 4 video frames).")
    parser.add_argument("--io-threads", type=int, default=None, metavar="N",
                        help="Threads decoding and encoding image files around the network (default: 2 on a "
                             "CPU, whose cores the network uses; on a GPU up to 8, as many as the host has cores).")
    add_progress_argument(parser)
    video = parser.add_argument_group(
        "videos", "Videos (mp4, mov, mkv, webm, avi) keep their frame count, timestamps, size, sound and "
                  "orientation. Needs PyAV: pip install 'cyclegan[video]'.")
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
    reference.add_translate_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Under torchrun each process translates its share of the files (on its own GPU, if any) and
    rank 0 reports for all."""
    from cyclegan.device import select_device, translation_io_threads
    from cyclegan.distributed import Distributed
    from cyclegan.errors import ConfigError
    from cyclegan.inference import load_translators
    from cyclegan.inference.arithmetic import tune_translation
    from cyclegan.inference.video import VideoOptions
    from cyclegan.inference.resolve import resolve

    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.io_threads is not None and args.io_threads < 1:
        raise ConfigError(f"--io-threads must be at least 1, got {args.io_threads}")
    checkpoint = resolve(args.checkpoint, args.pick, args.backend)
    device = select_device(args.device)
    dist = Distributed.from_environment(device)
    try:
        device = str(dist.device(device))
        translator = load_translators(checkpoint, [args.direction], device, args.precision, backend=args.backend,
                                      tile=args.tile, overlap=args.overlap, channels_last=args.channels_last,
                                      nnpack=args.nnpack)[args.direction]
        show = dist.is_main and args.progress
        if dist.is_main:
            print(f"model: {translator.spec.describe()}")
        # Timed on this model for a folder or video of many images, unless cached (docs/PERFORMANCE.md).
        decision = tune_translation(translator, args.inputs, args.batch_size, args.batch_size or VideoOptions.batch_size,
                                    may_probe=not dist.enabled)
        if dist.is_main:
            print(decision.describe())
            if dist.enabled:
                print(f"processes: {dist.world_size}, each translating every {dist.world_size}th file")

        def progress(paths):
            return tqdm(paths, unit="img", disable=not show, dynamic_ncols=True)

        def video_progress(total, name):
            return tqdm(total=total, desc=name, unit="frame", disable=not show, dynamic_ncols=True)

        video = VideoOptions(batch_size=args.batch_size or VideoOptions.batch_size, codec=args.video_codec,
                             crf=args.video_crf, start=args.start, duration=args.duration,
                             frames_dir=args.frames_dir and Path(args.frames_dir), progress=video_progress)
        report = translator.translate_files(args.inputs, args.out, progress=progress, video=video,
                                            batch_size=args.batch_size, shard=(dist.rank, dist.world_size),
                                            io_threads=args.io_threads or translation_io_threads(
                                                translator.device, dist.local_world_size))
        reports = dist.gather((len(report.written), report.notes, report.failed))
    except BaseException:
        dist.close(wait_for_others=False)
        raise
    dist.close()
    if not dist.is_main:  # rank 0 reports, and exits non-zero, for all
        return 0
    written = sum(count for count, _notes, _failed in reports)
    failed = [failure for _count, _notes, failures in reports for failure in failures]
    print(f"translated {written} file(s) into {args.out}")
    for note in (note for _count, notes, _failed in reports for note in notes):
        print(f"note: {note}")
    if failed:
        print(f"could not translate {len(failed)} file(s):", file=sys.stderr)
        for _path, reason in failed:
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0
