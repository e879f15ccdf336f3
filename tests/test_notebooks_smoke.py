"""Every committed notebook runs end to end under the smoke profile (what `make demo` does), two
kernels at a time as ``make demo`` runs them (``sspa notebooks --jobs 2``)."""

import pytest
from helpers import drop_checkpoints, run_concurrently, selected_runs

from sspa_core import notebooks as runner

NOTEBOOKS = runner.list_notebooks()
LONGEST_FIRST = ("06", "07", "02")  # the notebooks that train or load the LLM, started first
JOBS = 2  # kernels at once, as make demo runs them


def run(stem: str, folder) -> list:
    """One notebook's smoke run into ``folder``, its checkpoints deleted afterwards."""
    try:
        return runner.run_notebooks("smoke", only=[stem], output_dir=folder, threads=runner.kernel_threads(JOBS))
    finally:
        drop_checkpoints(folder)


@pytest.fixture(scope="session")
def smoke_runs(request, tmp_path_factory):
    """``{notebook stem: (result or exception, output folder)}`` for every selected notebook."""
    wanted = [path for (path,) in selected_runs(request, "test_notebook_runs_in_smoke_profile", ("path",))]
    order = sorted(wanted, key=lambda p: (p.stem[:2] not in LONGEST_FIRST, p.stem))
    folders = {p.stem: tmp_path_factory.mktemp(p.stem) for p in order}
    outcomes = run_concurrently({p.stem: lambda p=p: run(p.stem, folders[p.stem]) for p in order}, JOBS)
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
