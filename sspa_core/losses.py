"""The asymmetric loss (eq. 17, Ridnik et al. 2021), the SSPA objective (eq. 19) and the tiny CLIP's
patch-text pretraining loss (docs/method.md §Offline world)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class AsymmetricLoss(nn.Module):
    """Asymmetric loss (ASL, Ridnik et al. 2021) on logits (eq. 17):

    ``ℓ_j = −[ y_j (1 − p_j)^{γ+} log p_j + (1 − y_j) p_{m,j}^{γ−} log(1 − p_{m,j}) ]``,
    ``p = σ(logit)``, ``p_m = max(p − m, 0)`` (probability margin ``m = clip``: easy negatives
    with ``p ≤ m`` cost nothing). The defaults γ+ = 0, γ− = 4, m = 0.05 are ASL's (the paper's
    values are lost). Logarithms are computed from log-sigmoids and bounded below by
    ``log(eps)`` as in the reference implementation.

    ``detach_focusing`` (default True): the focusing weights ``(1 − p_j)^{γ+}`` and
    ``p_{m,j}^{γ−}`` are computed without gradient, i.e. treated as constant per-entry weights of
    the log-likelihood terms. This is what the reference training script does
    (``AsymmetricLoss(..., disable_torch_grad_focal_loss=True)`` in Alibaba-MIIL/ASL ``train.py``,
    whose numbers ASL reports; the class default there is False), so it is the default here.
    It leaves the loss value unchanged and only changes the gradient; ``False`` differentiates
    through the weights (the focal-loss gradient, as written in eq. 17).

    Reduction: the mean of ``ℓ`` over the counted entries, i.e. ``Σ mask·ℓ / Σ mask`` (all
    ``B·C`` entries without a mask, which is the batch mean of the paper's ``(1/C) Σ_j``);
    entries with ``mask = 0`` (e.g. VOC "difficult") contribute nothing; an all-zero mask gives 0.
    """

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05, eps: float = 1e-8,
                 detach_focusing: bool = True):
        super().__init__()
        if gamma_pos < 0 or gamma_neg < 0:
            raise ValueError(f"focusing parameters must be >= 0, got gamma_pos={gamma_pos}, gamma_neg={gamma_neg}")
        if not 0 <= clip < 1:
            raise ValueError(f"clip (probability margin) must lie in [0, 1), got {clip}")
        if not 0 <= eps < 1:
            raise ValueError(f"eps must lie in [0, 1), got {eps}")
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.clip = clip
        self.eps = eps
        self.detach_focusing = detach_focusing

    def forward(self, logits: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """``logits``, ``target`` (0/1) and optional ``mask`` (1 counts, 0 ignored): all ``[B, C]``."""
        if target.shape != logits.shape:
            raise ValueError(f"target shape {tuple(target.shape)} differs from logits shape {tuple(logits.shape)}")
        if mask is not None and mask.shape != logits.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} differs from logits shape {tuple(logits.shape)}")
        target = target.to(logits.dtype)
        log_floor = math.log(self.eps) if self.eps > 0 else -math.inf
        prob = torch.sigmoid(logits)
        log_pos = F.logsigmoid(logits).clamp(min=log_floor)
        if self.clip > 0:
            prob_neg = (prob - self.clip).clamp(min=0)
            log_neg = torch.log1p(-prob_neg).clamp(min=log_floor)
        else:
            prob_neg = prob
            log_neg = F.logsigmoid(-logits).clamp(min=log_floor)
        weight_pos, weight_neg = (1 - prob).pow(self.gamma_pos), prob_neg.pow(self.gamma_neg)
        if self.detach_focusing:
            weight_pos, weight_neg = weight_pos.detach(), weight_neg.detach()
        loss_pos = target * weight_pos * log_pos
        loss_neg = (1 - target) * weight_neg * log_neg
        loss = -(loss_pos + loss_neg)
        if mask is None:
            return loss.mean()
        mask = mask.to(logits.dtype)
        return (loss * mask).sum() / mask.sum().clamp(min=1)


class SSPALoss(nn.Module):
    """The SSPA objective ``L = L^G + λ L^R`` (eq. 19), one asymmetric loss per branch.

    ``outputs`` maps ``"global"`` and ``"regional"`` to logits ``[B, C]``; a missing or ``None``
    branch (a single-branch ablation) is left out of the sum.
    """

    def __init__(self, asl: AsymmetricLoss | None = None, regional_weight: float = 1.0):
        super().__init__()
        self.asl = asl if asl is not None else AsymmetricLoss()
        self.regional_weight = regional_weight

    def forward(self, outputs: Mapping[str, Tensor | None], target: Tensor, mask: Tensor | None = None) -> Tensor:
        global_logits = outputs.get("global")
        regional_logits = outputs.get("regional")
        if global_logits is None and regional_logits is None:
            raise ValueError(f"outputs hold neither 'global' nor 'regional' logits (keys: {sorted(outputs)})")
        terms = []
        if global_logits is not None:
            terms.append(self.asl(global_logits, target, mask))
        if regional_logits is not None:
            terms.append(self.regional_weight * self.asl(regional_logits, target, mask))
        return torch.stack(terms).sum()


def patch_text_loss(patches: Tensor, texts: Tensor, targets: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    """A dense, sigmoid patch-text loss (SigLIP's pairwise sigmoid applied to patches): patch ``m``
    of image ``b`` against label text ``l`` has the logit ``scale · cos(x_bm, t_l) + bias`` and the
    target ``targets[b, m, l]`` (1 where the patch shows the label). Binary cross-entropy summed
    over the labels, averaged over the patches.

    ``patches [B, M, d]``, ``texts [L, d]`` (unnormalised), ``targets [B, M, L]`` in {0, 1};
    ``scale`` and ``bias`` scalars (learned; SigLIP starts them at 10 and -10)."""
    if patches.dim() != 3 or texts.dim() != 2 or targets.shape != (*patches.shape[:2], texts.shape[0]):
        raise ValueError(f"need patches [B, M, d], texts [L, d] and targets [B, M, L], got "
                         f"{tuple(patches.shape)}, {tuple(texts.shape)} and {tuple(targets.shape)}")
    logits = scale * (F.normalize(patches, dim=-1) @ F.normalize(texts, dim=-1).T) + bias
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return loss.sum(-1).mean()
