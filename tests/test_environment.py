"""The conda environment file pins exactly what pyproject.toml pins."""

import tomllib

import yaml

from sspa_core.paths import REPO_ROOT


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    assert "prefix" not in env
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) == pinned
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])
