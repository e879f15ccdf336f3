"""Scene-generation speed of the synthetic offline world, on one CPU core.

Run: ``python benchmarks/bench_scenes.py [--images 600]``. For each domain and size (96, 128,
224 px) it prints the layout time per image (dataset construction) and the rendering rate in
images/s, after a warm-up pass that fills the per-process background and sprite caches (what a
long-running loader sees); ``cold`` also counts that warm-up. ``item`` adds the default
transform (resize, to tensor, CLIP normalisation) of ``__getitem__``. Rates are given per
wall-clock second and per CPU second of this process (the latter is what one core delivers
when other jobs share the machine). Target (issue 2): at least 300 images/s at 224×224 on
one core.
"""

from __future__ import annotations

import os
import time

import torch
from _common import benchmark_parser

from sspa_core.data.synthetic import SyntheticScenes
from sspa_core.domains import DOMAINS

SIZES = (96, 128, 224)


def rate(fn, indices) -> tuple[float, float]:
    """Calls per wall-clock second and per CPU second."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in indices:
        fn(i)
    return (len(indices) / (time.perf_counter() - wall),
            len(indices) / (time.process_time() - cpu))


def main() -> None:
    parser = benchmark_parser(__doc__, threads=False)
    parser.add_argument("--images", type=int, default=600, help="timed images per case")
    parser.add_argument("--warmup", type=int, default=200, help="images rendered first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    n = args.warmup + args.images
    print(f"one core, torch threads={torch.get_num_threads()}, {args.images} timed images "
          f"after {args.warmup} warm-up images")
    print(f"{'':<19}{'layout':>14}{'cold img/s':>14}{'img/s':>14}{'item img/s':>14}")
    print(f"{'domain':<14}{'size':>5}{'CPU ms/img':>14}" + f"{'wall / CPU':>14}" * 3)
    for domain in DOMAINS:
        for size in SIZES:
            cpu = time.process_time()
            scenes = SyntheticScenes(domain, "test", num_images=n, image_size=size, seed=size)
            layout_ms = 1000 * (time.process_time() - cpu) / n
            cold = rate(scenes.render, range(args.warmup))
            warm = rate(scenes.render, range(args.warmup, n))
            item = (rate(scenes.__getitem__, range(args.warmup, n)) if size == 224
                    else (float("nan"), float("nan")))
            cells = "".join(f"{a:>7.0f} /{b:>5.0f}" for a, b in (cold, warm, item))
            print(f"{domain:<14}{size:>5}{layout_ms:>14.2f}{cells}")


if __name__ == "__main__":
    main()
