"""Can the training probe time something cheaper than a whole iteration and still choose the same?

The probe times every candidate arithmetic on one whole training iteration (one warm-up call and at
least one timed call each): at 256 px on a CPU that alone is over a minute. A cheaper call would
keep the probe within its budget only if it ranks the candidates as the iteration does. This
script times, in alternation in one process, each candidate's whole iteration (the probe's own
`TrainingProbe`) and stand-ins for it on the same throwaway Trainer:

- `generator`: one forward and backward pass of the run's first generator at the run's crop and batch
  (`GeneratorPass`, the probe's own stand-in where whole iterations overrun its budget);
- `generator-half`: the same at half the crop (a quarter of the pixels).

Per repeat and candidate it also records the stand-in's ratio (`GeneratorPass.iteration_ratio`:
an iteration over a pass, both timed on small images), by which the probe tells without a whole
iteration whether whole iterations fit its budget, beside the ratio of the crop's medians.

It prints each candidate's median per measure, the ranking each measure gives, and the regret of
choosing by a stand-in: the whole iteration's median of the stand-in's choice over that of the
fastest candidate. Per repeat it also counts how often one sample of each measure picks the
iteration's fastest candidate (the probe often decides on one sample).

By default the candidates alternate in forward and reverse order, each timed by the three measures
in turn; with `--shuffle SEED` every repeat draws a new order of the candidates and of the
measures within each, so that no measure always follows the same call.

    python benchmarks/speed/probe_stand_in.py --size 256 --netG resnet_9blocks --repeats 3 --json OUT.json
"""
from __future__ import annotations

import argparse
import random
import statistics

import torch

import common
from cyclegan.config import ModelConfig, TrainConfig
from cyclegan.networks import size_multiple
from cyclegan.training.arithmetic_probe import GeneratorPass, TrainingProbe
from cyclegan.training.trainer import Trainer
from cyclegan.tuning import call_clock, candidates

MEASURES = ("iteration", "generator", "generator-half")


class HalfCropGeneratorPass(GeneratorPass):
    """The probe's stand-in (`GeneratorPass`) on its batch resized to half the crop (rounded to the
    generator's size multiple)."""

    def real_images(self, trainer, name: str) -> torch.Tensor:
        real = super().real_images(trainer, name)
        multiple = size_multiple(trainer.config.model.net_g)
        size = [max(multiple, round(side * 0.5 / multiple) * multiple) for side in real.shape[2:]]
        return torch.nn.functional.interpolate(real, size=size, mode="bilinear", align_corners=False)


def medians_of(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {name: {label: statistics.median(values) for label, values in per.items()} for name, per in times.items()}


def summarise(times: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    """Per measure: the ranking its medians give, the regret of its choice (the iteration median of
    the candidate it ranks first over the fastest iteration median), and in how many repeats one
    sample of it alone picks the iteration's fastest candidate."""
    medians = medians_of(times)
    fastest = min(medians["iteration"], key=medians["iteration"].get)
    repeats = len(next(iter(times["iteration"].values())))
    summary = {}
    for name, per in medians.items():
        ranking = sorted(per, key=per.get)
        right = sum(min(times[name], key=lambda label: times[name][label][r]) == fastest for r in range(repeats))
        summary[name] = {"ranking": ranking, "regret": medians["iteration"][ranking[0]] / medians["iteration"][fastest],
                         "single_sample_right": right, "repeats": repeats}
    return summary


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cyclegan", choices=("cyclegan", "pix2pix", "cut", "fastcut"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--netG", default="resnet_9blocks")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="Timed calls of each candidate and measure.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shuffle", type=int, default=None, metavar="SEED",
                        help="Draw each repeat's order of candidates and measures from this seed.")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    common.check_counts(parser, {"--repeats": args.repeats, "--size": args.size, "--batch-size": args.batch_size}, 0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    device = torch.device("cpu")
    config = TrainConfig(model=ModelConfig(model=args.model))  # the model's own defaults (norm, losses)
    config.model.net_g, config.model.ngf = args.netG, args.ngf
    config.data.crop_size = config.data.load_size = args.size
    config.data.batch_size = args.batch_size
    options = candidates(device)
    clock = call_clock(device)
    print(common.describe_machine(common.machine_description(device)))
    print(f"{args.model} {args.netG} ngf {args.ngf}, {args.size} px, batch {args.batch_size}; candidates: "
          f"{', '.join(c.label for c in options)}", flush=True)
    times = {measure: {c.label: [] for c in options} for measure in MEASURES}
    ratios: dict[str, list[float]] = {c.label: [] for c in options}
    with TrainingProbe(config, Trainer, timer=clock) as iteration:
        generator, generator_half = GeneratorPass(iteration), HalfCropGeneratorPass(iteration)
        measures = {"iteration": iteration, "generator": generator, "generator-half": generator_half}
        shuffler = random.Random(args.shuffle)
        for repeat in range(-1, args.repeats):  # -1: the untimed warm-up
            order = options if repeat % 2 else options[::-1]
            if args.shuffle is not None:
                order = shuffler.sample(options, len(options))
            for candidate in order:
                names = list(measures)
                if args.shuffle is not None:
                    shuffler.shuffle(names)
                for name in names:
                    measure = measures[name]
                    seconds = measure(candidate)
                    if repeat >= 0:
                        times[name][candidate.label].append(seconds)
                ratio = generator.iteration_ratio(candidate) if repeat >= 0 else None
                if ratio is not None:
                    ratios[candidate.label].append(ratio)
            if repeat >= 0:
                print(f"repeat {repeat}: " + "; ".join(
                    f"{name} " + ", ".join(f"{label} {values[-1]:.3g}" for label, values in times[name].items())
                    for name in MEASURES), flush=True)
    medians = medians_of(times)
    ratio_medians = {label: statistics.median(values) for label, values in ratios.items() if values}
    rows = []
    for label in medians["iteration"]:
        rows.append([label] + [f"{medians[name][label]:.3f}" for name in MEASURES]
                    + [f"{medians['iteration'][label] / medians[name][label]:.2f}" for name in MEASURES[1:]]
                    + [f"{ratio_medians[label]:.2f}" if label in ratio_medians else "-"])
    print(common.format_table(["candidate"] + [f"{name} s" for name in MEASURES]
                              + [f"iteration / {name}" for name in MEASURES[1:]] + ["stand-in's ratio"], rows))
    overstated = {label: ratio / (medians["iteration"][label] / medians["generator"][label])
                  for label, ratio in ratio_medians.items()}
    if overstated:
        print(f"stand-in's ratio over iteration / generator at the crop: "
              f"{min(overstated.values()):.3f} to {max(overstated.values()):.3f}")
    else:
        print("stand-in's ratio: none (no images smaller than the crop to time it on); the probe times a whole iteration")
    summary = summarise(times)
    for name in MEASURES:
        entry = summary[name]
        print(f"{name:<15} ranks {' < '.join(entry['ranking'])}; its choice costs {entry['regret']:.3f}x the fastest "
              f"iteration; one sample picks the fastest in {entry['single_sample_right']}/{entry['repeats']} repeats")
    if args.json:
        common.write_json(args.json, {"args": vars(args), "machine": common.machine_description(device),
                                      "seconds": times, "medians": medians, "summary": summary,
                                      "stand_in_ratios": ratios, "ratio_over_crop": overstated})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
