"""Pretraining the tiny CLIP of the offline world (docs/method.md §Offline world): a training run
of its own, on the rendered scenes of :mod:`sspa_core.tiny_clip`.

Two losses, summed: open_clip's ``ClipLoss`` between each scene and its caption (what CLIP
learns from the web), and, weighted by ``patch_weight``, a patch-text loss
(:func:`sspa_core.losses.patch_text_loss`) that pairs each patch with the labels whose boxes it
lies in. The second is what the offline world can teach and web captions cannot: where in the
image each named thing is (the idea of region-level pretraining such as RegionCLIP and FG-CLIP).
Without it the patch tokens localize barely above chance (data/tiny_clip/README.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import open_clip
import torch
from open_clip.loss import ClipLoss
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sspa_core.backbone import TINY_MODELS, CLIPBackbone, pretraining_output, set_image_size
from sspa_core.domains import DOMAINS, canonical_domain
from sspa_core.losses import patch_text_loss
from sspa_core.paths import metadata_path
from sspa_core.tiny_clip import (
    DEFAULTS,
    ZERO_SHOT_CHECK_IMAGES,
    _domain_counts,
    check_zero_shot,
    label_vocabulary,
    patch_targets,
    render_caption_set,
    save_tiny_checkpoint,
)
from sspa_core.training import optimisation_step, seed_everything, warmup_cosine, weight_decay_groups


class PretrainingObjective(nn.Module):
    """The CLIP being pretrained with the two losses' own parameters: the patch-text loss's
    scale and bias (SigLIP's initial 10 and -10), which are not part of the saved CLIP."""

    def __init__(self, clip: nn.Module, name: str, prompt_tokens: torch.Tensor, patch_weight: float):
        super().__init__()
        self.backbone = CLIPBackbone(clip, open_clip.get_tokenizer(name), name)
        self.register_buffer("prompt_tokens", prompt_tokens, persistent=False)
        self.patch_weight = patch_weight
        self.patch_log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))
        self.patch_bias = nn.Parameter(torch.tensor(-10.0))
        self.clip_loss = ClipLoss()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x0, patches = self.backbone.encode_image_dense(images)
        captions = self.backbone.text.encode_tokens(tokens)
        clip = self.backbone.clip
        loss = self.clip_loss(F.normalize(x0, dim=-1), F.normalize(captions, dim=-1), clip.logit_scale.exp())
        if self.patch_weight:
            labels = self.backbone.text.encode_tokens(self.prompt_tokens)
            loss = loss + self.patch_weight * patch_text_loss(
                patches, labels, targets, self.patch_log_scale.exp(), self.patch_bias)
        return loss


def pretrain_tiny_clip(name: str = "sspa-tiny-vit", out_path: str | Path | None = None,
                       steps: int | None = None, batch_size: int | None = None,
                       lr: float | None = None, num_images: int | None = None,
                       image_size: int | None = None, seed: int = 0,
                       domains: tuple[str, ...] = DOMAINS,
                       warmup_steps: int | None = None, patch_weight: float | None = None,
                       progress: bool = True, check_images: int = ZERO_SHOT_CHECK_IMAGES) -> dict:
    """Pretrain tiny CLIP ``name`` on the scenes' captions and their labels' boxes; return the
    metadata.

    AdamW with linear warm-up then cosine decay; open_clip's ``ClipLoss`` with CLIP's learned
    logit scale (clamped at 100 as in open_clip training) plus ``patch_weight`` times the
    patch-text loss. ``None`` settings take :data:`sspa_core.tiny_clip.DEFAULTS`; ``image_size``
    defaults to the config's. Trained at another size, the positional embedding is interpolated
    back to the config's grid before saving, so ``open_clip.create_model(name, pretrained=out_path)``
    always loads it. ``out_path`` defaults to :func:`sspa_core.backbone.pretraining_output` (the
    shipped ``data/tiny_clip/<name>.pt`` in a source checkout). The metadata records
    :func:`sspa_core.tiny_clip.check_zero_shot` on ``check_images`` scenes (0: no check).
    """
    if name not in TINY_MODELS:
        raise ValueError(f"unknown tiny model {name!r}; valid: {TINY_MODELS}")
    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "num_images": num_images,
             "warmup_steps": warmup_steps, "patch_weight": patch_weight}
    settings = replace(DEFAULTS[name], **{key: value for key, value in given.items() if value is not None})
    config_size = open_clip.get_model_config(name)["vision_cfg"]["image_size"]
    image_size = config_size if image_size is None else image_size
    out_path = Path(out_path) if out_path is not None else pretraining_output(name)
    domains = tuple(canonical_domain(d) for d in domains)
    _domain_counts(domains, settings.num_images)  # unknown domains fail before anything is built

    start, cpu_start = time.perf_counter(), time.process_time()
    seed_everything(seed)
    clip = open_clip.create_model(name, force_image_size=image_size)
    tokenizer = open_clip.get_tokenizer(name)
    vocabulary, prompts = label_vocabulary(domains)
    objective = PretrainingObjective(clip, name, tokenizer(prompts), settings.patch_weight)
    grid = int(round(objective.backbone.num_patches() ** 0.5))
    data = render_caption_set(domains, settings.num_images, image_size, seed, tokenizer, grid, progress)
    render_seconds = time.perf_counter() - start

    seed_everything(seed)
    objective.train()
    optimizer = torch.optim.AdamW(weight_decay_groups(objective.named_parameters(), settings.weight_decay),
                                  lr=settings.lr,
                                  betas=(0.9, 0.98), eps=1e-6)
    scheduler = warmup_cosine(optimizer, settings.steps, settings.warmup_steps)
    loader = DataLoader(data, batch_size=settings.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))

    losses: list[float] = []
    step = 0
    bar = tqdm(total=settings.steps, desc=f"pretrain {name}", disable=not progress)
    while step < settings.steps:
        for images, tokens, region_labels, region_masks in loader:
            targets = patch_targets(region_labels, region_masks, len(vocabulary))
            loss = optimisation_step(partial(objective, images, tokens, targets), lambda value: value,
                                     optimizer, scheduler=scheduler, where=f"pretraining step {step + 1}")
            with torch.no_grad():
                clip.logit_scale.clamp_(0, np.log(100))
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if step == settings.steps:
                break
    bar.close()
    train_seconds = time.perf_counter() - start - render_seconds
    cpu_seconds = time.process_time() - cpu_start

    clip.eval()
    if image_size != config_size:
        set_image_size(clip, config_size)
    save_tiny_checkpoint(clip, out_path)
    window = max(1, min(20, len(losses) // 5))
    meta = {
        "model": name, **asdict(settings), "image_size": image_size, "seed": seed,
        "domains": list(domains), "domain_images": _domain_counts(domains, settings.num_images),
        "num_parameters": sum(p.numel() for p in clip.parameters()),
        "render_seconds": round(render_seconds, 1), "train_seconds": round(train_seconds, 1),
        "total_seconds": round(render_seconds + train_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1), "threads": torch.get_num_threads(),
        "loss_first": float(np.mean(losses[:window])), "loss_last": float(np.mean(losses[-window:])),
        "loss_curve": [round(v, 4) for v in losses[:: max(1, len(losses) // 100)]],
        "file_bytes": out_path.stat().st_size,
        "torch": torch.__version__, "open_clip": open_clip.__version__,
        "zero_shot_check": {"split": "val", "domain": "natural", "num_images": check_images,
                            "mAP": check_zero_shot(name, out_path, check_images)} if check_images else None,
    }
    metadata_path(out_path).write_text(json.dumps(meta, indent=2) + "\n")
    return meta
