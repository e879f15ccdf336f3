"""The exercises of notebook 05 (the soft aggregator)."""

from __future__ import annotations

import torch

from sspa_core.aggregation import SoftAggregator
from sspa_core.exercises.core import Exercise


def _soft_solution(s: torch.Tensor, tau: float) -> torch.Tensor:
    presence = s.softmax(dim=-1)  # over the labels (eq. 14)
    weights = (presence / tau).softmax(dim=0)  # over the patches (eq. 15)
    return (weights * s).sum(dim=0)  # eq. 16


def _soft_expected(s: torch.Tensor, tau: float) -> torch.Tensor:
    return SoftAggregator("soft", tau_init=tau).double()(s[None])[0][0].detach()


def _soft_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(9, 5, generator=g, dtype=torch.float64) * 3, tau) for tau in (0.05, 1.0)]


def _limits_solution(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    large = s.mean(dim=0)  # τ → ∞: uniform weights
    best = s.softmax(dim=-1).argmax(dim=0)  # τ → 0: the patch with the highest presence p_ij
    small = s.gather(0, best[None])[0]
    return large, small


def _limits_expected(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _soft_expected(s, 1e9), _soft_expected(s, 1e-9)


def _limits_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(8)
    return [(torch.randn(9, 5, generator=g, dtype=torch.float64) * 3,) for _ in range(2)]


EXERCISES: dict[str, Exercise] = {
    "05.soft": Exercise(
        "soft(s, tau): the soft aggregator's regional logits s^R [C] from patch scores s [M, C] (eq. 14-16)",
        _soft_expected, _soft_solution, _soft_cases,
        "presence p = softmax over the labels (dim 1); weights w = softmax over the patches (dim 0) of p / τ; "
        "s^R = Σ_i w_i s_i"),
    "05.limits": Exercise(
        "limits(s): the soft aggregator's value as τ → ∞ and as τ → 0, as a pair of [C] tensors",
        _limits_expected, _limits_solution, _limits_cases,
        "τ → ∞ makes the weights uniform (the mean over patches); τ → 0 puts all weight on the patch with the "
        "highest presence p_ij = softmax over labels, which need not be the patch with the highest s_ij"),
}
