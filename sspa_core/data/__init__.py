"""Datasets: the synthetic offline world and the nine real multi-label datasets.

:func:`get_dataset` builds any of them by name; every one returns the
:class:`~sspa_core.data.base.MultiLabelDataset` interface.
"""

from __future__ import annotations

import importlib
import inspect
import typing
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


def check_dataset_kwargs(name: str, kwargs: dict, key: str = "dataset.kwargs") -> None:
    """Refuse, before any file is read, ``kwargs`` that the loader of dataset ``name`` does not
    take or whose value has the wrong type (``key`` names the config section in the message)."""
    if name in SYNTHETIC_DATASETS:
        from sspa_core.data.synthetic import SyntheticScenes

        cls, fixed = SyntheticScenes, set(SYNTHETIC_DATASETS[name])
    else:
        cls, fixed = dataset_class(name), {"root"}
    fixed |= {"self", "split", "transform", "image_size"}
    hints = typing.get_type_hints(cls.__init__)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in fixed]
    for arg, value in kwargs.items():
        if arg not in accepted:
            raise ValueError(f"{key}.{arg}: dataset {name!r} takes no argument {arg!r}; valid: {', '.join(accepted)}")
        options = typing.get_args(hints[arg]) or (hints[arg],) if arg in hints else ()
        if options and set(options) <= _PLAIN_TYPES and not _fits(value, options):
            expected = " or ".join(t.__name__ for t in options if t is not type(None))
            raise ValueError(f"{key}.{arg} expects {expected}, got {value!r}")


_PLAIN_TYPES = {int, float, bool, str, type(None)}


def _fits(value, options: tuple[type, ...]) -> bool:
    """Whether a config value suits an argument annotated with ``options`` (no bool for an int)."""
    if isinstance(value, bool):
        return bool in options
    return isinstance(value, options) or (type(value) is int and float in options)


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


__all__ = ["MultiLabelDataset", "available_datasets", "build_transform", "check_dataset_kwargs", "dataset_class",
           "get_dataset", "protocol_splits", "resolve_inside"]
