"""Metrics against scikit-learn, the worked values of docs/method.md §Metrics and a hand-computed PAR example."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score

from sspa_core.domains import DOMAINS
from sspa_core.metrics import (
    METRIC_SETS,
    average_precision_per_class,
    evaluate,
    map_difference,
    map_interval,
    mean_average_precision,
    metric_set_for,
    pedestrian_metrics,
    precision_recall_f1,
    threshold_study,
)


def random_problem(seed: int, n: int = 60, c: int = 7, levels: int | None = None):
    """Random scores (quantised to ``levels`` values to force ties) with one label that has
    no positive."""
    rng = np.random.default_rng(seed)
    scores = rng.random((n, c))
    if levels is not None:
        scores = np.round(scores * (levels - 1)) / (levels - 1)
    targets = (rng.random((n, c)) < 0.3).astype(float)
    targets[:, 2] = 0
    targets[0, 0] = 1
    return scores, targets


def test_worked_values_from_spec():
    ap = average_precision_per_class(np.array([[0.1], [0.4], [0.35], [0.8]]), np.array([[0], [0], [1], [1]]))
    assert ap[0] == pytest.approx(0.8333, abs=1e-4)
    y = np.array([1, 0, 1, 0, 0, 1], dtype=float)[:, None]
    s = np.linspace(1, 0.1, 6)[:, None]
    assert average_precision_per_class(s, y)[0] == pytest.approx(0.7222, abs=1e-4)


@pytest.mark.parametrize("levels", [None, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_average_precision_matches_sklearn_including_ties(seed, levels):
    scores, targets = random_problem(seed, levels=levels)
    ap = average_precision_per_class(scores, targets)
    assert np.isnan(ap[2])
    for j in range(scores.shape[1]):
        if j != 2:
            assert ap[j] == pytest.approx(average_precision_score(targets[:, j], scores[:, j]), abs=1e-12)
    assert mean_average_precision(scores, targets) == pytest.approx(np.nanmean(ap))


def test_average_precision_with_mask_equals_dropping_entries():
    scores, targets = random_problem(7, levels=4)
    mask = (np.random.default_rng(1).random(scores.shape) > 0.25).astype(float)
    ap = average_precision_per_class(scores, targets, mask)
    for j in range(scores.shape[1]):
        keep = mask[:, j] == 1
        if targets[keep, j].sum() == 0:
            assert np.isnan(ap[j])
        else:
            assert ap[j] == pytest.approx(average_precision_score(targets[keep, j], scores[keep, j]), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_precision_recall_f1_matches_sklearn(seed):
    scores, targets = random_problem(seed, levels=5)
    predicted = (scores >= 0.5).astype(int)
    m = precision_recall_f1(scores, targets)
    cp = precision_score(targets, predicted, average="macro", zero_division=0)
    cr = recall_score(targets, predicted, average="macro", zero_division=0)
    op = precision_score(targets, predicted, average="micro", zero_division=0)
    o_r = recall_score(targets, predicted, average="micro", zero_division=0)
    assert m["CP"] == pytest.approx(cp) and m["CR"] == pytest.approx(cr)
    assert m["OP"] == pytest.approx(op) and m["OR"] == pytest.approx(o_r)
    assert m["CF1"] == pytest.approx(2 * cp * cr / (cp + cr))
    assert m["OF1"] == pytest.approx(2 * op * o_r / (op + o_r))


def test_top3_keeps_three_highest_scores_per_image():
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.1], [0.2, 0.95, 0.3, 0.55, 0.6]])
    targets = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 1]], dtype=float)
    m = precision_recall_f1(scores, targets, top_k=3)
    # image 0 predicts {0, 1, 2} (0.6 dropped), image 1 predicts {1, 3, 4}
    predicted = np.array([[1, 1, 1, 0, 0], [0, 1, 0, 1, 1]])
    assert m["OP"] == pytest.approx(precision_score(targets, predicted, average="micro"))
    assert m["OR"] == pytest.approx(recall_score(targets, predicted, average="micro"))
    assert m["CP"] == pytest.approx(precision_score(targets, predicted, average="macro", zero_division=0))
    assert precision_recall_f1(scores, targets)["OR"] == 1.0


def test_pedestrian_metrics_hand_computed():
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=float)
    scores = np.array([[0.9, 0.6, 0.7], [0.1, 0.8, 0.2], [0.3, 0.9, 0.5], [0.2, 0.1, 0.4]])
    # predictions (> 0.5): [1,1,1], [0,1,0], [0,1,0] (0.5 is not > 0.5), [0,0,0]
    m = pedestrian_metrics(scores, targets)
    # label 0: TP 1/2, TN 2/2 -> .75 ; label 1: TP 2/2, TN 1/2 -> .75 ; label 2: TP 1/1, TN 3/3 -> 1
    assert m["mA"] == pytest.approx((0.75 + 0.75 + 1.0) / 3)
    # per image: acc 2/3, 1, 1/2, 0 ; prec 2/3, 1, 1, 0 ; rec 1, 1, 1/2, 0
    assert m["accuracy"] == pytest.approx((2 / 3 + 1 + 0.5 + 0) / 4)
    assert m["precision"] == pytest.approx((2 / 3 + 1 + 1 + 0) / 4)
    assert m["recall"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    p, r = m["precision"], m["recall"]
    assert m["F1"] == pytest.approx(2 * p * r / (p + r))


def _pedestrian_reference(scores, targets, mask, threshold=0.5):
    """Rethinking_of_PAR's metrics entry by entry with scikit-learn, on each attribute's and each
    image's unmasked entries (attributes and images without one left out)."""
    from sklearn.metrics import jaccard_score

    predicted = (scores > threshold).astype(int)
    kept = mask.astype(bool)
    per_attribute = []
    for j in range(scores.shape[1]):
        rows = kept[:, j]
        if rows.any():
            y, p = targets[rows, j], predicted[rows, j]
            per_attribute.append((recall_score(y, p, pos_label=1, zero_division=0)
                                  + recall_score(y, p, pos_label=0, zero_division=0)) / 2)
    acc, prec, rec = [], [], []
    for i in range(scores.shape[0]):
        cols = kept[i]
        if cols.any():
            y, p = targets[i, cols], predicted[i, cols]
            acc.append(jaccard_score(y, p, zero_division=0) if (y.any() or p.any()) else 0.0)
            prec.append(precision_score(y, p, zero_division=0))
            rec.append(recall_score(y, p, zero_division=0))
    return {"mA": np.mean(per_attribute), "accuracy": np.mean(acc), "precision": np.mean(prec),
            "recall": np.mean(rec)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pedestrian_metrics_honour_the_mask(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random((40, 6))
    targets = (rng.random((40, 6)) < 0.35).astype(float)
    mask = (rng.random((40, 6)) < 0.7).astype(float)
    mask[3] = 0  # an image with every attribute masked is left out
    mask[:, 5] = 0  # as is an attribute masked on every image
    got = pedestrian_metrics(scores, targets, mask=mask)
    for key, value in _pedestrian_reference(scores, targets, mask).items():
        assert got[key] == pytest.approx(value), key
    assert evaluate(scores, targets, mask, metric_set="pedestrian")["mA"] == pytest.approx(got["mA"])
    # masked entries count nowhere: flipping their targets and scores changes nothing
    flipped_targets = np.where(mask == 1, targets, 1 - targets)
    flipped_scores = np.where(mask == 1, scores, 1 - scores)
    assert pedestrian_metrics(flipped_scores, flipped_targets, mask=mask) == got
    assert pedestrian_metrics(scores, targets, mask=np.ones_like(mask)) == pedestrian_metrics(scores, targets)
    assert got != pedestrian_metrics(scores, targets)
    with pytest.raises(ValueError, match="every entry is masked"):
        pedestrian_metrics(scores, targets, mask=np.zeros_like(mask))


def test_evaluate_reports_every_set_and_labels_without_positive():
    scores, targets = random_problem(3)
    natural = evaluate(scores, targets)
    assert natural["n_labels_without_positive"] == 1
    assert natural["mAP"] == pytest.approx(mean_average_precision(scores, targets))
    assert {"CP", "CR", "CF1", "OP", "OR", "OF1", "CP_top3", "OF1_top3"} <= natural.keys()
    assert "mA" not in natural
    pedestrian = evaluate(scores, targets, metric_set="pedestrian")
    assert pedestrian["mA"] == pytest.approx(pedestrian_metrics(scores, targets)["mA"])
    assert {k: v for k, v in pedestrian.items() if k in natural} == natural


def test_each_domain_has_its_metric_set():
    assert {d: metric_set_for(d) for d in DOMAINS} == {
        "natural": "multilabel", "pedestrian": "pedestrian", "remote_sensing": "multilabel"}
    assert set(map(metric_set_for, DOMAINS)) == set(METRIC_SETS)
    with pytest.warns(DeprecationWarning, match="'remote' is deprecated.*'remote_sensing'"):
        assert metric_set_for("remote") == "multilabel"
    with pytest.raises(ValueError, match="unknown domain 'medical'"):
        metric_set_for("medical")


def test_evaluate_ignores_masked_entries():
    scores = np.array([[0.9, 0.2], [0.1, 0.8], [0.95, 0.3]])
    targets = np.array([[1, 0], [0, 1], [0, 0]], dtype=float)
    mask = np.array([[1, 1], [1, 1], [0, 1]], dtype=float)  # a "difficult" false positive
    assert evaluate(scores, targets, mask)["mAP"] == pytest.approx(1.0)
    assert evaluate(scores, targets)["mAP"] < 1.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: evaluate(np.zeros((2, 3)), np.zeros((2, 2))), "differs"),
        (lambda: evaluate(np.zeros(3), np.zeros(3)), "2-D"),
        (lambda: evaluate(np.full((2, 2), np.nan), np.zeros((2, 2))), "NaN"),
        (lambda: evaluate(np.zeros((2, 2)), np.full((2, 2), 2.0)), "only 0 and 1"),
        (lambda: evaluate(np.zeros((2, 2)), np.eye(2), metric_set="natural"), "unknown metric set"),
        (lambda: precision_recall_f1(np.zeros((2, 2)), np.eye(2), top_k=5), "top_k"),
        (lambda: mean_average_precision(np.zeros((2, 2)), np.zeros((2, 2))), "no label"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_top3_with_ties_matches_a_stable_sort_reference():
    scores, targets = random_problem(11, n=200, c=6, levels=3)  # many ties at the third score
    keep = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    kept = np.zeros_like(scores)
    np.put_along_axis(kept, keep, np.take_along_axis(scores, keep, axis=1), axis=1)
    predicted = (kept >= 0.5).astype(int)
    m = precision_recall_f1(scores, targets, top_k=3)
    assert m["OP"] == pytest.approx(precision_score(targets, predicted, average="micro"))
    assert m["CR"] == pytest.approx(recall_score(targets, predicted, average="macro", zero_division=0))
    assert predicted.sum(1).max() == 3


@pytest.mark.parametrize("metric_set", METRIC_SETS)
def test_threshold_study_separates_placement_from_ranking(metric_set):
    """Scores that rank every image right but all sit above 0.5: everything is predicted present
    at 0.5, while a threshold picked on the other half of the images recovers a perfect score."""
    rng = np.random.default_rng(0)
    targets = (rng.random((80, 5)) < 0.4).astype(float)
    targets[0] = 1  # every label has a positive (and, at this rate, a negative)
    targets[targets.sum(1) == 0, 0] = 1  # every image has a positive: instance F1 counts an empty one as 0
    scores = 0.6 + 0.3 * targets + 0.01 * rng.random(targets.shape)
    study = threshold_study(scores, targets, metric_set=metric_set)
    keys = ("mA", "F1") if metric_set == "pedestrian" else ("CF1", "OF1")
    assert set(study) == set(keys)
    reported = (pedestrian_metrics if metric_set == "pedestrian" else precision_recall_f1)(scores, targets)
    for key in keys:
        assert study[key]["at 0.5"] == pytest.approx(reported[key])
        assert study[key]["at 0.5"] < 0.9
        assert study[key]["held out"] == pytest.approx(1.0) and study[key]["best"] == pytest.approx(1.0)
        assert 0.6 <= study[key]["threshold"] < 0.9
    if metric_set == "pedestrian":
        assert study["mA"]["at 0.5"] == pytest.approx(0.5)  # every attribute predicted present


def test_threshold_study_picks_on_one_half_and_scores_the_other():
    """Each half separates its images perfectly, but at a threshold of its own (about 0.2 and
    0.75): a threshold picked on one half predicts everything present, or nothing, on the other."""
    targets = np.tile(np.array([[1.0, 0, 1], [0, 1, 0]]), (20, 1))
    halves = np.split(np.random.default_rng(7).permutation(len(targets)), 2)  # the study's halves for seed 7
    scores = np.empty_like(targets)
    scores[halves[0]] = 0.1 + 0.15 * targets[halves[0]]
    scores[halves[1]] = 0.7 + 0.15 * targets[halves[1]]
    study = threshold_study(scores, targets, metric_set="pedestrian", seed=7)
    assert study["mA"]["held out"] == pytest.approx(0.5)  # the other half: all present, or all absent
    assert study["mA"]["threshold"] == pytest.approx((0.1 + 0.7) / 2)  # the lowest separating threshold of each
    assert study["mA"]["best"] < 1.0  # no single threshold separates both halves


def test_threshold_study_refuses_bad_input():
    scores, targets = random_problem(0)
    with pytest.raises(ValueError, match="unknown metric set"):
        threshold_study(scores, targets, metric_set="coco")
    with pytest.raises(ValueError, match="at least 4 images"):
        threshold_study(scores[:3], targets[:3])


def test_map_difference_interval_says_whether_the_sample_decides():
    rng = np.random.default_rng(0)
    targets = (rng.random((300, 6)) < 0.3).astype(float)
    noise = rng.normal(size=targets.shape)
    good, poor = targets + 0.5 * noise, targets + 3.0 * noise
    diff, (low, high) = map_difference(good, poor, targets)
    assert diff == pytest.approx(mean_average_precision(good, targets) - mean_average_precision(poor, targets))
    assert 0 < low <= diff <= high  # a clear gap: the interval excludes 0
    twin = good + 1e-9 * rng.normal(size=targets.shape)  # the same ranking, up to ties
    same, (low, high) = map_difference(good, twin, targets[:, :], resamples=50)
    assert abs(same) < 1e-6 and low <= 0 <= high
    close = targets + 0.55 * rng.normal(size=targets.shape)
    _, (low, high) = map_difference(good[:20], close[:20], targets[:20])  # 20 images cannot tell them apart
    assert low < 0 < high
    with pytest.raises(ValueError, match="targets' shape"):
        map_difference(good[:, :3], poor, targets)


def test_map_interval_narrows_with_more_images():
    rng = np.random.default_rng(1)
    targets = (rng.random((400, 5)) < 0.3).astype(float)
    scores = targets + rng.normal(size=targets.shape)
    value, (low, high) = map_interval(scores, targets)
    assert value == pytest.approx(mean_average_precision(scores, targets)) and low < value < high
    _, (small_low, small_high) = map_interval(scores[:40], targets[:40])
    assert small_high - small_low > high - low  # 40 images decide less than 400
    with pytest.raises(ValueError, match="targets' shape"):
        map_interval(scores[:, :2], targets)
