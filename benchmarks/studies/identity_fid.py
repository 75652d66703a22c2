"""FID/KID of doing nothing: the test images of one domain scored against the other domain's,
at the same size the models are evaluated at. The floor a translation has to beat.

    python benchmarks/studies/identity_fid.py --data ../shared/data/photo2anime_animegan --size 64
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from cyclegan.data.images import list_images, load_image
from cyclegan.evaluation.fid import InceptionFeatures, fid_from_features, kid_from_features
from cyclegan.imageconv import image_to_tensor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Dataset with testA/ and testB/.")
    parser.add_argument("--size", type=int, default=64, help="Images are resized to SIZE x SIZE first.")
    args = parser.parse_args()
    network = InceptionFeatures(device="cpu")
    features = {}
    for domain in ("A", "B"):
        paths = list_images(Path(args.data) / f"test{domain}")
        images = (image_to_tensor(load_image(path, 3).resize((args.size, args.size), Image.BICUBIC)) for path in paths)
        features[domain] = network(images)
    result = {}
    for name, (source, target) in {"A as B": ("A", "B"), "B as A": ("B", "A")}.items():
        subset = min(1000, len(features[source]) // 2, len(features[target]) // 2)
        mean, std = kid_from_features(features[source], features[target], subsets=100, subset_size=subset)
        result[name] = {"fid": fid_from_features(features[source], features[target]), "kid_mean": mean, "kid_std": std}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
