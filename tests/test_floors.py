"""The package's floors: a module imports only from its own floor and the floors below it.

Each module of ``sspa_core`` is a room on one floor; its imports, at any depth (function-local ones
included, read with ``ast``), are arrows that may point sideways or down, never up. So the
equations, the method and the CLIP towers know nothing of the training engine, and nothing but
the faces knows the faces.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import sspa_core

PACKAGE = Path(sspa_core.__file__).parent
ROOT = Path(__file__).resolve().parents[1]

#: bottom to top; a module belongs to the floor of its longest matching name (a package takes its
#: modules along, e.g. ``sspa_core.data`` holds ``sspa_core.data.synthetic.atlas``)
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    # what everything may use: paths, errors, the domain names, the config schema, and the pieces
    # every optimisation loop shares (atomic writes, seeds, schedule, step, parameter groups)
    ("ground", ("sspa_core", "sspa_core.paths", "sspa_core.errors", "sspa_core.domains", "sspa_core.config",
                "sspa_core.training")),
    # the paper's equations and the measures of a prediction
    ("equations", ("sspa_core.quaternion", "sspa_core.alignment", "sspa_core.aggregation", "sspa_core.losses",
                   "sspa_core.metrics", "sspa_core.calibration", "sspa_core.localization")),
    # datasets, real and synthetic, and their transforms
    ("data", ("sspa_core.data",)),
    # the method (prompts, text encoder, model, baselines, label descriptions) and the CLIP towers
    # (backbone, tiny CLIP, features)
    ("method and CLIP towers", ("sspa_core.text_encoder", "sspa_core.prompting", "sspa_core.model",
                                "sspa_core.baselines", "sspa_core.descriptions", "sspa_core.llm",
                                "sspa_core.backbone", "sspa_core.tiny_clip", "sspa_core.features")),
    # training runs: trainer, evaluation, checkpoints, quick fits, the shipped heads
    ("engine", ("sspa_core.engine",)),
    # what readers and notebooks see: recorded results, plots and course text rendered from the run
    ("reports", ("sspa_core.results", "sspa_core.viz", "sspa_core.narration")),
    # the faces: the command line, the notebook runner, the explorers, the exercises
    ("faces", ("sspa_core.cli", "sspa_core.notebooks", "sspa_core.notebook_params", "sspa_core.explorers",
               "sspa_core.exercises")),
]
LEVEL = {name: level for level, (_, names) in enumerate(FLOORS) for name in names}

def floor_of(module: str) -> int:
    """The floor of ``module`` (the longest name of :data:`FLOORS` it is or lies under)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        level = LEVEL.get(".".join(parts[:end]))
        if level is not None and (end == len(parts) or end > 1):
            return level
    raise AssertionError(f"{module} is on no floor: add it to FLOORS in tests/test_floors.py")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str, root: Path) -> bool:
    path = root.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(tree: ast.AST, module: str, is_package: bool, root: Path) -> set[str]:
    """The ``sspa_core`` modules ``tree`` imports anywhere (relative imports resolved; a name taken
    from a package, ``from sspa_core import cli``, counts as its module when it is one)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                parts = module.split(".")
                source = ".".join([*parts[: len(parts) - node.level + is_package], *filter(None, [node.module])])
            found.add(source)
            found |= {f"{source}.{alias.name}" for alias in node.names if is_module(f"{source}.{alias.name}", root)}
    return {name for name in found if name == "sspa_core" or name.startswith("sspa_core.")}


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """Every import of a module from a floor above its own, as ``"a (floor) imports b (floor)"``."""
    wrong = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target in sorted(imported(tree, module, path.name == "__init__.py", root)):
            if floor_of(target) > floor_of(module):
                wrong.append(f"{module} ({FLOORS[floor_of(module)][0]}) imports {target} "
                             f"({FLOORS[floor_of(target)][0]})")
    return wrong


def test_every_module_imports_only_from_its_floor_and_below():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import_at_any_depth(tmp_path):
    """A copy of the package with an import of the engine inside a function of ``model`` and one of
    the command line at the top of ``metrics`` fails on both."""
    import shutil

    copy = tmp_path / "sspa_core"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "configs", "model_configs"))
    model = copy / "model.py"
    model.write_text(model.read_text() + "\n\ndef _late():\n    from sspa_core.engine import runs\n")
    metrics = copy / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nfrom sspa_core import cli\n")
    assert upward_imports(copy) == [
        "sspa_core.metrics (equations) imports sspa_core.cli (faces)",
        "sspa_core.model (method and CLIP towers) imports sspa_core.engine (engine)",
        "sspa_core.model (method and CLIP towers) imports sspa_core.engine.runs (engine)",
    ]


def test_the_method_loads_no_engine_module():
    """``sspa_core.engine`` imports its names on first use, so the method's modules load none of it."""
    code = ("import sys, sspa_core.model, sspa_core.baselines, sspa_core.features, sspa_core.prompting; "
            "print([m for m in sys.modules if m.startswith('sspa_core.engine')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_and_the_module_map_show_the_floors():
    """The README's layout table and docs/method.md's module map name every floor of :data:`FLOORS`
    and its modules."""
    tables = {"README.md": (ROOT / "README.md").read_text().split("## Layout")[1].split("\n## ")[0],
              "docs/method.md": (ROOT / "docs" / "method.md").read_text().split("## Module map")[1]}
    for doc, table in tables.items():
        rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
        assert [name for name in rows if name != "floor"] == [name for name, _ in FLOORS], doc
        for floor, modules in FLOORS:
            for module in modules[1:] if floor == "ground" else modules:
                short = module.removeprefix("sspa_core.")
                assert re.search(rf"`{re.escape(short)}/?`", rows[floor]), f"{doc}: {module} missing on {floor}"
