"""The tiny CLIP of the offline world (docs/method.md §Offline world): its pretraining data (the
synthetic scenes, their captions and each label's patches), recipes, checkpoint format and
zero-shot check. The pretraining run itself is :func:`sspa_core.engine.pretraining.pretrain_tiny_clip`:
open_clip's own ``ClipLoss`` on the captions beside a patch-text loss on the labels' boxes
(zero-shot evaluation: :func:`sspa_core.baselines.zero_shot_scores`).

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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from sspa_core.config import PRETRAIN_SCHEMA
from sspa_core.data.transforms import CLIP_MEAN, CLIP_STD
from sspa_core.training import atomic_save

# Like web data, mostly natural photos with a small share of the specialised domains, so that
# pedestrian attributes and aerial tiles are a real transfer (notebook 07).
DOMAIN_SHARE = {"natural": 0.8, "pedestrian": 0.1, "remote_sensing": 0.1}  # of num_images


@dataclass(frozen=True)
class PretrainSettings:
    """Pretraining recipe, each field checked by its setting in
    :data:`sspa_core.config.PRETRAIN_SCHEMA` (type, range; the defaults are the ViT's recipe);
    :data:`DEFAULTS` regenerate the shipped checkpoints."""

    steps: int = PRETRAIN_SCHEMA["steps"].default
    batch_size: int = PRETRAIN_SCHEMA["batch_size"].default
    lr: float = PRETRAIN_SCHEMA["lr"].default
    num_images: int = PRETRAIN_SCHEMA["num_images"].default
    warmup_steps: int = PRETRAIN_SCHEMA["warmup_steps"].default
    weight_decay: float = PRETRAIN_SCHEMA["weight_decay"].default
    patch_weight: float = PRETRAIN_SCHEMA["patch_weight"].default

    def __post_init__(self) -> None:
        for name in PRETRAIN_SCHEMA:
            object.__setattr__(self, name, PRETRAIN_SCHEMA[name].check(name, getattr(self, name)))
        if self.num_images < self.batch_size:
            raise ValueError(f"num_images {self.num_images} < batch_size {self.batch_size}: not one batch of scenes")


#: natural validation scenes of the zero-shot check recorded beside a checkpoint
ZERO_SHOT_CHECK_IMAGES = 200

#: The shipped recipes: the ViT's is :data:`~sspa_core.config.PRETRAIN_SCHEMA`'s defaults; the
#: ResNet, whose 224 px stem costs about 3.5x the ViT's step, takes fewer steps and scenes.
DEFAULTS: dict[str, PretrainSettings] = {
    "sspa-tiny-vit": PretrainSettings(),
    "sspa-tiny-rn": PretrainSettings(steps=500, num_images=10000, warmup_steps=40),
}


class CaptionedImages(Dataset):
    """Pre-rendered scenes (uint8) with their tokenized captions and, per scene, the patches that
    show each of its labels (``region_labels [N, R]``, indices into the label vocabulary, -1 for
    padding; ``region_masks [N, R, M]`` bool, :func:`sspa_core.localization.target_mask`),
    CLIP-normalised per item. No flip augmentation: the captions say which side an object is on."""

    def __init__(self, images: torch.Tensor, tokens: torch.Tensor, region_labels: torch.Tensor,
                 region_masks: torch.Tensor):
        self.images, self.tokens = images, tokens
        self.region_labels, self.region_masks = region_labels, region_masks
        self.mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        self.std = torch.tensor(CLIP_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        image = self.images[i].float().div_(255)
        return (image - self.mean) / self.std, self.tokens[i], self.region_labels[i], self.region_masks[i]


def _domain_counts(domains: tuple[str, ...], num_images: int) -> dict[str, int]:
    unknown = [d for d in domains if d not in DOMAIN_SHARE]
    if unknown or not domains:
        raise ValueError(f"unknown domains {unknown or domains}; valid: {tuple(DOMAIN_SHARE)}")
    total = sum(DOMAIN_SHARE[d] for d in domains)
    counts = {d: int(round(num_images * DOMAIN_SHARE[d] / total)) for d in domains}
    counts[domains[0]] += num_images - sum(counts.values())
    return counts


def label_vocabulary(domains: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The label names of ``domains`` (each once) and the prompt the patch-text loss pairs with
    each: the first object template of the label's first domain (``"a photo of a cup."``)."""
    from sspa_core.data.synthetic import domain_labels, with_article
    from sspa_core.data.synthetic.captions import object_templates

    names: list[str] = []
    prompts: list[str] = []
    for domain in domains:
        for label in domain_labels(domain):
            if label not in names:
                names.append(label)
                prompts.append(object_templates(domain)[0].format(o=with_article(label)))
    return names, prompts


def render_caption_set(domains: tuple[str, ...], num_images: int, image_size: int, seed: int,
                       tokenizer, grid: int, progress: bool = True) -> CaptionedImages:
    """Render the training scenes of ``domains`` (shares :data:`DOMAIN_SHARE`) once, with each
    label's patches on a ``grid`` × ``grid`` patch grid (labels indexed as in
    :func:`label_vocabulary`)."""
    from sspa_core.data.synthetic import SyntheticScenes
    from sspa_core.localization import scene_objects, target_mask

    column = {name: k for k, name in enumerate(label_vocabulary(domains)[0])}
    images, captions, regions = [], [], []
    for domain, count in _domain_counts(domains, num_images).items():
        scenes = SyntheticScenes(domain, "train", num_images=count, image_size=image_size, seed=seed)
        for i in tqdm(range(count), desc=f"render {domain}", leave=False, disable=not progress):
            images.append(torch.from_numpy(np.asarray(scenes.render(i), dtype=np.uint8).copy()))
            objects = scene_objects(scenes, i)
            regions.append([(column[label], target_mask(objects, grid, [label]))
                            for label in scenes.layouts[i].labels])
        captions += scenes.captions
    stacked = torch.stack(images).permute(0, 3, 1, 2).contiguous()
    width = max(len(r) for r in regions)
    region_labels = torch.full((len(regions), width), -1, dtype=torch.long)
    region_masks = torch.zeros((len(regions), width, grid * grid), dtype=torch.bool)
    for i, scene_regions in enumerate(regions):
        for k, (label, mask) in enumerate(scene_regions):
            region_labels[i, k] = label
            region_masks[i, k] = torch.from_numpy(mask)
    return CaptionedImages(stacked, tokenizer(captions), region_labels, region_masks)


def patch_targets(region_labels: torch.Tensor, region_masks: torch.Tensor, num_labels: int) -> torch.Tensor:
    """``[B, M, L]`` 0/1 targets of the patch-text loss from a batch's ``region_labels [B, R]`` and
    ``region_masks [B, R, M]`` (:class:`CaptionedImages`)."""
    onehot = torch.nn.functional.one_hot(region_labels.clamp(min=-1) + 1, num_labels + 1)[..., 1:]
    return (region_masks.float().transpose(1, 2) @ onehot.float()).clamp(max=1)


def save_tiny_checkpoint(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state_dict with floating tensors in fp16, atomically."""
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    return atomic_save(state, path)


def check_zero_shot(name: str, checkpoint: str | Path, num_images: int = ZERO_SHOT_CHECK_IMAGES) -> float:
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
