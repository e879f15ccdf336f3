"""Scores of a whole dataset in dataset order (also under DDP), and the metrics of a run.

Under ``torchrun`` each process scores its shard (``DistributedSampler``, which pads the dataset
to a multiple of the world size), the shards are all-gathered and the padding duplicates dropped
by their dataset index, so every process holds the scores of each item exactly once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from sspa_core.engine.runtime import DistInfo, seed_worker
from sspa_core.features import batch_loader
from sspa_core.training import Precision

CPU = torch.device("cpu")


class Forward(nn.Module):
    """What DDP wraps: images through ``model(images)``, cached features through
    ``model.forward_features(x0, X)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        if "image" in batch:
            return self.model(batch["image"])
        return self.model.forward_features(batch["x0"], batch["X"])


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on ``device`` (asynchronous copies from pinned memory on CUDA)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def gather_scores(model: nn.Module, dataset: Dataset, *, batch_size: int = 64, num_workers: int = 0,
                  device: torch.device = CPU, dist_info: DistInfo | None = None,
                  precision: Precision | None = None,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores ŷ (eq. 18), targets and masks of the whole ``dataset`` (images or cached features)
    in dataset order, the forward pass under ``precision``'s autocast."""
    dist_info = dist_info or DistInfo()
    precision = precision or Precision(device.type)
    was_training = model.training
    model.eval()
    forward = Forward(model)
    sampler = (DistributedSampler(dataset, dist_info.world_size, dist_info.rank, shuffle=False)
               if dist_info.distributed else None)
    loader = batch_loader(dataset, batch_size, sampler, num_workers=num_workers, worker_init_fn=seed_worker,
                          pin_memory=device.type == "cuda")
    scores, targets, masks, indices = [], [], [], []
    for batch in tqdm(loader, desc="evaluating", leave=False, disable=not progress):
        batch = to_device(batch, device)
        with precision.autocast():
            scores.append(forward(batch)["score"].float())
        targets.append(batch["target"].float())
        masks.append(batch["mask"].float())
        indices.append(torch.as_tensor(batch["index"], device=device))
    model.train(was_training)
    local = [torch.cat(t) for t in (scores, targets, masks, indices)]
    if dist_info.distributed:
        local = [_all_gather_cat(t) for t in local]
    score, target, mask, index = (t.cpu().numpy() for t in local)
    _, first = np.unique(index, return_index=True)
    return score[first], target[first], mask[first]


def compute_metrics(scores: np.ndarray, targets: np.ndarray, masks: np.ndarray | None, domain: str) -> dict[str, float]:
    """:func:`sspa_core.metrics.evaluate` with the metric set of the dataset's ``domain``,
    flattened to ``name -> float``."""
    from sspa_core.metrics import evaluate, metric_set_for

    return _flat_metrics(evaluate(scores, targets, masks, metric_set=metric_set_for(domain)))


def metric_names(domain: str) -> list[str]:
    """The names :func:`compute_metrics` reports for ``domain`` (what ``train.monitor`` may be)."""
    return list(compute_metrics(np.eye(2), np.eye(2), None, domain))


def check_monitor(monitor: str, domain: str) -> None:
    """Refuse a ``train.monitor`` that the metric set of ``domain`` does not produce."""
    names = metric_names(domain)
    if monitor not in names:
        raise ValueError(f"train.monitor={monitor!r} is not a metric of the {domain} domain; valid: {', '.join(names)}")


def _flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat_metrics(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, np.floating, np.integer)):
            out[f"{prefix}{key}"] = float(value)
    return out


def _all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)
