"""What a training checkpoint costs on disk, per model, under the paper's protocol.

Run: ``python benchmarks/bench_checkpoints.py [--config coco] [--backbone ViT-B-16]
[--image-size N] [--models zeroshot unid dualcoop clip_ft sspa]``.

Each model is built as ``compare_models`` builds it (``sspa_core.engine.PAPER_PROTOCOL``: SSPA and
Uni-D train the image encoder, CLIP-FT both encoders, the DualCoOp-style head keeps CLIP frozen)
inside the engine's ``Trainer``. One AdamW step on zero gradients creates the optimiser's two
moments, which every checkpoint after the first step holds; ``Trainer.save("last.pt")`` then
writes the checkpoint into a temporary folder. Printed per model: the trained parameters, the
file size, the write time, and the time of ``best.pt`` as a hard link to it (``atomic_link``).
Weights are random (no download): the size depends on the architecture and the config's label
count, not on the weights or the data. Notebook 06 keeps the ``last.pt`` of all five models, and
a ``best.pt`` beside each one whose best epoch was not its last.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import torch
from _common import benchmark_parser

from sspa_core.config import load_config, merge, validate_config
from sspa_core.data.labels import load_label_names
from sspa_core.engine import PAPER_PROTOCOL, Trainer, build_model_from_config
from sspa_core.training import atomic_link

MODELS = ("zeroshot", "unid", "dualcoop", "clip_ft", "sspa")


def measure(config: dict, name: str, label_names: list[str], folder: Path) -> dict[str, float]:
    """Build ``name`` under the paper's protocol, take one optimiser step and save its checkpoint."""
    run = validate_config(merge(config, {"model": {"name": name}, "output_dir": str(folder / name),
                                         "train": PAPER_PROTOCOL.get(name, {})}))
    device = torch.device("cpu")
    _, model, loss_fn = build_model_from_config(run, label_names, device)
    trainer = Trainer(model, loss_fn, label_names, name, run, folder / name, device)
    if trainer.optimizer is not None:  # the moments exist from the first step on
        for param in trainer.trainable:
            param.grad = torch.zeros_like(param)
        trainer.optimizer.step()
    start = time.perf_counter()
    last = trainer.save("last.pt")
    written = time.perf_counter() - start
    start = time.perf_counter()
    atomic_link(last, last.with_name("best.pt"))
    linked = time.perf_counter() - start
    size = last.stat().st_size
    for path in last.parent.iterdir():
        path.unlink()
    return {"trained": sum(p.numel() for p in trainer.trainable), "bytes": size, "write_s": written,
            "link_s": linked}


def main(argv: list[str] | None = None) -> None:
    parser = benchmark_parser(__doc__, threads=False)
    parser.add_argument("--config", default="coco", help="a config of a real dataset (its labels set the heads)")
    parser.add_argument("--backbone", default="ViT-B-16", help="open_clip model name (random weights)")
    parser.add_argument("--image-size", type=int, help="default: the config's")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args(argv)

    overrides = [f"model.backbone={args.backbone}", "model.pretrained=", "train.device=cpu"]
    if args.image_size:
        overrides.append(f"dataset.image_size={args.image_size}")
    config = load_config(args.config, overrides)
    label_names = load_label_names(config["dataset"]["name"])
    print(f"torch {torch.__version__}, {platform.machine()}; {args.config} config, {args.backbone} at "
          f"{config['dataset']['image_size']} px, {len(label_names)} labels; paper protocol")
    print(f"\n{'model':<10s} {'trained params':>15s} {'last.pt':>11s} {'write s':>8s} {'best.pt link s':>15s}")
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            row = measure(config, name, label_names, Path(tmp))
            total += row["bytes"]
            print(f"{name:<10s} {row['trained'] / 1e6:13.1f} M {row['bytes'] / 1e6:8.1f} MB {row['write_s']:8.1f} "
                  f"{row['link_s']:15.4f}")
    print(f"\nall {len(args.models)} last.pt files: {total / 1e9:.2f} GB; with a separate best.pt beside each: "
          f"{2 * total / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
