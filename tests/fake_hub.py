"""The Hugging Face Hub's file routes on 127.0.0.1, for tests of `hf://owner/name`: no test ever
touches the internet.

    hub = FakeHub("me/tiny", folder)          # folder: one written by `cyclegan export --hub-folder`
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    Translator.from_checkpoint("hf://me/tiny")
    hub.downloads()                           # the files the client fetched, once each
    hub.close()
"""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class FakeHub:
    """The Hub's routes for one model repository (repo info, file tree, file downloads), served
    from a local folder on 127.0.0.1; `requests` lists what the client asked for."""

    def __init__(self, repo_id: str, folder: Path):
        self.repo_id, self.folder = repo_id, folder
        self.commit = hashlib.sha1(repo_id.encode()).hexdigest()
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.answer(self, body=False)

            def do_GET(self):
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def files(self) -> list[str]:
        return sorted(path.name for path in self.folder.iterdir() if path.is_file())

    def downloads(self) -> list[str]:
        return sorted(path.rsplit("/", 1)[-1] for method, path in self.requests
                      if method == "GET" and "/resolve/" in path)

    def answer(self, handler, body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        self.requests.append((handler.command, path))
        api = f"/api/models/{self.repo_id}/"
        if path.startswith(api + "revision/"):
            info = {"id": self.repo_id, "sha": self.commit, "siblings": [{"rfilename": f} for f in self.files()]}
            return self.send(handler, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
        if path.startswith(api + "tree/"):
            tree = [{"type": "file", "path": f, "size": (self.folder / f).stat().st_size,
                     "oid": hashlib.sha1((self.folder / f).read_bytes()).hexdigest()} for f in self.files()]
            return self.send(handler, 200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
        prefix = f"/{self.repo_id}/resolve/"
        if path.startswith(prefix) and (self.folder / path[len(prefix):].partition("/")[2]).is_file():
            data = (self.folder / path[len(prefix):].partition("/")[2]).read_bytes()
            return self.send(handler, 200, data, {"X-Repo-Commit": self.commit,
                                                  "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}, body)
        return self.send(handler, 404, b"{}", {"X-Error-Code": "RepoNotFound"}, body)

    @staticmethod
    def send(handler, status: int, data: bytes, headers: dict, body: bool) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
