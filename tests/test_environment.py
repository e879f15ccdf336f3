"""The conda environment file pins exactly what pyproject.toml pins and installs the project;
pyproject declares every third-party package the code imports."""

import ast
import json
import re
import sys
import tomllib

import yaml

from sspa_core.paths import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
#: Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml", "open_clip": "open_clip_torch", "sklearn": "scikit-learn",
                 "quaternion": "numpy-quaternion", "bs4": "beautifulsoup4"}
LOCAL = {"sspa_core", "conftest", "helpers", "_common"}  # _common: the benchmarks' shared scaffolding


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.]*)", requirement).groups()
        pins[name.lower().replace("_", "-")] = version
    return pins


def _imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    assert "prefix" not in env
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    project_lines = [line for line in pip if line.startswith("-e ")]
    assert project_lines == [f"-e .[{','.join(sorted(EXTRAS))}]"]
    pinned = PROJECT["dependencies"] + [r for extra in EXTRAS.values() for r in extra]
    assert sorted(set(pip) - set(project_lines)) == sorted(set(pinned))
    assert PROJECT["requires-python"] == ">=3.11"


def test_every_imported_package_is_declared():
    folders = ("sspa_core", "tests", "benchmarks")
    sources = [p.read_text() for folder in folders for p in (REPO_ROOT / folder).rglob("*.py")]
    for notebook in (REPO_ROOT / "notebooks").glob("*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                sources.append("\n".join(line for line in lines if not line.lstrip().startswith(("%", "!"))))
    imported = set().union(*map(_imported_roots, sources)) - LOCAL - set(sys.stdlib_module_names)
    imported = {name for name in imported if not name.startswith("test_")}
    declared = set(_pins(PROJECT["dependencies"])) | {n for extra in EXTRAS.values() for n in _pins(extra)}
    missing = {DISTRIBUTIONS.get(name, name).lower().replace("_", "-") for name in imported} - declared
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_core_pins_match_the_tested_environment():
    from importlib import metadata

    for name, version in _pins(PROJECT["dependencies"]).items():
        assert metadata.version(name).split("+")[0] == version, name
