"""Exercises of notebooks 00-07: each has a task, a reference solution written as a learner
would, and a check that compares the learner's function with this package's own implementation
on a few fixed cases and answers with a hint when they differ.

In a notebook::

    def hamilton(p, q):
        ...  # the learner's code
    if solutions:  # the notebook parameter that fills the solutions in (the smoke run sets it)
        hamilton = solution("01.hamilton")
    check("01.hamilton", hamilton, strict=solutions)

``check`` prints the verdict (``is_correct`` returns it); with ``strict=True`` a wrong answer
raises :class:`ExerciseFailed`, so a run with the solutions proves that every check passes.

The shared machinery is in :mod:`sspa_core.exercises.core`; each notebook's exercises are in their
own module, ``nbNN_<notebook name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sspa_core.exercises import (
    nb00_setup_and_offline_world,
    nb01_quaternion_algebra,
    nb02_llm_label_descriptions,
    nb03_split_and_synthesize_prompting,
    nb04_gated_dual_modal_alignments,
    nb05_soft_aggregator,
    nb06_training_on_coco,
    nb07_domain_transfer,
)
from sspa_core.exercises.core import Exercise, ExerciseFailed, close, short

__all__ = ["EXERCISES", "Exercise", "ExerciseFailed", "check", "exercise", "is_correct", "solution"]

EXERCISES: dict[str, Exercise] = {
    **nb00_setup_and_offline_world.EXERCISES, **nb01_quaternion_algebra.EXERCISES,
    **nb02_llm_label_descriptions.EXERCISES, **nb03_split_and_synthesize_prompting.EXERCISES,
    **nb04_gated_dual_modal_alignments.EXERCISES, **nb05_soft_aggregator.EXERCISES,
    **nb06_training_on_coco.EXERCISES, **nb07_domain_transfer.EXERCISES}


def exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        raise KeyError(f"unknown exercise {name!r}; known: {', '.join(EXERCISES)}")
    return EXERCISES[name]


def solution(name: str) -> Callable[..., Any]:
    """The reference solution of exercise ``name``."""
    return exercise(name).solution


def is_correct(name: str, answer: Callable[..., Any]) -> tuple[bool, str]:
    """Whether ``answer`` gives the expected values on every case of exercise ``name``, and the
    message :func:`check` prints (✓, or ✗ with what went wrong, the task and the hint)."""
    ex = exercise(name)
    problem = None
    for args in ex.cases():
        expected = ex.expected(*args)
        try:
            got = answer(*args)
        except NotImplementedError:
            problem = "not answered yet"
        except Exception as error:  # noqa: BLE001  (a learner's bug is reported, not raised)
            problem = f"it raised {type(error).__name__}: {error}"
        else:
            if got is None or got is Ellipsis:
                problem = "not answered yet (the function returns nothing)"
            elif not close(got, expected):
                problem = f"for the arguments {short(args)} it returned {short(got)}, expected {short(expected)}"
        if problem:
            break
    if problem is None:
        return True, f"✓ {name}: correct on {len(ex.cases())} cases"
    return False, f"✗ {name}: {problem}.\n  Task: {ex.task}.\n  Hint: {ex.hint}."


def check(name: str, answer: Callable[..., Any], strict: bool = False) -> None:
    """Try ``answer`` on the exercise's cases against the expected values and print ✓ or a hint;
    with ``strict``, a wrong answer raises :class:`ExerciseFailed` instead."""
    correct, message = is_correct(name, answer)
    if not correct and strict:
        raise ExerciseFailed(message)
    print(message)
