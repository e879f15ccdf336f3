"""sspa_core.exercises: every reference solution passes its check, and a plausible wrong answer to
every exercise fails it with the exercise's hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sspa_core.exercises import EXERCISES, ExerciseFailed, check, exercise, is_correct, solution

#: a typical mistake per exercise
WRONG = {
    "00.chance_map": lambda t: float(t.mean()),  # counts the labels without a positive
    "00.pointing_chance": lambda boxes, g: sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes),  # area
    "01.hamilton": lambda p, q: tuple(a * b for a, b in zip(p, q)),  # component by component
    "01.qlinear_params": lambda i, o: i * o // 4,  # forgets the bias
    "02.messages": lambda name, t: [{"role": "user", "content": t["query"].format(name=name)}],  # no context
    "02.cosine": lambda f: f @ f.T,  # not normalised
    "03.cma": lambda a, b, w: ((a @ w) @ b.T).softmax(-1) @ b,  # no 1/sqrt(d)
    "03.split": lambda h: (h[..., 0::4], h[..., 1::4], h[..., 2::4], h[..., 3::4]),  # interleaved
    "04.gate": lambda a, b, wp, bp, wg, bg: torch.sigmoid(torch.cat([a, b], -1) @ wg + bg) * (b @ wp + bp),  # no tanh
    "04.box_share": lambda w, c: float((w * c).sum()),  # assumes the map sums to 1
    "05.soft": lambda s, tau: ((s / tau).softmax(0) * s).sum(0),  # weights from scores, not presence
    "05.limits": lambda s: (s.mean(0), s.max(0).values),  # max score, not max presence
    "06.average_precision": lambda s, t: float(t[np.argsort(-s)].cumsum().max() / len(t)),
    "06.ema_decay": lambda d, n: d,  # no warm-up
    "07.mean_accuracy": lambda p, t: float((p == t).mean()),  # plain accuracy
    "07.instance_f1": lambda p, t: float(np.mean([2 * (a & b).sum() / max(a.sum() + b.sum(), 1)
                                                  for a, b in zip(p.astype(bool), t.astype(bool))])),  # mean of F1s
}


def test_every_exercise_has_a_wrong_answer_here():
    assert set(WRONG) == set(EXERCISES)
    assert {name[:2] for name in EXERCISES} == {f"{i:02d}" for i in range(8)}


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_solution_passes(name, capsys):
    check(name, solution(name), strict=True)
    assert f"✓ {name}" in capsys.readouterr().out
    assert is_correct(name, solution(name))[0]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_a_wrong_answer_fails_with_the_hint(name, capsys):
    assert not is_correct(name, WRONG[name])[0]
    check(name, WRONG[name])
    out = capsys.readouterr().out
    assert f"✗ {name}" in out and exercise(name).hint in out
    with pytest.raises(ExerciseFailed, match="Hint"):
        check(name, WRONG[name], strict=True)


def test_an_unanswered_or_crashing_exercise_is_reported_not_raised(capsys):
    def todo(*args):
        raise NotImplementedError

    check("01.hamilton", todo)
    assert "not answered yet" in capsys.readouterr().out
    check("01.hamilton", lambda p, q: None)
    assert "returns nothing" in capsys.readouterr().out
    check("01.hamilton", lambda p, q: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out
    with pytest.raises(KeyError, match="unknown exercise"):
        check("99.nothing", todo)


def test_the_worked_ap_example_of_the_metrics_section():
    scores, targets = np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 0, 1, 0, 1])
    assert solution("06.average_precision")(scores, targets) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert math.isclose(exercise("06.average_precision").expected(scores, targets), (1 + 2 / 3 + 3 / 5) / 3)


def test_every_exercise_is_checked_in_its_notebook_and_the_runs_fill_in_the_solutions():
    import nbformat

    from sspa_core.notebooks import list_notebooks, resolve_parameters

    for path in list_notebooks():
        cells = nbformat.read(path, as_version=4).cells
        code = "\n".join(c.source for c in cells if c.cell_type == "code")
        for name in (n for n in EXERCISES if n[:2] == path.name[:2]):
            assert f'check("{name}", ' in code and f'solution("{name}")' in code, f"{path.name} lacks {name}"
            assert "strict=solutions" in code
    with_exercises = {name[:2] for name in EXERCISES}
    for profile in ("smoke", "full", "gpu"):
        plan = resolve_parameters(profile)
        assert all(values["solutions"] is True for p, values in plan.items() if p.name[:2] in with_exercises)


def test_the_chance_levels_of_notebook_00_by_hand():
    targets = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0]])  # label 3 has no positive
    assert solution("00.chance_map")(targets) == pytest.approx((2 / 4 + 1 / 4 + 2 / 4) / 3)
    # a 7 × 7 grid: the centres 0.5/7, 1.5/7 and 2.5/7 lie below 0.5 on each axis, 3.5/7 does not
    assert exercise("00.pointing_chance").expected([(0.0, 0.0, 0.5, 0.5)], 7) == pytest.approx(9 / 49)
