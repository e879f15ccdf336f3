"""The papermill runner (sspa_core.notebooks) on small throw-away notebooks, and the rules every
committed notebook follows."""

import ast
import json

import nbformat
import pytest
import yaml

from sspa_core import notebooks as runner


def _notebook(path, parameters: str, body: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), cell]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in body]
    nbformat.write(nb, path)


@pytest.fixture
def tree(tmp_path):
    nbs, params = tmp_path / "notebooks", tmp_path / "notebooks" / "params"
    params.mkdir(parents=True)
    _notebook(nbs / "00_first.ipynb", 'profile = "smoke"\nsize = 1\noutput_dir = "outputs"',
              ["import json, pathlib\npathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)\n"
               "pathlib.Path(output_dir, 'seen.json').write_text(json.dumps({'profile': profile, 'size': size}))"])
    _notebook(nbs / "01_second.ipynb", 'profile = "smoke"\nfail = False',
              ["x = 1", "if fail:\n    raise RuntimeError('boom in cell')"])
    (params / "smoke.yaml").write_text(yaml.safe_dump(
        {"parameters": {"profile": "smoke"}, "notebooks": {"00_first": {"size": 2}}}))
    (params / "full.yaml").write_text(yaml.safe_dump({"parameters": {"profile": "full"}}))
    (params / "toy.yaml").write_text(yaml.safe_dump({"parameters": {"size": 5}, "only": ["00_first"]}))
    return nbs, params, tmp_path / "out"


def _run(tree, **kwargs):
    nbs, params, out = tree
    return runner.run_notebooks(notebooks_dir=nbs, params_dir=params, output_dir=out, **kwargs)


def test_runner_injects_parameters_and_writes_html(tree):
    results = _run(tree, profile="full", overrides={"size": 7})
    out = tree[2]
    assert [r.name for r in results] == ["00_first", "01_second"]
    seen = json.loads((out / "00_first" / "seen.json").read_text())
    assert seen == {"profile": "full", "size": 7}
    assert (out / "00_first.html").read_text().lower().startswith("<!doctype html")
    assert json.loads((out / "summary.json").read_text())[1]["parameters"] == {"profile": "full"}


def test_per_notebook_and_dataset_values(tree):
    plan = runner.resolve_parameters("smoke", notebooks_dir=tree[0], params_dir=tree[1])
    assert {p.stem: v for p, v in plan.items()}["00_first"] == {"profile": "smoke", "size": 2}
    plan = runner.resolve_parameters("smoke", "toy", notebooks_dir=tree[0], params_dir=tree[1])
    assert [p.stem for p in plan] == ["00_first"]


def test_failing_cell_names_notebook_and_cell(tree):
    with pytest.raises(runner.NotebookError, match=r"01_second\.ipynb: cell \d+ .*`if fail:`.*RuntimeError: boom in cell"):
        _run(tree, overrides={"fail": True})
    assert (tree[2] / "01_second.html").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"overrides": {"sise": 3}}, "unknown parameter"),
    ({"dataset": "nope"}, "unknown dataset 'nope'"),
    ({"profile": "huge"}, "unknown profile"),
    ({"only": ["07"]}, "no notebook matches"),
])
def test_bad_requests_give_clear_errors(tree, kwargs, message):
    with pytest.raises(ValueError, match=message):
        runner.resolve_parameters(notebooks_dir=tree[0], params_dir=tree[1], **kwargs)


def test_override_parsing():
    assert runner.parse_override("epochs=3") == ("epochs", 3)
    assert runner.parse_override("backbone=RN101") == ("backbone", "RN101")
    with pytest.raises(ValueError, match="key=value"):
        runner.parse_override("epochs")


NOTEBOOKS = runner.list_notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path):
    """No outputs, a kernelspec, a `parameters` cell of plain literal assignments."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    names = []
    for stmt in ast.parse(tagged[0].source).body:
        assert isinstance(stmt, ast.Assign), f"parameters cell holds only assignments: {ast.dump(stmt)}"
        ast.literal_eval(stmt.value)
        names += [t.id for t in stmt.targets]
    assert sorted(runner.declared_parameters(path)) == sorted(names), "papermill parses every line"


def test_profile_names_go_only_to_notebooks_that_declare_them(tree):
    nbs, params, _ = tree
    (params / "smoke.yaml").write_text(yaml.safe_dump({"parameters": {"profile": "smoke", "size": 3}}))
    plan = runner.resolve_parameters("smoke", only=["01"], notebooks_dir=nbs, params_dir=params)
    assert list(plan.values()) == [{"profile": "smoke"}]
    with pytest.raises(ValueError, match="no selected notebook declares"):
        runner.resolve_parameters("smoke", only=["01"], overrides={"size": 4},
                                  notebooks_dir=nbs, params_dir=params)


def test_every_profile_and_dataset_file_resolves():
    if not NOTEBOOKS:
        pytest.skip("no notebooks yet")
    for profile in runner.PROFILES:
        runner.resolve_parameters(profile)
        for dataset in runner.available_datasets():
            runner.resolve_parameters(profile, dataset)
