"""Platt scaling: one scale and one shift that turn uncalibrated logits (e.g. zero-shot CLIP's
``tau * cos``) into probabilities before the two branches are averaged (eq. 18).

Zero-shot logits are large, positive and meaningful only up to a shift, so ``sigmoid(s)`` is no
probability; eq. 18 needs one. :func:`platt_scaling` fits ``sigmoid(a * s + b)`` to the targets
by binary cross-entropy and refuses, with a message saying why, scores it cannot calibrate.
"""

from __future__ import annotations

import torch
from torch import Tensor


class DegenerateScores(ValueError):
    """Scores (or targets) that carry no information to calibrate with."""


def check_calibratable(logits: Tensor, targets: Tensor) -> None:
    """Raise :class:`DegenerateScores` naming the problem when ``logits`` [N, C] cannot be fitted
    to ``targets`` [N, C]: no scores, NaN or infinite scores, scores without spread (e.g. an
    untrained backbone whose features collapsed) or targets that are all 0 or all 1."""
    if logits.numel() == 0:
        raise DegenerateScores("no scores to calibrate (the fitting set is empty: use more images)")
    if not torch.isfinite(logits).all():
        bad = int((~torch.isfinite(logits)).sum())
        raise DegenerateScores(f"{bad} of {logits.numel()} scores are NaN or infinite (a diverged or broken "
                               "backbone: check its weights)")
    if not logits.float().std() > 0:
        raise DegenerateScores(f"all {logits.numel()} scores are equal ({logits.flatten()[0].item():.4g}): "
                               "they rank nothing (are the backbone's weights random or collapsed?)")
    if targets.min() == targets.max():
        raise DegenerateScores(f"every target is {int(targets.flatten()[0].item())}: fitting a scale and shift, "
                               "and scoring them, need both present and absent labels (use more images)")


def platt_scaling(logits: Tensor, targets: Tensor, steps: int = 200) -> tuple[Tensor, Tensor]:
    """Scale ``a`` and shift ``b`` minimising ``BCE(a * logits + b, targets)`` (L-BFGS on the
    standardised logits, for conditioning); see :func:`check_calibratable` for what is refused."""
    check_calibratable(logits, targets)
    logits, targets = logits.detach().float(), targets.detach().float()
    mean, std = logits.mean(), logits.std()
    z = (logits - mean) / std
    a = torch.ones((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.LBFGS([a, b], max_iter=steps)

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * z + b, targets)
        loss.backward()
        return loss

    optimiser.step(closure)
    a, b = a.detach(), b.detach()
    return a / std, b - a * mean / std
