"""`cyclegan models ...`: list, download and convert the official pretrained generators."""
from __future__ import annotations

import argparse
from pathlib import Path

from cyclegan.cli.arguments import add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser(
        "models", help="list, download and convert official pretrained generators",
        description="The pretrained generators published with CycleGAN (ResNet-9, one per direction) and with "
                    "pix2pix (U-Net, batch norm; named pix2pix/NAME).")
    commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    cache_help = "folder of converted models (default: $CYCLEGAN_CACHE/models, else ~/.cache/cyclegan/models)"

    listing = commands.add_parser("list", help="list the official pretrained generators")
    listing.add_argument("--cache", type=Path, default=None, help=cache_help)
    listing.set_defaults(func=run_list)

    download = commands.add_parser(
        "download", help="download an official generator and convert it to safetensors",
        description="Download an official generator (.pth), convert it to a safetensors checkpoint "
                    "in the cache and print its path; `cyclegan translate NAME ...` then uses it. An "
                    "interrupted download resumes when the command is run again. The reference "
                    "project publishes no checksums: pass --sha256 to pin the file.")
    download.add_argument("name", help="model name, as shown by `cyclegan models list`")
    download.add_argument("--cache", type=Path, default=None, help=cache_help)
    download.add_argument("--base-url", default=None,
                          help="mirror with the official layout (default: $CYCLEGAN_MODELS_URL or "
                               "http://efrosgans.eecs.berkeley.edu)")
    download.add_argument("--sha256", default=None, help="expected SHA-256 of the .pth; a mismatch is an error")
    add_progress_argument(download)
    download.set_defaults(func=run_download)

    convert = commands.add_parser(
        "convert", help="convert an official *_net_G*.pth generator to a safetensors checkpoint",
        description="Convert a reference-code generator (e.g. latest_net_G_A.pth) into a "
                    "single-generator safetensors checkpoint that carries its architecture.")
    convert.add_argument("source", type=Path, help="the .pth generator file")
    convert.add_argument("dest", type=Path, help="the .safetensors file to write")
    convert.set_defaults(func=run_convert)


def run_list(args: argparse.Namespace) -> int:
    from cyclegan.zoo import BASE_URL_ENV, DEFAULT_BASE_URL, OFFICIAL_MODELS, cache_dir, cached_model_path

    folder = cache_dir(args.cache)
    width = max(len(name) for name in OFFICIAL_MODELS)
    headings = {"cyclegan": "Official CycleGAN pretrained generators (ResNet-9, ngf 64; each translates one way)",
                "pix2pix": "Official pix2pix pretrained generators (U-Net, batch norm)"}
    for family, heading in headings.items():
        print(heading)
        for entry in (entry for entry in OFFICIAL_MODELS.values() if entry.family == family):
            mark = "  [downloaded]" if cached_model_path(entry.name, args.cache).is_file() else ""
            print(f"  {entry.name:<{width}}  {entry.description}{mark}")
        print()
    print(f"download with: cyclegan models download NAME  (into {folder}; from {DEFAULT_BASE_URL}, "
          f"set --base-url or ${BASE_URL_ENV} for a mirror)")
    print("then: cyclegan translate NAME photos/ --out translated/")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from cyclegan.checkpoint import read_metadata
    from cyclegan.zoo import download_model

    path = download_model(args.name, cache=args.cache, base_url=args.base_url, sha256=args.sha256,
                          progress=args.progress)
    metadata = read_metadata(path)
    print(f"{args.name} is ready in {path}")
    print(f"  converted from {metadata.get('source', '?')} (sha256 {metadata.get('source_sha256', '?')})")
    print(f"next: cyclegan translate {args.name} photos/ --out translated/")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from cyclegan.zoo import convert_reference_generator

    architecture = convert_reference_generator(args.source, args.dest)
    print(f"wrote {args.dest}: {architecture['net_g']} {architecture['input_nc']}->{architecture['output_nc']} "
          f"channels, ngf {architecture['ngf']}, {architecture['norm']} norm")
    return 0
