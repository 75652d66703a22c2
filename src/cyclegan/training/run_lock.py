"""One training process per run folder.

Two processes training one run (a second `cyclegan train --resume` while the first still runs)
would write over each other's checkpoints and logs. The lock is an exclusive flock on
runs/<name>/.lock: the kernel releases it when its process ends, however it ends, so a lock file
left behind by a killed run never blocks the next one. The file holds the owner's process id, for
the message a second process gets.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cyclegan.errors import CycleGANError

LOCK_FILE = ".lock"


class RunLockedError(CycleGANError):
    """Another process is training this run."""


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock for the duration of the `with` block; raise RunLockedError at once
    (without waiting) when another process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunLockedError(f"run {run_dir.name} is already being trained by process {owner}; wait for it to "
                                 f"finish or stop it, then resume with: cyclegan train --resume {run_dir}") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # closing releases the flock
