"""What every exercise shares: the :class:`Exercise` record, the failure :func:`check` raises, and
the comparison and short printing of answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


class ExerciseFailed(AssertionError):
    """A checked answer differs from the expected one (raised by ``check(..., strict=True)``)."""


@dataclass(frozen=True)
class Exercise:
    """``task``: what to write; ``expected``: this package's answer for the same arguments;
    ``solution``: a reference solution as a learner would write it; ``cases``: the argument
    tuples the check tries; ``hint``: what to look at when an answer is wrong."""

    task: str
    expected: Callable[..., Any]
    solution: Callable[..., Any]
    cases: Callable[[], list[tuple]]
    hint: str


def close(got: Any, expected: Any) -> bool:
    """Numbers, arrays, tensors and nested tuples/lists/dicts, to 1e-6 relative."""
    if isinstance(expected, dict):
        return (isinstance(got, dict) and got.keys() == expected.keys()
                and all(close(got[k], expected[k]) for k in expected))
    if isinstance(expected, str):
        return got == expected
    if isinstance(expected, (list, tuple)) and expected and isinstance(expected[0], (dict, str)):
        return isinstance(got, (list, tuple)) and len(got) == len(expected) and all(map(close, got, expected))
    try:
        got_array, expected_array = (np.asarray(v.detach() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
                                     for v in (got, expected))
    except (TypeError, ValueError):
        return False
    same_shape = got_array.shape == expected_array.shape
    return same_shape and bool(np.allclose(got_array, expected_array, rtol=1e-5, atol=1e-8))


def short(value: Any, limit: int = 160) -> str:
    """``value`` printed in at most about ``limit`` characters, for a verdict."""
    if isinstance(value, torch.Tensor):
        value = value.detach().numpy()
    if isinstance(value, np.ndarray):
        text = np.array2string(value, precision=3, threshold=8, max_line_width=limit)
    elif isinstance(value, (tuple, list)):
        text = "(" + ", ".join(short(v, 60) for v in value) + ")"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + " …"
