"""Label files, one label a line: the shipped lists of the nine real datasets
(``data/labels/{name}.txt``, in the dataset's official order) and the user's own."""

from __future__ import annotations

import os
from pathlib import Path

from sspa_core.data.image_files import read_text
from sspa_core.domains import canonical_name
from sspa_core.paths import DATA_DIR

LABELS_DIR = DATA_DIR / "labels"


def read_label_file(path: str | Path) -> list[str]:
    """The labels of a text file, one a line (UTF-8; blank lines and surrounding spaces dropped)."""
    return [line.strip() for line in read_text(Path(path)).splitlines() if line.strip()]


def load_label_names(name: str) -> list[str]:
    """Label names of dataset ``name`` (e.g. ``"coco"``) in their official order."""
    path = LABELS_DIR / f"{canonical_name(name)}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in LABELS_DIR.glob("*.txt"))
        raise FileNotFoundError(f"no label list {path}; available: {', '.join(available)}")
    return read_label_file(path)


def label_list(file_or_name: str) -> tuple[list[str], str]:
    """The labels of a label file, or of a shipped list by name (e.g. ``"coco"``), and the list's
    name (a file's stem). A path (with a suffix or a folder) that is no file is FileNotFoundError."""
    path = Path(file_or_name)
    if path.is_file():
        return read_label_file(path), path.stem
    if path.suffix or os.sep in file_or_name:
        raise FileNotFoundError(f"label file not found: {path}")
    return load_label_names(file_or_name), file_or_name
