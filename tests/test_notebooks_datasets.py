"""The notebooks on the nine datasets' official layouts (tests/fixtures) and on real CLIP
architectures: ``sspa notebooks --profile smoke --dataset NAME -p data_root=...`` as a user runs it.

:data:`MATRIX` is every notebook that a dataset file selects x the nine dataset files with the tiny
CLIP, and every notebook that takes a dataset once with a real CLIP architecture
(:data:`REAL_RUNS`: ViT-B-16, the paper's backbone, and RN50, whose dense features come from the
attention pool). Real architectures carry random weights written to a local file
(``pretrained=<path>``), at a small input size, so nothing is downloaded. The runs go :data:`JOBS`
at a time in kept kernels (:class:`helpers.KernelPool`: cleared between notebooks,
imports kept), which saves the ~15 s of kernel start and imports per run; the smoke runs of
test_notebooks_smoke.py use fresh kernels, as ``make demo`` does.
"""

from __future__ import annotations

import re

import pytest
from helpers import KernelPool, drop_checkpoints, run_concurrently, selected_runs

from sspa_core import notebooks as runner

REAL_BACKBONES = ("ViT-B-16", "RN50")
IMAGE_SIZE = {"ViT-B-16": 64, "RN50": 64}  # small inputs keep a CPU run short (4 x 4 and 2 x 2 patches)
#: each notebook that takes a dataset with a real architecture: (notebook, dataset file, backbone).
#: 03-05 run on COCO, whose annotations carry boxes, so their box-based measures run on real data;
#: 02 and 06 on VOC (masked "difficult" labels; 20 labels: 06 trains five models, and the 512-wide
#: text encoder runs on every label's prompt at every prompt-learning step, four times longer with
#: COCO's 80); 07 on a pedestrian set and a remote-sensing one.
REAL_RUNS = [("02", "voc", "RN50"), ("03", "coco", "RN50"), ("04", "coco", "ViT-B-16"),
             ("05", "coco", "RN50"), ("06", "voc", "ViT-B-16"), ("07", "peta", "RN50"), ("07", "aid", "RN50")]
#: the dataset files of the transfer domains, which notebook 07 (domain transfer) runs on
TRANSFER = ("pa100k", "rap", "peta", "multiscene", "mlrsnet", "aid")
JOBS = 2  # notebook kernels at once (CI's machine has 2 cores)


def selected(dataset: str) -> list[str]:
    """Numbers of the notebooks that the parameter file of ``dataset`` runs."""
    return [path.stem.split("_")[0] for path in runner.resolve_parameters("smoke", dataset)]


def full_matrix() -> list[tuple[str, str, str]]:
    """Every notebook x every dataset file (tiny CLIP), and :data:`REAL_RUNS`: ``(notebook number,
    dataset parameter file, backbone or "tiny" = the smoke profile's tiny CLIP)``."""
    tiny = [(nb, ds, "tiny") for ds in runner.dataset_parameter_files() for nb in selected(ds)]
    return tiny + REAL_RUNS


MATRIX = full_matrix()


def overrides_for(run: tuple[str, str, str], dataset_roots, random_weights) -> dict:
    """The ``-p`` values a user passes for ``run``, restricted to what its notebook declares."""
    number, dataset, backbone = run
    [notebook] = runner.resolve_parameters("smoke", dataset, only=[number])
    wanted = {"data_root": str(dataset_roots[dataset])}
    if backbone != "tiny":
        wanted.update(backbone=backbone, pretrained=str(random_weights(backbone)), image_size=IMAGE_SIZE[backbone])
    return {k: v for k, v in wanted.items() if k in runner.declared_parameters(notebook)}


def run_and_drop_checkpoints(run: tuple[str, str, str], overrides: dict, folder, kernels) -> list:
    """One run of the matrix; its checkpoints are deleted afterwards (a ViT-B-16 run of 06 writes
    several GB), the executed notebook and its HTML are kept."""
    try:
        return runner.run_notebooks("smoke", run[1], only=[run[0]], overrides=overrides, output_dir=folder,
                                    kernels=kernels)
    finally:
        drop_checkpoints(folder)


@pytest.fixture(scope="session")
def matrix_runs(request, dataset_roots, random_weights, tmp_path_factory):
    """Every selected run of :data:`MATRIX`, :data:`JOBS` at a time in kept kernels, the real architectures
    and the training notebooks first (the longest runs): ``{run: (result or exception, overrides,
    folder)}``."""
    wanted = selected_runs(request, "test_notebook_on_dataset_layout", ("number", "dataset", "backbone"))
    order = sorted(wanted, key=lambda run: (run[2] == "tiny", run[0] not in ("06", "07", "02")))
    calls, plans = {}, {}
    for run in order:
        overrides, folder = overrides_for(run, dataset_roots, random_weights), tmp_path_factory.mktemp("-".join(run))
        plans[run] = (overrides, folder)
        calls[run] = lambda run=run, overrides=overrides, folder=folder: run_and_drop_checkpoints(
            run, overrides, folder, kernels)
    with KernelPool(threads=runner.kernel_threads(JOBS)) as kernels:
        outcomes = run_concurrently(calls, JOBS)
    return {run: (outcomes[run], *plans[run]) for run in wanted}


@pytest.mark.slow
@pytest.mark.parametrize("number, dataset, backbone", MATRIX, ids=["-".join(run) for run in MATRIX])
def test_notebook_on_dataset_layout(number, dataset, backbone, matrix_runs):
    outcome, overrides, folder = matrix_runs[(number, dataset, backbone)]
    if isinstance(outcome, BaseException):
        raise outcome
    [result] = outcome
    [notebook] = runner.resolve_parameters("smoke", dataset, only=[number])
    assert result.parameters["dataset"] == dataset
    assert {k: result.parameters[k] for k in overrides} == overrides
    assert (folder / f"{notebook.stem}.html").stat().st_size > 0
    prose = rendered_prose(folder / f"{notebook.stem}.ipynb")
    check_prose_speaks_of(prose, dataset, result.parameters.get("natural"))


def rendered_prose(executed) -> list[str]:
    """The Markdown a run rendered from its own values (``sspa_core.narration.say``)."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    return ["".join(output["data"]["text/markdown"]) for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if "text/markdown" in output.get("data", {})]


def check_prose_speaks_of(prose: list[str], dataset: str, reference: str | None = None) -> None:
    """A run on a real dataset names it in its rendered prose, and speaks of the synthetic world only
    where it says why: a table recorded there, 07's declared natural ``reference``, or a section
    skipped because what it needs exists only there."""
    from sspa_core.data import dataset_class

    named = re.compile(rf"\b{re.escape(dataset)}\b|{re.escape(dataset_class(dataset).dataset_name)}")
    assert prose and any(named.search(text) for text in prose), prose
    reasons = ("recorded", "reference", "skipped", *filter(None, [reference]))
    for text in prose:
        if "synthetic" in text:
            assert any(why in text.lower() for why in reasons), text
        if text.startswith("**This run:**"):
            assert "synthetic" not in text and "offline world" not in text, text


def test_the_prose_check_catches_a_run_that_speaks_of_the_synthetic_world():
    ok = ["**This run:** COCO 2014 (`coco`), val split, 1 image; ...",
          "**Table VI, as recorded on `synthetic_natural`:** within noise: ...",
          "**Natural reference:** the domain gap is measured against the offline world's synthetic natural scenes"]
    check_prose_speaks_of(ok, "coco")
    check_prose_speaks_of(["**Section 6 is skipped on `aid`:** the runs cover `synthetic_natural` only"], "aid")
    check_prose_speaks_of(["**peta:** 1.0x chance, below synthetic_natural's 1.7x"], "peta", "synthetic_natural")
    with pytest.raises(AssertionError):
        check_prose_speaks_of(["**This run:** the offline world's synthetic natural scenes ..."], "coco")
    with pytest.raises(AssertionError):
        check_prose_speaks_of(["On the synthetic scenes SSPA leads."], "coco")
    with pytest.raises(AssertionError):
        check_prose_speaks_of(["SSPA leads."], "coco")  # never names its dataset


def test_domain_transfer_runs_on_the_six_transfer_datasets_only():
    for dataset in runner.dataset_parameter_files():
        plan = {path.stem: values for path, values in runner.resolve_parameters("smoke", dataset).items()}
        assert ("07_domain_transfer" in plan) == (dataset in TRANSFER), dataset
        if dataset in TRANSFER:
            assert plan["07_domain_transfer"]["dataset"] == dataset
            full = runner.resolve_parameters("full", dataset, only=["07"])
            assert list(full.values())[0]["image_size"] == 224  # the paper's size for these domains


def test_the_listing_shows_each_dataset_files_commands(capsys):
    from sspa_core.cli import main

    assert main(["notebooks", "--list"]) == 0
    out = capsys.readouterr().out
    rows = {row["dataset"]: row for row in runner.dataset_commands()}
    assert set(rows) == set(runner.dataset_parameter_files())
    assert rows["pa100k"]["notebooks"] == selected("pa100k") and "07" in rows["aid"]["notebooks"]
    assert "07" not in rows["coco"]["notebooks"]
    for row in rows.values():
        assert row["smoke"] in out and row["full"] in out
    assert rows["voc"]["smoke"] == "sspa notebooks --profile smoke --dataset voc -p data_root=/data/voc"


def test_full_matrix_covers_every_notebook_and_dataset_file():
    matrix = full_matrix()
    assert {ds for _, ds, bb in matrix if bb == "tiny"} == set(runner.dataset_parameter_files())
    with_dataset = {p.stem[:2] for p in runner.list_notebooks() if "dataset" in runner.declared_parameters(p)}
    assert {nb for nb, _, bb in matrix if bb == "tiny"} == with_dataset
    assert {nb for nb, _, bb in matrix if bb != "tiny"} == with_dataset  # each with a real CLIP
    assert {ds for nb, ds, bb in matrix if bb != "tiny" and nb in ("03", "04", "05")} == {"coco"}  # boxes
    assert {ds for nb, ds, bb in matrix if nb == "07" and bb != "tiny"} == {"peta", "aid"}
    assert {bb for *_, bb in matrix} == {"tiny", *REAL_BACKBONES}
    assert all(nb in selected(ds) for nb, ds, _ in REAL_RUNS)


def test_smoke_keeps_the_notebooks_sizes_and_full_takes_the_papers():
    smoke = runner.resolve_parameters("smoke", "coco", only=["03"])
    full = runner.resolve_parameters("full", "coco", only=["03"])
    [notebook] = smoke
    assert "image_size" not in smoke[notebook] and full[notebook]["image_size"] == 448
    assert runner.resolve_parameters("full", "pa100k", only=["03"])[notebook]["image_size"] == 224


def test_profiles_section_is_checked(tmp_path):
    params = tmp_path / "params"
    params.mkdir()
    for profile in runner.PROFILES:
        (params / f"{profile}.yaml").write_text("parameters: {}\n")
    (params / "toy.yaml").write_text("profiles: {fast: {image_size: 8}}\n")
    with pytest.raises(ValueError, match="profiles must map profile names"):
        runner.resolve_timeout("smoke", "toy", params)


def test_offline_weights_stop_the_run_before_any_notebook_with_one_line(monkeypatch, capsys, tmp_path):
    import open_clip
    from huggingface_hub.errors import LocalEntryNotFoundError

    from sspa_core.cli import main

    def offline(*args, **kwargs):  # what the hub raises without a connection
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", offline)
    argv = ["notebooks", "--only", "05", "--set", "backbone=ViT-B-16", "--set", "pretrained=openai",
            "--output-dir", str(tmp_path)]
    assert main(argv) == 1
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("sspa notebooks: error: could not download the pretrained weights")
    assert line.endswith("for the notebooks: --set pretrained=/path/to/file.pt")
    assert not list(tmp_path.iterdir())  # no notebook started
