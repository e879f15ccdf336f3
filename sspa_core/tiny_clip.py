"""The tiny CLIP of the offline world (docs/method.md §Offline world): contrastive pretraining on the captions of the
synthetic scenes with open_clip's own ``ClipLoss`` (zero-shot evaluation:
:func:`sspa_core.baselines.zero_shot_scores`).

The two architectures are open_clip model configs (``sspa_core/model_configs/*.json``,
registered on ``import sspa_core.backbone``): ``sspa-tiny-vit`` (ViT, 4 layers × 192, patch 16,
112 px: 7 × 7 patches) and ``sspa-tiny-rn`` (ModifiedResNet, one bottleneck per stage, width 16,
224 px: a 7 × 7 attention-pool grid), both with CLIP's 77-token text context. Their
``image_size`` is the pretraining size; :func:`sspa_core.backbone.load_backbone` interpolates the
positional embedding for any other input size. The checkpoint is a plain fp16 state_dict that
``open_clip.create_model(name, pretrained=<path>)`` loads like real weights; a JSON file with
the settings, domain mix, timings, loss curve and a zero-shot check is written beside it.

Choices set by a 2-core CPU (at most 30 minutes per model) and a 20 MB file limit: the ViT
takes 2,200 steps × 64 on 24,000 scenes, the ResNet (whose 224 px stem costs about 3.5× the
ViT's step) 500 steps × 64 on 10,000 scenes; the ResNet has width 16 and a 96-wide text tower.
No flip augmentation: captions say which side an object is on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import open_clip
import torch
from open_clip.loss import ClipLoss
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sspa_core.backbone import TINY_MODELS, pretraining_output, set_image_size
from sspa_core.data.transforms import CLIP_MEAN, CLIP_STD
from sspa_core.domains import DOMAINS, canonical_domain
from sspa_core.engine.checkpoint import atomic_save
from sspa_core.engine.optim import uses_weight_decay
from sspa_core.engine.runtime import seed_everything
from sspa_core.engine.schedule import warmup_cosine
from sspa_core.engine.step import optimisation_step

# Like web data, mostly natural photos with a small share of the specialised domains, so that
# pedestrian attributes and aerial tiles are a real transfer (notebook 07).
DOMAIN_SHARE = {"natural": 0.8, "pedestrian": 0.1, "remote_sensing": 0.1}  # of num_images


@dataclass(frozen=True)
class PretrainSettings:
    """Pretraining recipe; :data:`DEFAULTS` regenerate the shipped checkpoints."""

    steps: int
    batch_size: int
    lr: float
    num_images: int
    warmup_steps: int = 50
    weight_decay: float = 0.1


#: natural validation scenes of the zero-shot check recorded beside a checkpoint
CHECK_IMAGES = 200

DEFAULTS: dict[str, PretrainSettings] = {
    "sspa-tiny-vit": PretrainSettings(steps=2200, batch_size=64, lr=1e-3, num_images=24000,
                                      warmup_steps=100),
    "sspa-tiny-rn": PretrainSettings(steps=500, batch_size=64, lr=1e-3, num_images=10000,
                                     warmup_steps=40),
}


class CaptionedImages(Dataset):
    """Pre-rendered scenes (uint8) with their tokenized captions, CLIP-normalised per item. No
    flip augmentation: the captions say which side an object is on."""

    def __init__(self, images: torch.Tensor, tokens: torch.Tensor):
        self.images, self.tokens = images, tokens
        self.mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        self.std = torch.tensor(CLIP_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[i].float().div_(255)
        return (image - self.mean) / self.std, self.tokens[i]


def _domain_counts(domains: tuple[str, ...], num_images: int) -> dict[str, int]:
    unknown = [d for d in domains if d not in DOMAIN_SHARE]
    if unknown or not domains:
        raise ValueError(f"unknown domains {unknown or domains}; valid: {tuple(DOMAIN_SHARE)}")
    total = sum(DOMAIN_SHARE[d] for d in domains)
    counts = {d: int(round(num_images * DOMAIN_SHARE[d] / total)) for d in domains}
    counts[domains[0]] += num_images - sum(counts.values())
    return counts


def render_caption_set(domains: tuple[str, ...], num_images: int, image_size: int, seed: int,
                       tokenizer, progress: bool = True) -> CaptionedImages:
    """Render the training scenes of ``domains`` (shares :data:`DOMAIN_SHARE`) once."""
    from sspa_core.data.synthetic import SyntheticScenes

    images, captions = [], []
    for domain, count in _domain_counts(domains, num_images).items():
        scenes = SyntheticScenes(domain, "train", num_images=count, image_size=image_size, seed=seed)
        for i in tqdm(range(count), desc=f"render {domain}", leave=False, disable=not progress):
            images.append(torch.from_numpy(np.asarray(scenes.render(i), dtype=np.uint8).copy()))
        captions += scenes.captions
    stacked = torch.stack(images).permute(0, 3, 1, 2).contiguous()
    return CaptionedImages(stacked, tokenizer(captions))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's training split: no weight decay on gains, biases, norms and logit scale
    (:func:`sspa_core.engine.optim.uses_weight_decay`)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if uses_weight_decay(name, param) else no_decay).append(param)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def save_tiny_checkpoint(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state_dict with floating tensors in fp16, atomically."""
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    return atomic_save(state, path)


def pretrain_tiny_clip(name: str = "sspa-tiny-vit", out_path: str | Path | None = None,
                       steps: int | None = None, batch_size: int | None = None,
                       lr: float | None = None, num_images: int | None = None,
                       image_size: int | None = None, seed: int = 0,
                       domains: tuple[str, ...] = DOMAINS,
                       warmup_steps: int | None = None, progress: bool = True,
                       check_images: int = CHECK_IMAGES) -> dict:
    """Contrastively pretrain tiny CLIP ``name`` on scene captions; return the metadata.

    AdamW with linear warm-up then cosine decay, open_clip's ``ClipLoss`` with CLIP's learned
    logit scale (clamped at 100 as in open_clip training). ``None`` settings take
    :data:`DEFAULTS`; ``image_size`` defaults to the config's. Trained at another size, the
    positional embedding is interpolated back to the config's grid before saving, so
    ``open_clip.create_model(name, pretrained=out_path)`` always loads it.
    ``out_path`` defaults to :func:`sspa_core.backbone.pretraining_output` (the shipped
    ``data/tiny_clip/<name>.pt`` in a source checkout). The metadata records
    :func:`check_zero_shot` on ``check_images`` scenes (0: no check).
    """
    if name not in TINY_MODELS:
        raise ValueError(f"unknown tiny model {name!r}; valid: {TINY_MODELS}")
    base = DEFAULTS[name]
    settings = PretrainSettings(
        steps=base.steps if steps is None else steps,
        batch_size=base.batch_size if batch_size is None else batch_size,
        lr=base.lr if lr is None else lr,
        num_images=base.num_images if num_images is None else num_images,
        warmup_steps=base.warmup_steps if warmup_steps is None else warmup_steps,
        weight_decay=base.weight_decay,
    )
    if settings.steps < 1 or settings.batch_size < 2 or settings.lr <= 0:
        raise ValueError(f"need steps >= 1, batch_size >= 2 and lr > 0, got {settings}")
    if settings.num_images < settings.batch_size:
        raise ValueError(f"num_images {settings.num_images} < batch_size {settings.batch_size}")
    config_size = open_clip.get_model_config(name)["vision_cfg"]["image_size"]
    image_size = config_size if image_size is None else image_size
    out_path = Path(out_path) if out_path is not None else pretraining_output(name)
    domains = tuple(canonical_domain(d) for d in domains)

    start, cpu_start = time.perf_counter(), time.process_time()
    seed_everything(seed)
    tokenizer = open_clip.get_tokenizer(name)
    data = render_caption_set(domains, settings.num_images, image_size, seed, tokenizer, progress)
    render_seconds = time.perf_counter() - start

    seed_everything(seed)
    model = open_clip.create_model(name, force_image_size=image_size)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, settings.weight_decay), lr=settings.lr,
                                  betas=(0.9, 0.98), eps=1e-6)
    scheduler = warmup_cosine(optimizer, settings.steps, settings.warmup_steps)
    loss_fn = ClipLoss()
    loader = DataLoader(data, batch_size=settings.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))

    losses: list[float] = []
    step = 0
    bar = tqdm(total=settings.steps, desc=f"pretrain {name}", disable=not progress)
    while step < settings.steps:
        for images, tokens in loader:
            loss = optimisation_step(partial(model, images, tokens), lambda outputs: loss_fn(*outputs),
                                     optimizer, scheduler=scheduler, where=f"pretraining step {step + 1}")
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if step == settings.steps:
                break
    bar.close()
    train_seconds = time.perf_counter() - start - render_seconds
    cpu_seconds = time.process_time() - cpu_start

    model.eval()
    if image_size != config_size:
        set_image_size(model, config_size)
    save_tiny_checkpoint(model, out_path)
    window = max(1, min(20, len(losses) // 5))
    meta = {
        "model": name, **asdict(settings), "image_size": image_size, "seed": seed,
        "domains": list(domains), "domain_images": _domain_counts(domains, settings.num_images),
        "num_parameters": sum(p.numel() for p in model.parameters()),
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


def check_zero_shot(name: str, checkpoint: str | Path, num_images: int = CHECK_IMAGES) -> float:
    """Zero-shot mAP of x0 (:func:`sspa_core.baselines.zero_shot_scores`) on the first
    ``num_images`` natural validation scenes at the model's pretraining size: the check score
    recorded in the metadata and reproduced by the tests."""
    from sspa_core.backbone import load_backbone
    from sspa_core.baselines import zero_shot_scores
    from sspa_core.data.synthetic import SyntheticScenes
    from sspa_core.metrics import mean_average_precision

    backbone = load_backbone(name, pretrained=str(checkpoint))
    scenes = SyntheticScenes("natural", "val", num_images=num_images, image_size=backbone.image_size)
    return float(mean_average_precision(*zero_shot_scores(backbone, scenes)))


def metadata_path(checkpoint: str | Path) -> Path:
    """The JSON written beside a pretrained checkpoint."""
    return Path(checkpoint).with_suffix(".json")
