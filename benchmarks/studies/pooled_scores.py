"""One score of one run name pooled over the seeds of several `cyclegan study` folders, compared
as `cyclegan study` compares (difference in standard errors, sample standard deviations), for
studies run with the same settings but different seeds (docs/RESULTS.md (f), the initialisation
check):

    python benchmarks/studies/pooled_scores.py --score segmentation.labels_to_photo.class_iou \
        CycleGAN=OUT1:cyclegan,OUT2:cyclegan  CUT=OUT1:cut_btoa,OUT2:cut_btoa  ...

Each NAME=FOLDER:RUN[,FOLDER:RUN...] reads FOLDER/seed_*/runs/RUN/evaluation.json (final checkpoints);
the first NAME is the baseline.
"""
import argparse
import json
import math
import statistics
from pathlib import Path


def scores(spec: str, score: str) -> list[float]:
    values = []
    for part in spec.split(","):
        folder, run = part.rsplit(":", 1)
        for path in sorted(Path(folder).glob(f"seed_*/runs/{run}/evaluation.json")):
            record = json.loads(path.read_text())
            for key in score.split("."):
                record = record[key]
            values.append(float(record))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--score", required=True, help="Dotted key into evaluation.json.")
    parser.add_argument("variants", nargs="+", metavar="NAME=FOLDER:RUN[,FOLDER:RUN]")
    args = parser.parse_args()
    named = {spec.split("=", 1)[0]: scores(spec.split("=", 1)[1], args.score) for spec in args.variants}
    baseline_name, baseline = next(iter(named.items()))
    for name, values in named.items():
        line = f"{name}: {statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} ({len(values)} seeds)"
        if name != baseline_name:
            error = math.sqrt(statistics.variance(baseline) / len(baseline) + statistics.variance(values) / len(values))
            line += f", {(statistics.mean(values) - statistics.mean(baseline)) / error:+.1f} standard errors"
        print(line)


if __name__ == "__main__":
    main()
