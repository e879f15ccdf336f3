"""Fixtures shared by the test files."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import load_script

make_fixtures = load_script(Path(__file__).parent / "fixtures" / "make_fixtures.py")


@pytest.fixture(scope="session")
def dataset_roots(tmp_path_factory) -> dict[str, Path]:
    """Tiny copies of the nine real datasets in their official layouts (tests/fixtures/
    make_fixtures.py), written once per session: ``{name: root}``, plus ``"peta_pkl"``."""
    return make_fixtures.make_all(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A randomly initialised tiny-CLIP checkpoint file (loaded like real weights)."""
    import open_clip
    import torch

    import sspa_core.backbone  # noqa: F401  (registers the tiny-CLIP model configs)

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny-vit.pt"
    torch.save(open_clip.create_model("sspa-tiny-vit").state_dict(), path)
    return path
