"""A plain CycleGAN training script in the reference code's style: its train.py at small scale.

The baseline of `train_process.py`, which times whole processes: this script does what the
reference's `python train.py --model cycle_gan` does in a short run, and nothing else. It parses a
few options and prints them, loads unpaired images with PIL through a DataLoader (resize to the
load size, random crop, random flip, to [-1, 1]; domain B drawn at random), builds two generators
and two discriminators, trains N iterations with `ReferenceIteration` (train_step.py: the
reference's iteration in fp32, its nn.InstanceNorm2d), prints a loss line every --print-freq
iterations (and appends it to loss_log.txt), then saves the four networks' state dicts as
latest_net_{G_A,G_B,D_A,D_B}.pth with torch.save. No visdom, no HTML page, no scheduler step:
a run of a few iterations never reaches them (display_freq 400, epochs of 180+ iterations).

    python benchmarks/speed/reference_train.py --dataroot ../shared/data/cityscapes --iterations 12 \
        --size 128 --netG resnet_6blocks --ngf 32 --ndf 64 --out /tmp/reference_run

--num-workers defaults to 4, the reference's --num_threads; train_process.py passes the same value
to both programs (0 by default).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cyclegan.config import GENERATORS, ModelConfig
from train_step import ReferenceIteration

# The reference's data/image_folder.py list.
IMG_EXTENSIONS = [".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP",
                  ".tif", ".TIF", ".tiff", ".TIFF"]


def make_dataset(folder: str) -> list[str]:
    """Every image below `folder`, sorted, as the reference's make_dataset walks it."""
    if not os.path.isdir(folder):
        raise SystemExit(f"{folder} is not a valid directory")
    images = []
    for root, _, names in sorted(os.walk(folder, followlinks=True)):
        images.extend(os.path.join(root, name) for name in sorted(names)
                      if any(name.endswith(extension) for extension in IMG_EXTENSIONS))
    return images


class UnalignedDataset(Dataset):
    """trainA/ and trainB/: A by index, B at random (the reference's serial_batches off)."""

    def __init__(self, dataroot: str, load_size: int, crop_size: int):
        self.A_paths = make_dataset(os.path.join(dataroot, "trainA"))
        self.B_paths = make_dataset(os.path.join(dataroot, "trainB"))
        self.A_size, self.B_size = len(self.A_paths), len(self.B_paths)
        self.load_size, self.crop_size = load_size, crop_size

    def transform(self, image: Image.Image) -> torch.Tensor:
        """Resize (bicubic) to load_size, random crop, random horizontal flip, to [-1, 1]: the
        reference's torchvision pipeline for --preprocess resize_and_crop, written with PIL."""
        image = image.resize((self.load_size, self.load_size), Image.BICUBIC)
        x, y = (int(torch.randint(0, self.load_size - self.crop_size + 1, size=(1,))) for _ in range(2))
        image = image.crop((x, y, x + self.crop_size, y + self.crop_size))
        if torch.rand(1) < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.5

    def __getitem__(self, index: int) -> dict:
        A_path = self.A_paths[index % self.A_size]
        B_path = self.B_paths[random.randint(0, self.B_size - 1)]
        A = self.transform(Image.open(A_path).convert("RGB"))
        B = self.transform(Image.open(B_path).convert("RGB"))
        return {"A": A, "B": B, "A_paths": A_path, "B_paths": B_path}

    def __len__(self) -> int:
        return max(self.A_size, self.B_size)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataroot", required=True, help="Folder with trainA/ and trainB/.")
    parser.add_argument("--iterations", type=int, required=True, help="Training iterations (batch 1).")
    parser.add_argument("--size", type=int, default=256, help="Crop size (the reference's --crop_size).")
    parser.add_argument("--load-size", type=int, default=None,
                        help="Resize to this before cropping (default: size x 286/256, the reference's ratio).")
    parser.add_argument("--netG", default="resnet_9blocks", choices=GENERATORS)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers (the reference's --num_threads).")
    parser.add_argument("--print-freq", type=int, default=100, help="Print the losses every this many iterations.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="Folder for opt.txt, loss_log.txt and latest_net_*.pth.")
    args = parser.parse_args(argv)
    if args.load_size is None:
        args.load_size = round(args.size * 286 / 256)
    return args


def print_options(args: argparse.Namespace, out: Path) -> None:
    message = "----------------- Options ---------------\n"
    message += "".join(f"{name:>25}: {value!s:<30}\n" for name, value in sorted(vars(args).items()))
    message += "----------------- End -------------------"
    print(message)
    (out / "opt.txt").write_text(message + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print_options(args, out)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    dataset = UnalignedDataset(args.dataroot, args.load_size, args.size)
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=args.num_workers)
    print(f"The number of training images = {len(dataset)}")

    model = ReferenceIteration(ModelConfig(net_g=args.netG, ngf=args.ngf, ndf=args.ndf), seed=args.seed,
                               device=args.device)
    networks = {"G_A": model.G_A, "G_B": model.G_B, "D_A": model.D_A, "D_B": model.D_B}
    print("---------- Networks initialized -------------")
    for name, network in networks.items():
        count = sum(parameter.numel() for parameter in network.parameters())
        print(f"[Network {name}] Total number of parameters : {count / 1e6:.3f} M")
    print("-----------------------------------------------", flush=True)

    log_path = out / "loss_log.txt"
    total_iters, epoch = 0, 0
    while total_iters < args.iterations:
        epoch += 1
        epoch_iter = 0
        data_started = time.time()
        for data in loader:
            iter_started = time.time()
            t_data = iter_started - data_started
            losses = model(data["A"].to(args.device), data["B"].to(args.device))
            total_iters += 1
            epoch_iter += 1
            if total_iters % args.print_freq == 0:
                t_comp = time.time() - iter_started
                message = f"(epoch: {epoch}, iters: {epoch_iter}, time: {t_comp:.3f}, data: {t_data:.3f}) "
                message += "".join(f"{name}: {float(value):.3f} " for name, value in losses.items())
                print(message, flush=True)
                with open(log_path, "a") as log_file:
                    log_file.write(message + "\n")
            if total_iters >= args.iterations:
                break
            data_started = time.time()

    print(f"saving the latest model (epoch {epoch}, total_iters {total_iters})")
    for name, network in networks.items():
        torch.save(network.cpu().state_dict(), out / f"latest_net_{name}.pth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
