"""``sspa pretrain``, ``describe`` and ``data``: what runs draw on, the tiny CLIP of the offline
world, the label descriptions and the dataset downloads."""

from __future__ import annotations

import argparse

from sspa_core.cli.common import output_path


def configure_pretrain(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--output-dir", help="write DIR/<backbone>.pt and .meta.json (default: the shipped "
                                             "data/tiny_clip/)")


def run_pretrain(args: argparse.Namespace) -> int:
    from sspa_core.backbone import pretraining_output
    from sspa_core.engine.pretraining import pretrain_tiny_clip

    out = output_path(args, f"{args.backbone}.pt") or pretraining_output(args.backbone)
    meta = pretrain_tiny_clip(args.backbone, out, steps=args.steps, batch_size=args.batch_size,
                              lr=args.lr, warmup_steps=args.warmup_steps, num_images=args.num_images,
                              image_size=args.image_size, seed=args.seed, domains=tuple(args.domains),
                              patch_weight=args.patch_weight, check_images=args.check_images)
    print(f"sspa pretrain: {args.backbone} -> {out} ({meta['file_bytes'] / 1e6:.1f} MB); "
          f"loss {meta['loss_first']:.3f} -> {meta['loss_last']:.3f}; "
          f"{meta['total_seconds']:.0f} s (render {meta['render_seconds']:.0f} s)")
    return 0


def configure_describe(parser: argparse.ArgumentParser) -> None:
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


def describe_command(args: argparse.Namespace) -> str:
    """The ``sspa describe`` command line of ``args`` with every setting spelt out, as a
    description file's provenance records it."""
    import shlex

    words = ["sspa", "describe", "--labels", args.labels, "--domain", args.domain,
             *(["--llm", args.llm] if args.llm else []), "--output-dir", args.output_dir,
             *(["--naive"] if args.naive else []), "--batch-size", str(args.batch_size),
             "--max-new-tokens", str(args.max_new_tokens), "--seed", str(args.seed)]
    return shlex.join(words)


def run_describe(args: argparse.Namespace) -> int:
    from sspa_core.data.labels import label_list
    from sspa_core.descriptions import generate_descriptions, save_description_file

    if not args.output_dir:
        raise ValueError("the argument --output-dir is required")
    labels, label_set = label_list(args.labels)
    doc = generate_descriptions(
        labels, args.domain, args.llm or None, naive=args.naive, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, seed=args.seed, label_set=label_set, command=describe_command(args),
    )
    out = save_description_file(doc, output_path(args, f"{label_set}.json"))
    post = doc["provenance"]["postprocess"]
    print(f"wrote {len(labels)} descriptions to {out} (repaired {len(post['repaired'])}, "
          f"truncated {len(post['truncated'])}, fallback {len(post['fallback'])}) in "
          f"{doc['provenance']['generation']['seconds']:.0f} s")
    return 0


def configure_data(parser: argparse.ArgumentParser) -> None:
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


def run_data(args: argparse.Namespace) -> int:
    from sspa_core.data.check import check_dataset, format_report

    label_names, reports = check_dataset(args.name, args.root, args.splits, not args.no_decode, args.workers)
    print(format_report(args.name, label_names, reports, args.max_listed))
    return 0 if all(r.ok for r in reports) else 1
