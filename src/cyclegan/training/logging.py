"""The run's JSON-lines logs: log.jsonl (losses averaged over the log interval, the warnings) and
the records of metrics.jsonl, written, read back and cut at a resumed run's iteration. Every
number written here also goes to the run's trackers (`cyclegan.training.trackers`)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from cyclegan.fileio import write_text_atomic
from cyclegan.training.trackers import Trackers


class MetricsLog:
    """Averages per-iteration values and appends them to log.jsonl every `every` iterations, and
    hands every number it writes to `trackers` (TensorBoard, W&B, MLflow: `--log-to`)."""

    def __init__(self, path: Path, every: int = 10, trackers: Trackers | None = None, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled  # under torchrun only rank 0 writes
        self.every = max(1, every)
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self.trackers = trackers if trackers is not None else Trackers([])

    def add(self, values: dict[str, float]) -> None:
        # Counted per key: with --d-steps > 1 the generator terms exist on some iterations only.
        for key, value in values.items():
            self._sums[key] += value
            self._counts[key] += 1

    def flush(self, iteration: int, epoch: int, extra: dict | None = None) -> dict | None:
        """Write the averages since the last flush (if any) as one line and return them."""
        if not self._counts or not self.enabled:
            self._sums.clear()
            self._counts.clear()
            return None
        record = {"iteration": iteration, "epoch": epoch}
        record.update({key: total / self._counts[key] for key, total in self._sums.items()})
        record.update(extra or {})
        append_record(self.path, record)
        self.add_scalars(record, iteration)
        self._sums.clear()
        self._counts.clear()
        return record

    def add_scalars(self, values: dict, iteration: int, prefix: str = "") -> None:
        """Hand the numbers of `values` (not iteration, epoch or flags) to the trackers."""
        if not self.enabled:
            return
        scalars = {prefix + key: float(value) for key, value in values.items()
                   if key not in ("iteration", "epoch") and isinstance(value, (int, float))
                   and not isinstance(value, bool)}
        if scalars:
            self.trackers.log_scalars(scalars, iteration)

    def add_text(self, tag: str, text: str, iteration: int) -> None:
        if self.enabled:
            self.trackers.log_text(tag, text, iteration)

    def due(self, iteration: int) -> bool:
        return iteration % self.every == 0


def append_record(path: Path, record: dict) -> None:
    """Append `record` as one line of a JSON-lines file."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict]:
    """The records of a log.jsonl; a torn last line (a crash mid-write) is ignored."""
    records = []
    if not Path(path).exists():
        return records
    # A write torn inside a multi-byte character leaves bytes that are not UTF-8; decoding them as
    # U+FFFD keeps that line unparsable (and ignored) instead of failing the whole read.
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_log(path: Path, iteration: int) -> None:
    """Drop records written after `iteration`: a resumed run repeats those iterations, and its
    log should read as if it had never been interrupted."""
    records = read_log(path)
    kept = [record for record in records if record.get("iteration", 0) <= iteration]
    if len(kept) != len(records):
        write_text_atomic(Path(path), "".join(json.dumps(record) + "\n" for record in kept))
