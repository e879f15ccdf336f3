"""Recorded benchmark results that the notebooks read, and the statistics they are reported with.

The files live in ``data/results/`` (:data:`RESULTS_DIR`), one folder per benchmark:
``ablations/<config>.json`` (``benchmarks/ablations.py``: Tables VI–IX, Fig. 5–6) and
``compare_models/<config>.json`` (``benchmarks/compare_models.py``: SSPA against its peers). Each
file records the command that made it; rerunning that command with ``--output-dir`` (or
``--output``) pointing here replaces it.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sspa_core.domains import canonical_name
from sspa_core.paths import DATA_DIR

RESULTS_DIR = DATA_DIR / "results"
BENCHMARKS = ("ablations", "compare_models")
#: two-sided 95% quantiles of Student's t, df = 1..10
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom: :data:`T975`, beyond it
    the Cornish–Fisher expansion around the normal quantile (error < 1e-3 for df > 10)."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = statistics.NormalDist().inv_cdf(0.975)
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_interval(values: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """Mean and 95% t-interval of ``values`` (None with fewer than two)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, (mean - half, mean + half)


def verdict(interval: tuple[float, float] | None, paper_sign: str | None) -> str:
    """The verdict on a difference ``variant − full`` with 95% ``interval``: "reproduced" (the
    paper's sign, the interval excludes 0), "not reproduced" (the opposite sign, excludes 0),
    "within noise" (contains 0), "higher"/"lower" where the paper makes no claim, "undetermined"
    without an interval (one seed)."""
    if paper_sign not in ("+", "-", None):
        raise ValueError(f"paper_sign must be '+', '-' or None, got {paper_sign!r}")
    if interval is None:
        return "undetermined"
    low, high = interval
    if low <= 0 <= high:
        return "within noise"
    observed = "+" if low > 0 else "-"
    if paper_sign is None:
        return "higher" if observed == "+" else "lower"
    return "reproduced" if observed == paper_sign else "not reproduced"


def overlaps(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    """Whether two intervals overlap (an undefined one overlaps everything)."""
    return a is None or b is None or (a[0] <= b[1] and b[0] <= a[1])


def result_path(benchmark: str, config: str, results_dir: Path | None = None) -> Path:
    """``<results_dir>/<benchmark>/<config>.json`` (``results_dir`` defaults to :data:`RESULTS_DIR`)."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; recorded: {', '.join(BENCHMARKS)}")
    if not config or Path(config).name != config:
        raise ValueError(f"config must be a plain name such as synthetic_natural, got {config!r}")
    return Path(RESULTS_DIR if results_dir is None else results_dir) / benchmark / f"{config}.json"


def load_result(benchmark: str, config: str, results_dir: Path | None = None) -> dict[str, Any] | None:
    """The recorded result of ``benchmark`` on ``config``, or None when none was recorded. Its
    ``"backbone_note"`` is :func:`backbone_note` of it."""
    path = result_path(benchmark, canonical_name(config), results_dir)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); rerun the command that made it") from error
    record["backbone_note"] = backbone_note(record)
    return record


def backbone_note(record: dict[str, Any]) -> str:
    """"" when a record was made with the weights its backbone loads now (``budget.backbone_sha256``
    against :func:`sspa_core.engine.heads.backbone_digest`), else a sentence saying that its
    numbers describe other weights (e.g. a tiny CLIP shipped before the current one)."""
    from sspa_core.engine.heads import backbone_digest

    budget = record.get("budget", {})
    now = backbone_digest({"model": {"backbone": budget.get("backbone", ""),
                                     "pretrained": budget.get("pretrained", "")}})
    made = budget.get("backbone_sha256")
    if now is None or made == now:
        return ""
    return (f"made with other {budget.get('backbone')} weights ({made or 'not recorded'}) than those loaded now "
            f"({now}): its numbers describe the earlier weights; rerun its command to re-make it")



def paired_difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, tuple[float, float] | None, int]:
    """``a − b`` for two rows of an ablation record (``seeds``, ``values``), paired by seed on the
    seeds both have: the mean, its 95% t-interval (None with one seed) and the number of seeds."""
    common = sorted(set(a["seeds"]) & set(b["seeds"]))
    if not common:
        raise ValueError(f"{a.get('variant')!r} and {b.get('variant')!r} share no seed")
    differences = [a["values"][a["seeds"].index(s)] - b["values"][b["seeds"].index(s)] for s in common]
    mean, interval = mean_interval(differences)
    return mean, interval, len(common)


def format_cell(mean: float, interval: Sequence[float] | None, signed: bool = False) -> str:
    """``"52.10 [51.20, 53.00]"``: a mean and its interval (the mean alone without one)."""
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if interval is None else f"{text} [{interval[0]:.2f}, {interval[1]:.2f}]"


def ablation_rows(record: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """One display row per variant of ``table`` (e.g. "VI") of an ablation record: the score with
    its interval, the difference to the full model with its interval, the paper's sign and the
    verdict (``benchmarks/ablations.py`` wrote them), in the record's unit."""
    if table not in record["tables"]:
        raise KeyError(f"table {table!r} was not recorded for {record['config']}; recorded: {sorted(record['tables'])}")

    rows = []
    for r in record["tables"][table]["rows"]:
        reference = r["verdict"] == "reference"
        rows.append({"variant": r["variant"], f"{record['monitor']} % [95% CI]": format_cell(r["mean"], r["ci95"]),
                     "Δ vs full [95% CI]": "" if reference else format_cell(r["delta"], r["delta_ci95"], signed=True),
                     "paper's sign": r["paper_sign"] or "", "verdict": r["verdict"], "seeds": len(r["seeds"])})
    return rows


def threshold_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One display row per model of a ``compare_models`` record made with ``--thresholds``: for
    each metric that thresholds the scores, the mean over the seeds (%) at 0.5, held out (a
    threshold picked on one half of the validation images, scored on the other; the mean threshold
    picked) and at the best threshold (an oracle), see :func:`sspa_core.metrics.threshold_study`.
    Empty for a record without the study."""
    rows = []
    for model, study in (record.get("thresholds") or {}).items():
        row: dict[str, Any] = {"model": model}
        for key, kinds in study.items():
            mean = {kind: statistics.fmean(values) for kind, values in kinds.items()}
            row[f"{key} at 0.5"] = f"{mean['at 0.5']:.2f}"
            row[f"{key} held out (t)"] = f"{mean['held out']:.2f} ({mean['threshold']:.2f})"
            row[f"{key} best"] = f"{mean['best']:.2f}"
        rows.append(row)
    return rows


class RecordedTable(NamedTuple):
    """One recorded ablation table for a notebook: its ``heading``, its display ``rows``
    (:func:`ablation_rows`; empty when not recorded) and the ``config`` it was recorded on (None
    when not recorded), which a notebook names beside its reading of the table."""

    heading: str
    rows: list[dict[str, Any]]
    config: str | None


def recorded_ablations(config: str, tables: Sequence[str], fallback: str = "synthetic_natural",
                       results_dir: Path | None = None) -> list[RecordedTable]:
    """A :class:`RecordedTable` per table for a notebook: :func:`ablation_rows` of the record of
    ``config`` (of ``fallback`` when ``config`` has none, which the heading says), or empty
    ``rows`` with a heading that gives the command to record the table."""
    record = load_result("ablations", config, results_dir)
    note = ""
    if record is None and fallback != config:
        record, note = load_result("ablations", fallback, results_dir), f" (recorded on {fallback}, not {config})"
    out = []
    for table in tables:
        if record is None or table not in record["tables"]:
            out.append(RecordedTable(f"Table {table}: not recorded yet; `python benchmarks/ablations.py --configs "
                                     f"{fallback} --tables {table} --output-dir data/results/ablations` records it",
                                     [], None))
            continue
        budget = record["budget"]
        heading = (f"{record['tables'][table]['title']}{note}: {record['config']}, {budget['backbone']} at "
                   f"{budget['image_size']} px, {budget['train_images']} images x {budget['epochs']} epochs, "
                   f"mean and 95% interval over seeds; `{record['command']}`"
                   + (f"\n  note: {record['backbone_note']}" if record["backbone_note"] else ""))
        out.append(RecordedTable(heading, ablation_rows(record, table), record["config"]))
    return out
