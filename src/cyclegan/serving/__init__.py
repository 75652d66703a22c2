"""Serving trained generators over HTTP: a web page and a small API (needs the `web` extra).

    translators = load_translators("runs/horse2zebra")          # {"AtoB": ..., "BtoA": ...}
    app = create_app(translators, Limits(max_upload_bytes=20 * 2**20))
    with ServerThread(app) as server:                          # 127.0.0.1, a free port
        print(server.url)

`cyclegan serve` does the same from the command line; see `cyclegan.serving.app` for the API.
`load_translators` is `cyclegan.inference.load_translators`, re-exported for this use.
"""
from cyclegan.inference import load_translators
from cyclegan.serving.app import Limits, ServerThread, bind_socket, create_app, is_loopback_host

__all__ = ["Limits", "ServerThread", "bind_socket", "create_app", "is_loopback_host", "load_translators"]
