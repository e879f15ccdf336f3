"""``sspa notebooks``: the tutorial's notebooks run end to end (:mod:`sspa_core.notebooks`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sspa_core.cli.common import add_overrides


def configure_notebooks(parser: argparse.ArgumentParser) -> None:
    from sspa_core.notebooks import PROFILES

    parser.add_argument("--profile", default="smoke", choices=PROFILES,
                        help="smoke: CPU, small settings; full: GPU, real data; gpu: GPU, offline")
    parser.add_argument("--dataset", help="a parameter file notebooks/params/NAME.yaml")
    parser.add_argument("--only", nargs="+", metavar="NB", help="notebook names or numbers, e.g. 00 03")
    add_overrides(parser, "seed=1 (a notebook parameter)", "-p")
    parser.add_argument("--timeout-s", type=float,
                        help="seconds each notebook may run (default: the parameter files' timeout_s; 0 = no limit)")
    parser.add_argument("--output-dir", type=Path, help="default: outputs/notebooks/<profile>[-<dataset>]")
    parser.add_argument("--summary", type=Path, metavar="PATH",
                        help="also write a Markdown summary here: the command, dataset, backbone, weights, device, "
                             "and each notebook's status, wall time and files (written also when a notebook fails)")
    parser.add_argument("--list", action="store_true", help="print the resolved parameters of each notebook and stop")
    parser.add_argument("--to", nargs="+", default=["html"], choices=["html", "slides"], metavar="FORMAT",
                        help="exports beside each executed notebook: html (always written), slides (reveal.js)")
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="notebooks run at once, each in its own kernel with its share of the CPU cores "
                             "(default 1; 2 on a 2-core CPU takes about 40%% of the time)")


def natural_phrase(name: str) -> str:
    """What notebook 07's natural reference ``name`` is, in words, and how to change it."""
    from sspa_core.data import SYNTHETIC_DATASETS

    if name in SYNTHETIC_DATASETS:
        return ("the offline world's synthetic scenes, not photographs; for real ones: "
                "-p natural=coco -p natural_root=/data/coco")
    return "a real dataset; its folder is natural_root"


def run_notebooks(args: argparse.Namespace) -> int:
    from sspa_core.config import parse_override
    from sspa_core.notebooks import NotebookError, dataset_commands, resolve_parameters, run_notebooks

    if args.timeout_s is not None and not 0 <= args.timeout_s < float("inf"):
        raise ValueError(f"--timeout-s must be a number of seconds >= 0 (0 = no limit), got {args.timeout_s}")
    overrides: dict = {}
    for text in args.overrides:
        overrides.update(parse_override(text))
    if args.list:
        for notebook, parameters in resolve_parameters(args.profile, args.dataset, args.only, overrides).items():
            print(f"{notebook.name}: {parameters}")
        if args.dataset is None and args.only is None:
            print("\nper dataset (notebooks/params/<dataset>.yaml; data layouts in data/README.md):")
            for row in dataset_commands():
                print(f"  {row['dataset']} (notebooks {' '.join(row['notebooks'])}):\n"
                      f"    CPU check of a download: {row['smoke']}\n    GPU run: {row['full']}")
                if row["natural"]:
                    print(f"    07's domain gap is measured against natural={row['natural']} "
                          f"({natural_phrase(row['natural'])})")
        return 0
    start = time.perf_counter()
    try:
        results = run_notebooks(args.profile, args.dataset, args.only, overrides, args.output_dir,
                                timeout_s=args.timeout_s, formats=tuple(args.to), jobs=args.jobs, summary=args.summary)
    except NotebookError as err:
        print(f"sspa notebooks: FAILED {err}")
        return 1
    total = sum(r.seconds for r in results)
    print(f"sspa notebooks: {len(results)} notebooks in {time.perf_counter() - start:.0f} s "
          f"({total:.0f} s of notebook time, {args.jobs} at once); "
          f"output in {Path(results[0].executed).parent if results else '-'}")
    return 0
