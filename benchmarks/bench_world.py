"""The offline world at a glance: for each tiny CLIP, its checkpoint (file size, parameter
counts, pretraining cost and domain mix from the metadata JSON beside it) and one table with a
row per domain of the synthetic scenes (validation split, at the model's pretraining size):
zero-shot mAP of the global image embedding x0 and of the best patch against chance, and the
share of the shipped KAP descriptions of that domain that fit the model's text context.

    python benchmarks/bench_world.py [--num-images 500] [--models NAME ...] [--threads N] [--retrain] [--why]

x0: :func:`sspa_core.baselines.zero_shot_scores` (prompt "A photo of a {label}."); best patch:
:func:`sspa_core.baselines.zero_shot_patch_scores` (per label, the max over the projected patch
tokens X). Chance is the mAP of a constant scorer: the mean label frequency over the labels
with a positive. A description (``data/descriptions/*.json``) fits when its tokens plus the
start and end tokens number at most the context length (the model's own open_clip tokenizer).
``--retrain`` first re-runs the shipped recipe into a temporary folder (tens of minutes).

``--why`` adds, per model, where x0's zero-shot mAP on the natural scenes is lost: the mAP with
other prompt wordings (the bare label, the label with its article, the mean text feature over
the caption templates of pretraining); the per-image average precision (each image ranking the
labels, the mean is sklearn's label-ranking AP) by the number of labels in the scene; the mean
per-label AP by the label's typical object size (quartiles of the median longest side, as a
fraction of the image); and how often an image's own caption is the nearest of all the scenes'
captions (image-to-text R@1); and the text tower alone: the mAP, overall and by object size,
when each scene's own caption feature takes x0's place (what an image tower that matched its
captions exactly would score).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from _common import benchmark_parser, set_threads
from torch.nn import functional as F
from torch.utils.data import DataLoader

from sspa_core.backbone import TINY_MODELS, CLIPBackbone, load_backbone, shipped_checkpoint
from sspa_core.baselines import zero_shot_patch_scores, zero_shot_scores
from sspa_core.data.synthetic import SyntheticScenes
from sspa_core.data.synthetic.captions import object_templates, with_article
from sspa_core.descriptions import DESCRIPTIONS_DIR
from sspa_core.domains import DOMAINS
from sspa_core.engine.pretraining import pretrain_tiny_clip
from sspa_core.errors import InputError
from sspa_core.metrics import average_precision_per_class, mean_average_precision
from sspa_core.paths import metadata_path
from sspa_core.prompting import TEMPLATE

HEADER = f"{'domain':<16}{'labels':>7}{'chance':>8}{'x0 mAP':>16}{'best-patch mAP':>18}{'descriptions fit':>19}"


def description_fit(backbone: CLIPBackbone) -> dict[str, tuple[int, int]]:
    """Per domain, (fitting, total) shipped descriptions: tokens + start/end <= context length."""
    fit: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for path in sorted(DESCRIPTIONS_DIR.glob("*.json")):
        doc = json.loads(path.read_text())
        for sentence in doc["descriptions"].values():
            total[doc["domain"]] += 1
            fit[doc["domain"]] += len(backbone.tokenizer.encode(sentence)) + 2 <= backbone.clip.context_length
    return {domain: (fit[domain], total[domain]) for domain in total}


def describe_checkpoint(name: str, path: Path, backbone: CLIPBackbone, meta: dict) -> None:
    """Print file size, parameter counts, pretraining cost and domain mix."""
    clip = backbone.clip
    params = sum(p.numel() for p in clip.parameters())
    vision = sum(p.numel() for p in clip.visual.parameters())
    embedding = clip.token_embedding.weight.numel()
    print(f"\n{name}: {path} ({path.stat().st_size / 1e6:.1f} MB, fp16)")
    print(f"  input {backbone.image_size} px, {backbone.num_patches()} patches, text context "
          f"{clip.context_length} tokens, joint space {backbone.embed_dim}")
    print(f"  parameters: {params / 1e6:.2f} M (vision {vision / 1e6:.2f} M, token embedding "
          f"{embedding / 1e6:.2f} M, rest of text {(params - vision - embedding) / 1e6:.2f} M)")
    print(f"  pretraining: {meta['steps']} steps x {meta['batch_size']} at {meta['image_size']} px, "
          f"{meta['num_images']} scenes; {meta['total_seconds'] / 60:.1f} min wall (render "
          f"{meta['render_seconds']:.0f} s), process CPU {meta['cpu_seconds'] / 60:.1f} min on "
          f"{meta['threads']} threads; loss {meta['loss_first']:.3f} -> {meta['loss_last']:.3f}")
    mix = meta.get("domain_images")
    if mix:
        total = sum(mix.values())
        print("  domain mix: " + ", ".join(f"{d} {n} ({n / total:.2f})" for d, n in mix.items()))
    else:
        print(f"  domain mix: not recorded (domains {', '.join(meta['domains'])})")
    check = meta.get("zero_shot_check")
    if check:
        print(f"  recorded check: x0 mAP {check['mAP']:.4f} on {check['num_images']} "
              f"{check['domain']} {check['split']} scenes")


def domain_row(backbone: CLIPBackbone, domain: str, num_images: int, fit: tuple[int, int]) -> str:
    """One table row: chance, x0 and best-patch zero-shot mAP (and their ratios to chance)."""
    scenes = SyntheticScenes(domain, "val", num_images=num_images, image_size=backbone.image_size)
    global_scores, targets = zero_shot_scores(backbone, scenes)
    patch_scores, _ = zero_shot_patch_scores(backbone, scenes)
    chance = float(targets.mean(0)[targets.sum(0) > 0].mean())
    x0 = mean_average_precision(global_scores, targets)
    patch = mean_average_precision(patch_scores, targets)
    share = f"{fit[0]}/{fit[1]} ({fit[0] / fit[1]:.0%})" if fit[1] else "none shipped"
    return (f"{domain:<16}{len(scenes.label_names):>7}{chance:>8.4f}{f'{x0:.4f} ({x0 / chance:.1f}x)':>16}"
            f"{f'{patch:.4f} ({patch / chance:.1f}x)':>18}{share:>19}")


@torch.no_grad()
def why_report(backbone: CLIPBackbone, num_images: int) -> list[str]:
    """The ``--why`` lines for one model on ``num_images`` natural validation scenes."""
    scenes = SyntheticScenes("natural", "val", num_images=num_images, image_size=backbone.image_size)
    backbone.eval()
    x0 = F.normalize(torch.cat([backbone.encode_image(batch["image"]).float()
                                for batch in DataLoader(scenes, batch_size=64)]), dim=-1)

    def text(texts: list[str]) -> torch.Tensor:
        return F.normalize(backbone.encode_text(texts).float(), dim=-1)

    labels, targets = scenes.label_names, scenes.targets
    prompts = {
        f'"{TEMPLATE}"': text([TEMPLATE.format(label=name) for name in labels]),
        '"{label}"': text(list(labels)),
        '"a {label}."': text([f"{with_article(name)}." for name in labels]),
        "caption templates (mean)": F.normalize(torch.stack(
            [text([t.format(o=with_article(name)) for name in labels])
             for t in object_templates("natural")]).mean(0), dim=-1),
    }
    lines = [f"  why, on {num_images} natural validation scenes:", "    x0 mAP by prompt: " + ", ".join(
        f"{name} {mean_average_precision((x0 @ t.T).numpy(), targets):.4f}" for name, t in prompts.items())]
    template = prompts[f'"{TEMPLATE}"']
    scores = (x0 @ template.T).numpy()
    per_image = average_precision_per_class(scores.T, targets.T)
    counts = targets.sum(1).astype(int)
    lines.append("    per-image AP by labels in the scene: " + ", ".join(
        f"{k}: {per_image[counts == k].mean():.3f} ({(counts == k).sum()})"
        for k in sorted(set(counts)) if k > 0))
    sizes = scenes.label_sizes()

    def by_size(ap: np.ndarray) -> str:
        return ", ".join(f"{sizes[part].min():.2f}-{sizes[part].max():.2f}: {ap[part].mean():.3f}"
                         for part in scenes.labels_by_size(4) if len(part))

    lines.append("    mean label AP by object size: " + by_size(average_precision_per_class(scores, targets)))
    captions = text(scenes.captions)
    hits = (x0 @ captions.T).argmax(1) == torch.arange(len(scenes))
    lines.append(f"    image-to-caption R@1 among the {len(scenes)} captions: {hits.float().mean():.3f}")
    # The text tower alone: each scene's own caption feature in place of x0, the score an image
    # tower that matched its caption exactly would get.
    text_scores = (captions @ template.T).numpy()
    text_map = mean_average_precision(text_scores, targets)
    lines.append(f"    caption in place of x0 (text tower alone): mAP {text_map:.4f}"
                 f"; by object size: {by_size(average_precision_per_class(text_scores, targets))}")
    return lines


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--num-images", type=int, default=500, help="validation scenes per domain")
    parser.add_argument("--models", nargs="+", default=list(TINY_MODELS), choices=TINY_MODELS)
    parser.add_argument("--retrain", action="store_true", help="time the shipped recipe again")
    parser.add_argument("--why", action="store_true",
                        help="where x0's natural zero-shot mAP is lost (prompts, labels per scene, object size, "
                             "the text tower alone)")
    args = parser.parse_args()
    print(f"torch threads: {set_threads(args)}, validation scenes per domain: {args.num_images}")

    for name in args.models:
        path = shipped_checkpoint(name)
        if args.retrain:
            path = Path(tempfile.mkdtemp()) / f"{name}.pt"
            pretrain_tiny_clip(name, path, progress=False)
        try:
            backbone = load_backbone(name, pretrained=str(path))
        except InputError as err:
            raise SystemExit(f"{name}: {err}") from err
        describe_checkpoint(name, path, backbone, json.loads(metadata_path(path).read_text()))
        fits = description_fit(backbone)
        start = time.perf_counter()
        print(HEADER)
        for domain in DOMAINS:
            print(domain_row(backbone, domain, args.num_images, fits.get(domain, (0, 0))))
        print(f"  ({time.perf_counter() - start:.0f} s for {len(DOMAINS)} x {args.num_images} scenes, "
              f"both scorers, rendering included)")
        if args.why:
            print("\n".join(why_report(backbone, args.num_images)))


if __name__ == "__main__":
    main()
