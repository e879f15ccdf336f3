"""Scene-generation speed of the synthetic offline world, on one CPU core.

Run: ``python benchmarks/bench_scenes.py [--images 600]``. For each domain and size (96, 128,
224 px) it prints the layout time per image (dataset construction) and the rendering rate in
images/s, after a warm-up pass that fills the per-process background and sprite caches (what a
long-running loader sees); ``cold`` also counts that warm-up. ``item`` adds the default
transform (resize, to tensor, CLIP normalisation) of ``__getitem__``. Target (issue 2): at
least 300 images/s at 224×224 on one core.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from sspa_core.data.synthetic import DOMAINS, SyntheticScenes

SIZES = (96, 128, 224)


def rate(fn, indices) -> float:
    start = time.perf_counter()
    for i in indices:
        fn(i)
    return len(indices) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600, help="timed images per case")
    parser.add_argument("--warmup", type=int, default=200, help="images rendered first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    n = args.warmup + args.images
    print(f"one core, torch threads={torch.get_num_threads()}, {args.images} timed images "
          f"after {args.warmup} warm-up images")
    print(f"{'domain':<11}{'size':>5}{'layout ms/img':>15}{'cold img/s':>12}{'img/s':>9}"
          f"{'item img/s':>12}")
    for domain in DOMAINS:
        for size in SIZES:
            start = time.perf_counter()
            scenes = SyntheticScenes(domain, "test", num_images=n, image_size=size, seed=size)
            layout_ms = 1000 * (time.perf_counter() - start) / n
            cold = rate(scenes.render, range(args.warmup))
            warm = rate(scenes.render, range(args.warmup, n))
            item = rate(scenes.__getitem__, range(args.warmup, n)) if size == 224 else float("nan")
            print(f"{domain:<11}{size:>5}{layout_ms:>15.2f}{cold:>12.0f}{warm:>9.0f}{item:>12.0f}")


if __name__ == "__main__":
    main()
