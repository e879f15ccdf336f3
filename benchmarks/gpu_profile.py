"""The `gpu` profile's benchmark: SSPA and its peers on the three synthetic domains over seeds,
and a ViT-B/16-sized throughput and memory run at 448 px, on a CUDA GPU without internet.

Run: ``python benchmarks/gpu_profile.py [--device cuda] [--seeds 0 1 2] [--workers 4]
[--output PATH] [--tiny]``.

1. The equal-budget comparison of ``benchmarks/compare_models.py`` (each model under its paper's
   protocol, see ``PAPER_PROTOCOL``) on ``synthetic_natural``, ``synthetic_pedestrian`` and
   ``synthetic_remote_sensing`` at their configs' budgets, with mixed precision on (``train.amp=true``;
   ``--amp-dtype``: ``auto`` is float16 with the gradient scaler on CUDA and float32 on a CPU),
   over the seeds: mAP, CF1 and OF1 (%), and mA for the pedestrian domain (docs/method.md
   §Metrics), mean ± standard deviation; seconds per run; the peak memory of the domain.
2. SSPA on a ViT-B/16 image encoder with random weights (no download; the same cost as trained
   ones) at 448 px, image encoder trained: training images per second of the trainer's own
   optimisation step on a fixed batch already on the device (data loading excluded), and the
   peak memory of those steps.

Prints a table and writes a JSON summary (device name, torch version, times, memory, results),
by default to ``outputs/gpu_profile/<device>.json``. ``--tiny`` runs the same code path at a tiny
size (a few dozen scenes, one epoch, the tiny ViT CLIP at 64 px): the CPU test of this profile.
Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the process's peak resident size
on a CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import Timer, benchmark_parser, seed_summary
from torch.utils.data import default_collate

from sspa_core.config import load_config
from sspa_core.engine import build_dataset, compare_models, train_from_config
from sspa_core.paths import OUTPUT_DIR

CONFIGS = ("synthetic_natural", "synthetic_pedestrian", "synthetic_remote_sensing")
MODELS = ("zeroshot", "unid", "dualcoop", "clip_ft", "sspa")
#: (config overrides, throughput run) at each size; the full size keeps the configs' budgets.
SIZES: dict[str, dict[str, Any]] = {
    "full": {"compare": [], "throughput": {"backbone": "ViT-B-16", "image_size": 448, "batch": 64, "steps": 20}},
    "tiny": {"compare": ["dataset.kwargs.num_images=16", "dataset.eval_kwargs.num_images=16", "train.epochs=1",
                         "train.batch_size=16", "train.eval_batch_size=16"],
             "throughput": {"backbone": "sspa-tiny-vit", "image_size": 64, "batch": 4, "steps": 2}},
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """Peak allocated CUDA memory since the last reset, or the process's peak RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def common_overrides(args: argparse.Namespace, folder: Path) -> list[str]:
    return [f"train.device={args.device}", "train.amp=true", f"train.amp_dtype={args.amp_dtype}",
            "train.progress=false", f"train.num_workers={args.workers}",
            f"train.feature_cache_dir={folder / 'features'}", f"output_dir={folder / 'runs'}"]


def compare_domain(name: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Every model of :data:`MODELS` on one synthetic config over the seeds (equal budget)."""
    device = torch.device(args.device)
    config = load_config(name, common_overrides(args, folder / name) + SIZES[args.size]["compare"])
    reset_peak_memory(device)
    models = {}
    for model in MODELS:
        with Timer() as timer:
            runs = compare_models(config, [model], seeds=args.seeds)
        keys = ("mAP", "CF1", "OF1", "mA") if "mA" in runs[0]["metrics"] else ("mAP", "CF1", "OF1")
        models[model] = {"seconds_per_run": timer.seconds / len(args.seeds)} | {
            key: seed_summary([100 * run["metrics"][key] for run in runs]) for key in keys}
    ds = config["dataset"]
    return {"config": name, "domain": ds["domain"], "train_images": ds["kwargs"]["num_images"],
            "eval_images": ds["eval_kwargs"]["num_images"], "epochs": config["train"]["epochs"],
            "batch_size": config["train"]["batch_size"], "image_size": ds["image_size"],
            "backbone": config["model"]["backbone"], "peak_memory_mib": peak_memory_mib(device), "models": models}


def throughput(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Training images per second of SSPA's optimisation step (image encoder trained) on a fixed
    batch, and the peak memory of those steps."""
    device = torch.device(args.device)
    spec = SIZES[args.size]["throughput"]
    batch_size = spec["batch"]
    config = load_config("synthetic_natural", common_overrides(args, folder / "throughput") + [
        f"model.backbone={spec['backbone']}", "model.pretrained=", f"dataset.image_size={spec['image_size']}",
        f"dataset.kwargs.num_images={batch_size}", f"dataset.eval_kwargs.num_images={batch_size}",
        "train.epochs=1", f"train.batch_size={batch_size}", f"train.eval_batch_size={batch_size}",
        "train.cache_features=false", "train.freeze_image_encoder=false", "train.ema=false"])
    trainer = train_from_config(config)  # builds the model, optimiser and scaler; one step
    dataset = build_dataset(config, config["dataset"]["train_split"], augment=True)
    batch = {key: value.to(device) if torch.is_tensor(value) else value
             for key, value in default_collate([dataset[i] for i in range(batch_size)]).items()}
    trainer.train_step(batch)  # warm-up (kernels chosen, allocator filled)
    synchronize(device)
    reset_peak_memory(device)
    start = time.perf_counter()
    for _ in range(spec["steps"]):
        trainer.train_step(batch)
    synchronize(device)
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in trainer.model.parameters())
    return {"backbone": spec["backbone"], "weights": "random" if spec["backbone"] != "sspa-tiny-vit" else "shipped",
            "image_size": spec["image_size"], "batch_size": batch_size, "steps": spec["steps"],
            "parameters_m": parameters / 1e6, "step_ms": 1000 * seconds / spec["steps"],
            "train_images_per_s": batch_size * spec["steps"] / seconds, "peak_memory_mib": peak_memory_mib(device)}


def print_tables(summary: dict[str, Any]) -> None:
    print(f"\n{summary['device_name']}; torch {summary['torch']}; mixed precision {summary['amp_dtype']}; "
          f"seeds {summary['seeds']}; size {summary['size']}")
    for domain in summary["comparison"]:
        print(f"\n{domain['config']} ({domain['train_images']} / {domain['eval_images']} images at "
              f"{domain['image_size']} px, {domain['epochs']} epochs, batch {domain['batch_size']}, "
              f"{domain['backbone']}; peak memory {domain['peak_memory_mib']:.0f} MiB)")
        keys = [k for k in ("mAP", "CF1", "OF1", "mA") if k in domain["models"]["sspa"]]
        print(f"{'model':<10s}" + "".join(f"{k:>16s}" for k in keys) + f"{'s/run':>9s}")
        for model, row in domain["models"].items():
            print(f"{model:<10s}" + "".join(f"{row[k]['mean']:9.2f} ± {row[k]['std']:4.2f}" for k in keys)
                  + f"{row['seconds_per_run']:9.1f}")
    t = summary["throughput"]
    print(f"\nSSPA training step, {t['backbone']} ({t['weights']} weights, {t['parameters_m']:.1f} M parameters) at "
          f"{t['image_size']} px, batch {t['batch_size']}: {t['step_ms']:.1f} ms/step, "
          f"{t['train_images_per_s']:.1f} images/s, peak memory {t['peak_memory_mib']:.0f} MiB")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = benchmark_parser(__doc__, threads=False)
    parser.add_argument("--device", default="cuda", help="torch device (cuda, cuda:1, cpu)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=4, help="data-loading processes (train.num_workers)")
    parser.add_argument("--amp-dtype", default="auto", choices=("auto", "float16", "bfloat16"),
                        help="train.amp_dtype (auto: float16 on CUDA, float32 on a CPU)")
    parser.add_argument("--tiny", action="store_true", help="the same code path at a tiny size (CPU test)")
    parser.add_argument("--output", type=Path, help="JSON summary (default: outputs/gpu_profile/<device>.json)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available here; use --device cpu (with --tiny for a quick run)")
    args.size = "tiny" if args.tiny else "full"
    summary: dict[str, Any] = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
                               "size": args.size, "seeds": args.seeds, "amp_dtype": args.amp_dtype}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary["comparison"] = [compare_domain(name, args, Path(tmp)) for name in CONFIGS]
        summary["throughput"] = throughput(args, Path(tmp))
    summary["total_seconds"] = time.perf_counter() - start
    print_tables(summary)
    output = args.output or OUTPUT_DIR / "gpu_profile" / f"{device.type}{'-tiny' if args.tiny else ''}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=1))
    print(f"\nsummary written to {output}")
    return summary


if __name__ == "__main__":
    main()
