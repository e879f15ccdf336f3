"""The common dataset interface shared by the synthetic scenes and the nine real datasets.

Every dataset item is a dict ``{"image": Tensor[3,H,W], "target": Tensor[C], "mask": Tensor[C],
"index": int}``: ``target`` is the multi-hot label vector (float 0/1) and ``mask`` is 1 where a
label counts and 0 where it is ignored (VOC 2007 "difficult"), in both the loss and the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from sspa_core.data.transforms import build_transform

Transform = Callable[[Image.Image], torch.Tensor]


class MultiLabelDataset(Dataset):
    """Base class: subclasses fill ``label_names``, ``targets`` (N×C, {0,1}), ``masks`` (N×C or
    None) and implement :meth:`load_image` (a PIL RGB image for item ``i``)."""

    label_names: list[str]
    split: str
    targets: np.ndarray
    masks: np.ndarray | None

    def __init__(self, split: str, transform: Transform | None = None, image_size: int = 224):
        self.split = split
        self.transform = transform if transform is not None else build_transform(image_size)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return len(self.targets)

    def load_image(self, i: int) -> Image.Image:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        image = self.transform(self.load_image(i))
        target = torch.as_tensor(self.targets[i], dtype=torch.float32)
        if self.masks is None:
            mask = torch.ones_like(target)
        else:
            mask = torch.as_tensor(self.masks[i], dtype=torch.float32)
        return {"image": image, "target": target, "mask": mask, "index": i}

    def label_frequencies(self) -> np.ndarray:
        """Fraction of (counted) images that carry each label."""
        masks = np.ones_like(self.targets) if self.masks is None else self.masks
        return (self.targets * masks).sum(0) / np.maximum(masks.sum(0), 1)


def resolve_inside(root: str | Path, relative: str) -> Path:
    """Join an annotation's file name to ``root`` and refuse any path that escapes it."""
    root = Path(root).resolve()
    path = (root / relative.replace("\\", "/")).resolve()
    if root != path and root not in path.parents:
        raise ValueError(f"annotation path {relative!r} resolves outside the dataset root {root}")
    return path
