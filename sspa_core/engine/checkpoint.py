"""Checkpoint files: atomic writes, safe reads and the checks that refuse a foreign checkpoint.

A training checkpoint (written by :meth:`sspa_core.engine.Trainer.state_dict`) holds only tensors
and primitive containers, so it loads with ``torch.load(weights_only=True)``: the run's resolved
config, its model name and label names, the trainable weights (and their EMA), the optimiser,
scheduler and gradient-scaler states, every random state, the position in the epoch and the
metric history. Frozen parameters are left out and rebuilt from the stored config, which keeps a
checkpoint of a head trained on a frozen ViT-B/16 small. Files are replaced atomically: a run
killed while saving leaves the previous checkpoint intact, and resuming from it replays exactly
the batches of an uninterrupted run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT_FORMAT = 1


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``: a
    crash leaves either the previous file or the new one, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(text: str, path: Path) -> None:
    """Write a text file through a temporary file and ``os.replace`` (logs read while training)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an sspa training checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def check_compatible(ckpt: dict[str, Any], model_name: str, label_names: list[str], source: str = "checkpoint") -> None:
    """Refuse a checkpoint made for another model or another label set, saying what differs."""
    if ckpt["model_name"] != model_name:
        raise ValueError(f"{source} was trained for model {ckpt['model_name']!r}, not {model_name!r}")
    saved = list(ckpt["label_names"])
    if saved != list(label_names):
        if len(saved) != len(label_names):
            detail = f"{len(saved)} labels in the checkpoint, {len(label_names)} here"
        elif sorted(saved) == sorted(label_names):
            detail = "same labels in another order"
        else:
            missing = sorted(set(saved) ^ set(label_names))[:5]
            detail = f"labels differ, e.g. {missing}"
        raise ValueError(f"{source} was trained for another label set ({detail})")


def _frozen_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state without its frozen parameters (those are rebuilt from the config)."""
    frozen = _frozen_names(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load :func:`trainable_state` output; anything else missing or unexpected is an error."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = sorted(set(missing) - _frozen_names(model))
    if missing or unexpected:
        raise ValueError(
            f"{source} does not fit this model: missing {missing[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
