"""Every committed notebook runs end to end under the smoke profile (what `make demo` does)."""

import pytest

from sspa_core import notebooks as runner

NOTEBOOKS = runner.list_notebooks()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, tmp_path):
    [result] = runner.run_notebooks("smoke", only=[path.stem], output_dir=tmp_path)
    assert result.name == path.stem
    assert (tmp_path / f"{path.stem}.html").stat().st_size > 0
