"""Datasets: the synthetic offline world and the nine real multi-label datasets.

:func:`get_dataset` builds any of them by name; every one returns the
:class:`~sspa_core.data.base.MultiLabelDataset` interface.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sspa_core.data.base import MultiLabelDataset, Transform, resolve_inside
from sspa_core.data.transforms import build_transform

# name -> (module, class) of the real datasets (docs/method.md §Datasets), imported on use
REAL_DATASETS: dict[str, tuple[str, str]] = {
    "coco": ("sspa_core.data.coco", "COCO2014"),
    "voc": ("sspa_core.data.voc", "VOC2007"),
    "nuswide": ("sspa_core.data.nuswide", "NUSWIDE"),
    "pa100k": ("sspa_core.data.pedestrian", "PA100K"),
    "rap": ("sspa_core.data.pedestrian", "RAPv1"),
    "peta": ("sspa_core.data.pedestrian", "PETA"),
    "multiscene": ("sspa_core.data.remote_sensing", "MultiSceneClean"),
    "mlrsnet": ("sspa_core.data.remote_sensing", "MLRSNet"),
    "aid": ("sspa_core.data.remote_sensing", "AIDMultiLabel"),
}
# name -> keyword arguments of sspa_core.data.synthetic.SyntheticScenes (docs/method.md §Offline world)
SYNTHETIC_DATASETS: dict[str, dict[str, str]] = {
    "synthetic_natural": {"domain": "natural"},
    "synthetic_voc": {"domain": "natural", "label_set": "voc"},
    "synthetic_pedestrian": {"domain": "pedestrian"},
    "synthetic_aerial": {"domain": "remote_sensing"},
}


# name -> (training split, evaluation split) of the paper's protocol (docs/method.md §Datasets)
PROTOCOL_SPLITS: dict[str, tuple[str, str]] = {
    "coco": ("train", "val"), "voc": ("trainval", "test"), "nuswide": ("train", "test"),
    "pa100k": ("train", "test"), "rap": ("trainval", "test"), "peta": ("trainval", "test"),
    "multiscene": ("train", "test"), "mlrsnet": ("train", "test"), "aid": ("train", "test"),
    **{name: ("train", "test") for name in SYNTHETIC_DATASETS},
}


def protocol_splits(name: str) -> tuple[str, str]:
    """The (training, evaluation) split names of dataset ``name``: COCO evaluates on ``val``,
    VOC/RAP/PETA train on ``trainval``, the rest train on ``train`` and evaluate on ``test``."""
    if name not in PROTOCOL_SPLITS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(available_datasets())}")
    return PROTOCOL_SPLITS[name]


def available_datasets() -> list[str]:
    """Every name :func:`get_dataset` accepts: the synthetic domains, then the nine real datasets."""
    return [*SYNTHETIC_DATASETS, *REAL_DATASETS]


def dataset_class(name: str) -> type[MultiLabelDataset]:
    """The loader class of real dataset ``name`` (ValueError listing the valid names)."""
    if name not in REAL_DATASETS:
        raise ValueError(f"unknown real dataset {name!r}; valid: {', '.join(REAL_DATASETS)}")
    module, cls = REAL_DATASETS[name]
    return getattr(importlib.import_module(module), cls)


def get_dataset(name: str, root: str | Path | None, split: str, transform: Transform | None = None,
                image_size: int = 224, **kwargs) -> MultiLabelDataset:
    """Dataset ``name`` (see :func:`available_datasets`), split ``split``.

    Real datasets read ``root`` in their official layout (data/README.md); extra ``kwargs``
    go to their loader (e.g. ``skip_corrupt=True``, ``partition=1``). Synthetic ones ignore
    ``root`` and pass ``kwargs`` (e.g. ``num_images``, ``seed``) to ``SyntheticScenes``.
    """
    if name in SYNTHETIC_DATASETS:
        from sspa_core.data.synthetic import SyntheticScenes

        return SyntheticScenes(split=split, transform=transform, image_size=image_size,
                               **SYNTHETIC_DATASETS[name], **kwargs)
    if name not in REAL_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(available_datasets())}")
    return dataset_class(name)(root if root is not None else "", split, transform=transform,
                               image_size=image_size, **kwargs)


__all__ = ["MultiLabelDataset", "available_datasets", "build_transform", "dataset_class", "protocol_splits",
           "get_dataset", "resolve_inside"]
