"""Time every metric of ``sspa_core.metrics`` on COCO-size arrays (40,137 images × 80 labels).

Run: ``python benchmarks/bench_metrics.py``. Prints the seconds per call (best of 3) and the
total for one :func:`evaluate` call per domain.
"""

from __future__ import annotations

import time

import numpy as np

from sspa_core.metrics import evaluate, mean_average_precision, pedestrian_metrics, precision_recall_f1

N_IMAGES, N_LABELS = 40_137, 80


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((N_IMAGES, N_LABELS)) < 0.036).astype(np.float32)  # ~2.9 labels / image
    scores = np.clip(0.6 * targets + rng.normal(0.2, 0.2, targets.shape), 0, 1).round(3)  # with ties
    mask = (rng.random(targets.shape) > 0.01).astype(np.float32)
    print(f"arrays: {N_IMAGES} x {N_LABELS}, scores rounded to 3 decimals (ties)")
    timings = {
        "mean_average_precision": lambda: mean_average_precision(scores, targets),
        "mean_average_precision (mask)": lambda: mean_average_precision(scores, targets, mask),
        "precision_recall_f1": lambda: precision_recall_f1(scores, targets),
        "precision_recall_f1 (top-3)": lambda: precision_recall_f1(scores, targets, top_k=3),
        "pedestrian_metrics": lambda: pedestrian_metrics(scores, targets),
        "evaluate (natural)": lambda: evaluate(scores, targets, mask),
        "evaluate (pedestrian)": lambda: evaluate(scores, targets, domain="pedestrian"),
    }
    for name, fn in timings.items():
        print(f"{name:32s} {best_of(fn):7.3f} s")
    print(f"mAP of this random problem: {mean_average_precision(scores, targets):.4f}")


if __name__ == "__main__":
    main()
