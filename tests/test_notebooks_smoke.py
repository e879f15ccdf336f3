"""Every committed notebook runs end to end under the smoke profile (what `make demo` does), two
kernels at a time as ``make demo`` runs them (``sspa notebooks --jobs 2``)."""

import os

import pytest
from helpers import run_concurrently

from sspa_core import notebooks as runner

NOTEBOOKS = runner.list_notebooks()
LONGEST_FIRST = ("06", "07", "02")  # the notebooks that train or load the LLM, started first
JOBS = 2  # kernels at once, as make demo runs them


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """``{notebook stem: (result or exception, output folder)}`` for every notebook."""
    order = sorted(NOTEBOOKS, key=lambda p: (p.stem[:2] not in LONGEST_FIRST, p.stem))
    folders = {p.stem: tmp_path_factory.mktemp(p.stem) for p in order}
    with pytest.MonkeyPatch.context() as env:  # each kernel's torch takes its share of the cores
        env.setenv("OMP_NUM_THREADS", str(max(1, os.cpu_count() // JOBS)))
        outcomes = run_concurrently({p.stem: lambda p=p: runner.run_notebooks("smoke", only=[p.stem],
                                                                              output_dir=folders[p.stem])
                                     for p in order}, JOBS)
    return {stem: (outcomes[stem], folders[stem]) for stem in folders}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, smoke_runs):
    outcome, folder = smoke_runs[path.stem]
    if isinstance(outcome, BaseException):
        raise outcome
    [result] = outcome
    assert result.name == path.stem
    assert (folder / f"{path.stem}.html").stat().st_size > 0
