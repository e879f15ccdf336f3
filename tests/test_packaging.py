"""The package installs from its sdist and wheel and runs from any directory: the wheel carries
data/ as sspa_core/_data, caches go to the user cache and outputs to the working directory,
and nothing is written below site-packages."""

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from sspa_core import paths

pytestmark = pytest.mark.slow

#: Every file the code reads at run time from the data folder, for one run of the offline world.
RUNTIME_DATA = ["sprites/atlas.png", "sprites/atlas.json", "tiny_clip/sspa-tiny-vit.pt", "tiny_clip/sspa-tiny-rn.pt",
                "labels/synthetic_natural.txt", "descriptions/synthetic_natural.json", "prompts/natural.yaml",
                "reveal/reveal.js/dist/reveal.js", "reveal/requirejs/require.js"]


def _run(args: list, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the wheel (built from the sdist) installed without
    dependencies; the test environment's site-packages provide torch and the rest (.pth)."""
    root = tmp_path_factory.mktemp("packaging")
    dist = root / "dist"
    _run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
         cwd=paths.REPO_ROOT)
    sdist = next(dist.glob("sspa-*.tar.gz"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, sdist], cwd=root)
    wheel = next(dist.glob("sspa-*.whl"))
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root).strip())
    (site / "outer_environment.pth").write_text(f"{sysconfig.get_path('purelib')}\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], cwd=root)
    return {"sdist": sdist, "wheel": wheel, "venv": venv, "site": site}


def test_sdist_and_wheel_carry_the_data(installed):
    with tarfile.open(installed["sdist"]) as sdist:
        names = sdist.getnames()
    top = names[0].split("/")[0]
    for required in ["setup.py", "MANIFEST.in", "data/sprites/build_atlas.py"] + [f"data/{f}" for f in RUNTIME_DATA]:
        assert f"{top}/{required}" in names, required
    wheel = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert {f"sspa_core/_data/{f}" for f in RUNTIME_DATA} <= wheel
    assert not any(name.startswith("sspa_core/_data/") and name.endswith(".py") for name in wheel)


def test_installed_package_trains_from_another_directory(installed, tmp_path):
    site, venv = installed["site"], installed["venv"]
    work, cache = tmp_path / "work", tmp_path / "xdg-cache"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSPA_") and k != "PYTHONPATH"}
    env["XDG_CACHE_HOME"] = str(cache)
    show = ("import json; from sspa_core import paths; print(json.dumps({k: str(getattr(paths, k)) "
            "for k in ('DATA_DIR', 'CACHE_DIR', 'OUTPUT_DIR', 'PACKAGE_DIR')}))")
    where = json.loads(_run([venv / "bin" / "python", "-c", show], cwd=work, env=env))
    assert Path(where["PACKAGE_DIR"]) == site / "sspa_core"
    assert Path(where["DATA_DIR"]) == site / "sspa_core" / "_data"
    assert Path(where["CACHE_DIR"]) == cache / "sspa" and where["OUTPUT_DIR"] == "outputs"

    before = _files(site)
    overrides = {"dataset.kwargs.num_images": 16, "dataset.eval_kwargs.num_images": 8, "train.epochs": 1,
                 "train.batch_size": 8, "train.eval_batch_size": 8, "train.progress": False, "model.sspa.n_ctx": 4}
    args = [venv / "bin" / "sspa", "train", "--config", "synthetic_natural"]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    _run(args, cwd=work, env=env)

    run = work / "outputs" / "synthetic_natural" / "sspa"
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "config.yaml").is_file()
    history = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1] and 0 < history[0]["mAP"] <= 1
    assert any((cache / "sspa" / "features").iterdir())  # the feature cache (train.cache_features)
    assert _files(site) == before, "the run wrote below site-packages"
