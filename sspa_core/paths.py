"""Where the shipped files live (sprite atlas, tiny-CLIP checkpoints, label lists, description
files, prompt templates), where caches go and where run outputs go by default.

The shipped files have their home in the repository's top-level ``data/``; a built wheel carries
a copy of it as ``sspa_core/_data`` (see ``setup.py``). Each location can be set by an
environment variable; otherwise it depends on how the package is installed:

=============  ==========================  ==========================  ==================
variable       set by ``SSPA_…``           source or editable checkout installed package
=============  ==========================  ==========================  ==================
``DATA_DIR``   ``SSPA_DATA_DIR``           ``<repo>/data``             ``sspa_core/_data``
``CACHE_DIR``  ``SSPA_CACHE_DIR``          ``<repo>/.cache``           ``$XDG_CACHE_HOME/sspa``
                                                                       (``~/.cache/sspa``)
``OUTPUT_DIR`` ``SSPA_OUTPUT_DIR``         ``<repo>/outputs``          ``./outputs`` (of the
                                                                       working directory)
=============  ==========================  ==========================  ==================

Nothing is ever written below the installed package: the packaged data are read only.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The folder holding the package: the repository root in a source or editable checkout.
REPO_ROOT = PACKAGE_DIR.parent
#: True when the package runs from a checkout of the repository (its ``pyproject.toml`` and
#: ``data/`` beside the package), False for an installed wheel.
SOURCE_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "data").is_dir()
PACKAGED_DATA_DIR = PACKAGE_DIR / "_data"


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sspa"


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else default


DATA_DIR = _from_env("SSPA_DATA_DIR", REPO_ROOT / "data" if SOURCE_CHECKOUT else PACKAGED_DATA_DIR)
CACHE_DIR = _from_env("SSPA_CACHE_DIR", REPO_ROOT / ".cache" if SOURCE_CHECKOUT else _user_cache())
OUTPUT_DIR = _from_env("SSPA_OUTPUT_DIR", REPO_ROOT / "outputs" if SOURCE_CHECKOUT else Path("outputs"))


def metadata_path(checkpoint: str | Path) -> Path:
    """The JSON metadata written beside a shipped checkpoint (a tiny CLIP's or a head's):
    ``NAME.meta.json`` beside ``NAME.pt``, a name no model config (``sspa_core/model_configs/NAME.json``)
    or result record shares."""
    return Path(checkpoint).with_suffix(".meta.json")
