"""The run's plots: losses.png and accuracy.png from log.jsonl, metrics.png from metrics.jsonl."""
from __future__ import annotations

import math
from pathlib import Path

from cyclegan.directions import Direction
from cyclegan.fileio import write_atomic
from cyclegan.training.logging import read_log


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
