"""The parameters each notebook of a run receives (:func:`resolve_parameters`), and its time limit.

Parameters come from YAML files in ``notebooks/params/``: a *profile* (``smoke.yaml`` for CPU/CI,
``full.yaml`` for a GPU and real data, ``gpu.yaml`` for a GPU without internet) and optionally a
*dataset* file (``coco.yaml``, ...). Each file has a ``parameters`` mapping (for every notebook
that declares the name) and a ``notebooks`` mapping of per-notebook values; an optional ``only``
list in a dataset file restricts the run to the notebooks that make sense for it, and an
optional ``profiles`` mapping holds parameters for one profile only. Values that the dataset's run
config (``sspa_core/configs/<dataset>.yaml``) holds are not written again: under the profiles of
:data:`CONFIG_PARAMETERS` a dataset file takes them from its config unless it sets them itself
(e.g. the paper's input size under ``full``, while ``smoke`` keeps the notebooks' small CPU
sizes). Later sources win: profile < dataset's config < dataset < dataset's for this profile <
profile's per-notebook < dataset's per-notebook < command line.
An optional ``timeout_s`` limits the seconds each notebook may run (the dataset file's wins over
the profile's; :data:`DEFAULT_TIMEOUT_S` if neither sets it; 0 = no limit).
A notebook receives only the names its ``parameters`` cell declares; a name in a parameter file
that no notebook declares, or on the command line that no selected notebook declares, is an
error, so a typo never passes silently. So is asking (``only``) for a notebook that the dataset
file does not select: the error names the dataset files that do. Every value is checked once, when
the run's parameters are resolved and before any kernel starts, by its setting in
:data:`sspa_core.config.NOTEBOOK_SCHEMA` (a run setting's type and range where the parameter is one).
"""

from __future__ import annotations

import ast
import functools
import operator
from pathlib import Path
from typing import Any

import yaml

from sspa_core.config import CONFIG_DIR, NOTEBOOK_SCHEMA, Setting, load_config, notebook_setting
from sspa_core.paths import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOKS_DIR / "params"
PROFILES = ("smoke", "full", "gpu")
#: images of the evaluation split that notebooks 03-05 score, per profile: one set for the three
#: (the same split, seed and count), large enough that a shipped head's score on it lands near the
#: score recorded when the head was made, and printed with its bootstrap interval
EVAL_IMAGES = {"smoke": 500, "full": 1000, "gpu": 1000}
DEFAULT_TIMEOUT_S = 3600.0  # seconds a notebook may run when no parameter file sets timeout_s
PARAMS_FILE_KEYS = ("parameters", "notebooks", "only", "description", "timeout_s", "profiles")
#: profile -> {notebook parameter: dotted key of the dataset's run config it is taken from}
CONFIG_PARAMETERS: dict[str, dict[str, str]] = {"full": {"image_size": "dataset.image_size"}}


def list_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The ordered notebooks ``NN_name.ipynb``."""
    return sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))


def dataset_parameter_files(params_dir: Path = PARAMS_DIR) -> list[str]:
    """Names of the dataset parameter files ``params_dir/NAME.yaml`` (the profiles excluded):
    the values ``--dataset`` accepts."""
    return sorted(p.stem for p in Path(params_dir).glob("*.yaml") if p.stem not in PROFILES)


def dataset_commands(params_dir: Path = PARAMS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[dict[str, Any]]:
    """For each dataset parameter file: its name, the numbers of the notebooks it runs, the two
    commands a user types (a CPU check of a download, smoke; the GPU run, full) and the ``natural``
    reference its file gives a notebook (notebook 07's domain gap is measured against it; None
    when no notebook of the file takes one)."""
    rows = []
    for name in dataset_parameter_files(params_dir):
        selected = resolve_parameters("smoke", name, params_dir=params_dir, notebooks_dir=notebooks_dir)
        command = f"sspa notebooks --profile {{}} --dataset {name} -p data_root=/data/{name}"
        natural = next((values["natural"] for values in selected.values() if "natural" in values), None)
        rows.append({"dataset": name, "notebooks": [path.stem.split("_")[0] for path in selected],
                     "smoke": command.format("smoke"), "full": command.format("full"), "natural": natural})
    return rows


def datasets_selecting(notebook: str, params_dir: Path = PARAMS_DIR) -> list[str]:
    """The dataset parameter files whose selection (``only``; none = every notebook) holds
    ``notebook`` (a notebook's file stem)."""
    return [name for name in dataset_parameter_files(params_dir)
            if notebook in (_read_params_file(Path(params_dir) / f"{name}.yaml").get("only") or [notebook])]


def _not_selected(dataset: str, notebooks: list[str], selected: list[str], params_dir: Path) -> str:
    """Why ``--dataset dataset --only ...`` cannot run ``notebooks``: what the dataset's file
    selects, and which dataset files select each of them."""
    takes = []
    for notebook in notebooks:
        others = datasets_selecting(notebook, params_dir)
        takes.append(f"{notebook} runs with --dataset {', '.join(others)}" if others else
                     f"{notebook} runs on the offline world only (no --dataset)")
    numbers = " ".join(name.split("_")[0] for name in selected) or "none"
    return (f"{dataset}'s parameter file (notebooks/params/{dataset}.yaml) does not select notebook"
            f"{'s' if len(notebooks) > 1 else ''} {', '.join(notebooks)}; it selects {numbers}; {'; '.join(takes)}")


def _read_params_file(path: Path) -> dict[str, Any]:
    content = yaml.safe_load(path.read_text()) or {}
    unknown = set(content) - set(PARAMS_FILE_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}; "
                         f"expected {', '.join(PARAMS_FILE_KEYS)}")
    timeout = content.get("timeout_s", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"{path}: timeout_s must be a number of seconds >= 0 (0 = no limit), "
                         f"got {timeout!r}")
    profiles = content.get("profiles") or {}
    if not isinstance(profiles, dict) or set(profiles) - set(PROFILES) or not all(
            isinstance(values, dict) for values in profiles.values()):
        raise ValueError(f"{path}: profiles must map profile names ({', '.join(PROFILES)}) to "
                         f"parameters, got {profiles!r}")
    return content


def _read_sources(profile: str, dataset: str | None, params_dir: Path) -> list[dict[str, Any]]:
    """The profile's parameter file, then the dataset's (if any)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    sources = [_read_params_file(Path(params_dir) / f"{profile}.yaml")]
    if dataset is not None:
        path = Path(params_dir) / f"{dataset}.yaml"
        if dataset in PROFILES or not path.is_file():
            raise ValueError(f"unknown dataset {dataset!r}; parameter files exist for "
                             f"{dataset_parameter_files(params_dir)}")
        source = _read_params_file(path)
        for_profile = (source.get("profiles") or {}).get(profile) or {}
        sources.append({**source, "parameters": {**config_parameters(profile, dataset),
                                                 **(source.get("parameters") or {}), **for_profile}})
    return sources


def config_parameters(profile: str, dataset: str) -> dict[str, Any]:
    """The notebook parameters that ``dataset`` takes from its run config under ``profile``
    (:data:`CONFIG_PARAMETERS`); none for a dataset without a shipped config."""
    keys = CONFIG_PARAMETERS.get(profile, {})
    if not keys or not (CONFIG_DIR / f"{dataset}.yaml").is_file():
        return {}
    config = load_config(dataset)
    return {name: functools.reduce(operator.getitem, key.split("."), config) for name, key in keys.items()}


def resolve_timeout(profile: str = "smoke", dataset: str | None = None,
                    params_dir: Path = PARAMS_DIR) -> float:
    """Seconds each notebook of the run may take: the last ``timeout_s`` of the profile and the
    dataset file, else :data:`DEFAULT_TIMEOUT_S`; 0 means no limit."""
    timeout = DEFAULT_TIMEOUT_S
    for source in _read_sources(profile, dataset, params_dir):
        timeout = float(source.get("timeout_s", timeout))
    return timeout


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names and default values of the notebook's cell tagged ``parameters``. Each version of a
    file is inspected once (cached on its path, modification time and size)."""
    path = Path(notebook).resolve()
    stat = path.stat()
    return dict(_inspect_parameters(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=256)
def _inspect_parameters(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    import papermill

    return {name: spec["default"] for name, spec in papermill.inspect_notebook(path).items()}


def resolve_parameters(
    profile: str = "smoke",
    dataset: str | None = None,
    only: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    params_dir: Path = PARAMS_DIR,
) -> dict[Path, dict[str, Any]]:
    """The parameters each selected notebook receives, checked against what it declares."""
    sources = _read_sources(profile, dataset, params_dir)
    notebooks = list_notebooks(notebooks_dir)
    if not notebooks:
        raise FileNotFoundError(f"no notebooks NN_*.ipynb in {notebooks_dir}")
    by_name = {nb.stem: nb for nb in notebooks}
    selected = [nb.stem for nb in notebooks]
    for source in sources:
        if source.get("only"):
            selected = [name for name in selected if name in source["only"]]
    if only:
        wanted = {o for o in only}
        missing = [o for o in wanted if not any(n == o or n.startswith(f"{o}_") for n in by_name)]
        if missing:
            raise ValueError(f"no notebook matches {missing}; notebooks are {list(by_name)}")
        asked = [n for n in by_name if n in wanted or n.split("_")[0] in wanted]
        left_out = [n for n in asked if n not in selected]
        if left_out and dataset is not None:
            raise ValueError(_not_selected(dataset, left_out, selected, params_dir))
        selected = [n for n in selected if n in asked]
    for source in sources:
        for name in source.get("notebooks") or {}:
            if name not in by_name:
                raise ValueError(f"parameter file names unknown notebook {name!r}")

    declared = {name: declared_parameters(nb) for name, nb in by_name.items()}
    anywhere = set().union(*declared.values())
    in_selected = set().union(*(declared[name] for name in selected)) if selected else set()
    common = [s.get("parameters") or {} for s in sources] + [overrides or {}]
    for values, known, where in [(v, anywhere, "notebook") for v in common[:-1]] + [
            (common[-1], in_selected, "selected notebook")]:
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}: no {where} declares "
                             f"them; declared names are {sorted(known)}")

    resolved: dict[Path, dict[str, Any]] = {}
    for name in selected:
        per_notebook = [(s.get("notebooks") or {}).get(name) or {} for s in sources]
        for values in per_notebook:
            unknown = set(values) - set(declared[name])
            if unknown:
                raise ValueError(f"{name} does not declare parameter(s) {sorted(unknown)}; "
                                 f"it declares {sorted(declared[name])}")
        merged: dict[str, Any] = {}
        for values in common[:-1] + per_notebook + common[-1:]:
            merged.update(values)
        resolved[by_name[name]] = {k: _checked_value(name, k, v, declared[name][k])
                                   for k, v in merged.items() if k in declared[name]}
    return resolved


def _checked_value(notebook: str, name: str, value: Any, default: str) -> Any:
    """``value`` of parameter ``name`` checked by its setting in
    :data:`sspa_core.config.NOTEBOOK_SCHEMA` (type, range, choices) and given that setting's type;
    a name the schema lacks (a notebook outside this project) by the type of the notebook's
    literal ``default`` (source text). A ValueError naming the notebook if refused
    (``solutions=maybe`` would run as true)."""
    if name in NOTEBOOK_SCHEMA:
        setting = notebook_setting(name)
    else:
        try:
            declared = ast.literal_eval(default)
        except (ValueError, SyntaxError):  # an expression, not a literal: any value
            return value
        if not isinstance(declared, (bool, int, float, str)):
            return value
        setting = Setting(declared, "")
    try:
        return setting.check(name, value)
    except ValueError as err:
        raise ValueError(f"{notebook}: parameter {err}") from None
