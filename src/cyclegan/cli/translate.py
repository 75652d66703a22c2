"""`cyclegan translate`: apply a trained generator to images and folders."""
from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from cyclegan.cli import reference
from cyclegan.cli.arguments import (add_backend_argument, add_device_argument, add_direction_argument,
                                    add_pick_argument, add_precision_argument, add_progress_argument,
                                    default_direction)
from cyclegan.cli.options import add_option_arguments, options_from_args
from cyclegan.inference.options import VIDEO_GROUP, TranslateOptions


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
    video = parser.add_argument_group(
        "videos", "Videos (mp4, mov, mkv, webm, avi) keep their frame count, timestamps, size, sound and "
                  "orientation. Needs PyAV: pip install 'cyclegan[video]'.")
    add_option_arguments(parser, TranslateOptions, groups={VIDEO_GROUP: video})
    add_progress_argument(parser)
    reference.add_translate_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Under torchrun each process translates its share of the files (on its own GPU, if any) and
    rank 0 reports for all."""
    from cyclegan.device import select_device
    from cyclegan.distributed import Distributed
    from cyclegan.errors import InsufficientMemoryError
    from cyclegan.inference import load_translators
    from cyclegan.inference.arithmetic import tune_translation
    from cyclegan.inference.resolve import resolve

    options = options_from_args(TranslateOptions, args)
    options.check()
    checkpoint = resolve(args.checkpoint, args.pick, args.backend)
    device = select_device(args.device)
    dist = Distributed.from_environment(device)
    try:
        device = str(dist.device(device))
        direction = default_direction(args.direction, checkpoint)
        translator = load_translators(checkpoint, [direction], device, args.precision, backend=args.backend,
                                      **options.translator_options)[direction]
        show = dist.is_main and args.progress
        if dist.is_main:
            print(f"model: {translator.spec.describe()}")
        # Timed on this model for a folder or video of many images, unless cached (docs/PERFORMANCE.md).
        decision = tune_translation(translator, args.inputs, options.batch_size,
                                    options.video_options().frames_per_batch, may_probe=not dist.enabled,
                                    announce=lambda line: print(line, flush=True))
        if dist.is_main:
            print(decision.describe())
            if dist.enabled:
                print(f"processes: {dist.world_size}, each translating every {dist.world_size}th file")

        def progress(paths):
            return tqdm(paths, unit="img", disable=not show, dynamic_ncols=True)

        def video_progress(total, name):
            return tqdm(total=total, desc=name, unit="frame", disable=not show, dynamic_ncols=True)

        try:
            report = translator.translate_files(args.inputs, args.out, progress=progress,
                                                video=options.video_options(video_progress),
                                                batch_size=options.batch_size, shard=(dist.rank, dist.world_size),
                                                io_threads=options.io_threads,
                                                processes_on_host=dist.local_world_size,
                                                overwrite=options.overwrite, skip_existing=options.skip_existing,
                                                output_depth=options.output_depth)
        except MemoryError:  # outside the network (which says more itself): decoding or encoding a file
            raise InsufficientMemoryError("out of memory reading or writing the files; translate fewer or "
                                          "smaller files at a time, or use --tile 512") from None
        reports = dist.gather((len(report.written), report.notes, report.failed, len(report.kept)))
    except BaseException:
        dist.close(wait_for_others=False)
        raise
    dist.close()
    if not dist.is_main:  # rank 0 reports, and exits non-zero, for all
        return 0
    written = sum(count for count, _notes, _failed, _kept in reports)
    failed = [failure for _count, _notes, failures, _kept in reports for failure in failures]
    kept = sum(count for _count, _notes, _failed, count in reports)
    print(f"translated {written} file(s) into {args.out}"
          + (f"; left {kept} that exist already (--skip-existing)" if kept else ""))
    for note in (note for _count, notes, _failed, _kept in reports for note in notes):
        print(f"note: {note}")
    if failed:
        print(f"could not translate {len(failed)} file(s):", file=sys.stderr)
        for _path, reason in failed:
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0
