"""The trained SSPA heads of the offline world (``data/heads/``): one per synthetic domain, made by
``sspa train --config synthetic_<domain>`` on the shipped tiny CLIP, whose image encoder stays
frozen, so a head holds only the prompts, QSM, GDMA and aggregator (eq. 1-18) and is small.

:func:`export_head` turns a training checkpoint into a shareable one (no optimizer, scheduler or
random states; machine paths removed) and writes a JSON beside it with the recipe that made it and
a check score: the monitored metric on a fixed, small validation set, which
:func:`check_score` reproduces after loading (``tests/test_heads.py``). Load a shipped head like any
checkpoint: ``load_trained_model(shipped_head("synthetic_natural"))``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import open_clip
import torch

from sspa_core.config import merge, validate_config
from sspa_core.domains import canonical_name
from sspa_core.engine.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from sspa_core.engine.evaluation import compute_metrics, gather_scores
from sspa_core.engine.runs import build_dataset, load_trained_model
from sspa_core.paths import DATA_DIR, metadata_path
from sspa_core.training import atomic_save, atomic_write_text

HEADS_DIR = DATA_DIR / "heads"
#: the configs (``sspa_core/configs/<name>.yaml``) whose trained head is shipped
SHIPPED_HEADS = ("synthetic_natural", "synthetic_pedestrian", "synthetic_remote_sensing")
#: validation images of the check score
HEAD_CHECK_IMAGES = 200
#: the keys of a training checkpoint that a shipped head keeps
_KEPT = ("format", "model_name", "label_names", "config", "model", "ema", "weights", "best", "history")


def shipped_head(name: str) -> Path:
    """The shipped head of config ``name`` (one of :data:`SHIPPED_HEADS`)."""
    name = canonical_name(name)
    if name not in SHIPPED_HEADS:
        raise ValueError(f"no shipped head for {name!r}; shipped: {', '.join(SHIPPED_HEADS)}")
    path = HEADS_DIR / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"shipped head {path} is missing; regenerate it with `make heads`")
    return path


def matching_head(dataset: str, backbone: str, pretrained: str = "", image_size: int | None = None) -> Path | None:
    """The shipped head trained on ``dataset`` with this backbone, weights and input size, or None
    (another dataset, backbone or size: a notebook then trains its own)."""
    dataset = canonical_name(dataset)
    if dataset not in SHIPPED_HEADS or not (HEADS_DIR / f"{dataset}.pt").is_file():
        return None
    path = HEADS_DIR / f"{dataset}.pt"
    meta = json.loads(metadata_path(path).read_text())
    same = meta["backbone"] == backbone and not pretrained
    return path if same and image_size in (None, meta["image_size"]) else None


def head_summary(path: str | Path) -> str:
    """One line on a shipped head: its file, the command and epochs that made it, and the score
    recorded then (its monitor on its config's evaluation split), which a notebook's own score on
    its evaluation images is read against."""
    meta = json.loads(metadata_path(path).read_text())
    return (f"the shipped head {Path(path).name} (`{meta['command']}`, {meta['epochs']} epochs): "
            f"{meta['monitor']} {100 * meta['best_value']:.1f} on the {meta['check']['split']} split when it was made")


def check_score(checkpoint: str | Path, num_images: int = HEAD_CHECK_IMAGES) -> float:
    """The monitored metric of a checkpoint (the weights its run chose, raw or EMA) on the first
    ``num_images`` images of its config's evaluation split (rendered afresh, no feature cache)."""
    model, config, _ = load_trained_model(checkpoint, "cpu")
    ds = config["dataset"]
    config = merge(config, {"dataset": {"eval_kwargs": {**ds["eval_kwargs"], "num_images": num_images}}})
    dataset = build_dataset(config, ds["eval_split"], augment=False)
    scores = gather_scores(model, dataset, batch_size=config["train"]["eval_batch_size"])
    return compute_metrics(*scores, domain=ds["domain"])[config["train"]["monitor"]]


def backbone_digest(config: dict[str, Any]) -> str | None:
    """sha256 (first 16 hex digits) of the weights file a config's backbone loads, or None for
    an open_clip tag such as ``openai``: a head fits only the weights it was trained on."""
    from sspa_core.backbone import TINY_MODELS, shipped_checkpoint

    mc = config["model"]
    if mc["pretrained"]:
        path = Path(mc["pretrained"])
    elif mc["backbone"] in TINY_MODELS:
        path = shipped_checkpoint(mc["backbone"])
    else:
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def _portable(config: dict[str, Any]) -> dict[str, Any]:
    """The config without this machine's paths (output and cache folders)."""
    return validate_config(merge(config, {"output_dir": "", "train": {"feature_cache_dir": ""}}))


def export_head(checkpoint: str | Path, out_path: str | Path, command: str) -> dict[str, Any]:
    """Write ``checkpoint`` (a ``best.pt`` or ``last.pt`` of ``sspa train``) as a shareable head at
    ``out_path``, and its metadata (``command`` that trained it, best epoch and score, training
    time, the check score, versions) beside it; returns the metadata."""
    ckpt = load_checkpoint(checkpoint)
    head = {key: ckpt[key] for key in _KEPT if key in ckpt}
    head["config"] = _portable(ckpt["config"])
    out_path = Path(out_path)
    atomic_save(head, out_path)
    tc = head["config"]["train"]
    meta = {
        "config": head["config"]["dataset"]["name"], "command": command,
        "model": head["model_name"], "backbone": head["config"]["model"]["backbone"],
        "backbone_sha256": backbone_digest(head["config"]),
        "format": CHECKPOINT_FORMAT, "image_size": head["config"]["dataset"]["image_size"],
        "epochs": tc["epochs"], "best_epoch": head["best"]["epoch"],
        "monitor": tc["monitor"], "best_value": head["best"]["value"],
        "train_seconds": round(sum(e.get("epoch_time_s", 0.0) for e in head["history"]), 1),
        "check": {"split": head["config"]["dataset"]["eval_split"], "num_images": HEAD_CHECK_IMAGES,
                  "metric": tc["monitor"], "value": check_score(out_path)},
        "file_bytes": out_path.stat().st_size,
        "torch": torch.__version__, "open_clip": open_clip.__version__,
    }
    atomic_write_text(json.dumps(meta, indent=2) + "\n", metadata_path(out_path))
    return meta
