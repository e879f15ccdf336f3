"""Every committed notebook runs end to end under the smoke profile (what `make demo` does), two
kernels at a time as ``make demo`` runs them (``sspa notebooks --jobs 2``)."""

import pytest
from helpers import drop_checkpoints, run_concurrently, selected_runs, unbacked_prose_numbers

from sspa_core import notebooks as runner
from sspa_core.paths import REPO_ROOT

NOTEBOOKS = runner.list_notebooks()
LONGEST_FIRST = ("06", "07", "02")  # the notebooks that train or load the LLM, started first
#: numbers a notebook's prose states that no run prints, each with why it is not a claim about the run
STATED = {
    "01_quaternion_algebra": {"262,656": "512 x 512 + 512, the arithmetic of the sentence"},
    "02_llm_label_descriptions": {"98": "the size of the shipped GGUF file"},
    "04_gated_dual_modal_alignments": {"0.376": "an example of a narrow colour range", "0.384": "the same example",
                                       "0.38": "a question's hypothetical gate"},
    "05_soft_aggregator": {"784": "28 x 28 patches of a ViT-B/16 at 448 px"},
    "06_training_on_coco": {"5.3": "checkpoint sizes of ViT-B/16 runs on the full profile", "10.5": "the same"},
    "07_domain_transfer": {"196": "14 x 14 patches of a ViT-B/16 at 224 px"},
}
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
    # every number the prose quotes is printed by the run, set by its code or stated in docs/method.md
    references = (REPO_ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    typed = [(number, context) for number, context in unbacked_prose_numbers(folder / f"{path.stem}.ipynb", references)
             if number not in STATED.get(path.stem, {})]
    assert not typed, f"{path.stem} quotes numbers its run does not print: {typed}"
