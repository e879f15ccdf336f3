"""The exercises of notebook 04 (gated dual-modal alignments)."""

from __future__ import annotations

import numpy as np
import torch

from sspa_core import alignment
from sspa_core.exercises.core import Exercise


def _gate_solution(a, b, w_p, b_p, w_g, b_g):
    modulated = torch.tanh(b @ w_p + b_p)
    gate = torch.sigmoid(torch.cat([a, b], dim=-1) @ w_g + b_g)
    return gate * modulated


def _gate_expected(a, b, w_p, b_p, w_g, b_g):
    gate = alignment.Gate(a.shape[-1]).double()
    with torch.no_grad():
        gate.modulation.weight.copy_(w_p.T)
        gate.modulation.bias.copy_(b_p)
        gate.gate.weight.copy_(w_g.T)
        gate.gate.bias.copy_(b_g)
        return gate(a, b)[0]


def _gate_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(5)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return [(randn(3, 4), randn(3, 4), randn(4, 4), randn(4), randn(8, 4), randn(4)) for _ in range(2)]


def _box_share_solution(weights: np.ndarray, coverage: np.ndarray) -> float:
    return float((weights * coverage).sum() / weights.sum())


def _box_share_expected(weights: np.ndarray, coverage: np.ndarray) -> float:
    return float(np.dot(weights / weights.sum(), coverage))


def _box_share_cases() -> list[tuple]:
    rng = np.random.default_rng(6)
    weights = rng.random(49)
    coverage = np.zeros(49)
    coverage[[8, 9, 15, 16]] = [1.0, 0.5, 1.0, 0.25]
    return [(weights / weights.sum(), coverage), (weights, coverage), (np.full(49, 1 / 49), coverage)]


EXERCISES: dict[str, Exercise] = {
    "04.gate": Exercise(
        "gate(A, B, W_p, b_p, W_g, b_g): G ⊙ P with P = tanh(B W_p + b_p) and G = σ([A ‖ B] W_g + b_g) (eq. 11)",
        _gate_expected, _gate_solution, _gate_cases,
        "the modulation P uses only B; the gate G sees the concatenation [A ‖ B] along the feature dimension, "
        "so W_g is [2d, d]; multiply element by element"),
    "04.box_share": Exercise(
        "box_share(weights, coverage): the share of a patch-weight map [M] that falls on the boxes, given each "
        "patch's covered fraction [M]",
        _box_share_expected, _box_share_solution, _box_share_cases,
        "weigh each patch's coverage by its weight and divide by the total weight (maps need not sum to 1); a "
        "uniform map gives the mean coverage"),
}
