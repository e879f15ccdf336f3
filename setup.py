"""Build hook: the wheel carries the repository's top-level ``data/`` as ``sspa_core/_data``.

The shipped files (sprite atlas, tiny-CLIP checkpoints, label lists, descriptions, prompt
templates) keep their home in ``data/``; ``build_py`` copies them, without build scripts, into
the built package, where ``sspa_core.paths`` finds them in an installed package. Everything
else is declared in ``pyproject.toml``; ``MANIFEST.in`` puts ``data/`` into the sdist.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = Path(__file__).resolve().parent / "data"
SKIP = shutil.ignore_patterns("*.py", "*.pyc", "__pycache__")


class BuildPyWithData(build_py):
    """``build_py`` followed by a copy of ``data/`` to ``<build>/sspa_core/_data``."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads data/ in place
            target = Path(self.build_lib) / "sspa_core" / "_data"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(DATA, target, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithData})
