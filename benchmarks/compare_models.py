"""SSPA against its peers on a synthetic domain with the tiny CLIP, on an equal budget.

Run: ``python benchmarks/compare_models.py [--config synthetic_natural|synthetic_pedestrian|
synthetic_remote_sensing] [--images N] [--eval-images N] [--epochs N] [--batch N] [--seeds 0 1 2]
[--protocol paper|config] [--pretrained PATH] [--set KEY=VALUE] [--thresholds] [--by-size]
[--output FILE.json]``.

Every model sees the same training images, epochs, batch size and learning rates: those of
``sspa_core/configs/<config>.yaml`` unless an option here changes them. With
``--protocol paper`` (the default) each model trains as its paper does
(``sspa_core.engine.PAPER_PROTOCOL``): SSPA and its Uni-D ablation train the image encoder (at
``train.encoder_lr``) with the text encoder frozen, CLIP-FT trains both encoders, the
DualCoOp-style head keeps CLIP frozen and trains on cached features, zero-shot CLIP trains
nothing. ``--protocol config`` trains every head on cached features of the frozen encoder
(CLIP-FT still fine-tunes both encoders). Printed: the domain's metrics (%) on the validation
split after the last epoch (mAP, CF1, OF1; for pedestrian attributes mA, instance F1 and mAP),
mean ± standard deviation over the seeds (the seed sets the model initialisation and the
training order; the scenes are the same). ``--output`` also writes them, per seed, as JSON: the
format of ``data/results/compare_models/<config>.json``, which notebooks 06 and 07 read
(``sspa_core.results``). ``--thresholds`` adds, for the metrics that threshold the scores at 0.5
(mA and instance F1, or CF1 and OF1), how much each model gains from a threshold picked on one half
of the validation images and scored on the other (``sspa_core.metrics.threshold_study``): whether
a model loses on them by ranking the labels worse or by placing its scores worse around 0.5.
``--by-size`` adds each model's mean AP over the small, medium and large thirds of the labels,
ranked by their typical object size in the validation scenes
(:meth:`sspa_core.data.synthetic.SyntheticScenes.label_sizes`).
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import Timer, benchmark_parser, environment, mean_std, seed_summary

from sspa_core.config import load_config
from sspa_core.engine import compare_models
from sspa_core.engine.heads import backbone_digest
from sspa_core.engine.runs import build_dataset
from sspa_core.metrics import THRESHOLD_METRICS, average_precision_per_class, metric_set_for, threshold_study

MODELS = ("zeroshot", "unid", "dualcoop", "clip_ft", "sspa")
CONFIGS = ("synthetic_natural", "synthetic_pedestrian", "synthetic_remote_sensing")
#: the columns printed per domain (the first is the domain's monitored metric)
COLUMNS = {"natural": ("mAP", "CF1", "OF1"), "pedestrian": ("mA", "F1", "mAP"),
           "remote_sensing": ("mAP", "CF1", "OF1")}
SIZE_GROUPS = ("small", "medium", "large")


def main() -> None:
    parser = benchmark_parser(__doc__, threads=False)
    parser.add_argument("--config", default="synthetic_natural", choices=CONFIGS)
    parser.add_argument("--images", type=int, help="training images (default: the config's)")
    parser.add_argument("--eval-images", type=int, help="validation images (default: the config's)")
    parser.add_argument("--epochs", type=int, help="default: the config's")
    parser.add_argument("--batch", type=int, help="default: the config's")
    parser.add_argument("--protocol", default="paper", choices=("paper", "config"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--pretrained", default="", help='tiny-CLIP weights ("" = the shipped checkpoint)')
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="further config overrides, applied to every model")
    parser.add_argument("--thresholds", action="store_true",
                        help="also print the thresholded metrics at a threshold picked on held-out images")
    parser.add_argument("--by-size", action="store_true",
                        help="also print the mean AP over the small, medium and large thirds of the labels")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        options = {"dataset.kwargs.num_images": args.images, "dataset.eval_kwargs.num_images": args.eval_images,
                   "train.epochs": args.epochs, "train.batch_size": args.batch}
        config = load_config(args.config, [
            f"model.pretrained={args.pretrained}", "train.progress=false", "train.device=cpu",
            f"train.feature_cache_dir={tmp}/features", f"output_dir={tmp}/runs",
            *(f"{key}={value}" for key, value in options.items() if value is not None), *args.overrides,
        ])
        tc, ds = config["train"], config["dataset"]
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.config}, "
              f"{config['model']['backbone']}, {ds['kwargs']['num_images']} training / "
              f"{ds['eval_kwargs']['num_images']} validation images at {ds['image_size']} px; {tc['epochs']} "
              f"epochs, batch {tc['batch_size']}, lr {tc['lr']:g} (encoder {tc['encoder_lr']:g}); "
              f"SSPA {config['model']['sspa']}; protocol {args.protocol}; seeds {args.seeds}")
        sizes, parts = None, []
        if args.by_size:
            scenes = build_dataset(config, ds["eval_split"], augment=False)
            if not hasattr(scenes, "label_sizes"):
                raise SystemExit(f"--by-size needs synthetic scenes, not {ds['name']}")
            sizes, parts = scenes.label_sizes(), scenes.labels_by_size(len(SIZE_GROUPS))
        rows = []
        for model in args.models:
            with Timer() as timer:
                runs = compare_models(config, [model], seeds=args.seeds, protocol=args.protocol)
            rows.append((model, runs, timer.seconds / len(args.seeds)))
            label_freq = runs[0]["targets"].mean(0)

    columns = COLUMNS[ds["domain"]]
    print(f"\n{'model':<10s} " + " ".join(f"{key:>14s}" for key in columns) + f" {'s/run':>8s}")
    for model, runs, seconds in rows:
        cells = [mean_std([100 * run["metrics"][key] for run in runs]) for key in columns]
        print(f"{model:<10s} " + " ".join(f"{cell:>14s}" for cell in cells) + f" {seconds:8.1f}")
    chance = label_freq[label_freq > 0].mean()  # AP of a constant score = the label's frequency
    print(f"chance level (mAP of a constant score): {100 * chance:.2f}")
    studies = {}
    if args.thresholds:
        metric_set = metric_set_for(ds["domain"])
        studies = {model: [threshold_study(run["scores"], run["targets"], run["masks"], metric_set) for run in runs]
                   for model, runs, _ in rows}
        print_threshold_study(studies, THRESHOLD_METRICS[metric_set])
    by_size = {}
    if sizes is not None:
        by_size = size_groups(rows, sizes, parts)
        print("\nmean AP (%) by the labels' typical object size (longest side / image side): "
              + ", ".join(f"{name} {lo:.2f}-{hi:.2f} ({n} labels)" for name, (lo, hi, n) in by_size["groups"].items()))
        print(f"{'model':<10s} " + " ".join(f"{name:>14s}" for name in SIZE_GROUPS))
        for model, values in by_size["models"].items():
            print(f"{model:<10s} " + " ".join(f"{np.mean(values[name]):14.2f}" for name in SIZE_GROUPS))
    if args.output is not None:
        record = {
            "config": args.config, "command": shlex.join(["python", "benchmarks/compare_models.py", *sys.argv[1:]]),
            "protocol": args.protocol, "seeds": args.seeds, "unit": "%", "columns": list(columns),
            "budget": {"backbone": config["model"]["backbone"], "backbone_sha256": backbone_digest(config),
                       "image_size": ds["image_size"],
                       "train_images": ds["kwargs"]["num_images"], "eval_images": ds["eval_kwargs"]["num_images"],
                       "epochs": tc["epochs"], "batch_size": tc["batch_size"], "lr": tc["lr"]},
            "models": {model: {"values": {key: [100 * run["metrics"][key] for run in runs] for key in columns},
                               "seconds_per_run": round(seconds, 1)} for model, runs, seconds in rows},
            "chance_mAP": 100 * float(chance),
            "thresholds": {model: {key: {kind: [(1 if kind == "threshold" else 100) * study[key][kind]
                                                for study in per_seed] for kind in per_seed[0][key]}
                                   for key in per_seed[0]} for model, per_seed in studies.items()},
            "by_size": by_size,
            **environment(),
        }
        for entry in record["models"].values():
            summaries = {k: seed_summary(v) for k, v in entry["values"].items()}
            entry["mean"] = {k: s["mean"] for k, s in summaries.items()}
            entry["std"] = {k: s["std"] for k, s in summaries.items()}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=1))
        print(f"-> {args.output}")


def size_groups(rows: list, sizes: np.ndarray, parts: list[np.ndarray]) -> dict:
    """Each model's mean AP over the label groups ``parts`` (one per :data:`SIZE_GROUPS`, from
    ``SyntheticScenes.labels_by_size``): ``{"groups": {name: (smallest, largest, labels)},
    "models": {model: {name: [mean AP per seed, %]}}}``."""
    groups = {name: (float(sizes[part].min()), float(sizes[part].max()), len(part))
              for name, part in zip(SIZE_GROUPS, parts)}
    models = {}
    for model, runs, _ in rows:
        per_label = [average_precision_per_class(run["scores"], run["targets"], run["masks"]) for run in runs]
        models[model] = {name: [100 * float(np.nanmean(ap[part])) for ap in per_label]
                         for name, part in zip(SIZE_GROUPS, parts)}
    return {"groups": groups, "models": models}


def print_threshold_study(studies: dict[str, list[dict[str, dict[str, float]]]], keys: tuple[str, ...]) -> None:
    """Per model and thresholded metric (mean over the seeds, %): at 0.5, held out (a threshold
    picked on one half of the validation images, scored on the other; the mean threshold picked)
    and the best over thresholds on all of them (an oracle)."""
    print("\nthe thresholded metrics: at 0.5 | with a threshold picked on one half of the validation images and "
          "scored on the other (both ways; the threshold picked) | the best threshold on all (an oracle)")
    print(f"{'model':<10s} " + " ".join(f"{key + ' at 0.5':>11s} {key + ' held out (t)':>20s} {key + ' best':>9s}"
                                        for key in keys))
    for model, per_seed in studies.items():
        cells = []
        for key in keys:
            mean = {kind: float(np.mean([study[key][kind] for study in per_seed])) for kind in per_seed[0][key]}
            held_out = f"{100 * mean['held out']:6.2f} ({mean['threshold']:.2f})"
            cells.append(f"{100 * mean['at 0.5']:11.2f} {held_out:>20s} {100 * mean['best']:9.2f}")
        print(f"{model:<10s} " + " ".join(cells))


if __name__ == "__main__":
    main()
