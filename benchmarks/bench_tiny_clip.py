"""The shipped tiny CLIPs: pretraining cost (read from the metadata JSON beside each checkpoint),
checkpoint size, parameter counts, and zero-shot mAP (the ``zeroshot`` baseline's prompt
"A photo of a {label}.", :func:`sspa_core.baselines.zero_shot_scores`) on the natural
test split against chance level (the mAP of a constant scorer: the mean label frequency over
the labels with a positive), at the pretraining size and at larger input sizes.

    python benchmarks/bench_tiny_clip.py [--num-images 1000] [--sizes 0 224] [--threads N]

``--sizes 0`` means each model's pretraining size; other sizes interpolate the positional
embedding. ``--retrain`` first re-runs the shipped recipe into a temporary folder and times it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from sspa_core.backbone import TINY_MODELS, load_backbone, shipped_checkpoint
from sspa_core.baselines import zero_shot_scores
from sspa_core.data.synthetic import SyntheticScenes
from sspa_core.metrics import mean_average_precision
from sspa_core.tiny_clip import metadata_path, pretrain_tiny_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=1000, help="natural test scenes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 224])
    parser.add_argument("--models", nargs="+", default=list(TINY_MODELS), choices=TINY_MODELS)
    parser.add_argument("--retrain", action="store_true", help="time the shipped recipe again")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}, natural test scenes: {args.num_images}")

    for name in args.models:
        path = shipped_checkpoint(name)
        if args.retrain:
            path = Path(tempfile.mkdtemp()) / f"{name}.pt"
            pretrain_tiny_clip(name, path, progress=False)
        meta = json.loads(metadata_path(path).read_text())
        bb = load_backbone(name, pretrained=str(path))
        params = sum(p.numel() for p in bb.clip.parameters())
        vision = sum(p.numel() for p in bb.clip.visual.parameters())
        embedding = bb.clip.token_embedding.weight.numel()
        print(f"\n{name}: {path} ({path.stat().st_size / 1e6:.1f} MB, fp16)")
        print(f"  parameters: {params / 1e6:.2f} M (vision {vision / 1e6:.2f} M, "
              f"token embedding {embedding / 1e6:.2f} M, rest of text {(params - vision - embedding) / 1e6:.2f} M)")
        print(f"  pretraining: {meta['steps']} steps x {meta['batch_size']} at {meta['image_size']} px, "
              f"{meta['num_images']} scenes of {'/'.join(meta['domains'])}; wall {meta['total_seconds'] / 60:.1f} min "
              f"(render {meta['render_seconds']:.0f} s), process CPU {meta['cpu_seconds'] / 60:.1f} min "
              f"on {meta['threads']} threads; loss {meta['loss_first']:.3f} -> {meta['loss_last']:.3f}")
        for size in args.sizes:
            size = size or meta["image_size"]
            bb = load_backbone(name, pretrained=str(path), image_size=size)
            scenes = SyntheticScenes("natural", "test", num_images=args.num_images, image_size=size)
            start = time.perf_counter()
            scores, targets = zero_shot_scores(bb, scenes)
            seconds = time.perf_counter() - start
            present = targets.sum(0) > 0
            chance = float(targets.mean(0)[present].mean())
            zero_shot = mean_average_precision(scores, targets)
            print(f"  zero-shot mAP at {size} px: {zero_shot:.4f} vs chance {chance:.4f} "
                  f"= {zero_shot / chance:.2f}x ({len(scenes) / seconds:.0f} img/s incl. rendering)")


if __name__ == "__main__":
    main()
