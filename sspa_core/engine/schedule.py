"""The learning-rate schedule of every optimisation loop: linear warm-up, then cosine decay.

``LinearLR`` (from ``start_factor`` × lr to lr) → ``CosineAnnealingLR`` (to 0) in
``SequentialLR``, stepped once per optimiser step. Used by :class:`sspa_core.engine.Trainer`
(warm-up given in epochs, ``train.warmup_epochs``) and by the tiny-CLIP pretraining
(:func:`sspa_core.tiny_clip.pretrain_tiny_clip`, warm-up given in steps).
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int,
                  start_factor: float = 0.01) -> LRScheduler:
    """Warm-up over ``warmup_steps`` (at most ``total_steps - 1``), then cosine decay until
    ``total_steps``; without warm-up, the cosine decay alone."""
    total = max(1, total_steps)
    warmup = max(0, min(warmup_steps, total - 1))
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
    if warmup == 0:
        return cosine
    linear = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [linear, cosine], milestones=[warmup])
