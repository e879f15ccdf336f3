"""The exercises of notebook 01 (quaternion algebra)."""

from __future__ import annotations

import numpy as np
import torch

from sspa_core import quaternion
from sspa_core.exercises.core import Exercise


def _hamilton_solution(p: tuple, q: tuple) -> tuple:
    r1, x1, y1, z1 = p
    r2, x2, y2, z2 = q
    return (r1 * r2 - x1 * x2 - y1 * y2 - z1 * z2,
            r1 * x2 + x1 * r2 + y1 * z2 - z1 * y2,
            r1 * y2 - x1 * z2 + y1 * r2 + z1 * x2,
            r1 * z2 + x1 * y2 - y1 * x2 + z1 * r2)


def _hamilton_expected(p: tuple, q: tuple) -> tuple:
    product = quaternion.hamilton_product(torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64))
    return tuple(product.tolist())


def _quaternion_cases() -> list[tuple]:
    units = [(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)]
    rng = np.random.default_rng(1)
    random = [(tuple(rng.normal(size=4)), tuple(rng.normal(size=4))) for _ in range(3)]
    return [(a, b) for a in units for b in units] + random


def _qlinear_params_solution(in_features: int, out_features: int) -> int:
    return 4 * (in_features // 4) * (out_features // 4) + out_features


def _qlinear_params_expected(in_features: int, out_features: int) -> int:
    return sum(p.numel() for p in quaternion.QuaternionLinear(in_features, out_features).parameters())


EXERCISES: dict[str, Exercise] = {
    "01.hamilton": Exercise(
        "hamilton(p, q): the Hamilton product of two quaternions given as (r, x, y, z) tuples (eq. 2)",
        _hamilton_expected, _hamilton_solution, _quaternion_cases,
        "multiply out (r1 + x1 i + y1 j + z1 k)(r2 + x2 i + y2 j + z2 k) with i² = j² = k² = ijk = −1; "
        "the order matters: ij = k but ji = −k"),
    "01.qlinear_params": Exercise(
        "qlinear_params(in_features, out_features): the number of parameters of QuaternionLinear(in, out)",
        _qlinear_params_expected, _qlinear_params_solution, lambda: [(8, 8), (12, 4), (512, 512), (384, 128)],
        "the weight is four real matrices of shape (out/4, in/4), one per component, and the bias has out entries"),
}
