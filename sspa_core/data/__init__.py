"""Datasets: the synthetic offline world and the nine real multi-label datasets.

:func:`get_dataset` builds any of them by name; every one returns the
:class:`~sspa_core.data.base.MultiLabelDataset` interface.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from pathlib import Path

from sspa_core.data.base import MultiLabelDataset, SubsetView, Transform, resolve_inside
from sspa_core.data.transforms import build_transform
from sspa_core.domains import canonical_name

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
    "synthetic_remote_sensing": {"domain": "remote_sensing"},
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
    name = canonical_name(name)
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


#: the subset arguments every dataset takes (applied by get_dataset) and their types
SUBSET_KWARGS: dict[str, object] = {"max_images": int | None, "subset_seed": int}


def check_dataset_kwargs(name: str, kwargs: dict, key: str = "dataset.kwargs") -> None:
    """Refuse, before any file is read, ``kwargs`` that the loader of dataset ``name`` does not
    take or whose value has the wrong type (``key`` names the config section in the message).
    The subset arguments of :func:`get_dataset` (``max_images``, ``subset_seed``) count as taken;
    the synthetic scenes take ``max_images`` but draw with their own ``seed``."""
    name = canonical_name(name)
    if name in SYNTHETIC_DATASETS:
        from sspa_core.data.synthetic import SyntheticScenes

        cls, fixed, subset = SyntheticScenes, set(SYNTHETIC_DATASETS[name]), ["max_images"]
    else:
        cls, fixed, subset = dataset_class(name), {"root"}, list(SUBSET_KWARGS)
    fixed |= {"self", "split", "transform", "image_size"}
    hints = {**typing.get_type_hints(cls.__init__), **{arg: SUBSET_KWARGS[arg] for arg in subset}}
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in fixed] + subset
    for arg, value in kwargs.items():
        if arg not in accepted:
            raise ValueError(f"{key}.{arg}: dataset {name!r} takes no argument {arg!r}; valid: {', '.join(accepted)}")
        options = typing.get_args(hints[arg]) or (hints[arg],) if arg in hints else ()
        if options and set(options) <= _PLAIN_TYPES and not _fits(value, options):
            expected = " or ".join(t.__name__ for t in options if t is not type(None))
            raise ValueError(f"{key}.{arg} expects {expected}, got {value!r}")
    if kwargs.get("max_images") is not None and kwargs["max_images"] < 1:
        raise ValueError(f"{key}.max_images must be >= 1 (or null for every image), got {kwargs['max_images']}")


_PLAIN_TYPES = {int, float, bool, str, type(None)}


def _fits(value, options: tuple[type, ...]) -> bool:
    """Whether a config value suits an argument annotated with ``options`` (no bool for an int)."""
    if isinstance(value, bool):
        return bool in options
    return isinstance(value, options) or (type(value) is int and float in options)


def get_dataset(name: str, root: str | Path | None, split: str, transform: Transform | None = None,
                image_size: int = 224, max_images: int | None = None, subset_seed: int = 0,
                **kwargs) -> MultiLabelDataset:
    """Dataset ``name`` (see :func:`available_datasets`), split ``split``.

    Real datasets read ``root`` in their official layout (data/README.md); extra ``kwargs``
    go to their loader (e.g. ``skip_corrupt=True``, ``partition=1``). Synthetic ones ignore
    ``root`` and pass ``kwargs`` (e.g. ``num_images``, ``seed``) to ``SyntheticScenes``.

    ``max_images`` keeps at most that many images of the split, for every dataset: a seeded
    random choice (``subset_seed``) in the split's order (:class:`SubsetView`); the synthetic
    scenes, independent draws of their ``seed``, render only their first ``max_images``.
    """
    if max_images is not None and (type(max_images) is not int or max_images < 1):
        raise ValueError(f"max_images must be an int >= 1 (None: every image), got {max_images!r}")
    name = canonical_name(name)
    if name in SYNTHETIC_DATASETS:
        from sspa_core.data.synthetic import SPLIT_SIZES, SyntheticScenes

        if subset_seed:
            raise ValueError("the synthetic scenes are drawn with their own seed: pass seed=..., not subset_seed")
        if max_images is not None and split in SPLIT_SIZES:
            n = kwargs.get("num_images")
            kwargs["num_images"] = min(max_images, SPLIT_SIZES[split] if n is None else n)
        return SyntheticScenes(split=split, transform=transform, image_size=image_size,
                               **SYNTHETIC_DATASETS[name], **kwargs)
    if name not in REAL_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(available_datasets())}")
    dataset = dataset_class(name)(root if root is not None else "", split, transform=transform,
                                  image_size=image_size, **kwargs)
    return dataset if max_images is None else SubsetView(dataset, max_images, subset_seed)


__all__ = ["MultiLabelDataset", "SubsetView", "available_datasets", "build_transform", "check_dataset_kwargs",
           "dataset_class", "get_dataset", "protocol_splits", "resolve_inside"]
