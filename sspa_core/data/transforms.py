"""Image transforms: a square resize and the backbone's normalisation (open_clip's
``preprocess_cfg``; OpenAI CLIP's mean and std when none is given)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from open_clip.constants import OPENAI_DATASET_MEAN as CLIP_MEAN
from open_clip.constants import OPENAI_DATASET_STD as CLIP_STD
from open_clip.transform import PreprocessCfg, merge_preprocess_dict
from torchvision import transforms as T

__all__ = ["CLIP_MEAN", "CLIP_STD", "build_transform"]


def build_transform(image_size: int = 224, train: bool = False,
                    preprocess: Mapping[str, Any] | None = None) -> T.Compose:
    """Resize to ``image_size``² (open_clip's ``"squash"`` resize mode whatever ``preprocess``
    says: a multi-label image keeps every region, so no centre crop), with a horizontal flip
    when ``train``; then normalise.

    ``preprocess``: the backbone's open_clip preprocessing config
    (:attr:`sspa_core.backbone.CLIPBackbone.preprocess_cfg`, or
    :func:`sspa_core.backbone.preprocess_cfg` before the model is built); its ``mean``, ``std``
    and ``interpolation`` are used. ``None`` means open_clip's defaults (OpenAI CLIP's mean and
    std, bicubic).
    """
    cfg = merge_preprocess_dict(PreprocessCfg(), dict(preprocess or {}))
    interpolation = T.InterpolationMode(cfg["interpolation"])
    steps = [T.Resize((image_size, image_size), interpolation=interpolation)]
    if train:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(tuple(cfg["mean"]), tuple(cfg["std"]))]
    return T.Compose(steps)
