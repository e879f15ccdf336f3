"""Helpers shared by several test files (``from helpers import ...``: pytest puts ``tests/`` on
the import path)."""

from __future__ import annotations

import copy
import functools

import open_clip
import torch

from sspa_core.backbone import CLIPBackbone, set_image_size


@functools.lru_cache(maxsize=None)
def _pristine_backbone(name: str, image_size: int | None, seed: int) -> CLIPBackbone:
    torch.manual_seed(seed)
    backbone = CLIPBackbone(open_clip.create_model(name).eval(), open_clip.get_tokenizer(name))
    if image_size is not None and backbone.image_size != image_size:
        set_image_size(backbone.clip, image_size)
    return backbone


def random_backbone(name: str, image_size: int | None = None, seed: int = 0) -> CLIPBackbone:
    """A fresh copy of a randomly initialised open_clip model (seeded, no checkpoint) wrapped as
    the backbone, at ``image_size`` (None = the model's own); copies are cheaper than building
    the model again."""
    return copy.deepcopy(_pristine_backbone(name, image_size, seed))
