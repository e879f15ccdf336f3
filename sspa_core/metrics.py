"""Multi-label metrics (docs/method.md §Metrics), vectorised over labels with numpy.

Inputs are ``scores`` (N×C probabilities, e.g. the sigmoid of eq. 18's logits), ``targets``
(N×C in {0, 1}) and an optional ``mask`` (N×C in {0, 1}; 0 = ignored, such as VOC 2007
"difficult" entries, which then count neither as positive nor as negative).
"""

from __future__ import annotations

import numpy as np

from sspa_core.domains import canonical_domain

#: ``multilabel``: mAP, the ALL and top-3 sets; ``pedestrian``: those plus the Rethinking_of_PAR set.
METRIC_SETS = ("multilabel", "pedestrian")


def _is_binary(values: np.ndarray) -> bool:
    return bool(((values == 0) | (values == 1)).all())


def _check_inputs(
    scores: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate shapes and values; return float scores, float targets and the mask (or None)."""
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    targets = np.asarray(targets, dtype=scores.dtype)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (images × labels), got shape {scores.shape}")
    if targets.shape != scores.shape:
        raise ValueError(f"targets shape {targets.shape} differs from scores shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if not _is_binary(targets):
        raise ValueError("targets must contain only 0 and 1")
    if mask is not None:
        mask = np.asarray(mask, dtype=scores.dtype)
        if mask.shape != scores.shape:
            raise ValueError(f"mask shape {mask.shape} differs from scores shape {scores.shape}")
        if not _is_binary(mask):
            raise ValueError("mask must contain only 0 and 1")
    return scores, targets, mask


def average_precision_per_class(
    scores: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Non-interpolated average precision of every label (C,), NaN for a label with no positive.

    Convention: ``AP = Σ_n (R_n − R_{n−1}) P_n`` over the distinct score thresholds, i.e.
    exactly ``sklearn.metrics.average_precision_score`` per label: images that tie on a score
    enter the ranking together (the precision of a tied block is taken at its end).
    Entries with ``mask == 0`` are left out of the ranking of their label.
    """
    return _average_precision(*_check_inputs(scores, targets, mask))


def _average_precision(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    n_images, n_labels = scores.shape
    # One row per label (contiguous); the order inside a block of tied scores does not matter.
    by_label = np.ascontiguousarray(scores.T)
    order = np.argsort(-by_label, axis=1)
    flat_order = order * n_labels + np.arange(n_labels)[:, None]  # into the (N, C) arrays

    def gather(values: np.ndarray) -> np.ndarray:
        """``values`` (N, C) in each label's descending-score order, as (C, N) float32
        (counts stay exact up to 2**24 images)."""
        return np.take(values.astype(np.float32, copy=False), flat_order)

    sorted_scores = np.take_along_axis(by_label, order, axis=1)
    positives = gather(targets if mask is None else targets * mask)
    true_pos = np.cumsum(positives, axis=1)
    n_pos = true_pos[:, -1].astype(np.float64)

    # Precision and recall are read at the end of each block of tied scores.
    block_end = np.ones((n_labels, n_images), dtype=bool)
    block_end[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    ends = np.flatnonzero(block_end)
    label_of_end = ends // n_images
    tp_at_end = true_pos.ravel()[ends].astype(np.float64)
    running_total = tp_at_end + np.concatenate(([0.0], np.cumsum(n_pos)[:-1]))[label_of_end]
    new_positives = np.diff(running_total, prepend=0.0)
    if mask is None:
        ranked_at_end = (ends % n_images + 1).astype(np.float64)
    else:
        ranked_at_end = np.cumsum(gather(mask), axis=1).ravel()[ends].astype(np.float64)
    precision = np.divide(tp_at_end, ranked_at_end, out=np.zeros(len(ends)), where=ranked_at_end > 0)
    ap = np.bincount(label_of_end, weights=new_positives * precision, minlength=n_labels)
    return np.divide(ap, n_pos, out=np.full(n_labels, np.nan), where=n_pos > 0)


def mean_average_precision(
    scores: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """mAP: mean of :func:`average_precision_per_class` over the labels with ≥1 positive
    (labels without a positive are excluded; :func:`evaluate` reports how many)."""
    ap = average_precision_per_class(scores, targets, mask)
    if np.isnan(ap).all():
        raise ValueError("no label has a positive example: mAP is undefined")
    return float(np.nanmean(ap))



def _bootstrap_maps(score_sets: list[np.ndarray], targets: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """mAP of each score set on ``resamples`` draws of the images with replacement, the same draws
    for every set: ``[draws, sets]`` (draws where no label has a positive are left out)."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        rows = rng.integers(0, len(targets), len(targets))
        aps = [average_precision_per_class(scores[rows], targets[rows]) for scores in score_sets]
        if not np.isnan(aps[0]).all():
            draws.append([float(np.nanmean(ap)) for ap in aps])
    if not draws:
        raise ValueError("no resample has a positive example: the mAP is undefined")
    return np.array(draws)


def map_interval(scores: np.ndarray, targets: np.ndarray, resamples: int = 200,
                 seed: int = 0) -> tuple[float, tuple[float, float]]:
    """mAP with a 95% bootstrap interval over the images: how far another draw of the same number
    of images could move it (a small evaluation set gives a wide interval). The interval is the
    normal one, the mAP ± 1.96 standard deviations of its bootstrap draws: a resample repeats
    images, which lifts AP, so the draws' percentiles would sit above the mAP itself."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} must have the targets' shape {targets.shape}")
    value = mean_average_precision(scores, targets)
    half = 1.96 * float(np.std(_bootstrap_maps([scores], targets, resamples, seed)[:, 0], ddof=1))
    return value, (value - half, value + half)


def map_difference(scores_a: np.ndarray, scores_b: np.ndarray, targets: np.ndarray,
                   resamples: int = 200, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """mAP(a) − mAP(b) on the same images, with a 95% paired bootstrap interval: the images are
    drawn with replacement ``resamples`` times and both score sets are scored on each draw, so
    the interval says whether the difference outlives the choice of images (a small sample can
    order two close classifiers either way)."""
    scores_a, scores_b, targets = (np.asarray(v, dtype=np.float64) for v in (scores_a, scores_b, targets))
    if scores_a.shape != targets.shape or scores_b.shape != targets.shape:
        raise ValueError(f"scores {scores_a.shape} and {scores_b.shape} must both have the targets' "
                         f"shape {targets.shape}")
    draws = _bootstrap_maps([scores_a, scores_b], targets, resamples, seed)
    difference = mean_average_precision(scores_a, targets) - mean_average_precision(scores_b, targets)
    half = 1.96 * float(np.std(draws[:, 0] - draws[:, 1], ddof=1))  # the normal interval, as map_interval's
    return difference, (difference - half, difference + half)


def _top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """True at each row's ``k`` highest scores (ties at the k-th score: lower label index
    first, as a stable descending sort would pick)."""
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"top_k must be between 1 and the number of labels ({scores.shape[1]}), got {k}")
    kth = np.partition(scores, scores.shape[1] - k, axis=1)[:, -k, None]
    above = scores > kth
    tied = scores == kth
    room = k - above.sum(1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=1) <= room))


def _harmonic(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def precision_recall_f1(
    scores: np.ndarray,
    targets: np.ndarray,
    threshold: float = 0.5,
    top_k: int | None = None,
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Per-class (CP, CR, CF1) and overall (OP, OR, OF1) precision / recall / F1.

    Convention (ML-GCN): a label is predicted when ``score >= threshold``;
    ``OP = ΣNc/ΣNp``, ``OR = ΣNc/ΣNg``, ``CP = mean_j Nc_j/Np_j``, ``CR = mean_j Nc_j/Ng_j``
    (a label with ``Np_j = 0`` or ``Ng_j = 0`` contributes 0, i.e. its denominator counts as
    1), ``CF1 = 2·CP·CR/(CP+CR)`` and ``OF1`` likewise. With ``top_k`` (CSRA / SALGL
    convention, top-3 with ``top_k=3``) only each image's ``k`` highest scores are kept, the
    rest set to zero, before thresholding. Masked entries are not counted.
    """
    scores, targets, mask = _check_inputs(scores, targets, mask)
    return _precision_recall_f1(scores, targets, threshold, top_k, mask)


def _precision_recall_f1(scores: np.ndarray, targets: np.ndarray, threshold: float, top_k: int | None,
                         mask: np.ndarray | None) -> dict[str, float]:
    predicted = scores >= threshold
    if top_k is not None:
        # With threshold > 0, a row with at most k predictions keeps them: they are its highest scores.
        rows = np.flatnonzero(predicted.sum(1) > top_k) if threshold > 0 else np.arange(len(scores))
        predicted[rows] = np.where(_top_k_mask(scores[rows], top_k), predicted[rows], 0.0 >= threshold)
    positives = targets
    if mask is not None:
        predicted, positives = predicted * mask, targets * mask
    n_correct = (predicted * positives).sum(0)
    n_predicted = predicted.sum(0)
    n_ground_truth = positives.sum(0)

    cp = float(np.mean(n_correct / np.maximum(n_predicted, 1)))
    cr = float(np.mean(n_correct / np.maximum(n_ground_truth, 1)))
    op = float(n_correct.sum() / max(n_predicted.sum(), 1))
    o_r = float(n_correct.sum() / max(n_ground_truth.sum(), 1))
    return {"CP": cp, "CR": cr, "CF1": _harmonic(cp, cr), "OP": op, "OR": o_r, "OF1": _harmonic(op, o_r)}


def pedestrian_metrics(scores: np.ndarray, targets: np.ndarray, threshold: float = 0.5,
                       mask: np.ndarray | None = None) -> dict[str, float]:
    """Pedestrian-attribute metrics: label-based mA and instance-based accuracy, precision,
    recall and F1.

    Convention (Rethinking_of_PAR): an attribute is predicted when ``score > threshold``;
    ``mA = mean_j (TP_j/P_j + TN_j/N_j)/2``; per image ``Accuracy = |gt∩pred|/|gt∪pred|``,
    ``Precision = |gt∩pred|/|pred|``, ``Recall = |gt∩pred|/|gt|``, each averaged over images,
    a ratio with an empty denominator counting 0 (their ``eps``); ``F1`` is the harmonic mean
    of the mean precision and the mean recall.

    With a ``mask``, entries with ``mask == 0`` count nowhere: attribute ``j``'s ``P_j``, ``N_j``
    and an image's sets hold its unmasked entries only; an attribute or an image with no unmasked
    entry is left out of the mean (an all-ones mask gives the unmasked result).
    """
    scores, targets, mask = _check_inputs(scores, targets, mask)
    return _pedestrian_metrics(scores, targets, threshold, mask)


def _pedestrian_metrics(scores: np.ndarray, targets: np.ndarray, threshold: float,
                        mask: np.ndarray | None = None) -> dict[str, float]:
    kept = np.ones(scores.shape, dtype=bool) if mask is None else mask.astype(bool)
    if not kept.any():
        raise ValueError("every entry is masked: the pedestrian metrics have nothing to count")
    predicted = (scores > threshold) & kept
    truth = targets.astype(bool) & kept
    negative = ~targets.astype(bool) & kept

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)

    tp = (truth & predicted).sum(0)
    tn = (negative & ~predicted).sum(0)
    mean_accuracy = (ratio(tp, truth.sum(0)) + ratio(tn, negative.sum(0))) / 2
    attributes, images = kept.any(0), kept.any(1)

    intersection = (truth & predicted).sum(1)
    union = (truth | predicted).sum(1)
    precision = float(ratio(intersection, predicted.sum(1))[images].mean())
    recall = float(ratio(intersection, truth.sum(1))[images].mean())
    return {
        "mA": float(mean_accuracy[attributes].mean()),
        "accuracy": float(ratio(intersection, union)[images].mean()),
        "precision": precision,
        "recall": recall,
        "F1": _harmonic(precision, recall),
    }


def metric_set_for(domain: str) -> str:
    """The metric set a domain reports: ``pedestrian`` for pedestrian attributes, ``multilabel``
    for natural and remote-sensing images (see :data:`sspa_core.domains.DOMAINS`)."""
    return "pedestrian" if canonical_domain(domain) == "pedestrian" else "multilabel"


def evaluate(
    scores: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    metric_set: str = "multilabel",
) -> dict[str, float]:
    """Every figure a results table needs, for one of :data:`METRIC_SETS`.

    Returns ``mAP``, ``n_labels_without_positive``, the ALL set (CP, CR, CF1, OP, OR, OF1 at
    0.5), the top-3 set (same keys suffixed ``_top3``) and, for ``metric_set="pedestrian"``, the
    Rethinking_of_PAR set (mA, accuracy, precision, recall, F1). Masked entries count nowhere
    in any of them.
    """
    if metric_set not in METRIC_SETS:
        raise ValueError(f"unknown metric set {metric_set!r}; expected one of {METRIC_SETS} "
                         "(metric_set_for(domain) gives a domain's)")
    scores, targets, mask = _check_inputs(scores, targets, mask)
    ap = _average_precision(scores, targets, mask)
    result: dict[str, float] = {
        "mAP": float(np.nanmean(ap)) if not np.isnan(ap).all() else float("nan"),
        "n_labels_without_positive": int(np.isnan(ap).sum()),
    }
    result.update(_precision_recall_f1(scores, targets, 0.5, None, mask))
    top3 = _precision_recall_f1(scores, targets, 0.5, min(3, scores.shape[1]), mask)
    result.update({f"{k}_top3": v for k, v in top3.items()})
    if metric_set == "pedestrian":
        result.update(_pedestrian_metrics(scores, targets, 0.5, mask))
    return result


#: the one threshold grid: what :func:`threshold_study` searches, the threshold explorer and notebook 07 sweep
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)
#: the figures that depend on the threshold, per metric set (those a results table reports)
THRESHOLD_METRICS = {"multilabel": ("CF1", "OF1"), "pedestrian": ("mA", "F1")}


def threshold_study(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None,
                    metric_set: str = "multilabel", thresholds: np.ndarray = THRESHOLDS,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """How much of a model's thresholded metrics (:data:`THRESHOLD_METRICS`) is the placement of
    its scores around the reported threshold 0.5, rather than their ranking.

    For each metric: ``"at 0.5"``, the reported value; ``"held out"``, the images split into two
    seeded halves, the threshold of ``thresholds`` that maximises the metric on one half scoring
    the other, the two directions averaged (a threshold that a user could have picked on data of
    their own), with ``"threshold"`` the mean of the two chosen; ``"best"``, the maximum over
    ``thresholds`` on all the images (an oracle, picked on the images it scores: not a result; a
    held-out value can come out slightly above it, since each half has its own best)."""
    if metric_set not in THRESHOLD_METRICS:
        raise ValueError(f"unknown metric set {metric_set!r}; expected one of {METRIC_SETS}")
    scores, targets, mask = _check_inputs(scores, targets, mask)
    if len(scores) < 4:
        raise ValueError(f"a threshold study needs at least 4 images (two halves of 2), got {len(scores)}")

    def sweep(rows: np.ndarray) -> dict[str, np.ndarray]:
        part = None if mask is None else mask[rows]
        values = [_pedestrian_metrics(scores[rows], targets[rows], t, part) if metric_set == "pedestrian"
                  else _precision_recall_f1(scores[rows], targets[rows], t, None, part) for t in thresholds]
        return {key: np.array([v[key] for v in values]) for key in THRESHOLD_METRICS[metric_set]}

    everything = np.arange(len(scores))
    order = np.random.default_rng(seed).permutation(everything)
    halves = (order[: len(order) // 2], order[len(order) // 2:])
    at_half = (_pedestrian_metrics(scores, targets, 0.5, mask) if metric_set == "pedestrian"
               else _precision_recall_f1(scores, targets, 0.5, None, mask))
    full, parts = sweep(everything), [sweep(h) for h in halves]
    study = {}
    for key in THRESHOLD_METRICS[metric_set]:
        chosen = [int(np.argmax(parts[i][key])) for i in (0, 1)]  # picked on one half ...
        held_out = [parts[1 - i][key][chosen[i]] for i in (0, 1)]  # ... scored on the other
        study[key] = {"at 0.5": at_half[key], "held out": float(np.mean(held_out)),
                      "threshold": float(np.mean(thresholds[chosen])), "best": float(full[key].max())}
    return study
