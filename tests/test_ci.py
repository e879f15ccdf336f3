"""The CI workflows, the lint configuration and the pre-commit hooks agree with each other and
with the commands the README documents."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())


def _commands(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])


def test_tests_workflow_runs_the_readme_command_on_python_311():
    workflow = _workflow("tests")
    assert "make test" in (ROOT / "README.md").read_text()
    assert re.search(r"^make test\b", _commands(workflow), re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    [setup] = [s for job in workflow["jobs"].values() for s in job["steps"] if "setup-python" in s.get("uses", "")]
    assert setup["with"]["python-version"] == "3.11" and setup["with"]["cache"] == "pip"


def test_notebook_workflows_upload_what_they_execute():
    smoke, gpu = _workflow("notebooks"), _workflow("gpu")
    assert "make demo" in _commands(smoke)
    assert "--profile gpu" in _commands(gpu) and "benchmarks/gpu_profile.py --device cuda" in _commands(gpu)
    assert gpu["jobs"]["gpu"]["runs-on"] == ["self-hosted", "gpu"]
    assert {"workflow_dispatch", "schedule"} <= set(gpu[True])  # YAML reads the key `on` as True
    for workflow, folder in ((smoke, "outputs/notebooks/"), (gpu, "outputs/notebooks/gpu/")):
        [upload] = [s for s in workflow["jobs"][next(iter(workflow["jobs"]))]["steps"]
                    if "upload-artifact" in s.get("uses", "")]
        assert folder in upload["with"]["path"] and upload["if"] == "always()"


def test_one_ruff_version_and_an_output_stripper():
    version = re.search(r"ruff==([\d.]+)", (ROOT / "Makefile").read_text()).group(1)
    assert f"ruff=={version}" in _commands(_workflow("lint"))
    hooks = {h["id"]: h for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
             for h in repo["hooks"]}
    assert hooks["ruff"]["additional_dependencies"] == [f"ruff=={version}"]
    assert "--keep-id" in hooks["nbstripout"]["entry"]  # cell ids and the `parameters` tag survive
    assert re.search(r"^line-length = \d+", (ROOT / "ruff.toml").read_text(), re.M)
