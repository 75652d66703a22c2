"""The web page and HTTP API of `cyclegan serve`: a Starlette app, run by uvicorn.

    GET  /                   the page: choose or drop an image, pick a direction, see and download the result
    POST /translate          multipart form: `image` (file), optional `direction` -> image/png, same size
                             (a 16-bit or float PNG / TIFF: the same format at its own depth)
    GET  /health             {"status": "ok"}
    GET  /info               model, directions and limits as JSON

Uploads are translated as `cyclegan translate` translates a file: 8-bit pictures through
`load_image`, answered as 8-bit PNG; 16-bit, float and multi-page PNG / TIFF (and any upload to a
model of other than 1 or 3 channels) at full precision through the model's intensity windows
(`inference.scientific`), answered in the upload's format at its depth, with an
`X-Translation-Note` header where values were clipped or the depth had to change.

Every error is JSON {"error": message}: 400 bad request (no `image` file, unknown direction,
malformed form), 404/405, 413 upload or image too large, 415 not an image, or more than 8 bits
per value in a format this server cannot read at full precision, 422 an image that cannot be
decoded or translated as it is (a float image for a model without a window, channels the model
does not take), 503 busy or out of memory (with Retry-After), 504 timed out, 500 a failed
translation.

Work is bounded so that no request can take the server down: a body larger than the upload
limit is cut off while it streams in, the pixel count is read from the image header before a
single pixel is decoded, at most `workers` translations run at once with at most `queue` more
admitted to wait, and a request gives up after `timeout_s`. Each worker plans for an equal part
of the free memory: an image whose translation would not fit goes through the network in tiles
(`cyclegan.inference.memory`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import ipaddress
import logging
import re
import socket
import tempfile
import threading
import time
import warnings
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from io import BytesIO
from pathlib import Path

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cyclegan.config import DIRECTIONS
from cyclegan.config import ServeLimits as Limits
from cyclegan.data.images import IMAGE_EXTENSIONS, load_image
from cyclegan.errors import ConfigError, InsufficientMemoryError, UnreadableImageError
from cyclegan.inference import Translator, scientific

log = logging.getLogger("cyclegan.serving")

# The image formats accepted for upload: the ones `load_image` is used with everywhere else.
ACCEPTED_FORMATS = tuple(sorted({name for extension, name in Image.registered_extensions().items()
                                 if extension in IMAGE_EXTENSIONS}))

# Room for the multipart envelope (boundary lines, part headers, the direction field) on top of the image.
FORM_OVERHEAD_BYTES = 64 * 1024

# The page needs nothing from another origin: it works offline and cannot be made to load scripts.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}

# The upload formats read at full precision (`inference.scientific`), and answered in kind.
FULL_PRECISION_FORMATS = {"PNG": (".png", "image/png"), "TIFF": (".tif", "image/tiff")}
# Pillow's modes of more than 8 bits per value, which `load_image` would bring down to 8.
HIGH_BIT_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


class Busy(Exception):
    """Every worker is busy and the queue is full."""


class TranslationPool:
    """Runs work on `workers` threads and admits at most `workers + queue` items at a time."""

    def __init__(self, workers: int, queue: int):
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="cyclegan-translate")
        self.capacity = workers + queue
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Items running or waiting now."""
        with self._lock:
            return self._admitted

    def submit(self, function, *args) -> concurrent.futures.Future:
        """Start `function(*args)` on a worker, or raise Busy when `capacity` items are admitted."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise Busy()
            self._admitted += 1
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._release()
            raise
        # The slot is freed when the work really ends, not when a timed-out request stops waiting
        # for it: abandoned work still counts against the bound.
        future.add_done_callback(self._release)
        return future

    def _release(self, _future=None) -> None:
        with self._lock:
            self._admitted -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Rejected(Exception):
    """A request refused with an HTTP status and a message meant for the person who sent it."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class ImageHeader:
    """What an upload's header says: its size, Pillow's format name, and whether it holds more
    than 8 bits per value."""

    width: int
    height: int
    format: str | None
    high_bit: bool


def check_image_header(data: bytes, name: str, max_pixels: int) -> ImageHeader:
    """The upload's header, read without decoding any pixel; Rejected (413, 415 or 422) unless
    the data starts like an accepted format with at most `max_pixels` pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit follows
            with Image.open(BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                width, height = image.size
                bits = image.tag_v2.get(258, (8,)) if image.format == "TIFF" else (8,)  # BitsPerSample
                bits = bits if isinstance(bits, tuple) else (bits,)
                header = ImageHeader(width, height, image.format,
                                     image.mode in HIGH_BIT_MODES or max(bits, default=8) > 8)
    except Image.DecompressionBombError:
        raise Rejected(413, f"{name}: the image header declares more pixels than this server accepts "
                            f"({max_pixels:,}); downscale the image") from None
    except Exception:  # not an image at all, or a header too damaged to parse
        raise Rejected(415, f"{name} is not an image in a supported format "
                            f"({', '.join(ACCEPTED_FORMATS)})") from None
    if width * height > max_pixels:
        raise Rejected(413, f"{name}: {width}x{height} = {width * height:,} pixels, over this server's limit "
                            f"of {max_pixels:,} pixels; downscale the image")
    if width == 0 or height == 0:
        raise Rejected(422, f"{name}: the image header declares an empty {width}x{height} image")
    return header


@dataclass(frozen=True)
class TranslatedUpload:
    """The answer to an upload: the encoded translation, its media type and file extension, and
    what the person should know about it (values clipped, another depth)."""

    body: bytes
    media_type: str = "image/png"
    suffix: str = ".png"
    notes: tuple[str, ...] = ()


def translate_upload(translator: Translator, data: bytes, name: str,
                     header: ImageHeader | None = None) -> TranslatedUpload:
    """Translate uploaded bytes exactly as `cyclegan translate` translates a file of them: an
    8-bit picture decoded by `load_image` (EXIF rotation, alpha over white...) and encoded as PNG;
    a 16-bit, float or multi-page PNG / TIFF at full precision through the model's windows
    (`inference.scientific`), encoded in its own format at its own depth. `header` is
    `check_image_header`'s (read again when not given)."""
    header = header or check_image_header(data, name, 2**62)
    suffix, media_type = FULL_PRECISION_FORMATS.get(header.format, ("", "image/png"))
    with tempfile.TemporaryDirectory(prefix="cyclegan-upload-") as folder:
        source = Path(folder) / f"upload{suffix}"
        source.write_bytes(data)

        def rejected(status: int, error: Exception) -> Rejected:
            return Rejected(status, str(error).replace(str(source), name))

        if suffix and scientific.is_array_input(source, translator.spec, None):
            target = Path(folder) / f"translated{suffix}"
            try:
                depths, depth_notes = scientific.check_outputs([(source, target)], [], translator.spec, None)
                clipped = scientific.translate_array_file(translator.spec, translator.translate_array, source,
                                                          target, depths[source])
            except (ConfigError, UnreadableImageError) as error:
                raise rejected(422, error) from None
            notes = [note.replace(str(source), name) for note in depth_notes.values()]
            if clipped:
                notes.append(f"{clipped} value(s) outside the model's intensity window were clipped")
            return TranslatedUpload(target.read_bytes(), media_type, suffix, tuple(notes))
        if header.high_bit:
            without_tifffile = header.format == "TIFF" and importlib.util.find_spec("tifffile") is None
            needs = ("reading TIFF at full precision needs tifffile on this server (pip install 'cyclegan[medical]')"
                     if without_tifffile else "this server reads them at full precision from PNG and TIFF only")
            raise Rejected(415, f"{name}: holds more than 8 bits per value and {needs}; send a 16-bit PNG or "
                                "TIFF, or an 8-bit image")
        try:
            image = load_image(source, translator.input_channels)
        except UnreadableImageError as error:
            raise rejected(422, error) from None
    buffer = BytesIO()
    translator(image).save(buffer, format="PNG")
    return TranslatedUpload(buffer.getvalue())


def describe_service(translators: dict[str, Translator], limits: Limits) -> dict:
    """What GET /info returns."""
    first = next(iter(translators.values()))
    return {
        "architecture": first.spec.net_g,
        "ngf": first.spec.ngf,
        "norm": first.spec.norm,
        "checkpoint": Path(first.spec.source).name,
        "device": str(first.device),
        "directions": {direction: {"input_channels": translator.spec.input_nc,
                                   "output_channels": translator.spec.output_nc}
                       for direction, translator in translators.items()},
        "default_direction": next(iter(translators)),
        "formats": list(ACCEPTED_FORMATS),
        "limits": asdict(limits),
    }


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status,
                        headers={"X-Content-Type-Options": "nosniff", **(headers or {})})


class _BodyTooLarge(Exception):
    pass


def _limit_body(receive, limit: int):
    """An ASGI `receive` that raises _BodyTooLarge once more than `limit` body bytes arrived."""
    received = 0

    async def limited_receive():
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge()
        return message

    return limited_receive


def _upload_name(filename: str | None) -> str:
    """The client's file name, shortened and stripped of folders and control characters, for messages."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", (filename or "").replace("\\", "/").rsplit("/", 1)[-1])[:100]
    return name or "the upload"


def _download_stem(filename: str | None) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(_upload_name(filename)).stem).strip("._")[:80]
    return stem if filename and stem else "image"


class _Service:
    """The endpoints, sharing the translators, the limits and the worker pool."""

    def __init__(self, translators: dict[str, Translator], limits: Limits):
        self.translators = translators
        self.limits = limits
        self.pool = TranslationPool(limits.workers, limits.queue)
        self.info = describe_service(translators, limits)
        static = resources.files("cyclegan.serving").joinpath("static")
        self.page_html = static.joinpath("index.html").read_bytes()
        self.static = {name: static.joinpath(name).read_bytes() for name in STATIC_FILES}

    async def page(self, request: Request) -> Response:
        return Response(self.page_html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.static:
            raise HTTPException(404, f"no static file {name!r}")
        return Response(self.static[name], media_type=STATIC_FILES[name], headers=PAGE_HEADERS)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def model_info(self, request: Request) -> Response:
        return JSONResponse(self.info)

    async def translate(self, request: Request) -> Response:
        try:
            return await self._translate(request)
        except Rejected as rejected:
            return error_response(rejected.status, str(rejected), rejected.headers)

    async def _translate(self, request: Request) -> Response:
        limit = self.limits.max_upload_bytes
        too_large = f"the upload is larger than this server's limit of {limit:,} bytes ({limit / 2**20:.1f} MiB)"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD_BYTES:
            raise Rejected(413, too_large)
        limited = Request(request.scope, _limit_body(request.receive, limit + FORM_OVERHEAD_BYTES))
        try:
            form = await limited.form(max_files=1, max_fields=8)
        except _BodyTooLarge:
            raise Rejected(413, too_large) from None
        try:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise Rejected(400, "send the image as a file in the multipart/form-data field 'image' "
                                    "(e.g. curl -F image=@photo.jpg)")
            direction = self._direction(form.get("direction"))
            data = await upload.read()
        finally:
            await form.close()
        name = _upload_name(upload.filename)
        if len(data) > limit:
            raise Rejected(413, too_large)
        if not data:
            raise Rejected(400, f"{name} is empty")
        header = check_image_header(data, name, self.limits.max_pixels)

        try:
            future = self.pool.submit(translate_upload, self.translators[direction], data, name, header)
        except Busy:
            raise Rejected(503, f"busy, retry: all {self.limits.workers} workers are translating and "
                                f"{self.limits.queue} more requests are waiting",
                           {"Retry-After": "2"}) from None
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self.limits.timeout_s)
        except asyncio.TimeoutError:
            raise Rejected(504, f"the translation did not finish within {self.limits.timeout_s:g} s; "
                                "retry later or send a smaller image") from None
        except Rejected:
            raise
        except InsufficientMemoryError as error:
            log.warning("translating %s: %s", name, error)
            raise Rejected(503, f"not enough memory on this server to translate {name} ({error.width}x{error.height} "
                                "px) now; retry later or send a smaller image", {"Retry-After": "10"}) from None
        except Exception as error:
            log.exception("translating %s failed", name)
            raise Rejected(500, f"the translation of {name} failed ({type(error).__name__}: {error})") from None
        headers = {"Content-Disposition": f'inline; filename="{_download_stem(upload.filename)}_{direction}'
                                          f'{result.suffix}"',
                   "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if result.notes:  # a header holds latin-1 on one line
            headers["X-Translation-Note"] = "; ".join(result.notes).encode("latin-1", "replace").decode("latin-1")
        return Response(result.body, media_type=result.media_type, headers=headers)

    def _direction(self, value) -> str:
        if value is None or value == "":
            return self.info["default_direction"]
        if value in DIRECTIONS and value not in self.translators:  # a one-direction model (pix2pix, CUT)
            raise Rejected(400, f"this model has no {value} generator; it offers {', '.join(self.translators)}")
        if not isinstance(value, str) or value not in self.translators:
            shown = value if isinstance(value, str) else "a file"
            raise Rejected(400, f"unknown direction {shown[:40]!r}; this model offers "
                                f"{', '.join(self.translators)}")
        return value


def create_app(translators: dict[str, Translator], limits: Limits | None = None) -> Starlette:
    """The ASGI app serving `translators` ({"AtoB": ..., "BtoA": ...}, one or both) within `limits`."""
    if not translators:
        raise ConfigError("nothing to serve: no translator was given")
    unknown = sorted(set(translators) - set(DIRECTIONS))
    if unknown:
        raise ConfigError(f"unknown direction(s) {', '.join(unknown)}; use AtoB and/or BtoA")
    service = _Service(translators, limits or Limits())
    for translator in translators.values():
        if isinstance(translator, Translator):  # the workers share the free memory
            translator.memory_share = 1 / service.limits.workers

    async def http_error(request: Request, error: HTTPException) -> Response:
        message = str(error.detail)
        if error.status_code == 404 and message == "Not Found":
            message = f"no such page {request.url.path[:100]}; the API is POST /translate, GET /info, GET /health"
        return error_response(error.status_code, message, error.headers)

    async def server_error(request: Request, error: Exception) -> Response:
        return error_response(500, f"internal error ({type(error).__name__})")

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.pool.shutdown()

    app = Starlette(
        routes=[
            Route("/", service.page, methods=["GET"]),
            Route("/static/{name}", service.static_file, methods=["GET"]),
            Route("/health", service.health, methods=["GET"]),
            Route("/info", service.model_info, methods=["GET"]),
            Route("/translate", service.translate, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.pool = service.pool
    app.state.limits = service.limits
    return app


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name, which may resolve to any interface


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (port 0: a free one), or a ConfigError saying why not."""
    if not 0 <= port <= 65535:  # else -1 blames the host and 70000 a port "already in use"
        raise ConfigError(f"--port must be 0 to 65535 (0 picks a free one), got {port}")
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise ConfigError(f"cannot resolve --host {host} ({error.strerror})") from error
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)  # connections made before the server loop runs wait instead of being refused
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}); "
                          "choose another --port, or stop the program using it") from error
    return sock


def server_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def uvicorn_server(app: Starlette, sock: socket.socket, limits: Limits, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for `app` on an already bound socket."""
    host, port = sock.getsockname()[:2]
    return uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=log_level in ("info", "debug"),
        lifespan="on", server_header=False, timeout_graceful_shutdown=5,
        # Bounds the uploads held in memory at once; past it uvicorn answers 503 by itself.
        limit_concurrency=2 * (limits.workers + limits.queue) + 32))


class ServerThread:
    """Serve `app` with uvicorn in a background thread, for tests and notebooks:

        with ServerThread(create_app(translators)) as server:
            urllib.request.urlopen(server.url + "/health")
    """

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0):
        self.socket = bind_socket(host, port)
        self.url = server_url(self.socket)
        self.server = uvicorn_server(app, self.socket, app.state.limits)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                        name="cyclegan-serve", daemon=True)

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.socket.close()
                raise RuntimeError(f"the server for {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self.socket.close()
