"""Where the repository's shipped files live (sprite atlas, tiny-CLIP checkpoints, label lists,
description files, prompt templates) and where run outputs go by default."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SSPA_DATA_DIR", REPO_ROOT / "data"))
CACHE_DIR = Path(os.environ.get("SSPA_CACHE_DIR", REPO_ROOT / ".cache"))
OUTPUT_DIR = Path(os.environ.get("SSPA_OUTPUT_DIR", REPO_ROOT / "outputs"))
