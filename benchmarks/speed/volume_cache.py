"""Seconds per training epoch over NIfTI volumes: the decoded volumes kept (--volume-cache-mb)
against keeping only the last one.

Writes --volumes `.nii.gz` CT volumes per domain (int16, --shape X,Y,SLICES, slices along the last
axis), builds the training dataset over them (`UnalignedDataset` with a window, the sample
preparation of --load-size / --crop-size), and times reading every sample of one epoch in the
trainer's shuffled order, as one DataLoader worker does: each timed epoch starts from a pickled
copy of the dataset, which keeps no volume, exactly what a worker is given. The variants, timed
in alternation: `last` keeps only the most recently decoded volume (--volume-cache-mb 0, what the
reader did before it kept more) and `kept` keeps --volume-cache-mb MiB. Volume decodes per epoch
are counted.

    python benchmarks/speed/volume_cache.py --volumes 8 --shape 256,256,48 --repeats 3 --threads 1
"""
from __future__ import annotations

import argparse
import pickle
import tempfile
from pathlib import Path

import numpy as np
import torch

import common
from cyclegan.config import DataConfig
from cyclegan.data import sources
from cyclegan.data.datasets import UnalignedDataset
from cyclegan.training.trainer import epoch_order

WINDOW = "-1000,2000"


def write_volumes(folder: Path, count: int, shape: tuple[int, int, int], seed: int) -> None:
    import nibabel

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        raw = np.full(shape, -1000, np.int16)
        margin = shape[0] // 8
        raw[margin:-margin, margin:-margin, :] = rng.integers(-200, 1500, (shape[0] - 2 * margin,
                                                                          shape[1] - 2 * margin, shape[2]))
        image = nibabel.Nifti1Image(raw, np.diag([0.75, 0.75, 2.5, 1.0]))
        image.header.set_data_dtype(np.int16)
        nibabel.save(image, folder / f"ct_{index:03d}.nii.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=8, help="Volumes per domain.")
    parser.add_argument("--shape", default="256,256,48", help="X,Y,SLICES of each volume.")
    parser.add_argument("--load-size", type=int, default=DataConfig.load_size)
    parser.add_argument("--crop-size", type=int, default=DataConfig.crop_size)
    parser.add_argument("--volume-cache-mb", type=int, default=DataConfig.volume_cache_mb)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, metavar="OUT")
    args = parser.parse_args()
    common.check_counts(parser, {"--volumes": args.volumes, "--repeats": args.repeats}, args.warmup)
    common.set_threads(args.threads)
    shape = tuple(int(value) for value in args.shape.split(","))

    decodes = {"count": 0}
    decode = sources.read_volume

    def counted(path):
        decodes["count"] += 1
        return decode(path)

    sources.read_volume = counted
    with tempfile.TemporaryDirectory() as workdir:
        for domain, seed in (("A", 1), ("B", 2)):
            write_volumes(Path(workdir) / domain, args.volumes, shape, seed)
        datasets = {name: UnalignedDataset(Path(workdir) / "A", Path(workdir) / "B", 1, 1, load_size=args.load_size,
                                           crop_size=args.crop_size, window_a=WINDOW, window_b=WINDOW,
                                           volume_cache_bytes=megabytes * 2 ** 20)
                    for name, megabytes in (("last", 0), ("kept", args.volume_cache_mb))}
        samples = len(datasets["last"])
        order = [int(index) for index in epoch_order(samples, seed=0, epoch=0, shuffle=True)]
        decoded: dict[str, list[int]] = {name: [] for name in datasets}

        def epoch(name: str):
            def run() -> None:
                worker = pickle.loads(pickle.dumps(datasets[name]))
                before = decodes["count"]
                for index in order:
                    worker[index]
                decoded[name].append(decodes["count"] - before)
            return run

        times = common.alternate({name: epoch(name) for name in datasets}, args.repeats, args.warmup)

    machine = common.machine_description()
    print(common.describe_machine(machine))
    print(f"setting: {args.volumes} .nii.gz volumes per domain of {'x'.join(map(str, shape))} int16, {samples} "
          f"samples per epoch, load {args.load_size} / crop {args.crop_size}; --volume-cache-mb "
          f"{args.volume_cache_mb}; torch threads {torch.get_num_threads()}")
    summaries = {name: common.summarize(values) for name, values in times.items()}
    rows = [[name, common.seconds(summary.median), common.seconds(summary.iqr), str(decoded[name][-1]),
             f"{samples / summary.median:.0f}", f"{summaries['last'].median / summary.median:.2f}x"]
            for name, summary in summaries.items()]
    print(common.format_table(["variant", "s/epoch", "IQR", "decodes/epoch", "samples/s", "speedup"], rows))
    if args.json:
        common.write_json(args.json, {"machine": machine, "args": vars(args), "samples_per_epoch": samples,
                                      "variants": {name: {"times": times[name], "decodes_per_epoch": decoded[name],
                                                          **common.summary_dict(summaries[name])}
                                                   for name in datasets}})


if __name__ == "__main__":
    main()
