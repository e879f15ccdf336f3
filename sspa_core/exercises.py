"""Exercises of notebooks 01-07: each has a task, a reference solution written as a learner
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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sspa_core import alignment, quaternion
from sspa_core.aggregation import SoftAggregator
from sspa_core.descriptions import build_messages, load_template
from sspa_core.metrics import average_precision_per_class, pedestrian_metrics
from sspa_core.training import ema_decay
from sspa_core.viz import cosine_similarity_matrix


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


def _close(got: Any, expected: Any) -> bool:
    """Numbers, arrays, tensors and nested tuples/lists/dicts, to 1e-6 relative."""
    if isinstance(expected, dict):
        return (isinstance(got, dict) and got.keys() == expected.keys()
                and all(_close(got[k], expected[k]) for k in expected))
    if isinstance(expected, str):
        return got == expected
    if isinstance(expected, (list, tuple)) and expected and isinstance(expected[0], (dict, str)):
        return isinstance(got, (list, tuple)) and len(got) == len(expected) and all(map(_close, got, expected))
    try:
        got_array, expected_array = (np.asarray(v.detach() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
                                     for v in (got, expected))
    except (TypeError, ValueError):
        return False
    same_shape = got_array.shape == expected_array.shape
    return same_shape and bool(np.allclose(got_array, expected_array, rtol=1e-5, atol=1e-8))


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- 01: quaternion algebra ------------------------------------------------------------------

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
    rng = _rng(1)
    random = [(tuple(rng.normal(size=4)), tuple(rng.normal(size=4))) for _ in range(3)]
    return [(a, b) for a in units for b in units] + random


def _qlinear_params_solution(in_features: int, out_features: int) -> int:
    return 4 * (in_features // 4) * (out_features // 4) + out_features


def _qlinear_params_expected(in_features: int, out_features: int) -> int:
    return sum(p.numel() for p in quaternion.QuaternionLinear(in_features, out_features).parameters())


# --- 02: descriptions ------------------------------------------------------------------------

def _messages_solution(name: str, template: dict) -> list[dict]:
    messages = [{"role": "system", "content": template["domain_description"] + " " + template["instruction"]}]
    for example in template["examples"]:
        messages += [{"role": "user", "content": template["query"].format(name=example["name"])},
                     {"role": "assistant", "content": example["answer"]}]
    return messages + [{"role": "user", "content": template["query"].format(name=name)}]


def _messages_cases() -> list[tuple]:
    return [("keyboard", load_template("natural")), ("long hair", load_template("pedestrian")),
            ("runway", load_template("remote_sensing"))]


def _cosine_solution(features: np.ndarray) -> np.ndarray:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    return unit @ unit.T


def _feature_cases() -> list[tuple]:
    rng = _rng(2)
    return [(rng.normal(size=(5, 8)),), (rng.normal(size=(3, 16)) + 2.0,)]


# --- 03: split-and-synthesize prompting ------------------------------------------------------

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
    rng = _rng(4)
    return [(rng.normal(size=(3, 8)),), (rng.normal(size=(16,)),)]


# --- 04: gated dual-modal alignments ---------------------------------------------------------

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
    rng = _rng(6)
    weights = rng.random(49)
    coverage = np.zeros(49)
    coverage[[8, 9, 15, 16]] = [1.0, 0.5, 1.0, 0.25]
    return [(weights / weights.sum(), coverage), (weights, coverage), (np.full(49, 1 / 49), coverage)]


# --- 05: the soft aggregator -----------------------------------------------------------------

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


# --- 06: training ----------------------------------------------------------------------------

def _ap_solution(scores: np.ndarray, targets: np.ndarray) -> float:
    order = np.argsort(-scores)
    hits = targets[order]
    precision_at_hits = np.cumsum(hits)[hits == 1] / (np.flatnonzero(hits == 1) + 1)
    return float(precision_at_hits.mean())


def _ap_expected(scores: np.ndarray, targets: np.ndarray) -> float:
    return float(average_precision_per_class(scores[:, None], targets[:, None])[0])


def _ap_cases() -> list[tuple]:
    rng = _rng(9)
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


# --- 07: pedestrian-attribute metrics --------------------------------------------------------

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
    rng = _rng(10)
    hand = (np.array([[1, 1, 1], [0, 1, 0], [0, 1, 0], [0, 0, 0]]),  # the worked example of tests/test_metrics.py
            np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]]))
    random = [((rng.random((20, 6)) < 0.4).astype(int), (rng.random((20, 6)) < 0.3).astype(int)) for _ in range(2)]
    return [hand, *random]


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
    "02.messages": Exercise(
        "in_context_messages(name, template): the chat prompt P_j for a label (eq. 4, Fig. 3), a list of "
        "{'role', 'content'} dicts",
        build_messages, _messages_solution, _messages_cases,
        "system turn: domain_description, a space, instruction; then for every example a user turn (query with "
        "the example's name) and an assistant turn (its answer); last, the query with this label's name"),
    "02.cosine": Exercise(
        "cosine(features): the [C, C] matrix of cosine similarities between the rows of a [C, d] array",
        cosine_similarity_matrix, _cosine_solution, _feature_cases,
        "normalise every row to unit length first; the diagonal must be 1"),
    "03.cma": Exercise(
        "cma(A, B, W_q): cross-modal attention softmax((A W_q) Bᵀ / √d) B (eq. 3) for A [n, d], B [m, d], W_q [d, d]",
        _cma_expected, _cma_solution, _cma_cases,
        "only the query is projected; divide by √d with d the feature width; the softmax runs over B's rows "
        "(the last dimension of the score matrix)"),
    "03.split": Exercise(
        "split(h): the four components (r, x, y, z) of a feature vector read as a quaternion (eq. 7)",
        _split_expected, _split_solution, _split_cases,
        "cut the last dimension into four consecutive chunks of equal width, in the order r, x, y, z"),
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
    "06.average_precision": Exercise(
        "average_precision(scores, targets): AP of one label, the mean of the precision at each positive in the "
        "ranking by score (SPEC §2)",
        _ap_expected, _ap_solution, _ap_cases,
        "sort by decreasing score; at the k-th positive, found at rank r (counting from 1), the precision is k / r; "
        "average over the positives only"),
    "06.ema_decay": Exercise(
        "ema_decay(decay, n): the EMA decay after n earlier updates, with the warm-up min(decay, (1 + n) / (10 + n))",
        ema_decay, _ema_solution, _ema_cases,
        "early updates use a small decay so the average follows the weights; it reaches `decay` only after "
        "thousands of updates"),
    "07.mean_accuracy": Exercise(
        "mean_accuracy(predicted, targets): mA of 0/1 predictions [N, C] (SPEC §2, Rethinking_of_PAR)",
        _pedestrian("mA"), _mean_accuracy_solution, _attribute_cases,
        "per attribute (column): (TP/P + TN/N) / 2, a ratio with an empty denominator counting 0; then the mean "
        "over attributes"),
    "07.instance_f1": Exercise(
        "instance_f1(predicted, targets): the instance-based F1 of 0/1 predictions [N, C]",
        _pedestrian("F1"), _instance_f1_solution, _attribute_cases,
        "per image: precision |gt ∩ pred| / |pred| and recall |gt ∩ pred| / |gt| (an empty set counts 0); F1 is "
        "the harmonic mean of the MEAN precision and the MEAN recall, not the mean of per-image F1 scores"),
}


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
            elif not _close(got, expected):
                problem = f"for the arguments {_short(args)} it returned {_short(got)}, expected {_short(expected)}"
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


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().numpy()
    if isinstance(value, np.ndarray):
        text = np.array2string(value, precision=3, threshold=8, max_line_width=limit)
    elif isinstance(value, (tuple, list)):
        text = "(" + ", ".join(_short(v, 60) for v in value) + ")"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + " …"
