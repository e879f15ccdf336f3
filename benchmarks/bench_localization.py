"""Does the evidence fall on the objects? The localization of the SSPA heads and of the bare CLIP.

    python benchmarks/bench_localization.py [--quick] [--images N] [--checkpoint PATH ...]
                                            [--clip PATH] [--config NAME --data-root PATH]
                                            [--threads N] [--json FILE]

Per domain and per head (the shipped heads ``data/heads/*.pt`` by default, or any training
checkpoint with ``--checkpoint``), on the first ``--images`` validation scenes (500; ``--quick``:
150), with the scenes' boxes on the head's patch grid (:mod:`sspa_core.localization`):

- the pointing game of the soft aggregator's weights w (eq. 15) over the present labels, its
  chance level and w's median mass ratio on the boxes (mass on the boxes over their area share);
- the same for the visual-to-semantic attention (eq. 3, 12) and the DSF attention (eq. 5);
- the visual gate (eq. 11): the ROC AUC of its channel mean for object against background patches,
  its best single channel's AUC, the mean on each, and its spread across patches against channels;
- the bare CLIP, with no head: each patch against "A photo of a {label}." (the pointing game of
  that map, and the best-patch zero-shot mAP: a label scored by its most similar patch).

``--clip PATH`` scores only the bare CLIP of a tiny-CLIP checkpoint (no head), e.g. a candidate
from ``sspa pretrain`` (``--clip ""``: the shipped one), on the three domains, with its ViT's dense
features chosen by ``--dense-features`` (``model.dense_features``: tokens, maskclip, sclip,
clearclip).

``--config NAME --data-root PATH`` scores a real dataset whose annotations hold boxes (``coco``,
``voc`` with ``Annotations/``; data/README.md) instead of the synthetic domains: a seeded random
``--images`` of its evaluation split, at each model's input size. The models are the
``--checkpoint``s (trained on that dataset's labels), or else the bare CLIP of ``--clip`` (default:
the shipped one). A dataset without boxes is refused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sspa_core.backbone import DENSE_FEATURES
from sspa_core.data import SYNTHETIC_DATASETS
from sspa_core.localization import gate_scores, map_scores, model_maps, patch_text_maps, scene_masks, scene_objects
from sspa_core.metrics import mean_average_precision
from sspa_core.prompting import TEMPLATE

DOMAIN_CONFIGS = ("synthetic_natural", "synthetic_pedestrian", "synthetic_remote_sensing")


def _dataset(config: dict, num_images: int, data: dict | None = None):
    """The evaluation split of ``config``'s dataset, or of ``data``'s (a config whose dataset
    section replaces it, at ``config``'s input size): the first ``num_images`` synthetic scenes,
    or a seeded random ``num_images`` of a real dataset. One without boxes ends the run."""
    from sspa_core.config import merge
    from sspa_core.engine.runs import build_dataset

    if data is not None:
        config = {**config, "dataset": {**data["dataset"], "image_size": config["dataset"]["image_size"]}}
    ds = config["dataset"]
    size = "num_images" if ds["name"] in SYNTHETIC_DATASETS else "max_images"
    config = merge(config, {"dataset": {"eval_kwargs": {**ds["eval_kwargs"], size: num_images}}})
    dataset = build_dataset(config, ds["eval_split"], augment=False)
    if not dataset.has_boxes:
        raise SystemExit(f"bench_localization: {ds['name']} at {ds['root']} has no boxes to score the maps "
                         "against (data/README.md says which loaders keep them)")
    return dataset


def _bare_clip(backbone, maps: dict, masks: dict, label_names: list[str]) -> dict[str, float]:
    with torch.no_grad():
        texts = backbone.encode_text([TEMPLATE.format(label=name) for name in label_names]).float().numpy()
    similarity = patch_text_maps(maps["patches"], texts)
    present = maps["targets"] > 0
    scores = map_scores(similarity, masks["inside"], masks["cover"], present)
    return {"pointing": scores["pointing"], "chance": scores["chance"],
            "best_patch_mAP": mean_average_precision(similarity.max(axis=2), maps["targets"])}


def score(backbone, dataset, num_images: int, head=None) -> dict[str, dict[str, float]]:
    """Every measure of the module docstring for one backbone (and head) on one dataset."""
    maps = model_maps(backbone, dataset, num_images, head)
    grid = int(round(maps["patches"].shape[1] ** 0.5))
    labels = list(dataset.label_names)
    masks = scene_masks([scene_objects(dataset, i) for i in range(len(maps["targets"]))], labels, grid)
    present = maps["targets"] > 0
    result = {name: map_scores(maps[name], masks["inside"], masks["cover"], present)
              for name in ("weights", "text", "dsf") if name in maps}
    if "gate" in maps:
        result["gate"] = gate_scores(maps["gate"], masks["objects"], masks["background"])
    result["bare_clip"] = _bare_clip(backbone, maps, masks, labels)
    return result


def _print(name: str, result: dict[str, dict[str, float]]) -> None:
    print(f"\n{name}")
    for part in ("weights", "text", "dsf"):
        if part in result:
            r = result[part]
            print(f"  {part:<8s} pointing {r['pointing']:.3f} (chance {r['chance']:.3f}), "
                  f"mass ratio {r['mass_ratio']:.2f}, {r['pairs']} present labels")
    if "gate" in result:
        g = result["gate"]
        print(f"  gate     AUC object vs background {g['auc']:.3f} (best channel {g['best_channel_auc']:.3f}), "
              f"mean {g['object_mean']:.4f} / {g['background_mean']:.4f}, spread patches/channels {g['spread']:.3f}")
    b = result["bare_clip"]
    print(f"  bare CLIP pointing {b['pointing']:.3f} (chance {b['chance']:.3f}), "
          f"best-patch mAP {b['best_patch_mAP']:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs="*", default=None,
                        help="training checkpoints or heads (default: the shipped heads)")
    parser.add_argument("--clip", default=None, help="score only the bare CLIP of this tiny-CLIP checkpoint")
    parser.add_argument("--backbone", default="sspa-tiny-vit", help="the tiny CLIP of --clip")
    parser.add_argument("--dense-features", default="tokens", choices=DENSE_FEATURES,
                        help="the dense features of --clip's ViT (model.dense_features)")
    parser.add_argument("--config", default=None,
                        help="score this real dataset's config (coco, voc) instead of the synthetic domains")
    parser.add_argument("--data-root", default=None, help="the dataset folder of --config")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="150 scenes per domain")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if (args.config is None) != (args.data_root is None):
        parser.error("--config and --data-root go together")
    if args.threads:
        torch.set_num_threads(args.threads)
    from sspa_core.config import load_config, merge

    data = None if args.config is None else merge(load_config(args.config), {"dataset": {"root": args.data_root}})
    num_images = 150 if args.quick else args.images
    where = ("validation scenes per domain" if data is None
             else f"images of {args.config} {data['dataset']['eval_split']}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {num_images} {where}")
    results: dict[str, dict] = {}
    start = time.perf_counter()
    if args.clip is not None or (data is not None and args.checkpoint is None):
        from sspa_core.backbone import load_backbone

        clip = args.clip or ""
        backbone = load_backbone(args.backbone, pretrained=clip, dense_features=args.dense_features)
        for name in DOMAIN_CONFIGS if data is None else [args.config]:
            config = merge(data or load_config(name), {"model": {"backbone": args.backbone, "pretrained": clip},
                                                       "dataset": {"image_size": backbone.image_size}})
            dataset = _dataset(config, num_images)
            results[name] = score(backbone, dataset, num_images)
            _print(f"{name} (bare CLIP {clip or 'shipped'}, {args.dense_features})", results[name])
    else:
        from sspa_core.engine.heads import shipped_head
        from sspa_core.engine.runs import load_trained_model

        checkpoints = args.checkpoint or [str(shipped_head(name)) for name in DOMAIN_CONFIGS]
        for path in checkpoints:
            model, config, ckpt = load_trained_model(path, "cpu")
            dataset = _dataset(config, num_images, data)
            if list(ckpt["label_names"]) != list(dataset.label_names):
                raise SystemExit(f"bench_localization: {path} was trained on {len(ckpt['label_names'])} labels "
                                 f"of {config['dataset']['name']}, not on the {dataset.num_classes} of {args.config}")
            results[path] = score(model.backbone, dataset, num_images, model)
            _print(f"{path} ({config['dataset']['name'] if data is None else args.config})", results[path])
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
