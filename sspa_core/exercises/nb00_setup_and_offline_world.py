"""The exercises of notebook 00 (the offline world): the chance levels of mAP and of the pointing
game."""

from __future__ import annotations

import numpy as np

from sspa_core.exercises.core import Exercise
from sspa_core.localization import patch_centres_inside
from sspa_core.metrics import mean_average_precision


def _chance_map_solution(targets: np.ndarray) -> float:
    labelled = targets[:, targets.sum(axis=0) > 0]
    return float(labelled.mean(axis=0).mean())


def _chance_map_expected(targets: np.ndarray) -> float:
    return mean_average_precision(np.zeros(targets.shape), targets)


def _chance_map_cases() -> list[tuple]:
    rng = np.random.default_rng(0)
    worked = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0]])  # the last label has no positive
    drawn = (rng.random((50, 12)) < np.linspace(0.02, 0.6, 12)).astype(int)
    drawn[:, 3] = 0
    drawn[0, 0] = 1
    return [(worked,), (drawn,), (np.eye(5, dtype=int),)]


def _pointing_chance_solution(boxes: list[tuple], grid: int) -> float:
    centres = (np.arange(grid) + 0.5) / grid
    x, y = np.meshgrid(centres, centres)
    inside = np.zeros((grid, grid), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        inside |= (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    return float(inside.mean())


def _pointing_chance_expected(boxes: list[tuple], grid: int) -> float:
    return float(patch_centres_inside([(box, ("label",)) for box in boxes], grid).mean())


def _pointing_chance_cases() -> list[tuple]:
    return [([(0.0, 0.0, 0.5, 0.5)], 7),
            ([(0.1, 0.1, 0.4, 0.9), (0.3, 0.2, 0.8, 0.5)], 7),  # overlapping boxes
            ([(0.2, 0.6, 0.7, 1.0)], 14),
            ([(0.45, 0.45, 0.5, 0.5)], 7),  # smaller than a patch: no centre inside
            ([(0.0, 0.0, 1.0, 1.0)], 4)]


EXERCISES: dict[str, Exercise] = {
    "00.chance_map": Exercise(
        "chance_map(targets): the mAP of a scorer that knows nothing (the same score for every image) on "
        "0/1 targets [N, C]",
        _chance_map_expected, _chance_map_solution, _chance_map_cases,
        "a constant score ties all N images, so each label's precision is read once, over all of them: its "
        "positives over N, its frequency; mAP averages that over the labels with at least one positive only"),
    "00.pointing_chance": Exercise(
        "pointing_chance(boxes, grid): the share of the grid × grid patch centres inside at least one of the "
        "boxes (x0, y0, x1, y1), as fractions of the image side",
        _pointing_chance_expected, _pointing_chance_solution, _pointing_chance_cases,
        "patch (row, column) has its centre at x = (column + 0.5) / grid, y = (row + 0.5) / grid; it counts once "
        "when that centre is inside any box (x0 <= x < x1, y0 <= y < y1); it is not the boxes' area"),
}
