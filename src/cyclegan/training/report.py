"""What a run shows while it learns: the JSON-lines logs, loss, accuracy and validation plots, an HTML
gallery with the validation scores and the warnings."""
from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from pathlib import Path

from PIL import Image

from cyclegan.directions import Direction
from cyclegan.fileio import write_atomic, write_text_atomic


class MetricsLog:
    """Averages per-iteration values and appends them to log.jsonl every `every` iterations.

    Also mirrors them to TensorBoard when the package is installed and `tensorboard` is on.
    """

    def __init__(self, path: Path, every: int = 10, tensorboard_dir: Path | None = None, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled  # under torchrun only rank 0 writes
        self.every = max(1, every)
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self.writer = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional extra: `pip install cyclegan[tensorboard]`
                pass
            else:
                self.writer = SummaryWriter(str(tensorboard_dir))

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
        """Mirror the numbers of `values` (not iteration, epoch or flags) to TensorBoard, when on."""
        if self.writer is None or not self.enabled:
            return
        for key, value in values.items():
            if key not in ("iteration", "epoch") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(prefix + key, value, iteration)
        self.writer.flush()

    def add_text(self, tag: str, text: str, iteration: int) -> None:
        if self.writer is not None and self.enabled:
            self.writer.add_text(tag, text, iteration)
            self.writer.flush()

    def due(self, iteration: int) -> bool:
        return iteration % self.every == 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def append_record(path: Path, record: dict) -> None:
    """Append `record` as one line of a JSON-lines file."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict]:
    """The records of a log.jsonl; a torn last line (a crash mid-write) is ignored."""
    records = []
    if not Path(path).exists():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
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


LOSS_KEYS = ("loss_G_AB", "loss_G_BA", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B",
             "loss_D_A", "loss_D_B", "loss_G_GAN", "loss_G_L1", "loss_D", "loss_NCE", "loss_NCE_idt")
ACCURACY_KEYS = ("acc_D_A", "acc_D_B", "acc_D")


def plot_history(log_path: Path, out_dir: Path) -> list[Path]:
    """Draw losses.png and accuracy.png from log.jsonl; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    if not records:
        return []
    iterations = [record["iteration"] for record in records]
    written = []
    for filename, keys, title, ylabel in (
        ("losses.png", LOSS_KEYS, "Losses", "loss (averaged over the log interval)"),
        ("accuracy.png", ACCURACY_KEYS, "Discriminator accuracy (real and generated patches)", "accuracy"),
    ):
        figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
        for key in keys:
            values = [record.get(key, math.nan) for record in records]
            if not all(math.isnan(v) for v in values):
                axes.plot(iterations, values, label=key.removeprefix("loss_"), linewidth=1.2)
        axes.set_xlabel("iteration")
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        if keys is ACCURACY_KEYS:
            axes.set_ylim(-0.02, 1.02)
            axes.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize=8)
        figure.tight_layout()
        path = Path(out_dir) / filename
        write_atomic(path, lambda temporary: figure.savefig(temporary, format="png"))
        plt.close(figure)
        written.append(path)
    return written


# The validation scores drawn in metrics.png, one panel per score, one line per direction.
SCORE_PANELS = (("kid", "KID (mean ± std over subsets)"), ("fid", "FID"), ("cycle", "cycle error |x - F(G(x))|"),
                ("l1", "L1 to the paired target"))


def plot_metrics(metrics_path: Path, out_dir: Path) -> Path | None:
    """Draw metrics.png from metrics.jsonl: each validation score per direction over training, the
    best checkpoint marked. Returns the file written (None without evaluations)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [record for record in read_log(metrics_path) if "warning" not in record]
    panels = [(score, title) for score, title in SCORE_PANELS
              if any(record.get(score) is not None for record in records)]
    if not panels:
        return None
    best = [record["iteration"] for record in records if record.get("best")]
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), dpi=100, squeeze=False)
    for axis, (score, title) in zip(axes[:, 0], panels):
        for direction in Direction:
            points = [(record["iteration"], record[f"{score}_{direction}"], record.get(f"{score}_{direction}_std"))
                      for record in records if record.get(f"{score}_{direction}") is not None]
            if not points:
                continue
            iterations, values, spreads = zip(*points)
            axis.plot(iterations, values, marker="o", markersize=3, linewidth=1.2, label=direction)
            if all(spread is not None for spread in spreads):
                axis.fill_between(iterations, [v - s for v, s in zip(values, spreads)],
                                  [v + s for v, s in zip(values, spreads)], alpha=0.2)
        if best:
            axis.axvline(best[-1], color="grey", linewidth=0.8, linestyle="--", label="best")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("iteration")
    figure.tight_layout()
    path = Path(out_dir) / "metrics.png"
    write_atomic(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)
    return path


def quality_section(run_dir: Path, rows: int = 10) -> str:
    """HTML for the gallery page: the newest validation scores (metrics.jsonl), the plot of them and
    every warning of the run (log.jsonl and metrics.jsonl); empty when there is none of these."""
    run_dir = Path(run_dir)
    metrics = read_log(run_dir / "metrics.jsonl")
    evaluations = [record for record in metrics if "warning" not in record]
    warnings = sorted((record for record in read_log(run_dir / "log.jsonl") + metrics if "warning" in record),
                      key=lambda record: record["iteration"])
    parts = []
    if evaluations:
        columns = [key for key in evaluations[-1] if key.split("_")[0] in ("kid", "fid", "cycle", "l1")
                   and not key.endswith("_std")]
        parts.append("<h2>Validation scores</h2><p>Lower is better; newest first. The best checkpoint "
                     "(<code>--pick best</code>) is marked.</p>")
        if (run_dir / "metrics.png").exists():
            parts.append("<img src='../metrics.png' alt='validation scores' style='height:auto;max-width:100%'>")
        header = "".join(f"<th>{html.escape(name)}</th>" for name in ["iteration", "epoch", *columns, "seconds"])
        body = []
        for record in reversed(evaluations[-rows:]):
            cells = [str(record["iteration"]), str(record["epoch"])]
            cells += [_number(record.get(name)) for name in columns]
            cells.append(f"{record.get('seconds', 0):.1f}")
            style = " style='font-weight:bold'" if record.get("best") else ""
            body.append(f"<tr{style}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        parts.append(f"<table border='1' cellspacing='0' cellpadding='3'><tr>{header}</tr>{''.join(body)}</table>")
    if warnings:
        parts.append("<h2>Warnings</h2><ul>")
        parts.extend(f"<li>iteration {record['iteration']}: {html.escape(record['message'])}</li>"
                     for record in warnings)
        parts.append("</ul>")
    return "\n".join(parts)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


GALLERY_COLUMNS = ("input", "translated", "reconstructed", "identity")


def save_gallery(gallery_dir: Path, epoch: int, rows: dict[Direction, list[list[Image.Image]]],
                 columns: tuple[str, ...] = GALLERY_COLUMNS, preamble: str = "") -> Path:
    """Save this epoch's strips and rebuild index.html (newest epoch first).

    `rows` maps a direction to a list of samples, each a list of images in
    `columns` order; each sample becomes one horizontal strip PNG. `preamble` is HTML shown
    above the strips (the validation scores and warnings).
    """
    gallery_dir = Path(gallery_dir)
    epoch_dir = gallery_dir / f"epoch_{epoch:04d}"
    epoch_dir.mkdir(parents=True, exist_ok=True)
    for direction, samples in rows.items():
        for index, images in enumerate(samples):
            strip = _hstack([image.convert("RGB") for image in images])
            write_atomic(epoch_dir / f"{direction}_{index}.png", lambda temporary: strip.save(temporary, format="PNG"))
    write_text_atomic(gallery_dir / "index.html", _gallery_html(gallery_dir, list(rows), columns, preamble))
    return gallery_dir / "index.html"


def _hstack(images: list[Image.Image]) -> Image.Image:
    height = max(image.height for image in images)
    strip = Image.new("RGB", (sum(image.width for image in images) + 2 * (len(images) - 1), height), "white")
    x = 0
    for image in images:
        strip.paste(image, (x, 0))
        x += image.width + 2
    return strip


def _gallery_html(gallery_dir: Path, directions: list[Direction], columns: tuple[str, ...], preamble: str = "") -> str:
    parts = ["<!doctype html><meta charset='utf-8'><title>CycleGAN gallery</title>",
             "<style>body{font-family:sans-serif} img{image-rendering:pixelated;height:128px;margin:2px}"
             " h2{margin-top:1.5em}</style>", preamble,
             f"<h1>Translations per epoch</h1><p>Each strip: {' | '.join(columns)}.</p>"]
    for epoch_dir in sorted(gallery_dir.glob("epoch_*"), reverse=True):
        parts.append(f"<h2>{html.escape(epoch_dir.name.replace('_', ' '))}</h2>")
        for direction in directions:
            strips = sorted(epoch_dir.glob(f"{direction}_*.png"))
            if strips:
                parts.append(f"<h3>{html.escape(direction.label)}</h3>")
                parts.extend(f"<img src='{epoch_dir.name}/{strip.name}' alt='{html.escape(strip.stem)}'>"
                             for strip in strips)
    return "\n".join(parts) + "\n"
