"""The paper's ablations (Tables VI–IX, Fig. 5–6) in miniature: the synthetic domains, the tiny
CLIP, an equal budget for every variant, several seeds.

Run: ``python benchmarks/ablations.py [--configs synthetic_natural synthetic_pedestrian
synthetic_remote_sensing] [--tables VI VII VIII IX Fig5 Fig6] [--seeds 3] [--extra-seeds-on-overlap]
[--quick] [--set KEY=VALUE] [--threads N] [--output-dir DIR]``.

Each variant is the full model (the config as shipped) with a few config overrides (:data:`TABLES`)
and trains with :func:`sspa_core.engine.train_from_config` on the config's budget (the synthetic
configs train the head on cached features of the frozen encoder; one feature cache serves every
run of an invocation). The score of a run is the domain's monitored metric (``train.monitor``:
mAP, mA for pedestrian attributes) on the validation split after the last epoch, in %. Seed ``s``
sets ``train.seed`` (initialisation and batch order; the images are the same), so the difference
to the full model is paired by seed. Reported per variant: the mean and the 95% t-interval over
seeds, the paired difference to the full model with its interval, the sign the paper reports for
that difference and a verdict (:func:`verdict`). ``--extra-seeds-on-overlap`` adds two seeds to
every variant whose interval overlaps the full model's (and to the full model).

Writes ``<output-dir>/<config>.json`` (default ``outputs/ablations``) and prints markdown tables;
tables of an earlier invocation with the same overrides stay in that file. Each finished run is
logged to ``<output-dir>/<config>.runs.jsonl`` and not trained again by a later invocation with
the same overrides, so an interrupted run continues where it stopped.
``--quick`` is the CI size: 2 seeds, 200/100 images, 2 epochs, the first variant of each table
(all of them for the tables ``--tables`` names).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from _common import benchmark_parser, environment, set_threads

from sspa_core.config import load_config
from sspa_core.engine import train_from_config
from sspa_core.engine.heads import backbone_digest
from sspa_core.paths import OUTPUT_DIR
from sspa_core.results import format_cell, mean_interval, overlaps, verdict


class Variant(NamedTuple):
    """One row of an ablation table: config overrides of the full model and the sign the paper
    reports for ``variant − full`` ("-": the paper's variant scores lower; None: no claim)."""

    name: str
    overrides: tuple[str, ...]
    paper_sign: str | None


S = "model.sspa."
#: the full model: the reference row of every table
FULL = Variant("SSPA (full)", (), None)
#: paper table/figure -> (title, variants); the full model is every table's reference row
TABLES: dict[str, tuple[str, tuple[Variant, ...]]] = {
    "VI": ("Table VI: the split stage (KAP, CAP, DSF, LLM descriptions)", (
        Variant("w/o KAP", (f"{S}use_kap=false",), "-"),
        Variant("w/o CAP", (f"{S}use_cap=false",), "-"),
        Variant("KAP: template, no LLM descriptions", (f"{S}kap_source=template",), "-"),
        Variant("CAP: soft prompts, no DSF", (f"{S}cap_mode=soft",), "-"),
    )),
    "VII": ("Table VII: the synthesis stage (QSM against its alternatives)", (
        Variant("summation", (f"{S}synthesis=sum",), "-"),
        Variant("concatenation", (f"{S}synthesis=concat",), "-"),
        Variant("MLP (QSM's parameter count)", (f"{S}synthesis=mlp",), "-"),
        Variant("MLP wide (QSM's layout, 1.43x parameters)", (f"{S}synthesis=mlp_wide",), None),
    )),
    "VIII": ("Table VIII: GDMA directions", (
        Variant("no alignment", (f"{S}visual_to_semantic=false", f"{S}semantic_to_visual=false"), "-"),
        Variant("V-to-S only", (f"{S}semantic_to_visual=false",), "-"),
        Variant("S-to-V only", (f"{S}visual_to_semantic=false",), "-"),
    )),
    "IX": ("Table IX: the gate and the label representations as class centres", (
        Variant("Bi-D w/o gate", (f"{S}gate=false",), "-"),
        Variant("Uni-D (learned classifier)", ("model.name=unid",), "-"),
    )),
    "Fig5": ("Fig. 5: global-regional framework and the aggregator", (
        Variant("regional aggregator: mean", (f"{S}aggregator=mean",), "-"),
        Variant("regional aggregator: max (hard)", (f"{S}aggregator=max",), "-"),
        Variant("global branch only", (f"{S}branches=global",), "-"),
        Variant("regional branch only", (f"{S}branches=regional",), "-"),
        Variant("soft, tau_init 0.01", (f"{S}tau_init=0.01",), None),
        Variant("soft, tau_init 0.5", (f"{S}tau_init=0.5",), None),
    )),
    "Fig6": ("Fig. 6: module-wise build-up, zero-shot CLIP to SSPA (each variant adds a module to the one "
             "before it; the full model, with the soft aggregator, is the last step)", (
        Variant("baseline: zero-shot CLIP, template", ("model.name=zeroshot",), "-"),
        Variant("+ KAP + CAP (summed), no GDMA, mean aggregator",
                (f"{S}synthesis=sum", f"{S}visual_to_semantic=false", f"{S}semantic_to_visual=false",
                 f"{S}aggregator=mean"), "-"),
        Variant("+ QSM (= SSP)", (f"{S}visual_to_semantic=false", f"{S}semantic_to_visual=false",
                                  f"{S}aggregator=mean"), "-"),
        Variant("+ GDMA", (f"{S}aggregator=mean",), "-"),
    )),
}
#: ``--quick``: a CI-size budget (before ``--set``)
QUICK_OVERRIDES = ("dataset.kwargs.num_images=200", "dataset.eval_kwargs.num_images=100", "train.epochs=2")
CONFIGS = ("synthetic_natural", "synthetic_pedestrian", "synthetic_remote_sensing")
def select_tables(names: Sequence[str] | None, quick: bool) -> dict[str, tuple[str, tuple[Variant, ...]]]:
    """The tables ``names`` (all when None) with all their variants, or with ``quick`` and no
    ``names`` the first variant of each table."""
    if names is None:
        return {k: (title, variants[:1] if quick else variants) for k, (title, variants) in TABLES.items()}
    return {k: TABLES[k] for k in names}


class Runner:
    """Trains each (variant, seed) of one config once, whatever the tables that ask for it.

    Every finished run is appended to ``log`` (JSON lines, with the overrides shared by all runs and
    the digest of the CLIP weights it trained on), and runs found there with the same shared
    overrides and weights are not trained again (a run on an earlier tiny CLIP is): an interrupted
    benchmark continues where it stopped, and invocations share their runs (a concurrent one's
    too: the log is read again before each run).
    """

    def __init__(self, config_name: str, overrides: Sequence[str], workdir: Path, log: Path | None = None):
        self.config_name = config_name
        self.overrides = list(overrides)
        self.shared = [o for o in self.overrides if not o.startswith("train.feature_cache_dir=")]
        self.workdir = workdir
        self.log = log
        self.digest = backbone_digest(load_config(config_name, self.overrides))
        self.values: dict[tuple[tuple[str, ...], int], float] = {}
        self.seconds: dict[tuple[tuple[str, ...], int], float] = {}
        self._read_log()

    def _read_log(self) -> None:
        """Take the runs of ``log`` made with the same shared overrides and CLIP weights (by any
        invocation)."""
        for line in self.log.read_text().splitlines() if self.log is not None and self.log.is_file() else ():
            entry = json.loads(line)
            if entry["shared"] == self.shared and entry.get("backbone_sha256") == self.digest:
                key = (tuple(entry["overrides"]), entry["seed"])
                self.values[key], self.seconds[key] = entry["value"], entry["seconds"]

    def __call__(self, variant: Variant, seed: int) -> float:
        key = (variant.overrides, seed)
        if key not in self.values:
            self._read_log()  # another invocation on the same log may have made it meanwhile
        if key not in self.values:
            run_dir = self.workdir / "runs" / f"{len(self.values):03d}-seed{seed}"
            config = load_config(self.config_name, [*self.overrides, *variant.overrides,
                                                    f"train.seed={seed}", f"output_dir={run_dir}"])
            start = time.perf_counter()
            trainer = train_from_config(config)
            self.seconds[key] = time.perf_counter() - start
            self.values[key] = 100 * float(trainer.history[-1][config["train"]["monitor"]])
            print(f"  {variant.name} [seed {seed}]: {self.values[key]:.2f} ({self.seconds[key]:.1f} s)", flush=True)
            if self.log is not None:
                with self.log.open("a") as f:
                    f.write(json.dumps({"shared": self.shared, "backbone_sha256": self.digest,
                                        "overrides": list(variant.overrides), "seed": seed,
                                        "value": self.values[key], "seconds": round(self.seconds[key], 1)}) + "\n")
        return self.values[key]

    def seeds_of(self, variant: Variant) -> list[int]:
        return sorted(seed for overrides, seed in self.values if overrides == variant.overrides)


def row(runner: Runner, variant: Variant) -> dict[str, Any]:
    """One result row: per-seed values, mean and interval, the paired difference to the full
    model (on the seeds both have) and the verdict."""
    seeds = runner.seeds_of(variant)
    values = [runner(variant, s) for s in seeds]
    mean, interval = mean_interval(values)
    common = [s for s in seeds if s in runner.seeds_of(FULL)]
    reference = variant.overrides == FULL.overrides
    delta_mean, delta_interval = mean_interval([runner(variant, s) - runner(FULL, s) for s in common])
    return {
        "variant": variant.name, "overrides": list(variant.overrides), "seeds": seeds, "values": values,
        "mean": mean, "ci95": interval, "delta": delta_mean, "delta_ci95": delta_interval,
        "paper_sign": variant.paper_sign,
        "verdict": "reference" if reference else verdict(delta_interval, variant.paper_sign),
        "seconds_per_run": statistics.fmean(runner.seconds[(variant.overrides, s)] for s in seeds),
    }


def run_config(config_name: str, tables: dict[str, tuple[str, tuple[Variant, ...]]], seeds: int,
               extra_seeds: bool, overrides: Sequence[str], workdir: Path,
               log: Path | None = None, from_end: bool = False) -> dict[str, Any]:
    """Every variant of ``tables`` (and the full model) on seeds ``0..seeds-1``, plus two more
    seeds for variants that overlap the full model when ``extra_seeds``; the results record.
    ``log``: the runs already made and to be made (:class:`Runner`). ``from_end`` trains the
    runs (and the extra seeds) in the opposite order, so that two invocations on one log share the
    work from both ends."""
    runner = Runner(config_name, overrides, workdir, log)
    variants = list(dict.fromkeys([FULL, *(v for _, vs in tables.values() for v in vs)]))
    plan = [(variant, seed) for variant in variants for seed in range(seeds)]
    for variant, seed in reversed(plan) if from_end else plan:
        runner(variant, seed)
    if extra_seeds:
        full_interval = mean_interval([runner(FULL, s) for s in range(seeds)])[1]
        overlapping = [v for v in variants[1:]
                       if overlaps(mean_interval([runner(v, s) for s in range(seeds)])[1], full_interval)]
        # the full model pairs the new seeds
        extra = [(v, seed) for v in ([FULL, *overlapping] if overlapping else []) for seed in (seeds, seeds + 1)]
        for variant, seed in reversed(extra) if from_end else extra:
            runner(variant, seed)
    return {key: {"title": title, "rows": [row(runner, v) for v in (FULL, *vs)]}
            for key, (title, vs) in tables.items()}


def summary(results: dict[str, Any]) -> dict[str, int]:
    """Counts of the verdicts over the rows with a paper sign (each variant once)."""
    rows = {r["variant"]: r for table in results.values() for r in table["rows"] if r["paper_sign"]}
    counts = {"paper_signs": len(rows)}
    for name in ("reproduced", "not reproduced", "within noise", "undetermined"):
        counts[name.replace(" ", "_")] = sum(r["verdict"] == name for r in rows.values())
    return counts


def train_seconds(results: dict[str, Any]) -> float:
    """Seconds of training behind ``results``: each (variant, seed) once, whatever the tables
    (and invocations) that share it."""
    runs = {tuple(r["overrides"]): r["seconds_per_run"] * len(r["seeds"])
            for table in results.values() for r in table["rows"]}
    return round(sum(runs.values()), 1)


def markdown(results: dict[str, Any], monitor: str) -> str:
    """The tables of ``results`` in markdown."""
    lines = []
    for table in results.values():
        lines += ["", f"### {table['title']}", "",
                  f"| variant | overrides | {monitor} % [95% CI] | Δ vs full [95% CI] | paper | verdict | seeds |",
                  "|---|---|---|---|---|---|---|"]
        for r in table["rows"]:
            overrides = ", ".join(f"`{o.removeprefix(S)}`" for o in r["overrides"]) or "(none)"
            delta = "" if r["verdict"] == "reference" else format_cell(r["delta"], r["delta_ci95"], signed=True)
            lines.append(f"| {r['variant']} | {overrides} | {format_cell(r['mean'], r['ci95'])} | {delta} | "
                         f"{r['paper_sign'] or ''} | {r['verdict']} | {len(r['seeds'])} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--configs", nargs="+", default=["synthetic_natural"], choices=CONFIGS)
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), help="default: all")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 3, with --quick 2)")
    parser.add_argument("--extra-seeds-on-overlap", action="store_true",
                        help="two more seeds for variants whose interval overlaps the full model's")
    parser.add_argument("--quick", action="store_true", help="CI size: " + " ".join(QUICK_OVERRIDES)
                        + ", 2 seeds, the first variant of each table unless --tables is given")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every run (before the variant's own)")
    parser.add_argument("--from-end", action="store_true",
                        help="train the runs in the opposite order (so two invocations on one log share the work)")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR / "ablations")
    args = parser.parse_args(argv)
    args.seeds = args.seeds if args.seeds is not None else (2 if args.quick else 3)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    set_threads(args)
    tables = select_tables(args.tables, args.quick)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    totals = []
    for config_name in args.configs:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            overrides = ["train.progress=false", f"train.feature_cache_dir={tmp}/features",
                         *(QUICK_OVERRIDES if args.quick else ()), *args.overrides]
            config = load_config(config_name, overrides)
            tc, ds, monitor = config["train"], config["dataset"], config["train"]["monitor"]
            print(f"## {config_name}: {monitor}, seeds 0..{args.seeds - 1}, {ds['kwargs'].get('num_images')} / "
                  f"{ds['eval_kwargs'].get('num_images')} images, {tc['epochs']} epochs", flush=True)
            results = run_config(config_name, tables, args.seeds, args.extra_seeds_on_overlap, overrides, Path(tmp),
                                 log=args.output_dir / f"{config_name}.runs.jsonl", from_end=args.from_end)
        path = args.output_dir / f"{config_name}.json"
        shared = [o for o in overrides if not o.startswith("train.feature_cache_dir=")]
        previous = json.loads(path.read_text()) if path.is_file() else {}
        same_budget = (previous.get("overrides") == shared
                       and previous.get("budget", {}).get("backbone_sha256") == backbone_digest(config))
        if same_budget:  # tables of earlier invocations on the same budget and weights are kept
            results = {**{k: v for k, v in previous["tables"].items() if k not in results}, **results}
            results = {k: results[k] for k in TABLES if k in results}
        counts = summary(results)
        record = {
            "config": config_name, "command": shlex.join(["python", "benchmarks/ablations.py", *argv]),
            "monitor": monitor, "unit": "%", "seeds": list(range(args.seeds)),
            "extra_seeds_on_overlap": args.extra_seeds_on_overlap,
            "overrides": shared,
            "budget": {"backbone": config["model"]["backbone"], "pretrained": config["model"]["pretrained"],
                       "backbone_sha256": backbone_digest(config),
                       "image_size": ds["image_size"], "train_images": ds["kwargs"].get("num_images"),
                       "eval_images": ds["eval_kwargs"].get("num_images"), "epochs": tc["epochs"],
                       "batch_size": tc["batch_size"], "lr": tc["lr"], "cache_features": tc["cache_features"]},
            **environment(),
            "wall_clock_s": round(time.perf_counter() - start, 1),
            "train_seconds_all_tables": train_seconds(results), "tables": results, "summary": counts,
        }
        path.write_text(json.dumps(record, indent=1))
        print(markdown(results, monitor))
        totals.append(f"{config_name}: {counts['reproduced']} of {counts['paper_signs']} paper signs reproduced "
                      f"outside the noise ({counts['not_reproduced']} opposite, {counts['within_noise']} within "
                      f"noise); {record['wall_clock_s']} s -> {path}")
    print("", *totals, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
