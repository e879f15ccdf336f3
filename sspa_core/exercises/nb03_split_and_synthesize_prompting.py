"""The exercises of notebook 03 (split-and-synthesize prompting)."""

from __future__ import annotations

import math

import numpy as np
import torch

from sspa_core import alignment, quaternion
from sspa_core.exercises.core import Exercise


def _cma_solution(a: torch.Tensor, b: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    scores = (a @ w_q) @ b.T / math.sqrt(a.shape[-1])
    return scores.softmax(dim=-1) @ b


def _cma_expected(a: torch.Tensor, b: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    cma = alignment.CrossModalAttention(a.shape[-1]).double()
    with torch.no_grad():
        cma.query.weight.copy_(w_q.T)  # nn.Linear computes a @ weight.T
        return cma(a[None], b[None])[0][0]


def _cma_cases() -> list[tuple]:
    generator = torch.Generator().manual_seed(3)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    return [(randn(4, 8), randn(6, 8), randn(8, 8)) for _ in range(2)]


def _split_solution(h: np.ndarray) -> tuple:
    k = h.shape[-1] // 4
    return h[..., :k], h[..., k:2 * k], h[..., 2 * k:3 * k], h[..., 3 * k:]


def _split_expected(h: np.ndarray) -> tuple:
    return tuple(part.numpy() for part in quaternion.split_quaternion(torch.from_numpy(h)))


def _split_cases() -> list[tuple]:
    rng = np.random.default_rng(4)
    return [(rng.normal(size=(3, 8)),), (rng.normal(size=(16,)),)]


EXERCISES: dict[str, Exercise] = {
    "03.cma": Exercise(
        "cma(A, B, W_q): cross-modal attention softmax((A W_q) Bᵀ / √d) B (eq. 3) for A [n, d], B [m, d], W_q [d, d]",
        _cma_expected, _cma_solution, _cma_cases,
        "only the query is projected; divide by √d with d the feature width; the softmax runs over B's rows "
        "(the last dimension of the score matrix)"),
    "03.split": Exercise(
        "split(h): the four components (r, x, y, z) of a feature vector read as a quaternion (eq. 7)",
        _split_expected, _split_solution, _split_cases,
        "cut the last dimension into four consecutive chunks of equal width, in the order r, x, y, z"),
}
