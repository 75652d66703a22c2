"""`cyclegan serve`: a web page and an HTTP API translating uploaded images with a trained model."""
from __future__ import annotations

import argparse
import importlib.util
import sys

from cyclegan.cli.arguments import (add_device_argument, add_direction_argument, add_pick_argument,
                                    add_precision_argument)
from cyclegan.cli.options import add_option_arguments, options_from_args
from cyclegan.config import ServeLimits
from cyclegan.errors import CycleGANError

# Module names of the `web` extra (python-multipart installs as `python_multipart`, older ones as `multipart`).
WEB_MODULES = {"starlette": ("starlette",), "uvicorn": ("uvicorn",),
               "python-multipart": ("python_multipart", "multipart")}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="Serve a trained model: a web page and an HTTP API.",
        description="Serve a run folder, a checkpoint file, an official reference-code generator (*.pth) or the "
                    "name of a downloaded official model (cyclegan models list) "
                    "over HTTP: a page at / to upload an image and download its translation, and an API "
                    "(POST /translate, GET /info, GET /health). Needs the web extra: pip install 'cyclegan[web]'.")
    parser.add_argument("checkpoint",
                        help="Run folder (runs/<name>), checkpoint .safetensors, official *_net_G*.pth, or the name of "
                             "a downloaded official model (e.g. horse2zebra).")
    add_pick_argument(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes the "
                             "server to the network).")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0 picks a free one).")
    add_direction_argument(parser, repeatable=True,
                           help="Serve only this direction (repeatable; default: every direction the checkpoint holds).")
    add_option_arguments(parser, ServeLimits)
    add_device_argument(parser)
    add_precision_argument(parser)
    parser.set_defaults(func=run)


def require_web_extra() -> None:
    missing = [package for package, modules in WEB_MODULES.items()
               if not any(importlib.util.find_spec(module) for module in modules)]
    if missing:
        raise CycleGANError(f"cyclegan serve needs {', '.join(missing)}: install the web extra with "
                            "pip install 'cyclegan[web]' (or pip install -e '.[web]' in a checkout)")


def run(args: argparse.Namespace) -> int:
    require_web_extra()
    from cyclegan.inference import load_translators
    from cyclegan.inference.resolve import resolve
    from cyclegan.serving.app import bind_socket, create_app, is_loopback_host, server_url, uvicorn_server

    limits = options_from_args(ServeLimits, args)
    directions = list(dict.fromkeys(args.direction)) if args.direction else None

    checkpoint = resolve(args.checkpoint, args.pick)
    translators = load_translators(checkpoint, directions, args.device, args.precision)
    app = create_app(translators, limits)
    sock = bind_socket(args.host, args.port)
    first = next(iter(translators.values()))
    print(f"model: {first.spec.describe()}")
    print(f"directions: {', '.join(translators)} on {first.device}; {limits.workers} worker(s), queue {limits.queue}")
    if not is_loopback_host(args.host):
        print(f"warning: listening on {args.host}, reachable from other machines; the server has no "
              "authentication. Use --host 127.0.0.1 unless that is what you want.", file=sys.stderr)
    print(f"serving on {server_url(sock)}  (Ctrl+C stops)", flush=True)
    try:
        uvicorn_server(app, sock, limits, log_level="info").run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises the Ctrl+C it caught
        pass
    finally:
        sock.close()
    print("server stopped")
    return 0
