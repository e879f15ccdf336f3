"""``sspa config``, ``train``, ``eval``, ``predict`` and ``export``: a training run, the config it
resolves, and what is done with its checkpoints."""

from __future__ import annotations

import argparse
import functools
import json
import operator
import sys

from sspa_core.cli.common import add_overrides, output_path


def configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="a shipped config name (e.g. synthetic_natural, coco) or a YAML path")
    add_overrides(parser, "train.lr=3e-4")
    parser.add_argument("--output-dir", help="where checkpoints, logs and the resolved config go "
                                             "(default: outputs/<dataset>/<model>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                        help="continue a run (default: <output-dir>/checkpoints/last.pt)")
    parser.add_argument("--overwrite", action="store_true",
                        help="train afresh into an output folder that holds a run, replacing it")


def _interrupted(args: argparse.Namespace, config: dict) -> int:
    """Ctrl-C during ``sspa train``: one line saying where the last checkpoint is and how to go on."""
    import shlex

    from sspa_core.engine import default_output_dir

    output_dir = default_output_dir(config)
    command = ["sspa", "train", "--config", args.config, *(a for o in args.overrides for a in ("--set", o)),
               *(["--output-dir", args.output_dir] if args.output_dir else [])]
    last = output_dir / "checkpoints" / "last.pt"
    if last.is_file():
        print(f"sspa train: interrupted; the last checkpoint is {last}, and resuming replays the run exactly: "
              f"{shlex.join([*command, '--resume'])}", file=sys.stderr)
    else:
        print(f"sspa train: interrupted before the first checkpoint; start again with: "
              f"{shlex.join([*command, '--overwrite'])}", file=sys.stderr)
    return 130


def run_train(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from sspa_core.config import load_config
    from sspa_core.engine import train_from_config

    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    config = load_config(args.config, overrides)
    try:
        trainer = train_from_config(config, resume=args.resume, overwrite=args.overwrite)
    except KeyboardInterrupt:
        return _interrupted(args, config)
    if trainer.dist.is_main:
        last = trainer.history[-1]
        monitor = config["train"]["monitor"]
        print(f"{monitor} {last[monitor]:.4f} after epoch {last['epoch']}; best {trainer.best['value']:.4f} "
              f"(epoch {trainer.best['epoch']}); outputs in {trainer.output_dir}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def configure_config(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the resolved config, each value with where it came from "
                                           "(default, the config file or --set) and what it means")
    which = show.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="a shipped config name (e.g. synthetic_natural, coco) or a YAML path")
    which.add_argument("--pretrain", metavar="TINY_CLIP",
                       help="the pretraining recipe of a tiny CLIP (sspa-tiny-vit, sspa-tiny-rn) instead")
    add_overrides(show, "train.lr=3e-4")


def run_config(args: argparse.Namespace) -> int:
    from sspa_core.config import describe_key, load_config_with_sources

    if args.pretrain:
        rows = _pretrain_rows(args.pretrain, args.overrides)
    else:
        config, sources = load_config_with_sources(args.config, args.overrides)
        rows = [(key, json.dumps(functools.reduce(operator.getitem, key.split("."), config)), source,
                 describe_key(key)) for key, source in sources.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for key, value, source, doc in rows:
        print(f"{key:<{widths[0]}}  {value:<{widths[1]}}  {source:<{widths[2]}}  # {doc}")
    return 0


def _pretrain_rows(name: str, overrides: list[str]) -> list[tuple[str, str, str, str]]:
    """``(setting, value, source, meaning)`` of tiny CLIP ``name``'s pretraining recipe: the
    schema's default, the model's recipe (``sspa_core.tiny_clip.DEFAULTS``) or ``--set``."""
    from dataclasses import replace

    from sspa_core.config import PRETRAIN_SCHEMA, parse_override
    from sspa_core.tiny_clip import DEFAULTS

    if name not in DEFAULTS:
        raise ValueError(f"unknown tiny CLIP {name!r}; valid: {', '.join(DEFAULTS)}")
    given: dict = {}
    for text in overrides:
        for key, value in parse_override(text).items():
            if key not in PRETRAIN_SCHEMA or isinstance(value, dict):
                raise ValueError(f"unknown pretraining setting {key!r}; valid: {', '.join(PRETRAIN_SCHEMA)}")
            given[key] = value
    recipe = replace(DEFAULTS[name], **given)
    return [(key, json.dumps(getattr(recipe, key)),
             "--set" if key in given else "default" if getattr(DEFAULTS[name], key) == setting.default
             else "sspa_core/tiny_clip.py", setting.doc) for key, setting in PRETRAIN_SCHEMA.items()]


def _add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by sspa train")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--weights", choices=("ema", "raw"),
                        help="the moving-average (ema) or the raw weights (default: those the run chose, "
                             "train.eval_weights)")
    add_overrides(parser, "dataset.root=/data/coco (patches the stored config)")


def configure_eval(parser: argparse.ArgumentParser) -> None:
    _add_checkpoint_arguments(parser)
    parser.add_argument("--split", help="dataset split (default: the config's eval_split)")
    parser.add_argument("--output-dir", help="also write the metrics to DIR/eval.json (DIR/eval_<split>.json)")


def run_eval(args: argparse.Namespace) -> int:
    from sspa_core.engine import evaluate_checkpoint, require_writable_dir

    path = output_path(args, f"eval_{args.split}.json" if args.split else "eval.json")
    if path is not None:
        require_writable_dir(path.parent, "--output-dir")
    metrics = evaluate_checkpoint(args.checkpoint, args.split, args.device, args.weights, args.overrides)
    for key, value in metrics.items():
        print(f"{key:>28s}  {value:.4f}")
    if path is not None:
        path.write_text(json.dumps(metrics, indent=1))
        print(f"metrics written to {path}")
    return 0


def configure_predict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files")
    _add_checkpoint_arguments(parser)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="a label is predicted when its score is at least this (default 0.5)")
    parser.add_argument("--output-dir", help="write the labels (predictions.json) and the patch-importance "
                                             "and gate maps of the images (maps.png) here")


def _trained_on(config: dict, ckpt: dict) -> str:
    """What a checkpoint's model was trained on, in one line (a photo unlike it is out of domain)."""
    ds, mc = config["dataset"], config["model"]
    world = "; synthetic scenes: real photos are out of its domain" if ds["name"].startswith("synthetic") else ""
    return (f"model {mc['name']} ({mc['backbone']}) trained on {ds['name']} ({ds['domain']} domain, "
            f"{len(ckpt['label_names'])} labels) at {ds['image_size']}x{ds['image_size']} px{world}")


def run_predict(args: argparse.Namespace) -> int:
    from sspa_core.data.images import read_image
    from sspa_core.engine import (
        load_trained_model,
        predict_images,
        require_writable_dir,
        resolve_device,
        top_labels,
    )

    if not 0 <= args.threshold <= 1:
        raise ValueError(f"--threshold must be between 0 and 1, got {args.threshold}")
    output_dir = require_writable_dir(args.output_dir, "--output-dir") if args.output_dir else None
    photos = [read_image(path) for path in args.images]  # every file is checked before the model loads
    device = resolve_device(args.device)
    model, config, ckpt = load_trained_model(args.checkpoint, device, args.weights, args.overrides)
    scores, outputs = predict_images(model, config["dataset"]["image_size"], photos, device)
    label_names = list(ckpt["label_names"])
    rows = top_labels(scores, label_names, args.top_k)
    predicted = [[label_names[j] for j in row.argsort(descending=True).tolist() if row[j] >= args.threshold]
                 for row in scores]  # the labels at or above the threshold, highest score first
    print(_trained_on(config, ckpt))
    for path, row, labels in zip(args.images, rows, predicted):
        print(f"{path}: {', '.join(labels) or 'no label'} at score >= {args.threshold:g}")
        for label, score in row:
            print(f"  {score:.3f}  {label}")
    if output_dir is not None:
        predictions = [{"image": str(p), "threshold": args.threshold, "labels": labels,
                        "top": [{"label": label, "score": score} for label, score in row]}
                       for p, row, labels in zip(args.images, rows, predicted)]
        (output_dir / "predictions.json").write_text(json.dumps(
            {"trained_on": _trained_on(config, ckpt), "predictions": predictions}, indent=1))
        import matplotlib

        matplotlib.use("Agg")
        from sspa_core.viz import prediction_figure

        size = config["dataset"]["image_size"]
        figure = prediction_figure([photo.resize((size, size)) for photo in photos], scores, label_names,
                                   outputs.get("patch_weights"), outputs.get("gates", {}).get("visual"),
                                   top_k=min(args.top_k, 3))
        figure.savefig(output_dir / "maps.png", dpi=120, bbox_inches="tight")
        print(f"outputs written to {output_dir}")
    return 0


def configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a best.pt or last.pt written by sspa train")
    parser.add_argument("--output-dir", help="write DIR/<dataset>.pt and .meta.json (default: the shipped data/heads/)")
    parser.add_argument("--command", dest="train_command", default="",
                        help="the command that trained the checkpoint, recorded in the metadata")


def run_export(args: argparse.Namespace) -> int:
    from sspa_core.engine import load_checkpoint, require_writable_dir
    from sspa_core.engine.heads import HEADS_DIR, export_head

    name = load_checkpoint(args.checkpoint)["config"]["dataset"]["name"]
    folder = require_writable_dir(args.output_dir or HEADS_DIR, "--output-dir")
    meta = export_head(args.checkpoint, folder / f"{name}.pt", args.train_command)
    check = meta["check"]
    print(f"sspa export: {args.checkpoint} -> {folder / name}.pt ({meta['file_bytes'] / 1e6:.2f} MB); "
          f"{check['metric']} {check['value']:.4f} on {check['num_images']} {check['split']} images")
    return 0
