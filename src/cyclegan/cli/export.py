"""`cyclegan export`: a generator as an ONNX model checked against PyTorch, or a model as a Hub
folder (`--hub-folder`); `cyclegan push`: that folder uploaded to the Hugging Face Hub."""
from __future__ import annotations

import argparse
import sys

from cyclegan.cli.arguments import add_direction_argument, add_pick_argument, default_direction
from cyclegan.errors import ConfigError

MODEL_HELP = "run folder, checkpoint .safetensors, official *.pth, a downloaded model's name or hf://owner/name"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a generator to ONNX, or a model as a Hugging Face Hub folder",
        description="--onnx: export one generator to ONNX with dynamic batch, height and width (sides must be "
                    "multiples of the generator's size multiple, which the file records). The export is "
                    "checked with onnxruntime against PyTorch on an input of another size. Run it with "
                    "`cyclegan translate OUT.onnx INPUT... --out DIR`. Needs: pip install 'cyclegan[onnx]'. "
                    "--hub-folder: write the generators as model.safetensors with config.json, a README.md model "
                    "card and an example image pair; load it back by its path or, once pushed, as hf://owner/name.")
    parser.add_argument("checkpoint", help=MODEL_HELP)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--onnx", help="the .onnx file to write")
    target.add_argument("--hub-folder", metavar="DIR", help="the Hub folder to write (new or empty)")
    add_pick_argument(parser)
    add_direction_argument(parser, help="which generator to export to ONNX (ignored for files holding one generator)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: 17)")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace an --onnx file that exists already (a --hub-folder must be new or empty).")
    _add_hub_options(parser)
    parser.add_argument("--repo-id", default=None, metavar="OWNER/NAME",
                        help="The Hub name the card's usage lines show (default: OWNER/<folder name>).")
    parser.set_defaults(func=run)

    push = subparsers.add_parser(
        "push", help="upload a model to the Hugging Face Hub as a Hub folder",
        description="Write the Hub folder of a model (as `cyclegan export --hub-folder`) and upload it to REPO_ID, "
                    "creating the repository if needed. Log in first with `hf auth login` (or set HF_TOKEN). "
                    "Then load it anywhere as hf://REPO_ID. Needs: pip install 'cyclegan[hub]'.")
    push.add_argument("checkpoint", help=MODEL_HELP)
    push.add_argument("repo_id", metavar="REPO_ID", help="owner/name on the Hub")
    add_pick_argument(push)
    _add_hub_options(push)
    push.add_argument("--private", action="store_true", help="Create the repository as private.")
    push.add_argument("--message", default=None, help="The commit message.")
    push.set_defaults(func=run_push)


def _add_hub_options(parser: argparse.ArgumentParser) -> None:
    from cyclegan.hub import DEFAULT_LICENSE

    parser.add_argument("--with-discriminators", action="store_true",
                        help="Hub folder: include the discriminators (for fine-tuning with --init-from).")
    parser.add_argument("--license", default=DEFAULT_LICENSE,
                        help="Hub folder: the license field of the model card, a Hub license id such as mit or "
                             "cc-by-4.0; the weights' terms follow from the training data's (default: %(default)s).")
    parser.add_argument("--scores", default=None, metavar="FILE.json",
                        help="Hub folder: a `cyclegan evaluate --out` file whose scores the card shows.")


def run(args: argparse.Namespace) -> int:
    if args.hub_folder:
        if args.overwrite:
            raise ConfigError("--overwrite replaces an --onnx file; a --hub-folder is never replaced: give a new "
                              "or empty folder")
        return _run_hub_folder(args)
    from cyclegan.inference.onnx import DEFAULT_OPSET, TOLERANCE, export_onnx
    from cyclegan.inference.resolve import resolve

    checkpoint = resolve(args.checkpoint, args.pick)
    opset = DEFAULT_OPSET if args.opset is None else args.opset  # `--opset 0` is refused, not the default
    report = export_onnx(checkpoint.weights, args.onnx, default_direction(args.direction, checkpoint), opset,
                         args.overwrite)
    print(f"wrote {report.path}: {report.spec.describe()}")
    shape = "x".join(str(n) for n in report.check_shape)
    print(f"max abs difference from PyTorch on a random {shape} input: {report.max_abs_diff:.3g}")
    if not report.ok:
        print(f"cyclegan export: error: the difference is above the tolerance {TOLERANCE:g}; the exported "
              "model does not reproduce PyTorch (try another --opset)", file=sys.stderr)
        return 1
    return 0


def _run_hub_folder(args: argparse.Namespace) -> int:
    from cyclegan.hub_folder import write_hub_folder

    if args.repo_id is not None and args.repo_id.count("/") != 1:
        raise ConfigError(f"--repo-id {args.repo_id} is not a Hub name; write owner/name")
    folder = write_hub_folder(args.checkpoint, args.hub_folder, args.pick, args.with_discriminators, args.license,
                              args.repo_id, args.scores)
    print(f"wrote {folder.folder}: {', '.join(folder.files)} ({', '.join(folder.networks)})")
    for note in folder.notes:
        print(f"note: {note}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from cyclegan.hub_folder import push_folder

    if args.repo_id.count("/") != 1 or args.repo_id.startswith("hf://"):
        raise ConfigError(f"{args.repo_id} is not a Hub repository name; write owner/name")
    url = push_folder(args.checkpoint, args.repo_id, args.pick, args.with_discriminators, args.license,
                      args.private, args.scores, args.message)
    print(f"uploaded to {url}; load it with hf://{args.repo_id}")
    return 0
