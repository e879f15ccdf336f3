"""The exercises of notebook 06 (training)."""

from __future__ import annotations

import numpy as np

from sspa_core.exercises.core import Exercise
from sspa_core.metrics import average_precision_per_class
from sspa_core.training import ema_decay


def _ap_solution(scores: np.ndarray, targets: np.ndarray) -> float:
    order = np.argsort(-scores)
    hits = targets[order]
    precision_at_hits = np.cumsum(hits)[hits == 1] / (np.flatnonzero(hits == 1) + 1)
    return float(precision_at_hits.mean())


def _ap_expected(scores: np.ndarray, targets: np.ndarray) -> float:
    return float(average_precision_per_class(scores[:, None], targets[:, None])[0])


def _ap_cases() -> list[tuple]:
    rng = np.random.default_rng(9)
    cases = [(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 0, 1, 0, 1]))]  # AP = (1 + 2/3 + 3/5) / 3
    for n in (12, 40):
        targets = (rng.random(n) < 0.4).astype(int)
        targets[0] = 1
        cases.append((rng.random(n), targets))
    return cases


def _ema_solution(decay: float, updates: int) -> float:
    return min(decay, (1 + updates) / (10 + updates))


def _ema_cases() -> list[tuple]:
    return [(0.9997, 0), (0.9997, 10), (0.9997, 1000), (0.9997, 100000), (0.99, 5000)]


EXERCISES: dict[str, Exercise] = {
    "06.average_precision": Exercise(
        "average_precision(scores, targets): AP of one label, the mean of the precision at each positive in the "
        "ranking by score (docs/method.md §Metrics)",
        _ap_expected, _ap_solution, _ap_cases,
        "sort by decreasing score; at the k-th positive, found at rank r (counting from 1), the precision is k / r; "
        "average over the positives only"),
    "06.ema_decay": Exercise(
        "ema_decay(decay, n): the EMA decay after n earlier updates, with the warm-up min(decay, (1 + n) / (10 + n))",
        ema_decay, _ema_solution, _ema_cases,
        "early updates use a small decay so the average follows the weights; it reaches `decay` only after "
        "thousands of updates"),
}
