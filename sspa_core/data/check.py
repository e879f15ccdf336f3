"""``sspa data check NAME ROOT``: validate a dataset download.

Reads every split of dataset ``NAME`` from ``ROOT`` with its loader, decodes every image, and
prints the image count of each split, the frequency of each label per split, and the missing
or unreadable files. The exit code is 1 when anything is wrong (an annotation file missing or
malformed, an image missing or unreadable), else 0.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sspa_core.data import dataset_class
from sspa_core.data.image_files import image_problem, require_root
from sspa_core.data.labels import load_label_names

CELL_WIDTH = 19  # one split's column of the label table: "<count> (<100.0>%)"


@dataclass
class SplitReport:
    """What one split of a download holds: its image count, per-label counts (positives that
    count, i.e. not masked), the images with a problem, or the error that kept it from loading."""

    split: str
    n_images: int = 0
    label_counts: np.ndarray | None = None
    bad_images: list[tuple[Path, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.bad_images


def check_split(name: str, root: str | Path, split: str, decode: bool = True, workers: int = 4) -> SplitReport:
    """Load ``split`` of dataset ``name`` and test each of its images (decoded when ``decode``,
    else only checked to exist)."""
    report = SplitReport(split)
    try:
        dataset = dataset_class(name)(root, split)
    except (OSError, ValueError) as err:  # the loaders' errors name the file and the entries
        report.error = str(err)
        return report
    report.n_images = len(dataset)
    masks = np.ones_like(dataset.targets) if dataset.masks is None else dataset.masks
    report.label_counts = (dataset.targets * masks).sum(0).astype(int)

    def problem(path: Path) -> str | None:
        if decode:
            return image_problem(path)
        return None if path.is_file() else "missing"

    with ThreadPoolExecutor(max(1, workers)) as pool:
        problems = list(pool.map(problem, dataset.image_paths))
    report.bad_images = [(p, why) for p, why in zip(dataset.image_paths, problems) if why is not None]
    return report


def check_dataset(name: str, root: str | Path, splits: list[str] | None = None, decode: bool = True,
                  workers: int = 4) -> tuple[list[str], list[SplitReport]]:
    """Label names and one :class:`SplitReport` per split (all splits of the dataset by default)."""
    cls = dataset_class(name)
    root = require_root(root, cls.dataset_name)
    for split in splits or []:
        if split not in cls.SPLITS:
            raise ValueError(f"{cls.dataset_name}: unknown split {split!r}; valid: {', '.join(cls.SPLITS)}")
    return load_label_names(name), [check_split(name, root, s, decode, workers) for s in splits or cls.SPLITS]


def _cell(count: int, total: int) -> str:
    """``count`` and its share of ``total``, right-aligned in :data:`CELL_WIDTH` characters."""
    share = f"({100 * count / max(total, 1):.1f}%)"
    return f"{count:>{CELL_WIDTH - 9}d} {share:>8s}"


def format_report(name: str, label_names: list[str], reports: list[SplitReport], max_listed: int = 20) -> str:
    """The report printed by ``sspa data check``."""
    lines = [f"{dataset_class(name).dataset_name}: {len(label_names)} labels"]
    for r in reports:
        if r.error:
            lines.append(f"  {r.split}: cannot load: " + r.error.replace("\n", "\n      "))
        else:
            n_missing = sum(why == "missing" for _, why in r.bad_images)
            lines.append(f"  {r.split}: {r.n_images} images, {n_missing} missing, "
                         f"{len(r.bad_images) - n_missing} unreadable")
    loaded = [r for r in reports if r.label_counts is not None]
    if loaded:
        lines.append("")
        lines.append("label frequencies (images with the label, % of the split):")
        width = max(len(n) for n in label_names)
        lines.append("  " + "label".ljust(width) + "".join(f"{r.split:>{CELL_WIDTH}s}" for r in loaded))
        for j, label in enumerate(label_names):
            cells = "".join(_cell(r.label_counts[j], r.n_images) for r in loaded)
            lines.append("  " + label.ljust(width) + cells)
        never = [label_names[j] for j in range(len(label_names)) if all(r.label_counts[j] == 0 for r in loaded)]
        if never:
            lines.append(f"labels with no positive in any split: {', '.join(never)}")
    bad = [(r.split, p, why) for r in reports for p, why in r.bad_images]
    if bad:
        lines.append("")
        lines.append(f"missing or unreadable files ({len(bad)}):")
        lines += [f"  [{split}] {path}: {why}" for split, path, why in bad[:max_listed]]
        if len(bad) > max_listed:
            lines.append(f"  … and {len(bad) - max_listed} more")
    lines.append("")
    lines.append("OK" if all(r.ok for r in reports) else "PROBLEMS FOUND")
    return "\n".join(lines)
