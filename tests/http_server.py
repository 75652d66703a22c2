"""A real HTTP server on 127.0.0.1 for download tests: no test ever touches the internet.

    with serve_files({"cyclegan/datasets/mini.zip": data}) as server:
        server.truncate_next["cyclegan/datasets/mini.zip"] = 100   # next reply stops early
        server.status_for["broken.bin"] = 500                        # always an HTTP 500
        download_file(server.url_for("cyclegan/datasets/mini.zip"), dest)
        server.requests  # every request: path and headers, in order

Serves a dict {relative path: bytes} or a folder, supports `Range: bytes=START-[END]`
(206 / 416), and can ignore Range (`ignore_range = True`) like servers that always send 200.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Mapping


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]


class LoopbackServer:
    def __init__(self, files: Mapping[str, bytes] | Path):
        self.files = files
        self.requests: list[SeenRequest] = []
        self.truncate_next: dict[str, int] = {}  # path -> bytes sent before closing, once
        self.status_for: dict[str, int] = {}  # path -> error status sent every time
        self.ignore_range = False
        self.url = ""
        self._lock = threading.Lock()

    def url_for(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"

    def requests_for(self, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.path == path.lstrip("/")]

    def content(self, path: str) -> bytes | None:
        if isinstance(self.files, Path):
            file = self.files / path
            return file.read_bytes() if file.is_file() else None
        return self.files.get(path)


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].lstrip("/")
            with server._lock:
                server.requests.append(SeenRequest(path, dict(self.headers.items())))
                truncate = server.truncate_next.pop(path, None)
            if path in server.status_for:
                self.send_error(server.status_for[path])
                return
            body = server.content(path)
            if body is None:
                self.send_error(404)
                return
            status, start, end = 200, 0, len(body)
            requested = self.headers.get("Range")
            if requested and not server.ignore_range:
                first, _, last = requested.removeprefix("bytes=").partition("-")
                start = int(first)
                end = min(int(last) + 1, len(body)) if last else len(body)
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
            self.end_headers()
            if truncate is not None:
                # Promise the full length, send less, hang up: a dropped connection.
                self.wfile.write(body[start:start + truncate])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:end])

    return Handler


@contextlib.contextmanager
def serve_files(files: Mapping[str, bytes] | Path) -> Iterator[LoopbackServer]:
    """Serve `files` on an ephemeral 127.0.0.1 port for the duration of the block."""
    server = LoopbackServer(files if isinstance(files, Path) else dict(files))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
