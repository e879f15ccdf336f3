"""Regional logits from patch–label similarities: the soft aggregator (eq. 14-16).

``s_ij = τ_s · cos(x^{fn}_i, t^{fn}_j)`` scores patch ``i`` against label ``j``. The soft
aggregator weighs each patch by how confidently it shows the label and sums the scores into one
regional logit per label; mean and max ("hard") pooling over patches are the Fig. 5 ablations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

AGGREGATION_MODES = ("soft", "mean", "max")
PRESENCE_MODES = ("softmax", "sigmoid")


def patch_label_similarity(x_fn: Tensor, t_fn: Tensor, scale: Tensor | float) -> Tensor:
    """``s_ij = τ_s · cos(x_i, t_j)`` (the input of eq. 14) as ``[B, M, C]``.

    ``x_fn``: patch features ``[B, M, d]``; ``t_fn``: label features ``[B, C, d]`` or ``[C, d]``;
    ``scale``: the multiplier ``τ_s`` itself (for CLIP, ``logit_scale.exp()``, not the log).
    """
    if x_fn.dim() != 3:
        raise ValueError(f"x_fn must have shape [B, M, d], got {tuple(x_fn.shape)}")
    if t_fn.dim() not in (2, 3) or t_fn.shape[-1] != x_fn.shape[-1]:
        width = x_fn.shape[-1]
        raise ValueError(f"t_fn must have shape [B, C, {width}] or [C, {width}], got {tuple(t_fn.shape)}")
    if t_fn.dim() == 3 and t_fn.shape[0] != x_fn.shape[0]:
        raise ValueError(f"batch sizes differ: x_fn has {x_fn.shape[0]}, t_fn has {t_fn.shape[0]}")
    x_unit = F.normalize(x_fn, dim=-1)
    t_unit = F.normalize(t_fn, dim=-1)
    return scale * (x_unit @ t_unit.transpose(-1, -2))


class SoftAggregator(nn.Module):
    """Aggregate patch scores ``s [B, M, C]`` into regional logits ``s^R [B, C]`` (eq. 14-16).

    ``mode="soft"``:

    - regional presence probability ``p_ij = softmax_j(s_ij)`` over the labels
      (``presence="softmax"``, a reconstruction, the default) or ``σ(s_ij)``
      (``presence="sigmoid"``, the named alternative) (eq. 14);
    - patch importance ``w_ij = softmax_i(p_ij / τ)`` over the M patches, with a learnable
      temperature ``τ > 0`` (init 0.05), stored as ``log τ`` (eq. 15);
    - regional logit ``s^R_j = Σ_i w_ij s_ij`` (eq. 16; the weighted sum of scores is a
      reconstruction).

    As ``τ → ∞`` the weights become uniform and ``s^R`` tends to the mean over patches; as
    ``τ → 0`` all weight goes to the patch with the highest presence ``p_ij`` (with
    ``"sigmoid"`` presence that is the patch with the highest ``s_ij``, i.e. max pooling).

    ``mode="mean"`` / ``"max"``: mean or max ("hard") over patches, the Fig. 5 ablations; these
    modes have no temperature parameter, and ``w`` is uniform or the one-hot arg-max.
    """

    def __init__(self, mode: str = "soft", tau_init: float = 0.05, presence: str = "softmax"):
        super().__init__()
        if mode not in AGGREGATION_MODES:
            raise ValueError(f"unknown aggregation mode {mode!r}; choose one of {AGGREGATION_MODES}")
        if presence not in PRESENCE_MODES:
            raise ValueError(f"unknown presence {presence!r}; choose one of {PRESENCE_MODES}")
        if not (tau_init > 0 and math.isfinite(tau_init)):
            raise ValueError(f"tau_init must be a positive finite number, got {tau_init}")
        self.mode = mode
        self.presence = presence
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau_init))) if mode == "soft" else None

    @property
    def tau(self) -> Tensor | None:
        """The temperature ``τ = exp(log τ)`` (``None`` outside soft mode)."""
        return None if self.log_tau is None else self.log_tau.exp()

    def presence_probability(self, s: Tensor) -> Tensor:
        """``p_ij`` of eq. 14: softmax over labels or sigmoid of ``s [B, M, C]``."""
        return s.softmax(dim=-1) if self.presence == "softmax" else torch.sigmoid(s)

    def forward(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """``s [B, M, C]`` → ``(s^R [B, C], w [B, M, C])``; ``w`` sums to 1 over the patches."""
        if s.dim() != 3:
            raise ValueError(f"patch scores must have shape [B, M, C], got {tuple(s.shape)}")
        if self.mode == "mean":
            weights = torch.full_like(s, 1.0 / s.shape[1])
        elif self.mode == "max":
            weights = F.one_hot(s.argmax(dim=1), s.shape[1]).transpose(1, 2).to(s.dtype)
        else:
            weights = (self.presence_probability(s) / self.tau).softmax(dim=1)
        return (weights * s).sum(dim=1), weights

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, presence={self.presence!r}"
