"""The common dataset interface shared by the synthetic scenes and the nine real datasets.

Every dataset item is a dict ``{"image": Tensor[3,H,W], "target": Tensor[C], "mask": Tensor[C],
"index": int}``: ``target`` is the multi-hot label vector (float 0/1) and ``mask`` is 1 where a
label counts and 0 where it is ignored (VOC 2007 "difficult"), in both the loss and the metrics.
:meth:`MultiLabelDataset.fingerprint` identifies a dataset's content (the feature cache's key).
:meth:`MultiLabelDataset.objects` gives an image's labelled boxes where the annotations hold them
(``has_boxes``: the synthetic scenes, COCO, VOC), for the localization measures of
:mod:`sspa_core.localization`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from sspa_core.data.transforms import build_transform
from sspa_core.localization import Box

Transform = Callable[[Image.Image], torch.Tensor]


class MultiLabelDataset(Dataset):
    """Base class: subclasses fill ``label_names``, ``targets`` (N×C, {0,1}), ``masks`` (N×C or
    None) and implement :meth:`load_image` (a PIL RGB image for item ``i``); those whose
    annotations hold boxes set ``has_boxes`` and implement :meth:`objects`."""

    label_names: list[str]
    split: str
    targets: np.ndarray
    masks: np.ndarray | None
    #: whether the annotations hold boxes: False means "no boxes at all", so an empty
    #: :meth:`objects` then says nothing about the image
    has_boxes: bool = False

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

    def objects(self, i: int) -> list[tuple[Box, tuple[str, ...]]]:
        """The labelled objects of item ``i`` as ``(box, labels)`` pairs, ``box`` = (x0, y0, x1,
        y1) as fractions of the image's width and height, which the square resize of
        :func:`~sspa_core.data.transforms.build_transform` keeps; ``[]`` without boxes."""
        return []

    def __getitem__(self, i: int) -> dict:
        image = self.transform(self.load_image(i))
        target = torch.as_tensor(self.targets[i], dtype=torch.float32)
        if self.masks is None:
            mask = torch.ones_like(target)
        else:
            mask = torch.as_tensor(self.masks[i], dtype=torch.float32)
        return {"image": image, "target": target, "mask": mask, "index": i}

    def source_state(self) -> list:
        """What the items are made from besides their labels, as JSON-able values (files and
        their sizes, generation parameters); part of :meth:`fingerprint`."""
        return []

    def fingerprint(self) -> str:
        """A short SHA-256 of the dataset's content: its class, split, label names, targets,
        masks and :meth:`source_state`. Computed once per dataset object."""
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = content_hash(
                [type(self).__name__, self.split, list(self.label_names), self.source_state()],
                self.targets, self.masks)
        return self._fingerprint

    def label_frequencies(self) -> np.ndarray:
        """Fraction of (counted) images that carry each label."""
        masks = np.ones_like(self.targets) if self.masks is None else self.masks
        return (self.targets * masks).sum(0) / np.maximum(masks.sum(0), 1)


def content_hash(fields: list, *arrays: np.ndarray | None) -> str:
    """A short SHA-256 of JSON-able ``fields`` and the float32 values of ``arrays`` (None skipped)."""
    digest = hashlib.sha256(json.dumps(fields).encode())
    for array in arrays:
        if array is not None:
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def resolve_inside(root: str | Path, name: str, folder: str = "") -> Path:
    """``root / folder / name`` for a ``name`` read from an annotation file (``folder``: the
    loader's own sub-folder), refusing a name that could escape: an absolute path, a drive or
    a ``..`` component (``\\`` counts as ``/``). Links are followed: where the user's own
    folders point is their choice."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or PureWindowsPath(name).drive or ".." in parts:
        raise ValueError(f"annotation path {name!r} resolves outside the dataset root {root} "
                         "(absolute paths and '..' are refused)")
    return Path(root).joinpath(*PurePosixPath(folder).parts, *parts)


class SubsetView(MultiLabelDataset):
    """At most ``max_images`` items of ``dataset``: a seeded random choice (``seed``), kept in the
    dataset's own order, so the same arguments always give the same images. Labels, masks and
    images (and boxes) are read from ``dataset``; :meth:`source_state` records the chosen indices."""

    def __init__(self, dataset: MultiLabelDataset, max_images: int, seed: int = 0):
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        self.dataset = dataset
        chosen = np.random.default_rng(seed).permutation(len(dataset))[:max_images]
        self.indices = np.sort(chosen)
        self.split, self.transform, self.label_names = dataset.split, dataset.transform, dataset.label_names
        self.targets = dataset.targets[self.indices]
        self.masks = None if dataset.masks is None else dataset.masks[self.indices]

    def load_image(self, i: int) -> Image.Image:
        return self.dataset.load_image(int(self.indices[i]))

    @property
    def has_boxes(self) -> bool:
        return self.dataset.has_boxes

    def objects(self, i: int) -> list[tuple[Box, tuple[str, ...]]]:
        return self.dataset.objects(int(self.indices[i]))

    def source_state(self) -> list:
        return [type(self.dataset).__name__, self.dataset.source_state(), self.indices.tolist()]
