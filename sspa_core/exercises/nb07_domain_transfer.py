"""The exercises of notebook 07 (pedestrian-attribute metrics)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sspa_core.exercises.core import Exercise
from sspa_core.metrics import pedestrian_metrics


def _mean_accuracy_solution(predicted: np.ndarray, targets: np.ndarray) -> float:
    p, t = predicted.astype(bool), targets.astype(bool)
    positives, negatives = t.sum(0), (~t).sum(0)
    tpr = np.where(positives > 0, (p & t).sum(0) / np.maximum(positives, 1), 0.0)
    tnr = np.where(negatives > 0, (~p & ~t).sum(0) / np.maximum(negatives, 1), 0.0)
    return float(((tpr + tnr) / 2).mean())


def _instance_f1_solution(predicted: np.ndarray, targets: np.ndarray) -> float:
    p, t = predicted.astype(bool), targets.astype(bool)
    both = (p & t).sum(1)
    precision = np.where(p.sum(1) > 0, both / np.maximum(p.sum(1), 1), 0.0).mean()
    recall = np.where(t.sum(1) > 0, both / np.maximum(t.sum(1), 1), 0.0).mean()
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def _pedestrian(key: str) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda predicted, targets: pedestrian_metrics(predicted.astype(float), targets, threshold=0.5)[key]


def _attribute_cases() -> list[tuple]:
    rng = np.random.default_rng(10)
    hand = (np.array([[1, 1, 1], [0, 1, 0], [0, 1, 0], [0, 0, 0]]),  # the worked example of tests/test_metrics.py
            np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]]))
    random = [((rng.random((20, 6)) < 0.4).astype(int), (rng.random((20, 6)) < 0.3).astype(int)) for _ in range(2)]
    return [hand, *random]


EXERCISES: dict[str, Exercise] = {
    "07.mean_accuracy": Exercise(
        "mean_accuracy(predicted, targets): mA of 0/1 predictions [N, C] (docs/method.md §Metrics, Rethinking_of_PAR)",
        _pedestrian("mA"), _mean_accuracy_solution, _attribute_cases,
        "per attribute (column): (TP/P + TN/N) / 2, a ratio with an empty denominator counting 0; then the mean "
        "over attributes"),
    "07.instance_f1": Exercise(
        "instance_f1(predicted, targets): the instance-based F1 of 0/1 predictions [N, C]",
        _pedestrian("F1"), _instance_f1_solution, _attribute_cases,
        "per image: precision |gt ∩ pred| / |pred| and recall |gt ∩ pred| / |gt| (an empty set counts 0); F1 is "
        "the harmonic mean of the MEAN precision and the MEAN recall, not the mean of per-image F1 scores"),
}
