"""Loader throughput: images per second decoded and resized to 448 px (the natural-image input
size), through the COCO 2014 loader and a torch DataLoader, with 0 and 2 worker processes.

Run: ``python benchmarks/bench_loaders.py [--images 256] [--size 640x480]``. The images are
generated JPEGs (smooth gradients plus noise, quality 90) in the official COCO layout under a
temporary folder; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import benchmark_parser
from PIL import Image
from torch.utils.data import DataLoader

from sspa_core.data import build_transform, get_dataset


def write_coco_layout(root: Path, n_images: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    (root / "train2014").mkdir(parents=True)
    (root / "annotations").mkdir()
    yy, xx = np.mgrid[0:height, 0:width]
    images, annotations = [], []
    for i in range(n_images):
        base = rng.integers(0, 256, 3)
        pixels = (base + 0.2 * xx[..., None] + 0.1 * yy[..., None] + rng.normal(0, 12, (height, width, 3))) % 256
        name = f"COCO_train2014_{i + 1:012d}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(root / "train2014" / name, quality=90)
        images.append({"id": i + 1, "file_name": name})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1})
    labels = (Path(__file__).resolve().parents[1] / "data" / "labels" / "coco.txt").read_text().split("\n")
    ids = [*range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83),
           *range(84, 91)]
    categories = [{"id": cid, "name": name} for cid, name in zip(ids, labels)]
    (root / "annotations" / "instances_train2014.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def images_per_second(root: Path, workers: int, batch_size: int) -> float:
    dataset = get_dataset("coco", root, "train", transform=build_transform(448))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    n = sum(batch["image"].shape[0] for batch in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = benchmark_parser(__doc__, threads=False)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", default="640x480", help="generated JPEG size, WIDTHxHEIGHT")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_coco_layout(root, args.images, width, height)
        print(f"{args.images} generated JPEGs of {width}x{height}, resized to 448x448, batch {args.batch_size}")
        print(f"CPU cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
        images_per_second(root, 0, args.batch_size)  # warm the page cache
        threads = torch.get_num_threads()
        for workers in (0, 2):
            rate = images_per_second(root, workers, args.batch_size)
            print(f"num_workers={workers} (main process torch threads {threads}): {rate:7.1f} images/s")
        torch.set_num_threads(1)  # what each DataLoader worker uses
        print(f"num_workers=0 (main process torch threads 1): "
              f"{images_per_second(root, 0, args.batch_size):7.1f} images/s")


if __name__ == "__main__":
    main()
