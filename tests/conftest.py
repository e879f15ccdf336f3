"""Fixtures shared by the test files."""

from __future__ import annotations

import functools
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


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """``random_weights(architecture)``: the file of an open_clip model with random weights, written
    on first use (a real architecture's, loaded with ``pretrained=<file>``: nothing is downloaded)."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("real-architectures")

    @functools.cache
    def write(name: str) -> Path:
        torch.manual_seed(0)
        path = folder / f"{name}.pt"
        torch.save(open_clip.create_model(name).state_dict(), path)
        return path

    yield write
    for path in folder.glob("*.pt"):  # about 1 GB for ViT-B-16 and RN50, not needed to look into a failure
        path.unlink()
