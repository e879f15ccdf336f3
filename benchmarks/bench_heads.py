"""Regenerate a shipped SSPA head with its recorded recipe and compare it with the shipped one.

    python benchmarks/bench_heads.py [--config synthetic_natural] [--threads N]

Trains ``sspa train --config <config>`` (the command recorded in ``data/heads/<config>.json``)
into a temporary folder, exports it like ``make heads`` does and prints, for the shipped and the
regenerated head: the best validation score of training, the check score (the monitored metric on
the first 200 validation images), the training time and the file size. With the same torch build
and thread count the two agree to float noise; across machines they differ within run-to-run
noise (see the seed spread of ``benchmarks/compare_models.py``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from _common import Timer, benchmark_parser, set_threads

from sspa_core.config import load_config
from sspa_core.engine import train_from_config
from sspa_core.engine.heads import SHIPPED_HEADS, export_head, shipped_head
from sspa_core.paths import metadata_path


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--config", default="synthetic_natural", choices=SHIPPED_HEADS)
    args = parser.parse_args()
    threads = set_threads(args)
    shipped = json.loads(metadata_path(shipped_head(args.config)).read_text())
    print(f"torch {torch.__version__}, {threads} threads; regenerating {args.config} "
          f"with `{shipped['command']}`")
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(args.config, [f"output_dir={tmp}/run", f"train.feature_cache_dir={tmp}/features",
                                           "train.progress=false"])
        with Timer() as timer:
            train_from_config(config)
        fresh = export_head(Path(tmp) / "run" / "checkpoints" / "best.pt", Path(tmp) / "head.pt", shipped["command"])
    metric = shipped["monitor"]
    print(f"\n{'head':<12s} {'best ' + metric:>12s} {'check ' + metric:>12s} {'train s':>9s} {'MB':>6s}")
    for name, meta, train_s in (("shipped", shipped, shipped["train_seconds"]), ("regenerated", fresh, timer.seconds)):
        print(f"{name:<12s} {100 * meta['best_value']:12.2f} {100 * meta['check']['value']:12.2f} "
              f"{train_s:9.0f} {meta['file_bytes'] / 1e6:6.2f}")
    delta = 100 * (fresh["check"]["value"] - shipped["check"]["value"])
    print(f"check-score difference: {delta:+.2f} points ({metric}, {shipped['check']['num_images']} images)")


if __name__ == "__main__":
    main()
