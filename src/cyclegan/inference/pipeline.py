"""Decode ahead, encode behind: the network's thread never waits on files.

Folder translation and video translation both run as three stages: decoding in worker threads,
the network in the caller's thread, encoding in worker threads. Both ends are bounded, so huge
images or long videos never pile up in memory, and a failure in a worker is raised again in the
caller's thread.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Decoded = TypeVar("Decoded")

_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class Pipeline:
    """Used as a context manager. `decoded(items, decode)` yields `decode(item)` for each item in
    order, up to `ahead` of them computed in advance by `decode_threads` threads (`decode` None:
    the items themselves, drawn ahead from their iterator in one thread, for a decoder that is an
    iterator); `encode(function, *args)` runs `function(*args)` in `encode_threads` threads, in
    submission order when that is one thread, and waits once more than `behind` are pending."""

    def __init__(self, decode_threads: int, encode_threads: int, ahead: int, behind: int, name: str = "io"):
        self.ahead, self.behind = max(1, ahead), max(0, behind)
        self._decoders = ThreadPoolExecutor(max(1, decode_threads), thread_name_prefix=f"{name}-decode")
        self._encoders = ThreadPoolExecutor(max(1, encode_threads), thread_name_prefix=f"{name}-encode")
        self._pending: deque[Future] = deque()
        self._stop = threading.Event()
        self._feeders: list[threading.Thread] = []

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, exc_type, *rest) -> None:
        self._stop.set()
        for feeder in self._feeders:
            feeder.join()
        try:
            if exc_type is None:
                self.finish()
        finally:
            self._decoders.shutdown(wait=True, cancel_futures=True)
            self._encoders.shutdown(wait=True, cancel_futures=True)

    def decoded(self, items: Iterable[Item], decode: Callable[[Item], Decoded] | None = None) -> Iterator[Decoded]:
        channel: queue.Queue = queue.Queue(maxsize=self.ahead)

        def feed() -> None:
            try:
                for item in items:
                    if not self._put(channel, self._decoders.submit(decode, item) if decode else item):
                        return
                self._put(channel, _END)
            except BaseException as error:  # raised again in the caller's thread
                self._put(channel, _Failed(error))

        feeder = threading.Thread(target=feed, name="pipeline-feed", daemon=True)
        self._feeders.append(feeder)
        feeder.start()
        while (entry := self._get(channel, feeder)) is not _END:
            if isinstance(entry, _Failed):
                raise entry.error
            yield entry.result() if decode else entry

    def encode(self, function: Callable[..., object], *args) -> None:
        self._pending.append(self._encoders.submit(function, *args))
        while len(self._pending) > self.behind:
            self._pending.popleft().result()  # re-raises a failed encode (a full disk) here

    def finish(self) -> None:
        """Wait for every encode, raising the first that failed."""
        while self._pending:
            self._pending.popleft().result()

    def _put(self, channel: queue.Queue, item) -> bool:
        """Put `item`, waiting while `channel` is full; False (not put) once the pipeline stops."""
        while not self._stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, channel: queue.Queue, feeder: threading.Thread):
        while True:
            try:
                return channel.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set() or not feeder.is_alive():
                    try:
                        return channel.get_nowait()
                    except queue.Empty:
                        return _END


__all__ = ["Pipeline"]
