"""A quick fit of a head on cached features of a frozen encoder, for short demonstrations (notebooks
03-05); full training with schedules, EMA and checkpoints is :class:`sspa_core.engine.Trainer`."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from sspa_core.training import optimisation_step, optimizer_groups

if TYPE_CHECKING:
    from sspa_core.model import MultiLabelCLIPHead


def fit_on_features(
    model: MultiLabelCLIPHead,
    x0: Tensor,
    patches: Tensor,
    targets: Tensor,
    loss_fn: nn.Module,
    steps: int = 50,
    lr: float = 2e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> list[float]:
    """A few AdamW steps of the head on cached features ``(x0, X)``. Each step is
    :func:`sspa_core.training.optimisation_step` (float32, constant learning rate, weight decay
    1e-4 where :func:`sspa_core.training.uses_weight_decay`). Returns the loss of every step."""
    if not len(x0) == len(patches) == len(targets):
        raise ValueError(f"x0, X and targets differ in length: {len(x0)}, {len(patches)}, {len(targets)}")
    if not model.param_groups()["head"]:
        raise ValueError("the model has no trainable head parameters")
    optimizer = torch.optim.AdamW(optimizer_groups(model, {"head": lr}, weight_decay=1e-4))
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randperm(len(x0), generator=generator)[:batch_size]
        loss = optimisation_step(partial(model.forward_features, x0[idx], patches[idx]),
                                 partial(loss_fn, target=targets[idx]), optimizer)
        losses.append(loss.item())
    model.train(was_training)
    return losses
