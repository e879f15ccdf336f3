"""The papermill runner (sspa_core.notebooks) on small throw-away notebooks, and the rules every
committed notebook follows."""

import argparse
import ast
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from helpers import KernelPool

from sspa_core import notebook_params
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
              ["import json, pathlib\nfolder = pathlib.Path(output_dir, '00_first')\n"
               "folder.mkdir(parents=True, exist_ok=True)\n"
               "import os\n"
               "(folder / 'seen.json').write_text(json.dumps({'profile': profile, 'size': size,\n"
               "                                               'headless': os.environ.get('SSPA_HEADLESS'),\n"
               "                                               'threads': os.environ.get('OMP_NUM_THREADS')}))"])
    _notebook(nbs / "01_second.ipynb", 'profile = "smoke"\nfail = False\ndata_root = ""',
              ["x = 1", "if fail:\n    raise RuntimeError('boom in cell')"])
    (params / "smoke.yaml").write_text(yaml.safe_dump(
        {"parameters": {"profile": "smoke"}, "notebooks": {"00_first": {"size": 2}}}))
    (params / "full.yaml").write_text(yaml.safe_dump({"parameters": {"profile": "full"}}))
    (params / "toy.yaml").write_text(yaml.safe_dump({"parameters": {"size": 5}, "only": ["00_first"]}))
    return nbs, params, tmp_path / "out"


def _run(tree, **kwargs):
    nbs, params, out = tree
    return runner.run_notebooks(notebooks_dir=nbs, params_dir=params, output_dir=out, **kwargs)


def test_runner_injects_parameters_and_writes_html(tree, capfd, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    results = _run(tree, profile="full", overrides={"size": 7})
    out = tree[2]
    assert [r.name for r in results] == ["00_first", "01_second"]
    seen = json.loads((out / "00_first" / "seen.json").read_text())  # <output_dir>/<notebook>/, nested once
    assert not (out / "00_first" / "00_first").exists()
    assert "without encryption" not in capfd.readouterr().err  # the kernel talks over IPC, not TCP
    assert runner.HEADLESS_ENV not in os.environ  # set for the kernels only
    assert seen == {"profile": "full", "size": 7, "headless": "1", "threads": None}  # one kernel: every core
    html = (out / "00_first.html").read_text()
    assert html.lower().startswith("<!doctype html")
    assert f'src="mathjax/{runner.MATHJAX_ENTRY}"' in html and "cdnjs.cloudflare.com/ajax/libs/mathjax" not in html
    assert (out / "mathjax" / "MathJax.js").is_file()  # equations render offline
    assert json.loads((out / "summary.json").read_text())[1]["parameters"] == {"profile": "full"}


def test_kernel_threads_split_the_cores():
    assert runner.kernel_threads(1) is None
    assert runner.kernel_threads(2) == max(1, len(os.sched_getaffinity(0)) // 2)
    assert runner.kernel_threads(10_000) == 1


def test_jobs_run_notebooks_at_once_and_keep_their_order(tmp_path, monkeypatch):
    """Each notebook waits until the other has started: only concurrent kernels finish. Each
    kernel gets its share of the cores as its torch threads and works in the notebooks' folder."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    nbs, params = tmp_path / "notebooks", tmp_path / "notebooks" / "params"
    params.mkdir(parents=True)
    for name, other in (("00_a", "01_b"), ("01_b", "00_a")):
        _notebook(nbs / f"{name}.ipynb", f'flags = "{tmp_path}"',
                  ["import os, pathlib, time\n"
                   "threads = os.environ.get('OMP_NUM_THREADS', '')\n"
                   f"pathlib.Path(flags, '{name}').write_text(threads + '|' + os.getcwd())\n"
                   "deadline = time.time() + 60\n"
                   f"while not pathlib.Path(flags, '{other}').exists():\n"
                   "    assert time.time() < deadline, 'the other notebook never started'\n"
                   "    time.sleep(0.1)"])
    (params / "smoke.yaml").write_text("parameters: {}\n")
    cwd = os.getcwd()
    results = runner.run_notebooks(notebooks_dir=nbs, params_dir=params, output_dir=tmp_path / "out", jobs=2)
    assert [r.name for r in results] == ["00_a", "01_b"]
    assert os.getcwd() == cwd  # the jobs ran in the notebooks' folder without moving this process
    assert {(tmp_path / n).read_text() for n in ("00_a", "01_b")} == {f"{runner.kernel_threads(2)}|{nbs}"}
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        runner.run_notebooks(notebooks_dir=nbs, params_dir=params, output_dir=tmp_path / "out", jobs=0)


def test_kernel_pool_keeps_modules_clears_names_and_replaces_a_failed_kernel(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    nbs, params = tmp_path / "notebooks", tmp_path / "notebooks" / "params"
    params.mkdir(parents=True)
    _notebook(nbs / "00_a.ipynb", f'out = "{tmp_path}"\nfail = False',
              ["import fractions, os, pathlib, sys\n"
               "pathlib.Path(out, 'a.pid').write_text(str(os.getpid()))\nleft_behind = 1\nos.chdir(out)",
               "if fail:\n    raise RuntimeError('boom')"])
    _notebook(nbs / "01_b.ipynb", f'out = "{tmp_path}"',
              ["import os, pathlib, sys\n"
               "assert 'left_behind' not in globals(), 'the namespace was not cleared'\n"
               "assert pathlib.Path.cwd().name == 'notebooks', 'the working folder was not restored'\n"
               "pathlib.Path(out, 'b.pid').write_text(str(os.getpid()))\n"
               "pathlib.Path(out, 'b.kept').write_text(str('fractions' in sys.modules))\n"
               "pathlib.Path(out, 'b.threads').write_text(os.environ.get('OMP_NUM_THREADS', ''))"])
    (params / "smoke.yaml").write_text("parameters: {}\n")
    pid = lambda name: (tmp_path / f"{name}.pid").read_text()  # noqa: E731
    with KernelPool(cwd=nbs, threads=3) as kernels:
        runner.run_notebooks(notebooks_dir=nbs, params_dir=params, output_dir=tmp_path / "out", kernels=kernels)
        assert pid("a") == pid("b") and (tmp_path / "b.kept").read_text() == "True"  # one kernel, modules kept
        assert (tmp_path / "b.threads").read_text() == "3"
        first = pid("a")
        with pytest.raises(runner.NotebookError, match="boom"):
            runner.run_notebooks(notebooks_dir=nbs, params_dir=params, output_dir=tmp_path / "out",
                                 only=["00"], overrides={"fail": True}, kernels=kernels)
        assert pid("a") == first  # the same kernel ran it, then it was stopped
        runner.run_notebooks(notebooks_dir=nbs, params_dir=params, output_dir=tmp_path / "out", only=["01"],
                             kernels=kernels)
        assert pid("b") != first and kernels.starts == 2  # a fresh kernel after the failure
    assert not kernels._started  # all stopped


def test_a_kernel_being_shut_down_is_not_interrupted(monkeypatch):
    """jupyter_client interrupts each kernel before it shuts it down, which ipykernel may log as
    "ERROR | KeyboardInterrupt caught in kernel" on the reader's terminal; the runner's kernels skip
    that interrupt, and only that one."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    calls = []

    async def interrupt(self):
        calls.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    km = runner.ipc_kernel_manager()(kernel_name=runner.KERNEL)
    run_sync(km.start_kernel)()
    run_sync(km._async_interrupt_kernel)()  # an interrupt asked for while the kernel runs goes through
    run_sync(km.shutdown_kernel)()
    assert calls == [False]
    assert not run_sync(km.is_alive)()


def test_per_notebook_and_dataset_values(tree):
    plan = runner.resolve_parameters("smoke", notebooks_dir=tree[0], params_dir=tree[1])
    assert {p.stem: v for p, v in plan.items()}["00_first"] == {"profile": "smoke", "size": 2}
    plan = runner.resolve_parameters("smoke", "toy", notebooks_dir=tree[0], params_dir=tree[1])
    assert [p.stem for p in plan] == ["00_first"]


def test_failing_cell_names_notebook_and_cell(tree):
    summary = tree[2] / "run" / "summary.md"
    with pytest.raises(runner.NotebookError,
                       match=r"01_second\.ipynb: cell \d+ .*`if fail:`.*RuntimeError: boom in cell"):
        _run(tree, overrides={"fail": True, "data_root": "0"}, summary=summary)
    assert (tree[2] / "01_second.html").exists()
    text = summary.read_text()  # written also when a notebook fails
    command = (f"sspa notebooks --profile smoke -p fail=true -p 'data_root=\"0\"' --output-dir {tree[2]} "
               f"--summary {summary}")
    assert f"    {command}\n" in text  # the -p values read back as given: the text "0", not the number
    assert "| result | stopped: 01_second.ipynb: cell" in text and "| data_root | `0` |" in text
    assert re.search(r"\| 00_first \| ok \| [\d.]+ s \| 00_first.html, 00_first.ipynb, 00_first/ \|", text)
    assert re.search(r"\| 01_second \| failed: 01_second.ipynb: cell .* \| [\d.]+ s \| "
                     r"01_second.html, 01_second.ipynb \|", text)


def test_a_cuda_device_without_a_gpu_stops_the_run_first_in_one_line(monkeypatch, capsys, tmp_path):
    import torch

    from sspa_core import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    summary = tmp_path / "summary.md"
    assert cli.main(["notebooks", "--profile", "full", "--only", "03", "--output-dir", str(tmp_path / "out"),
                     "--summary", str(summary)]) == 2
    line = capsys.readouterr().err.strip()
    assert line == ("sspa notebooks: error: the notebooks ask for device 'cuda' but this machine has no CUDA GPU; "
                    "pass -p device=cpu (with -p profile=smoke for small sizes) or run on a GPU")
    text = summary.read_text()
    assert "| device | `cuda` (no CUDA GPU on this machine) |" in text
    assert "| 03_split_and_synthesize_prompting | not run |  |  |" in text
    assert not (tmp_path / "out").exists()  # no notebook started


@pytest.mark.parametrize("kwargs, message", [
    ({"overrides": {"sise": 3}}, "unknown parameter"),
    ({"dataset": "nope"}, "unknown dataset 'nope'"),
    ({"profile": "huge"}, "unknown profile"),
    ({"only": ["07"]}, "no notebook matches"),
])
def test_bad_requests_give_clear_errors(tree, kwargs, message):
    with pytest.raises(ValueError, match=message):
        runner.resolve_parameters(notebooks_dir=tree[0], params_dir=tree[1], **kwargs)


def test_a_notebook_the_dataset_file_does_not_select_is_refused_with_the_files_that_do(tree):
    nbs, params, _ = tree
    (params / "other.yaml").write_text(yaml.safe_dump({"parameters": {"size": 6}}))  # no `only`: every notebook
    with pytest.raises(ValueError) as refused:
        runner.resolve_parameters("smoke", "toy", only=["01"], overrides={"fail": True},
                                  notebooks_dir=nbs, params_dir=params)
    assert str(refused.value) == ("toy's parameter file (notebooks/params/toy.yaml) does not select notebook "
                                  "01_second; it selects 00; 01_second runs with --dataset other")
    with pytest.raises(ValueError, match="does not select notebook 01_second"):  # even beside one it selects
        runner.resolve_parameters("smoke", "toy", only=["00", "01"], notebooks_dir=nbs, params_dir=params)
    (params / "other.yaml").write_text(yaml.safe_dump({"only": ["00_first"]}))
    with pytest.raises(ValueError, match="01_second runs on the offline world only"):
        runner.resolve_parameters("smoke", "toy", only=["01"], notebooks_dir=nbs, params_dir=params)
    assert notebook_params.datasets_selecting("00_first", params) == ["other", "toy"]


def test_the_command_line_refuses_a_notebook_the_dataset_does_not_run_in_one_line(capsys):
    from sspa_core.cli import main as sspa_main

    transfer = ", ".join(sorted(("pa100k", "rap", "peta", "multiscene", "mlrsnet", "aid")))
    for argv in (["--profile", "smoke", "--dataset", "coco", "--only", "07", "-p", "data_root=/data/coco"],
                 ["--dataset", "coco", "--only", "07", "--list"]):
        assert sspa_main(["notebooks", *argv]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.strip() == (
            "sspa notebooks: error: coco's parameter file (notebooks/params/coco.yaml) does not select notebook "
            f"07_domain_transfer; it selects 02 03 04 05 06; 07_domain_transfer runs with --dataset {transfer}")


def test_the_listing_names_the_natural_reference_of_the_domain_transfer(capsys):
    from sspa_core.cli import main as sspa_main

    rows = {row["dataset"]: row for row in runner.dataset_commands()}
    assert {name for name, row in rows.items() if row["natural"]} == {
        "pa100k", "rap", "peta", "multiscene", "mlrsnet", "aid"}
    assert {row["natural"] for row in rows.values()} == {"synthetic_natural", None}
    assert sspa_main(["notebooks", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.count("07's domain gap is measured against natural=synthetic_natural (the offline world's "
                     "synthetic scenes, not photographs; for real ones: -p natural=coco "
                     "-p natural_root=/data/coco)") == 6


def test_command_line_parameters_use_the_config_override_parser(capsys):
    """``sspa notebooks --set KEY=VALUE``: values read as YAML by sspa_core.config.parse_override."""
    from sspa_core.cli import main as sspa_main

    code = sspa_main(["notebooks", "--list", "--only", "00", "--set", "seed=3",
                      "--set", "device=cuda:1", "--set", "pretrained="])
    name, _, parameters = capsys.readouterr().out.strip().partition(": ")
    assert code == 0 and name == "00_setup_and_offline_world.ipynb"
    resolved = ast.literal_eval(parameters)
    assert {k: resolved[k] for k in ("seed", "device", "pretrained")} == {
        "seed": 3, "device": "cuda:1", "pretrained": ""}
    assert sspa_main(["notebooks", "--list", "--set", "seed"]) == 2
    assert "not of the form key=value" in capsys.readouterr().err


def test_dataset_parameter_files_exclude_the_profiles(tree):
    _, params, _ = tree
    assert runner.dataset_parameter_files(params) == ["toy"]
    with pytest.raises(ValueError, match=r"unknown dataset 'smoke'; parameter files exist for \['toy'\]"):
        runner.resolve_parameters("full", "smoke", notebooks_dir=tree[0], params_dir=params)


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
        for dataset in runner.dataset_parameter_files():
            runner.resolve_parameters(profile, dataset)


def test_full_profile_takes_the_input_size_from_the_datasets_config():
    from sspa_core.config import load_config

    for dataset in ("coco", "aid"):
        plan = runner.resolve_parameters("full", dataset, only=["03"])
        assert list(plan.values())[0]["image_size"] == load_config(dataset)["dataset"]["image_size"]
    assert list(runner.resolve_parameters("full", "coco", only=["03"]).values())[0]["image_size"] == 448
    assert "image_size" not in list(runner.resolve_parameters("smoke", "coco", only=["03"]).values())[0]


def test_no_parameter_file_repeats_a_value_of_its_datasets_config():
    from sspa_core.config import CONFIG_DIR, load_config

    def values(tree: dict) -> list[tuple[str, object]]:  # every (parameter, value) a parameter file sets
        found = list((tree.get("parameters") or {}).items())
        for section in ("profiles", "notebooks"):
            found += [item for per in (tree.get(section) or {}).values() for item in per.items()]
        return found

    def leaves(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
        return [leaf for key, value in tree.items() for leaf in (
            leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else [(f"{prefix}{key}", value)])]

    for dataset in runner.dataset_parameter_files():
        if not (CONFIG_DIR / f"{dataset}.yaml").is_file():
            continue
        config = leaves(load_config(dataset))
        written = yaml.safe_load((notebook_params.PARAMS_DIR / f"{dataset}.yaml").read_text())
        for name, value in values(written):
            repeats = [key for key, held in config if key.rsplit(".", 1)[-1] == name and held == value]
            assert not repeats, f"notebooks/params/{dataset}.yaml sets {name}={value!r}, which {repeats} holds"


def test_notebook_past_its_time_limit_fails_clearly(tmp_path):
    nbs, params = tmp_path / "notebooks", tmp_path / "notebooks" / "params"
    params.mkdir(parents=True)
    _notebook(nbs / "00_sleepy.ipynb", "nap = 0", ["import time\ntime.sleep(nap)", "done = True"])
    (params / "smoke.yaml").write_text(yaml.safe_dump({"timeout_s": 3, "parameters": {"nap": 60}}))
    assert runner.resolve_timeout("smoke", params_dir=params) == 3
    with pytest.raises(runner.NotebookError, match=r"00_sleepy\.ipynb: cell `import time` .*time limit of 3 s"):
        runner.run_notebooks("smoke", notebooks_dir=nbs, params_dir=params, output_dir=tmp_path / "out")
    assert (tmp_path / "out" / "00_sleepy.html").exists()


def test_time_limit_comes_from_the_parameter_files(tree, monkeypatch):
    import papermill

    nbs, params, out = tree
    assert runner.resolve_timeout("full", params_dir=params) == runner.DEFAULT_TIMEOUT_S
    (params / "toy.yaml").write_text(yaml.safe_dump({"timeout_s": 7, "only": ["00_first"]}))
    assert runner.resolve_timeout("full", "toy", params_dir=params) == 7
    (params / "toy.yaml").write_text(yaml.safe_dump({"timeout_s": "soon"}))
    with pytest.raises(ValueError, match="timeout_s must be a number"):
        runner.resolve_timeout("full", "toy", params_dir=params)
    limits = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, timeout_func, **k: limits.append(timeout_func(None)))
    monkeypatch.setattr(runner, "export_html", lambda executed: executed)
    runner.run_notebooks("full", notebooks_dir=nbs, params_dir=params, output_dir=out, timeout_s=50)
    assert len(limits) == 2 and all(40 < limit <= 50 for limit in limits)


def test_each_notebook_is_inspected_once_per_version(tree, monkeypatch):
    import papermill

    nbs, params, out = tree
    inspected = []
    real_inspect = papermill.inspect_notebook
    monkeypatch.setattr(papermill, "inspect_notebook", lambda path: inspected.append(path) or real_inspect(path))
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: None)
    monkeypatch.setattr(runner, "export_html", lambda executed: executed)
    notebook_params._inspect_parameters.cache_clear()
    runner.run_notebooks("smoke", notebooks_dir=nbs, params_dir=params, output_dir=out)
    runner.resolve_parameters("full", notebooks_dir=nbs, params_dir=params)
    assert sorted(inspected) == sorted(str(p.resolve()) for p in nbs.glob("*.ipynb"))
    _notebook(nbs / "01_second.ipynb", 'profile = "smoke"\nfail = False\nextra = 1', ["x = 1"])
    assert "extra" in runner.declared_parameters(nbs / "01_second.ipynb")
    assert len(inspected) == 3


def test_slides_are_exported_on_request(tree):
    nbs, params, out = tree
    runner.run_notebooks("smoke", only=["00"], notebooks_dir=nbs, params_dir=params, output_dir=out,
                         formats=("html", "slides"))
    slides = (out / "00_first.slides.html").read_text()
    assert "reveal" in slides.lower() and f"mathjax/{runner.MATHJAX_ENTRY}" in slides
    with pytest.raises(ValueError, match="unknown export format"):
        runner.run_notebooks("smoke", only=["00"], notebooks_dir=nbs, params_dir=params, output_dir=out,
                             formats=("pdf",))


def test_the_command_line_passes_the_export_formats_and_jobs(monkeypatch):
    from sspa_core import cli

    seen = {}

    def fake_run(profile, dataset, only, overrides, output_dir, timeout_s=None, formats=("html",), jobs=1,
                 summary=None):
        seen.update(profile=profile, only=only, formats=formats, jobs=jobs, summary=summary)
        return []

    monkeypatch.setattr(runner, "run_notebooks", fake_run)
    assert cli.main(["notebooks", "--only", "01", "--to", "html", "slides", "--summary", "s.md"]) == 0
    assert seen == {"profile": "smoke", "only": ["01"], "formats": ("html", "slides"), "jobs": 1,
                    "summary": Path("s.md")}
    assert cli.main(["notebooks", "--only", "01", "--jobs", "2"]) == 0 and seen["jobs"] == 2
    with pytest.raises((SystemExit, argparse.ArgumentError), match="invalid choice: 'pdf'|2"):
        cli.main(["notebooks", "--to", "pdf"])
