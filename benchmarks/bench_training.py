"""Training speed with the frozen-feature cache, and the peak memory of a smoke training run.

Run: ``python benchmarks/bench_training.py [--images 512] [--image-size 64] [--pretrained PATH]
[--threads 2] [--models sspa,unid] [--backbone NAME] [--eval-images 64] [--no-smoke]``.

1. One epoch on the synthetic natural scenes with the tiny CLIP (ViT), timed three ways: end to end
   with the image encoder trained (the paper's protocol, docs/method.md §Training defaults), end to
   end with the encoder frozen, and on cached ``(x0, X)`` features (``train.cache_features``). The
   speed-up of the cached epoch over each end-to-end epoch is printed (goal: at least 20×), with
   the one-off cost of computing the cache, for SSPA and for Uni-D (a linear head: the cache's best
   case). Epoch times include data loading (scene rendering) and exclude the evaluation after the
   epoch. The speed-up is bounded by (encoder + data) / head: the tiny CLIP's encoder is about as
   cheap as SSPA's head, a ViT-B/16 at 448 px is not. ``--backbone ViT-B-16 --image-size 448``
   times that case with random weights (the same cost as trained ones; no download).
2. The peak resident memory (``ru_maxrss`` of a child process) of ``sspa train`` on the smoke
   settings of notebook 06.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import benchmark_parser, set_threads

from sspa_core.config import load_config
from sspa_core.engine import train_from_config


def overrides(args: argparse.Namespace, folder: Path, **extra) -> list[str]:
    values = {
        "model.pretrained": args.pretrained, "model.backbone": args.backbone,
        "dataset.kwargs.num_images": args.images,
        "dataset.image_size": args.image_size,
        "dataset.eval_kwargs.num_images": args.eval_images, "train.epochs": 1, "train.batch_size": args.batch,
        "train.progress": False, "train.ema": False, "train.device": "cpu",
        "train.feature_cache_dir": folder / "features", "output_dir": folder / "run", **extra,
    }
    return [f"{key}={value}" for key, value in values.items()]


def epoch_seconds(args: argparse.Namespace, folder: Path, **extra) -> tuple[float, float]:
    """(epoch time, wall time of the whole run) of one training epoch."""
    start = time.perf_counter()
    trainer = train_from_config(load_config("synthetic_natural", overrides(args, folder, **extra)))
    return trainer.history[-1]["epoch_time_s"], time.perf_counter() - start


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--images", type=int, default=512, help="training images in the timed epoch")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--eval-images", type=int, default=64, help="validation images (evaluated, not timed)")
    parser.add_argument("--image-size", type=int, default=64,
                        help="input size (64 = the tiny CLIP's; larger sizes interpolate its positions)")
    parser.add_argument("--pretrained", default="", help='tiny-CLIP weights ("" = the shipped checkpoint)')
    parser.add_argument("--models", default="sspa,unid", help="comma-separated model names")
    parser.add_argument("--backbone", default="sspa-tiny-vit",
                        help="open_clip model name (not a tiny one: random weights unless --pretrained)")
    parser.add_argument("--no-smoke", action="store_true", help="skip the peak-memory smoke run")
    args = parser.parse_args()
    threads = set_threads(args)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{threads} threads; {args.backbone}, synthetic_natural, {args.images} images "
          f"at {args.image_size} px, batch {args.batch}")

    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            common = {"model.name": model}
            trained, _ = epoch_seconds(args, folder, **common, **{"train.cache_features": False,
                                                                  "train.freeze_image_encoder": False})
            frozen, _ = epoch_seconds(args, folder, **common, **{"train.cache_features": False,
                                                                 "train.freeze_image_encoder": True})
            _, wall_cold = epoch_seconds(args, folder, **common, **{"train.cache_features": True})
            cached, wall_warm = epoch_seconds(args, folder, **common, **{"train.cache_features": True})
        print(f"[{model}]")
        print(f"  {'end-to-end epoch, image encoder trained':<44s} {trained:8.2f} s")
        print(f"  {'end-to-end epoch, image encoder frozen':<44s} {frozen:8.2f} s")
        print(f"  {'cached-feature epoch':<44s} {cached:8.2f} s")
        print(f"  {'one-off feature caching (train + eval split)':<44s} {wall_cold - wall_warm:8.2f} s")
        print(f"  speed-up of a cached epoch over an end-to-end epoch: {trained / cached:.1f}x (encoder "
              f"trained), {frozen / cached:.1f}x (encoder frozen); goal >= 20x")

    if args.no_smoke:
        return
    with tempfile.TemporaryDirectory() as tmp:
        smoke = ["dataset.kwargs.num_images=600", "dataset.eval_kwargs.num_images=300", "train.epochs=3",
                 "train.batch_size=32", "train.progress=false", f"train.feature_cache_dir={tmp}/features",
                 f"model.pretrained={args.pretrained}"]
        command = [sys.executable, "-m", "sspa_core.cli", "train", "--config", "synthetic_natural",
                   "--output-dir", f"{tmp}/run"] + [arg for item in smoke for arg in ("--set", item)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(f"smoke training run (SSPA, 600 images, 3 epochs, cached features, cold cache): "
          f"peak RSS {peak_mib:.0f} MiB, wall {wall:.1f} s")


if __name__ == "__main__":
    main()
