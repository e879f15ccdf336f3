"""What the benchmark scripts share: their parser (with ``--threads``), the environment record,
timing, and the summary of a measure over seeds (through :func:`sspa_core.results.mean_interval`).

A script imports it as ``from _common import ...``: running ``python benchmarks/NAME.py`` puts this
folder on the import path (the tests' ``load_script`` does the same).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import torch

from sspa_core.results import mean_interval


def benchmark_parser(doc: str, threads: bool = True) -> argparse.ArgumentParser:
    """The parser of the script whose docstring is ``doc`` (its first line describes it), with
    ``--threads N`` unless ``threads`` is False."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if threads:
        parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser


def set_threads(args: argparse.Namespace) -> int:
    """Give torch ``args.threads`` CPU threads (0: leave torch's default); the threads in use."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.get_num_threads()


def environment() -> dict[str, Any]:
    """Where a result was measured, for its record: torch, python, platform, threads, and when."""
    return {"torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "threads": torch.get_num_threads(),
            "finished": datetime.now(UTC).isoformat(timespec="seconds")}


class Timer:
    """Wall-clock seconds of a ``with`` block: ``seconds``, set when the block ends."""

    seconds: float

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def seed_summary(values: Sequence[float]) -> dict[str, Any]:
    """A measure over seeds: its mean, sample standard deviation (0 for one seed) and 95% interval
    (:func:`~sspa_core.results.mean_interval`; None for one seed)."""
    mean, interval = mean_interval(values)
    return {"mean": mean, "std": statistics.stdev(values) if len(values) > 1 else 0.0, "interval": interval}


def mean_std(values: Sequence[float]) -> str:
    """``"52.10 ± 0.85"``: the mean and standard deviation of a measure over seeds, as tables print them."""
    summary = seed_summary(values)
    return f"{summary['mean']:6.2f} ± {summary['std']:4.2f}"
