"""`cyclegan tune`: time the arithmetic candidates of this machine for a model, size and batch, and
keep the fastest, so that `--precision auto` runs of that job start without probing."""
from __future__ import annotations

import argparse
import contextlib

from cyclegan.cli.arguments import add_device_argument
from cyclegan.cli.options import add_config_arguments, config_from_args
from cyclegan.errors import ConfigError

# `tune` is asked for on purpose, so it may take longer than the probe a run does on its own.
DEFAULT_BUDGET_SECONDS = 60.0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune", help="Measure the fastest arithmetic for a model on this machine and cache the choice.",
        description="Time every arithmetic candidate this device can run (fp32 as the reference code runs it, "
                    "fp32 with NNPACK, bf16 and channels-last where the CPU has native bf16; TF32, bf16, fp16 "
                    "and channels-last on CUDA) on one training iteration or one translation of the model "
                    "described by the flags, in alternation, and cache the fastest for --precision auto. Where "
                    "whole training iterations cannot fit --budget, one forward and backward pass of the first "
                    "generator ranks them instead, as in `train`.")
    parser.add_argument("--job", choices=("train", "translate"), default="train",
                        help="What to time: one training iteration, or one generator forward (default: train).")
    parser.add_argument("--crop-size", "--size", dest="data.crop_size", type=int, default=argparse.SUPPRESS,
                        metavar="PX", help="Image side in pixels, as train's --crop-size (default: 256).")
    parser.add_argument("--batch-size", dest="data.batch_size", type=int, default=argparse.SUPPRESS, metavar="N",
                        help="Images per domain per iteration, or per generator call (default: 1).")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="Time the training iteration as `train --cuda-graphs` runs it, captured in one CUDA graph, "
                             "and cache the choice for such runs (--job train on a CUDA GPU; fp16 is not a candidate).")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_SECONDS, metavar="SECONDS",
                        help="Stop timing rounds after about this many seconds; every candidate is timed at least "
                             f"once after a warm-up whatever the budget (default: {DEFAULT_BUDGET_SECONDS:g}).")
    add_device_argument(parser)
    add_config_arguments(parser, sections=("model",))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cyclegan.device import device_name, select_device
    from cyclegan.tuning import DecisionCache, ProbeKey, candidates, probe, translation_side

    config = config_from_args(args)
    config.run.device = args.device
    model, data = config.model, config.data
    if data.crop_size < 1 or data.batch_size < 1:
        raise ConfigError("--crop-size and --batch-size must be at least 1")
    if args.budget <= 0:
        raise ConfigError(f"--budget must be positive, got {args.budget:g}")
    if args.cuda_graphs and args.job != "train":
        raise ConfigError("--cuda-graphs captures a training iteration; leave it out with --job translate")
    device = select_device(args.device)
    # As in `train`: without a CUDA GPU there is no graph, and the run trains as without the flag.
    captured = args.cuda_graphs and device.type == "cuda"
    if args.cuda_graphs and not captured:
        print(f"--cuda-graphs: no CUDA GPU here ({device}); timing the ordinary step, as `train --cuda-graphs` runs it")
    if captured:
        from cyclegan.training.captured_step import check_capturable

        check_capturable(config, distributed=False)
    with contextlib.ExitStack() as stack:
        if args.job == "train":
            from cyclegan.training.arithmetic_probe import TrainingProbe, training_probe_key
            from cyclegan.training.trainer import Trainer

            key, excluded = training_probe_key(device, model, config.loss, data.crop_size, data.batch_size,
                                               captured=captured)
            options = candidates(device, exclude=excluded)
            measure = stack.enter_context(TrainingProbe(config, Trainer, captured=captured))
            stand_in = measure.stand_in()
            unit = "s/it"
        else:
            from cyclegan.networks import build_generator
            from cyclegan.tuning import translation_measure

            generator = build_generator(model.net_g, model.input_nc, model.output_nc, model.ngf, model.norm,
                                        model.use_dropout, model.padding_type, model.init_type, model.init_gain,
                                        model.upsample, model.antialias).to(device).eval()
            # At the side, and keyed by the network, as `translate` times and keys the images it pads.
            side = translation_side(data.crop_size, data.crop_size, generator.size_multiple)
            if side != data.crop_size:
                print(f"--crop-size {data.crop_size}: {model.net_g} takes sides that are multiples of "
                      f"{generator.size_multiple}; timing {side}x{side}, as translate would")
                data.crop_size = side
            key = ProbeKey.for_network(device, generator, "translate", data.crop_size, data.batch_size)
            options = candidates(device)
            measure = translation_measure(generator, device, data.crop_size, data.batch_size, model.input_nc)
            stand_in = None
            unit = "s/image" if data.batch_size == 1 else "s/batch"
        how = " captured in a CUDA graph" if captured else ""
        print(f"timing {len(options)} candidates on {device_name(device)} ({args.job}{how}, {model.net_g}, "
              f"{data.crop_size}x{data.crop_size}, batch {data.batch_size}), budget {args.budget:g} s")
        result = probe(options, measure, args.budget, job=args.job, unit=unit, stand_in=stand_in)
    for line in result.table():
        print(line)
    print(f"{result.describe()}; {result.rounds} timed round(s)")
    if result.reason:
        print(f"ranked by the stand-in: {result.reason}")
    cache = DecisionCache()
    cache.write(key, result)
    print(f"cached in {cache.path}")
    return 0
