"""The shipped label lists of the nine real datasets (``data/labels/{name}.txt``, one label a
line, in the dataset's official order)."""

from __future__ import annotations

from sspa_core.paths import DATA_DIR

LABELS_DIR = DATA_DIR / "labels"


def load_label_names(name: str) -> list[str]:
    """Label names of dataset ``name`` (e.g. ``"coco"``) in their official order."""
    path = LABELS_DIR / f"{name}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in LABELS_DIR.glob("*.txt"))
        raise FileNotFoundError(f"no label list {path}; available: {', '.join(available)}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
