"""The ``sspa`` command line: every sub-command's arguments, and thin functions that call the library.

The flags agree across commands: ``--output-dir DIR`` is the folder a command writes to,
``--set KEY=VALUE`` overrides a value (repeatable), ``--llm`` names a language model and
``--backbone`` a CLIP. Flags are not abbreviated (``--out`` is not ``--output-dir``). Only the
chosen sub-command's modules are imported.
``python -m sspa_core.cli`` is the same command (``torchrun ... -m sspa_core.cli train ...``).

A known failure (:mod:`sspa_core.errors`, and the standard exceptions of :func:`exit_code`) is
reported as one line naming the file or key at fault, with exit code 2 for bad input and 1 for a
run that cannot go on; ``sspa --debug COMMAND ...`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

DESCRIPTION = "sspa: train, evaluate and explain SSPA and its baselines; run the notebooks; check datasets."
OVERRIDE_HELP = "override a value (read as YAML), e.g. --set {example} (repeatable)"


def _add_overrides(parser: argparse.ArgumentParser, example: str, *short: str) -> None:
    parser.add_argument("--set", *short, dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=OVERRIDE_HELP.format(example=example))


def _output_path(args: argparse.Namespace, name: str) -> Path | None:
    """The file a command writes: ``<--output-dir>/<name>``, or None without ``--output-dir``."""
    return Path(args.output_dir) / name if args.output_dir else None


# ----------------------------------------------------------------------------- train, eval, predict


def _configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="a shipped config name (e.g. synthetic_natural, coco) or a YAML path")
    _add_overrides(parser, "train.lr=3e-4")
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


def _run_train(args: argparse.Namespace) -> int:
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


def _add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by sspa train")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--no-ema", action="store_true",
                        help="use the raw weights (default: the weights the run chose, see train.eval_weights)")
    _add_overrides(parser, "dataset.root=/data/coco (patches the stored config)")


def _configure_eval(parser: argparse.ArgumentParser) -> None:
    _add_checkpoint_arguments(parser)
    parser.add_argument("--split", help="dataset split (default: the config's eval_split)")
    parser.add_argument("--output-dir", help="also write the metrics to DIR/eval.json (DIR/eval_<split>.json)")


def _run_eval(args: argparse.Namespace) -> int:
    from sspa_core.engine import evaluate_checkpoint, require_writable_dir

    path = _output_path(args, f"eval_{args.split}.json" if args.split else "eval.json")
    if path is not None:
        require_writable_dir(path.parent, "--output-dir")
    weights = False if args.no_ema else None  # None: the weights the run chose
    metrics = evaluate_checkpoint(args.checkpoint, args.split, args.device, weights, args.overrides)
    for key, value in metrics.items():
        print(f"{key:>28s}  {value:.4f}")
    if path is not None:
        path.write_text(json.dumps(metrics, indent=1))
        print(f"metrics written to {path}")
    return 0


def _configure_predict(parser: argparse.ArgumentParser) -> None:
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


def _run_predict(args: argparse.Namespace) -> int:
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
    model, config, ckpt = load_trained_model(args.checkpoint, device, False if args.no_ema else None, args.overrides)
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


# ----------------------------------------------------------------------------- the offline world, data


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a best.pt or last.pt written by sspa train")
    parser.add_argument("--output-dir", help="write DIR/<dataset>.pt and .json (default: the shipped data/heads/)")
    parser.add_argument("--command", dest="train_command", default="",
                        help="the command that trained the checkpoint, recorded in the metadata")


def _run_export(args: argparse.Namespace) -> int:
    from sspa_core.engine import load_checkpoint, require_writable_dir
    from sspa_core.engine.heads import HEADS_DIR, export_head

    name = load_checkpoint(args.checkpoint)["config"]["dataset"]["name"]
    folder = require_writable_dir(args.output_dir or HEADS_DIR, "--output-dir")
    meta = export_head(args.checkpoint, folder / f"{name}.pt", args.train_command)
    check = meta["check"]
    print(f"sspa export: {args.checkpoint} -> {folder / name}.pt ({meta['file_bytes'] / 1e6:.2f} MB); "
          f"{check['metric']} {check['value']:.4f} on {check['num_images']} {check['split']} images")
    return 0


def _configure_pretrain(parser: argparse.ArgumentParser) -> None:
    from sspa_core.backbone import TINY_MODELS
    from sspa_core.domains import DOMAINS

    parser.add_argument("--backbone", default="sspa-tiny-vit", choices=TINY_MODELS, help="the tiny CLIP to pretrain")
    parser.add_argument("--steps", type=int, help="default: the shipped recipe (sspa_core.tiny_clip.DEFAULTS)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--warmup-steps", type=int, help="linear warm-up before the cosine decay")
    parser.add_argument("--num-images", type=int, help="training scenes over all domains")
    parser.add_argument("--image-size", type=int, help="default: the model config's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS))
    parser.add_argument("--patch-weight", type=float, default=None,
                        help="weight of the patch-text loss on the labels' boxes (default 1; 0: captions only)")
    parser.add_argument("--check-images", type=int, default=200,
                        help="natural validation scenes of the zero-shot check in the metadata (0: none)")
    parser.add_argument("--output-dir", help="write DIR/<backbone>.pt and .json (default: the shipped "
                                             "data/tiny_clip/)")


def _run_pretrain(args: argparse.Namespace) -> int:
    from sspa_core.backbone import pretraining_output
    from sspa_core.engine.pretraining import pretrain_tiny_clip

    out = _output_path(args, f"{args.backbone}.pt") or pretraining_output(args.backbone)
    meta = pretrain_tiny_clip(args.backbone, out, steps=args.steps, batch_size=args.batch_size,
                              lr=args.lr, warmup_steps=args.warmup_steps, num_images=args.num_images,
                              image_size=args.image_size, seed=args.seed, domains=tuple(args.domains),
                              patch_weight=args.patch_weight, check_images=args.check_images)
    print(f"sspa pretrain: {args.backbone} -> {out} ({meta['file_bytes'] / 1e6:.1f} MB); "
          f"loss {meta['loss_first']:.3f} -> {meta['loss_last']:.3f}; "
          f"{meta['total_seconds']:.0f} s (render {meta['render_seconds']:.0f} s)")
    return 0


def _configure_describe(parser: argparse.ArgumentParser) -> None:
    from sspa_core.domains import DOMAINS

    parser.add_argument("--labels", required=True,
                        help="label list: a text file with one label a line, or a shipped name (e.g. coco)")
    parser.add_argument("--domain", default="natural",
                        help=f"prompt template: one of {', '.join(DOMAINS)} or a .yaml file (default natural)")
    parser.add_argument("--llm", default="", help="hub id, local checkpoint directory or .gguf file "
                                                  "(default: the offline SmolLM2-135M-Instruct GGUF)")
    parser.add_argument("--output-dir", help="write DIR/<label set>.json (required)")
    parser.add_argument("--naive", action="store_true", help="ask the bare question, without the in-context prompt")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)


def _run_describe(args: argparse.Namespace) -> int:
    from sspa_core.data.labels import label_list
    from sspa_core.descriptions import generate_descriptions, save_description_file

    if not args.output_dir:
        raise ValueError("the argument --output-dir is required")
    labels, label_set = label_list(args.labels)
    doc = generate_descriptions(
        labels, args.domain, args.llm or None, naive=args.naive, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, seed=args.seed, label_set=label_set,
    )
    out = save_description_file(doc, _output_path(args, f"{label_set}.json"))
    post = doc["provenance"]["postprocess"]
    print(f"wrote {len(labels)} descriptions to {out} (repaired {len(post['repaired'])}, "
          f"truncated {len(post['truncated'])}, fallback {len(post['fallback'])})")
    return 0


def _configure_data(parser: argparse.ArgumentParser) -> None:
    from sspa_core.data import REAL_DATASETS

    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a download: counts per split, label frequencies, "
                                             "missing or unreadable files (exit code 1 on problems)")
    check.add_argument("name", choices=list(REAL_DATASETS), help="dataset name")
    check.add_argument("root", help="dataset root, in the layout of data/README.md")
    check.add_argument("--splits", nargs="+", help="splits to check (default: all)")
    check.add_argument("--no-decode", action="store_true", help="only check that image files exist")
    check.add_argument("--workers", type=int, default=4, help="threads decoding images (default 4)")
    check.add_argument("--max-listed", type=int, default=20, help="bad files listed (default 20)")


def _run_data(args: argparse.Namespace) -> int:
    from sspa_core.data.check import check_dataset, format_report

    label_names, reports = check_dataset(args.name, args.root, args.splits, not args.no_decode, args.workers)
    print(format_report(args.name, label_names, reports, args.max_listed))
    return 0 if all(r.ok for r in reports) else 1


# ----------------------------------------------------------------------------- notebooks


def _configure_notebooks(parser: argparse.ArgumentParser) -> None:
    from sspa_core.notebooks import PROFILES

    parser.add_argument("--profile", default="smoke", choices=PROFILES,
                        help="smoke: CPU, small settings; full: GPU, real data; gpu: GPU, offline")
    parser.add_argument("--dataset", help="a parameter file notebooks/params/NAME.yaml")
    parser.add_argument("--only", nargs="+", metavar="NB", help="notebook names or numbers, e.g. 00 03")
    _add_overrides(parser, "seed=1 (a notebook parameter)", "-p")
    parser.add_argument("--timeout-s", type=float,
                        help="seconds each notebook may run (default: the parameter files' timeout_s; 0 = no limit)")
    parser.add_argument("--output-dir", type=Path, help="default: outputs/notebooks/<profile>[-<dataset>]")
    parser.add_argument("--list", action="store_true", help="print the resolved parameters of each notebook and stop")
    parser.add_argument("--to", nargs="+", default=["html"], choices=["html", "slides"], metavar="FORMAT",
                        help="exports beside each executed notebook: html (always written), slides (reveal.js)")
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="notebooks run at once, each in its own kernel with its share of the CPU cores "
                             "(default 1; 2 on a 2-core CPU takes about 40%% of the time)")


def _run_notebooks(args: argparse.Namespace) -> int:
    from sspa_core.config import parse_override
    from sspa_core.notebooks import NotebookError, dataset_commands, resolve_parameters, run_notebooks

    if args.timeout_s is not None and not 0 <= args.timeout_s < float("inf"):
        raise ValueError(f"--timeout-s must be a number of seconds >= 0 (0 = no limit), got {args.timeout_s}")
    overrides: dict = {}
    for text in args.overrides:
        overrides.update(parse_override(text))
    if args.list:
        for notebook, parameters in resolve_parameters(args.profile, args.dataset, args.only, overrides).items():
            print(f"{notebook.name}: {parameters}")
        if args.dataset is None and args.only is None:
            print("\nper dataset (notebooks/params/<dataset>.yaml; data layouts in data/README.md):")
            for row in dataset_commands():
                print(f"  {row['dataset']} (notebooks {' '.join(row['notebooks'])}):\n"
                      f"    CPU check of a download: {row['smoke']}\n    GPU run: {row['full']}")
        return 0
    start = time.perf_counter()
    try:
        results = run_notebooks(args.profile, args.dataset, args.only, overrides, args.output_dir,
                                timeout_s=args.timeout_s, formats=tuple(args.to), jobs=args.jobs)
    except NotebookError as err:
        print(f"sspa notebooks: FAILED {err}")
        return 1
    total = sum(r.seconds for r in results)
    print(f"sspa notebooks: {len(results)} notebooks in {time.perf_counter() - start:.0f} s "
          f"({total:.0f} s of notebook time, {args.jobs} at once); "
          f"output in {Path(results[0].executed).parent if results else '-'}")
    return 0


# ----------------------------------------------------------------------------- entry point

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]

#: name -> (help, the function adding its arguments, the function running it)
COMMANDS: dict[str, tuple[str, Configure, Run]] = {
    "notebooks": ("run the ordered notebooks with papermill", _configure_notebooks, _run_notebooks),
    "pretrain": ("pretrain (or load) the tiny CLIP of the offline world", _configure_pretrain, _run_pretrain),
    "data": ("inspect and validate a dataset download", _configure_data, _run_data),
    "describe": ("generate label descriptions with an LLM (KAP)", _configure_describe, _run_describe),
    "train": ("train SSPA or a baseline on one dataset", _configure_train, _run_train),
    "eval": ("evaluate a checkpoint", _configure_eval, _run_eval),
    "export": ("write a checkpoint as a shareable head (no optimizer state) with its recipe",
               _configure_export, _run_export),
    "predict": ("top labels of images, with the patch-importance and gate maps", _configure_predict, _run_predict),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``sspa`` parser, with the arguments of ``command`` (only its modules are imported)."""
    parser = argparse.ArgumentParser(prog="sspa", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, run) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if name == command:
            configure(command_parser)
            command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                        help="show the full traceback of an error (also: sspa --debug COMMAND)")
            command_parser.set_defaults(run=run)
    return parser


def exit_code(err: BaseException) -> int | None:
    """The exit code of a known failure, reported as one line: 2 for bad input (an
    :class:`~sspa_core.errors.InputError`, a missing file, a bad value or key), 1 for a run that
    cannot go on (any other :class:`~sspa_core.errors.SSPAError`, a file-system error such as a
    full disk or a refused permission, CUDA out of memory). None for anything else: a bug, shown
    with its traceback."""
    from sspa_core.errors import SSPAError

    if isinstance(err, SSPAError):
        return err.exit_code
    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError, KeyError)):
        return 2
    if isinstance(err, OSError) or _out_of_gpu_memory(err):
        return 1
    return None


def _out_of_gpu_memory(err: BaseException) -> bool:
    torch = sys.modules.get("torch")  # imported by the command if it uses a GPU at all
    return torch is not None and isinstance(err, torch.cuda.OutOfMemoryError)


def _one_line(err: BaseException) -> str:
    """The message of a known failure on one line, with the fix where the exception has none."""
    if isinstance(err, KeyError):
        return f"missing key {err} (sspa --debug ... shows where)"
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        hint = {PermissionError: "; check its permissions or choose another --output-dir"}.get(type(err), "")
        return f"{err.strerror}: {err.filename}{hint}"
    if _out_of_gpu_memory(err):
        return "out of GPU memory; lower train.batch_size or train.eval_batch_size, or set train.amp=true"
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except Exception as err:
        code = exit_code(err)
        if code is None or args.debug:
            raise
        print(f"sspa {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
