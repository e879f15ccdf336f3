"""Time every metric of ``sspa_core.metrics`` on COCO-size arrays (40,137 images × 80 labels).

Run: ``python benchmarks/bench_metrics.py``. Prints, per call, the best of 3 wall-clock times
and the CPU time of that run (the CPU time is what a call costs when the machine is shared).
"""

from __future__ import annotations

import os
import time

import numpy as np

from sspa_core.metrics import evaluate, mean_average_precision, pedestrian_metrics, precision_recall_f1

N_IMAGES, N_LABELS = 40_137, 80


def best_of(fn, repeats: int = 3) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the fastest of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((N_IMAGES, N_LABELS)) < 0.036).astype(np.float32)  # ~2.9 labels / image
    scores = np.clip(0.6 * targets + rng.normal(0.2, 0.2, targets.shape), 0, 1).round(3)  # with ties
    mask = (rng.random(targets.shape) > 0.01).astype(np.float32)
    print(f"arrays: {N_IMAGES} x {N_LABELS}, scores rounded to 3 decimals (ties); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    timings = {
        "mean_average_precision": lambda: mean_average_precision(scores, targets),
        "mean_average_precision (mask)": lambda: mean_average_precision(scores, targets, mask),
        "precision_recall_f1": lambda: precision_recall_f1(scores, targets),
        "precision_recall_f1 (top-3)": lambda: precision_recall_f1(scores, targets, top_k=3),
        "pedestrian_metrics": lambda: pedestrian_metrics(scores, targets),
        "evaluate (multilabel)": lambda: evaluate(scores, targets, mask),
        "evaluate (pedestrian)": lambda: evaluate(scores, targets, metric_set="pedestrian"),
    }
    print(f"{'':32s} {'wall':>8s} {'CPU':>8s}")
    for name, fn in timings.items():
        wall, cpu = best_of(fn)
        print(f"{name:32s} {wall:7.3f}s {cpu:7.3f}s")
    print(f"mAP of this random problem: {mean_average_precision(scores, targets):.4f}")


if __name__ == "__main__":
    main()
