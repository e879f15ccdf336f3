"""Wall-clock of notebook runs with several kernels at once (``sspa notebooks --jobs N``): each
kernel's torch on its share of the cores (:func:`sspa_core.notebooks.kernel_threads`, what the
runner does) against torch's default threads in every kernel (``threads=0``).

    python benchmarks/bench_notebooks.py [--only 02 06] [--jobs 2] [--profile smoke]

OpenMP teams that each spin over every core slow each other down: on a 2-core CPU the LLM
generation of notebook 02 beside the training of 06 takes several times longer.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from _common import benchmark_parser

from sspa_core.notebooks import kernel_threads, run_notebooks


def timed_run(only: list[str], jobs: int, profile: str, threads: int | None) -> tuple[float, dict[str, float]]:
    """Seconds of the whole run and of each notebook."""
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as folder:
        start = time.perf_counter()
        results = run_notebooks(profile, only=only, output_dir=Path(folder), jobs=jobs, threads=threads)
        return time.perf_counter() - start, {r.name: r.seconds for r in results}


def main() -> None:
    parser = benchmark_parser(__doc__, threads=False)
    parser.add_argument("--only", nargs="+", default=["02", "06"], help="notebook numbers")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at once")
    parser.add_argument("--profile", default="smoke")
    args = parser.parse_args()
    if "OMP_NUM_THREADS" in os.environ:
        parser.error("unset OMP_NUM_THREADS: the kernels inherit it, and it would decide both runs")
    print(f"{len(os.sched_getaffinity(0))} cores, notebooks {' '.join(args.only)}, {args.jobs} at once, "
          f"profile {args.profile}")
    rows = {}
    for label, threads in ((f"{kernel_threads(args.jobs)} thread(s) per kernel (the runner)", None),
                           ("torch's default threads per kernel", 0)):
        rows[label] = timed_run(args.only, args.jobs, args.profile, threads)
    for label, (wall, per_notebook) in rows.items():
        detail = ", ".join(f"{name[:2]} {seconds:.0f} s" for name, seconds in per_notebook.items())
        print(f"{label:45s} {wall:7.1f} s wall-clock ({detail})")


if __name__ == "__main__":
    main()
