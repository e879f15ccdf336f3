"""Checkpoint files: safe reads and the checks that refuse a foreign checkpoint.

A training checkpoint (written by :meth:`sspa_core.engine.Trainer.state_dict`) holds only tensors
and primitive containers, so it loads with ``torch.load(weights_only=True)``: the run's resolved
config, its model name and label names, the trainable weights (and their EMA), the optimiser,
scheduler and gradient-scaler states, every random state, the position in the epoch and the
metric history. Frozen parameters are left out and rebuilt from the stored config, which keeps a
checkpoint of a head trained on a frozen ViT-B/16 small. Files are replaced atomically: a run
killed while saving, or one whose disk fills, leaves the previous checkpoint intact, and resuming
from it replays exactly the batches of an uninterrupted run (:func:`sspa_core.training.atomic_save`).
``best.pt`` is a hard link to the ``last.pt`` of its epoch (:func:`sspa_core.training.atomic_link`).
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sspa_core.data.safe_pickle import refused_by_torch
from sspa_core.errors import CheckpointError, InputError

CHECKPOINT_FORMAT = 1
#: what a checkpoint written by :class:`~sspa_core.engine.Trainer` holds at least
CHECKPOINT_KEYS = ("model_name", "label_names", "config", "model", "ema")


def require_writable_dir(path: str | Path, what: str) -> Path:
    """Create folder ``path`` and write a probe file in it, so that a run fails before it builds
    any data when it could not save its outputs (``what`` names the setting, e.g. ``--output-dir``)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        reason = err.strerror or err
        raise InputError(f"cannot write to {path} ({reason}): choose a writable folder with {what}") from err
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint with ``torch.load(weights_only=True)``: a file that is not one
    (truncated, empty, another format) or that holds anything but tensors and plain containers (a
    pickle that could run code) is refused with a :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):
            raise CheckpointError(f"checkpoint {path} was refused: {refused_by_torch(err)}; only files written "
                                  "by sspa train are read") from err
        raise CheckpointError(f"checkpoint {path} is truncated or not a checkpoint: {refused_by_torch(err)}; use a "
                              "last.pt or best.pt written by sspa train") from err
    except (RuntimeError, EOFError, KeyError, IndexError, ValueError, OSError) as err:  # a damaged file
        if isinstance(err, PermissionError):
            raise
        reason = " ".join(str(err).split()).split(". ")[0][:120] or type(err).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or not a checkpoint ({reason}); "
                              "use a last.pt or best.pt written by sspa train") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or not set(CHECKPOINT_KEYS) <= set(ckpt):
        raise CheckpointError(f"{path} is not an sspa training checkpoint (format {CHECKPOINT_FORMAT}); "
                              "use a last.pt or best.pt written by sspa train")
    names = ckpt["label_names"]
    wrong = [key for key, ok in (
        ("model_name", isinstance(ckpt["model_name"], str)), ("config", isinstance(ckpt["config"], dict)),
        ("model", isinstance(ckpt["model"], dict)), ("ema", ckpt["ema"] is None or isinstance(ckpt["ema"], dict)),
        ("label_names", isinstance(names, list) and bool(names) and all(isinstance(n, str) for n in names))) if not ok]
    if wrong:
        raise CheckpointError(f"checkpoint {path} is damaged: its {wrong[0]!r} is {type(ckpt[wrong[0]]).__name__} "
                              f"{str(ckpt[wrong[0]])[:60]!r}, not what sspa train writes; use a last.pt or best.pt "
                              "written by sspa train")
    return ckpt


def check_compatible(ckpt: dict[str, Any], model_name: str, label_names: list[str] | None,
                     source: str = "checkpoint", backbone: str | None = None) -> None:
    """Refuse a checkpoint made for another model, backbone (when ``backbone`` is given) or label
    set (when ``label_names`` is given), saying what differs and how to match it."""
    if ckpt["model_name"] != model_name:
        raise CheckpointError(f"{source} was trained for model {ckpt['model_name']!r}, not {model_name!r} "
                              f"(set model.name={ckpt['model_name']}, or use another checkpoint)")
    saved_backbone = ckpt["config"].get("model", {}).get("backbone")
    if backbone is not None and saved_backbone != backbone:
        raise CheckpointError(f"{source} was trained with backbone {saved_backbone!r}, not {backbone!r} "
                              f"(set model.backbone={saved_backbone}, or train into another --output-dir)")
    saved = list(ckpt["label_names"])
    if label_names is not None and saved != list(label_names):
        if len(saved) != len(label_names):
            detail = f"{len(saved)} labels in the checkpoint, {len(label_names)} here"
        elif sorted(saved) == sorted(label_names):
            detail = "same labels in another order"
        else:
            missing = sorted(set(saved) ^ set(label_names))[:5]
            detail = f"labels differ, e.g. {missing}"
        raise CheckpointError(f"{source} was trained for another label set ({detail}); "
                              "use the dataset it was trained on, or another checkpoint")


#: settings that say where or how fast a run goes, not what it computes: a run may continue under others
PLACE_KEYS = ("output_dir", "train.device", "train.num_workers", "train.progress", "train.feature_cache_dir")


def setting_differences(saved: dict[str, Any], config: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, config value)`` for every setting outside :data:`PLACE_KEYS` in which
    the stored config of a checkpoint and a resolved config differ ("(unset)" where one lacks it)."""
    theirs, ours = _flat(saved), _flat(config)
    return [(k, theirs.get(k, "(unset)"), ours.get(k, "(unset)")) for k in sorted(theirs.keys() | ours.keys())
            if k not in PLACE_KEYS and theirs.get(k, "(unset)") != ours.get(k, "(unset)")]


def check_same_settings(saved: dict[str, Any], config: dict[str, Any], source: str = "checkpoint") -> None:
    """Refuse to continue ``source``, whose stored config is ``saved``, under a resolved ``config``
    that differs in anything but :data:`PLACE_KEYS`; the message names the first setting that
    differs and both values."""
    differ = setting_differences(saved, config)
    if differ:
        key, was, now = differ[0]
        raise CheckpointError(
            f"{source} is a run with other settings ({len(differ)} differ, e.g. {key}: {was!r} there, {now!r} "
            f"here); to train afresh, delete its folder or choose another output_dir")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` as ``{"train.lr": 1}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _frozen_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state without its frozen parameters (those are rebuilt from the config)."""
    frozen = _frozen_names(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load :func:`trainable_state` output; a tensor of another shape, or anything else missing
    or unexpected, is a :class:`CheckpointError` (before the model is touched)."""
    own = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        name, theirs, ours = wrong[0]
        raise CheckpointError(
            f"{source} does not fit this model: {len(wrong)} tensors differ in shape, e.g. {name} {list(theirs)} "
            f"in the checkpoint, {list(ours)} here (trained with other model.sspa or dataset.image_size settings?)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = sorted(set(missing) - _frozen_names(model))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit this model: missing {missing[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
