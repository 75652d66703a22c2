"""`cyclegan data ...`: list, download, prepare and check datasets, or generate a synthetic one."""
from __future__ import annotations

import argparse
from pathlib import Path

from cyclegan.cli.arguments import add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser(
        "data", help="list, download and prepare datasets",
        description="List, download and prepare datasets for training.")
    commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list the official CycleGAN and pix2pix datasets")
    listing.set_defaults(func=run_list)

    download = commands.add_parser(
        "download", help="download an official dataset",
        description="Download, extract and check an official dataset. pix2pix datasets are "
                    "named with a prefix (pix2pix/facades); plain names are the CycleGAN ones. "
                    "An interrupted download resumes when the command is run again.")
    download.add_argument("name", help="dataset name, as shown by `cyclegan data list`")
    download.add_argument("--root", type=Path, default=Path("datasets"),
                          help="folder that receives the dataset (default: %(default)s)")
    download.add_argument("--base-url", default=None,
                          help="mirror with the official layout (default: $CYCLEGAN_DATASETS_URL"
                               " or http://efrosgans.eecs.berkeley.edu)")
    add_progress_argument(download)
    download.set_defaults(func=run_download)

    _register_prepare(commands)
    _register_check(commands)

    synth = commands.add_parser(
        "synth", help="generate a small synthetic unpaired dataset (no download needed)")
    synth.add_argument("out", type=Path, help="output folder (gets trainA/trainB/testA/testB)")
    synth.add_argument("--size", type=int, default=64,
                       help="image side in pixels (default: %(default)s)")
    synth.add_argument("--train", type=int, default=1000,
                       help="training images per domain (default: %(default)s)")
    synth.add_argument("--test", type=int, default=200,
                       help="test images per domain (default: %(default)s)")
    synth.add_argument("--seed", type=int, default=0,
                       help="random seed; the same seed gives the same images (default: %(default)s)")
    synth.set_defaults(func=run_synth)


def _register_prepare(commands: argparse._SubParsersAction) -> None:
    prepare = commands.add_parser(
        "prepare", help="turn your own folders into a training layout",
        description="Build training layouts from your own images; written images are PNG.")
    kinds = prepare.add_subparsers(dest="prepare_kind", metavar="KIND", required=True)
    force_help = "allow a non-empty output folder and replace what this command writes there"

    unpaired = kinds.add_parser(
        "unpaired", help="two folders of images -> trainA/trainB/testA/testB",
        description="Split two folders of images (one per domain) into train and test sets with "
                    "a seeded shuffle; the same files and seed always give the same split.")
    unpaired.add_argument("folder_a", type=Path, help="images of domain A")
    unpaired.add_argument("folder_b", type=Path, help="images of domain B")
    unpaired.add_argument("out", type=Path, help="output dataset folder")
    unpaired.add_argument("--test-fraction", type=float, default=0.1,
                          help="share of each domain put in the test split (default: %(default)s)")
    unpaired.add_argument("--seed", type=int, default=0,
                          help="seed of the shuffle (default: %(default)s)")
    unpaired.add_argument("--link", action="store_true",
                          help="create symbolic links to the originals instead of copies")
    unpaired.add_argument("--force", action="store_true", help=force_help)
    unpaired.set_defaults(func=run_prepare_unpaired)

    split = kinds.add_parser(
        "split", help="pix2pix A|B side-by-side images -> A/ and B/ halves",
        description="Cut each side-by-side A|B image into its left half (A/) and right half "
                    "(B/), saved as PNG with the same stem.")
    split.add_argument("folder", type=Path, help="folder of A|B images (even widths)")
    split.add_argument("out", type=Path, help="output folder (gets A/ and B/)")
    split.add_argument("--force", action="store_true", help=force_help)
    split.set_defaults(func=run_prepare_split)

    combine = kinds.add_parser(
        "combine", help="same-stem images of two folders -> A|B side-by-side images",
        description="Pair images by file stem and save A|B side-by-side PNGs. If the two "
                    "images of a pair differ in size, B is resized to A's size.")
    combine.add_argument("folder_a", type=Path, help="left-hand (A) images")
    combine.add_argument("folder_b", type=Path, help="right-hand (B) images")
    combine.add_argument("out", type=Path, help="output folder for the A|B images")
    combine.add_argument("--skip-unmatched", action="store_true",
                         help="skip stems found in only one folder instead of stopping")
    combine.add_argument("--force", action="store_true",
                         help="allow a non-empty output folder; same-named files are replaced")
    combine.set_defaults(func=run_prepare_combine)

    cityscapes = kinds.add_parser(
        "cityscapes", help="the official Cityscapes downloads -> CycleGAN and pix2pix layouts",
        description="Pair Cityscapes photos (leftImg8bit) with label colours (gtFine_color) and "
                    "write 256x256 trainA/trainB/testA/testB (photos A, labels B) and A|B "
                    "pairs in train/ and test/. Cityscapes val becomes test.")
    cityscapes.add_argument("--gtfine", type=Path, required=True,
                            help="the unzipped gtFine folder of gtFine_trainvaltest.zip")
    cityscapes.add_argument("--leftimg", type=Path, required=True,
                            help="the unzipped leftImg8bit folder of leftImg8bit_trainvaltest.zip")
    cityscapes.add_argument("--out", type=Path, default=Path("datasets/cityscapes"),
                            help="output dataset folder (default: %(default)s)")
    cityscapes.add_argument("--size", type=int, default=256,
                            help="side of the resized square images (default: %(default)s)")
    cityscapes.add_argument("--force", action="store_true", help=force_help)
    cityscapes.set_defaults(func=run_prepare_cityscapes)


def _register_check(commands: argparse._SubParsersAction) -> None:
    from cyclegan.config import PREPROCESS_MODES

    check = commands.add_parser(
        "check", help="report what a dataset holds and what would hurt training",
        description="Read and decode every file of trainA/ trainB/ testA/ testB/ (or of a folder of "
                    "images) and report counts, sizes, colour modes, unreadable files, files that "
                    "are not images, duplicates, train/test leaks and images too small for the "
                    "crop. Exits 1 when training could not start, 0 otherwise (warnings included).")
    check.add_argument("folder", type=Path, help="dataset folder, or any folder of images")
    check.add_argument("--crop-size", type=int, default=256,
                       help="crop size training will use (default: %(default)s)")
    check.add_argument("--load-size", type=int, default=286,
                       help="load size training will use (default: %(default)s)")
    check.add_argument("--preprocess", choices=PREPROCESS_MODES, default="resize_and_crop",
                       help="preprocess mode training will use (default: %(default)s)")
    check.add_argument("--json", action="store_true",
                       help="print the full report as JSON instead of text")
    check.set_defaults(func=run_check)


def _train_hint(folder: Path) -> str:
    return f"next: cyclegan train --data {folder} --name {folder.name}"


def run_list(args: argparse.Namespace) -> int:
    from cyclegan.data.official import (BASE_URL_ENV, CYCLEGAN_DATASETS, DEFAULT_BASE_URL,
                                        PIX2PIX_DATASETS)

    for title, entries in (("CycleGAN datasets (unpaired: trainA/trainB/testA/testB)",
                            CYCLEGAN_DATASETS),
                           ("pix2pix datasets (aligned A|B pairs in train/, val/, test/)",
                            PIX2PIX_DATASETS)):
        print(title)
        width = max(len(name) for name in entries)
        for entry in entries.values():
            note = "  [manual: needs your own Cityscapes download]" if entry.manual else ""
            print(f"  {entry.name:<{width}}  {entry.approx_size:>8}  {entry.description}{note}")
        print()
    print(f"download with: cyclegan data download NAME  (from {DEFAULT_BASE_URL}; set "
          f"--base-url or ${BASE_URL_ENV} for a mirror)")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from cyclegan.data.official import download_dataset, get_dataset

    entry = get_dataset(args.name)
    folder = download_dataset(args.name, root=args.root, base_url=args.base_url,
                              progress=args.progress)
    print(f"{entry.name} is ready in {folder}")
    if entry.kind == "cyclegan":
        print(_train_hint(folder))
    else:
        halves = folder.parent / f"{folder.name}_split"
        print(f"it holds aligned A|B pairs; to get unpaired halves: "
              f"cyclegan data prepare split {folder / 'train'} {halves}")
    return 0


def run_prepare_unpaired(args: argparse.Namespace) -> int:
    from cyclegan.data.prepare import prepare_unpaired

    counts = prepare_unpaired(args.folder_a, args.folder_b, args.out,
                              test_fraction=args.test_fraction, seed=args.seed, link=args.link,
                              force=args.force)
    print(f"wrote {args.out}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    print(_train_hint(args.out))
    return 0


def run_prepare_split(args: argparse.Namespace) -> int:
    from cyclegan.data.prepare import split_aligned

    count = split_aligned(args.folder, args.out, force=args.force)
    print(f"split {count} images into {args.out / 'A'} and {args.out / 'B'}")
    return 0


def run_prepare_combine(args: argparse.Namespace) -> int:
    from cyclegan.data.prepare import preview_names, combine_pairs

    report = combine_pairs(args.folder_a, args.folder_b, args.out, force=args.force,
                           skip_unmatched=args.skip_unmatched)
    print(f"wrote {report.written} A|B images to {args.out}")
    for label, stems in (("skipped, only in " + str(args.folder_a), report.only_in_a),
                         ("skipped, only in " + str(args.folder_b), report.only_in_b),
                         ("B resized to A's size", report.resized)):
        if stems:
            print(f"  {len(stems)} {label}: {preview_names(stems)}")
    return 0


def run_prepare_cityscapes(args: argparse.Namespace) -> int:
    from cyclegan.data.prepare import prepare_cityscapes

    counts = prepare_cityscapes(args.gtfine, args.leftimg, args.out, size=args.size,
                                force=args.force)
    print(f"wrote {args.out}: {counts['train']} train and {counts['test']} test pairs "
          "(trainA/trainB/testA/testB, and A|B pairs in train/ and test/)")
    print(_train_hint(args.out))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from cyclegan.data.synth import generate_synthetic_dataset

    summary = generate_synthetic_dataset(args.out, size=args.size, n_train=args.train,
                                         n_test=args.test, seed=args.seed)
    print(f"wrote a synthetic dataset to {args.out}"
          + (": " + ", ".join(f"{key} {value}" for key, value in summary.items()) if summary else ""))
    print(_train_hint(args.out))
    return 0


def run_check(args: argparse.Namespace) -> int:
    import json

    from cyclegan.data.check import check_dataset

    report = check_dataset(args.folder, crop_size=args.crop_size, load_size=args.load_size,
                           preprocess=args.preprocess)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.ok else 1
