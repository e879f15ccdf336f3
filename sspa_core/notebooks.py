"""Run the ordered notebooks end to end with papermill, per profile and per dataset.

Parameters come from YAML files in ``notebooks/params/``: a *profile* (``smoke.yaml`` for CPU/CI,
``full.yaml`` for a GPU and real data, ``gpu.yaml`` for a GPU without internet) and optionally a
*dataset* file (``coco.yaml``, ...). Each file has a ``parameters`` mapping (for every notebook
that declares the name) and a ``notebooks`` mapping of per-notebook values; an optional ``only``
list in a dataset file restricts the run to the notebooks that make sense for it, and an
optional ``profiles`` mapping holds parameters for one profile only (e.g. the paper's input
size under ``full``, while ``smoke`` keeps the notebooks' small CPU sizes). Later sources win:
profile < dataset < dataset's for this profile < profile's per-notebook < dataset's
per-notebook < command line.
An optional ``timeout_s`` limits the seconds each notebook may run (the dataset file's wins over
the profile's; :data:`DEFAULT_TIMEOUT_S` if neither sets it; 0 = no limit).
A notebook receives only the names its ``parameters`` cell declares; a name in a parameter file
that no notebook declares, or on the command line that no selected notebook declares, is an
error, so a typo never passes silently.
"""

from __future__ import annotations

import ast
import concurrent.futures
import functools
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from sspa_core.paths import OUTPUT_DIR, REPO_ROOT

#: the kernels of a run have no front end to show widgets (sspa_core.explorers reads it)
HEADLESS_ENV = "SSPA_HEADLESS"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # torch's CPU thread count (see kernel_threads)

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOKS_DIR / "params"
PROFILES = ("smoke", "full", "gpu")
KERNEL = "python3"
DEFAULT_TIMEOUT_S = 3600.0  # seconds a notebook may run when no parameter file sets timeout_s
PARAMS_FILE_KEYS = ("parameters", "notebooks", "only", "description", "timeout_s", "profiles")


class NotebookError(RuntimeError):
    """A notebook failed: names the notebook, the cell and the exception."""


@dataclass
class NotebookResult:
    name: str
    executed: str
    html: str
    seconds: float
    parameters: dict[str, Any]


def list_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The ordered notebooks ``NN_name.ipynb``."""
    return sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))


def dataset_parameter_files(params_dir: Path = PARAMS_DIR) -> list[str]:
    """Names of the dataset parameter files ``params_dir/NAME.yaml`` (the profiles excluded):
    the values ``--dataset`` accepts."""
    return sorted(p.stem for p in Path(params_dir).glob("*.yaml") if p.stem not in PROFILES)


def dataset_commands(params_dir: Path = PARAMS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[dict[str, Any]]:
    """For each dataset parameter file: its name, the numbers of the notebooks it runs, and the two
    commands a user types: a CPU check of a download (smoke) and the GPU run (full)."""
    rows = []
    for name in dataset_parameter_files(params_dir):
        selected = resolve_parameters("smoke", name, params_dir=params_dir, notebooks_dir=notebooks_dir)
        command = f"sspa notebooks --profile {{}} --dataset {name} -p data_root=/data/{name}"
        rows.append({"dataset": name, "notebooks": [path.stem.split("_")[0] for path in selected],
                     "smoke": command.format("smoke"), "full": command.format("full")})
    return rows


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
        sources.append({**source, "parameters": {**(source.get("parameters") or {}), **for_profile}})
    return sources


def resolve_timeout(profile: str = "smoke", dataset: str | None = None,
                    params_dir: Path = PARAMS_DIR) -> float:
    """Seconds each notebook of the run may take: the last ``timeout_s`` of the profile and the
    dataset file, else :data:`DEFAULT_TIMEOUT_S`; 0 means no limit."""
    timeout = DEFAULT_TIMEOUT_S
    for source in _read_sources(profile, dataset, params_dir):
        timeout = float(source.get("timeout_s", timeout))
    return timeout


class _Deadline:
    """nbclient's ``timeout_func``: every cell may run for what is left of the notebook's budget,
    counted from its first cell (the kernel's start-up has papermill's own limit). Remembers the
    cell that started last, for the error message."""

    def __init__(self, seconds: float):
        self.seconds, self.end, self.cell = seconds, None, None

    def __call__(self, cell: Any) -> float:
        self.cell = cell
        if self.end is None:
            self.end = time.monotonic() + self.seconds
        return max(1.0, self.end - time.monotonic())


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
        selected = [n for n in selected if n in wanted or n.split("_")[0] in wanted]
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
    """``value`` of parameter ``name``; a ValueError if the notebook's default (source text) is a
    boolean and ``value`` is not one (``solutions=maybe`` would run as true)."""
    try:
        declared = ast.literal_eval(default)
    except (ValueError, SyntaxError):  # an expression, not a literal: any value
        return value
    if isinstance(declared, bool) and not isinstance(value, bool):
        raise ValueError(f"parameter {name}={value!r} of {notebook}: expected true or false")
    return value


#: MathJax's entry point and configuration inside the folder :func:`local_mathjax` copies
MATHJAX_ENTRY = "MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"


def local_mathjax(output_dir: Path) -> str | None:
    """Copy MathJax (the static files of ``jupyter_server_mathjax``) into ``output_dir/mathjax``
    once, so that the HTML exports beside it render equations offline; the relative URL, or None
    when the package is missing (nbconvert's CDN default then applies)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    target = Path(output_dir) / "mathjax"
    if not (target / "MathJax.js").is_file():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", target, dirs_exist_ok=True)
    return f"mathjax/{MATHJAX_ENTRY}"


def _export(executed: Path, exporter_name: str, suffix: str) -> Path:
    """``executed`` through nbconvert's exporter ``exporter_name``, with the local MathJax
    (:func:`local_mathjax`), written beside it as ``<name><suffix>``."""
    import nbconvert
    import nbformat

    mathjax = local_mathjax(executed.parent)
    exporter = getattr(nbconvert, exporter_name)(**({"mathjax_url": mathjax} if mathjax else {}))
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    out = executed.with_suffix(suffix)
    out.write_text(body, encoding="utf-8")
    return out


def export_html(executed: Path) -> Path:
    """Write the executed notebook as HTML beside it (nbconvert), with a local copy of MathJax
    (:func:`local_mathjax`) so that equations render without internet."""
    return _export(executed, "HTMLExporter", ".html")


def export_slides(executed: Path) -> Path:
    """Write the executed notebook as reveal.js slides beside it (nbconvert's SlidesExporter):
    ``<name>.slides.html``. Cells carry their slide type in ``metadata.slideshow`` (each section
    heading starts a slide); equations use the local MathJax like :func:`export_html`; reveal.js
    itself loads from nbconvert's default CDN (``--SlidesExporter.reveal_url_prefix`` of
    ``jupyter nbconvert`` points it at a local copy)."""
    return _export(executed, "SlidesExporter", ".slides.html")


#: what ``run_notebooks(..., formats=...)`` can export besides the executed notebook
EXPORTS = {"html": export_html, "slides": export_slides}


def fetch_weights(plan: dict[Path, dict[str, Any]]) -> None:
    """Find or download, once and before any kernel starts, the CLIP weights (``backbone``,
    ``pretrained``) the notebooks of ``plan`` load; offline, a download that fails stops the run
    with one :class:`~sspa_core.errors.WeightsUnavailable` line saying how to pass a local file."""
    from sspa_core.backbone import fetch_pretrained
    from sspa_core.errors import WeightsUnavailable

    for backbone, pretrained in sorted({(p["backbone"], p.get("pretrained") or "")
                                        for p in plan.values() if "backbone" in p}):
        try:
            fetch_pretrained(backbone, pretrained or None)
        except WeightsUnavailable as err:
            raise WeightsUnavailable(f"{err}; for the notebooks: --set pretrained=/path/to/file.pt") from None


def kernel_threads(jobs: int) -> int | None:
    """The CPU threads each kernel's torch gets when ``jobs`` kernels run at once: its share of
    the cores (at least 1), or ``None`` (torch's default, every core) for a single kernel. Two
    kernels that each spin an OpenMP team over every core slow each other down about threefold on
    2 cores (``benchmarks/bench_notebooks.py`` measures it), so concurrent kernels split them."""
    if jobs <= 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // jobs)


def _ipc_kernel_manager(threads: int | None = None) -> type:
    """A kernel manager that talks to the kernel over local IPC sockets in a private temporary
    folder instead of TCP ports, so no network port is opened (and ipykernel does not warn about
    unencrypted TCP in every run's log), and starts it with :data:`HEADLESS_ENV` set (no front end:
    the explorers draw static figures) without touching this process's environment, and does not
    interrupt a kernel it is shutting down (see ``_async_interrupt_kernel``). ``threads``
    (see :func:`kernel_threads`) sets the kernel's ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``
    unless the caller's environment sets them."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(Path(tempfile.mkdtemp(prefix="sspa-kernel-")) / "kernel")

        async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
            kw["env"] = {**kw.get("env", os.environ), HEADLESS_ENV: "1"}
            if threads is not None:
                for name in THREAD_ENV:
                    kw["env"].setdefault(name, str(threads))
            return await super()._async_pre_start_kernel(**kw)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client interrupts every kernel before shutting it down; an idle kernel that
            # is still handling a late message logs that SIGINT as "ERROR | KeyboardInterrupt caught
            # in kernel" on the reader's terminal. A kernel being shut down gets the shutdown request
            # (and, if it does not answer, SIGTERM and SIGKILL) instead.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart)
            if not restart:
                shutil.rmtree(Path(self.ip).parent, ignore_errors=True)

    return IPCKernelManager


class KernelPool:
    """Kernels kept from one notebook to the next, one per calling thread, for checks that run
    many short notebooks (the test suite's dataset matrix). Before each notebook its thread's
    kernel is cleared (``%reset -f``: every name the last notebook defined is gone; figures closed;
    working folder restored) while the modules it imported stay loaded, so starting a kernel and
    importing torch, open_clip and matplotlib (about 15 s on a 2-core CPU) is paid once per
    thread. A kernel whose notebook failed or timed out is stopped, and the next notebook gets a
    fresh one. ``sspa notebooks`` does not use it: there every notebook gets a fresh kernel, as in
    a reader's Jupyter. ``threads``: each kernel's torch threads (:func:`kernel_threads` of the
    number of threads that use the pool). Use as a context manager; the kernels stop at its end."""

    def __init__(self, kernel: str = KERNEL, cwd: Path = NOTEBOOKS_DIR, threads: int | None = None):
        self.kernel, self.cwd, self.threads = kernel, Path(cwd), threads
        self._local = threading.local()
        self._lock = threading.Lock()
        self._started: list[Any] = []
        self.starts = 0  # kernels started so far

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def acquire(self) -> Any:
        """This thread's kernel manager, started if needed and cleared for the next notebook."""
        from jupyter_core.utils import run_sync

        km = getattr(self._local, "km", None)
        if km is not None and not run_sync(km.is_alive)():
            self.discard()
            km = None
        if km is None:
            km = _ipc_kernel_manager(self.threads)(kernel_name=self.kernel)
            run_sync(km.start_kernel)(cwd=str(self.cwd))
            with self._lock:
                self._started.append(km)
                self.starts += 1
            self._local.km = km
        run_sync(self._clear)(km)
        return km

    async def _clear(self, km: Any) -> None:
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            code = ("get_ipython().run_line_magic('reset', '-f')\nimport os as _os, sys as _sys\n"
                    f"_os.chdir({str(self.cwd)!r})\n"
                    "if 'matplotlib.pyplot' in _sys.modules:\n    _sys.modules['matplotlib.pyplot'].close('all')\n"
                    "del _os, _sys")
            reply = await kc.execute_interactive(code, silent=True, store_history=False, timeout=60)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"could not clear the kernel: {reply['content'].get('evalue')}")
        finally:
            kc.stop_channels()

    def discard(self) -> None:
        """Stop this thread's kernel (after a failure: a timed-out cell may still be running)."""
        km = getattr(self._local, "km", None)
        self._local.km = None
        if km is not None:
            self._stop(km)

    def _stop(self, km: Any) -> None:
        from jupyter_core.utils import run_sync

        with self._lock:
            if km not in self._started:
                return
            self._started.remove(km)
        try:
            run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 (stop it whatever state it is in)
            if km.provisioner is not None and km.provisioner.process is not None:
                km.provisioner.process.kill()

    def close(self) -> None:
        """Stop every kernel of the pool."""
        for km in list(self._started):
            self._stop(km)


def run_notebooks(
    profile: str = "smoke",
    dataset: str | None = None,
    only: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    output_dir: Path | None = None,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    params_dir: Path = PARAMS_DIR,
    kernel: str = KERNEL,
    log_output: bool = False,
    timeout_s: float | None = None,
    formats: tuple[str, ...] = ("html",),
    jobs: int = 1,
    kernels: KernelPool | None = None,
    threads: int | None = None,
) -> list[NotebookResult]:
    """Execute the selected notebooks; executed copies and HTML go to ``output_dir`` (default
    ``outputs/notebooks/<profile>[-<dataset>]``). Each notebook may run ``timeout_s`` seconds
    (default: :func:`resolve_timeout`; 0 = no limit). The CLIP weights are fetched first
    (:func:`fetch_weights`). ``jobs`` notebooks run at once, each in its own kernel (the notebooks
    share no state, and each kernel's torch gets its share of the cores, :func:`kernel_threads`;
    two jobs on two cores take about 40% as long as one); results come in notebook order. Raises
    :class:`NotebookError` naming the notebook and cell at the first failure or time-out (its
    executed copy and HTML are still written; notebooks not yet started are not run).
    ``formats``: the exports written beside each executed copy (:data:`EXPORTS`: ``html``,
    ``slides``). ``kernels``: run in the kept kernels of a :class:`KernelPool` instead of fresh ones.
    ``threads``: each fresh kernel's torch threads (default :func:`kernel_threads` of ``jobs``; pass
    it when the caller runs several of these calls at once; 0 leaves torch's default)."""
    unknown = set(formats) - set(EXPORTS)
    if unknown:
        raise ValueError(f"unknown export format(s) {sorted(unknown)}; choose from {sorted(EXPORTS)}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if threads is None:
        threads = kernel_threads(jobs)
    plan = resolve_parameters(profile, dataset, only, overrides, notebooks_dir, params_dir)
    fetch_weights(plan)
    if timeout_s is None:
        timeout_s = resolve_timeout(profile, dataset, params_dir)
    run_name = profile if dataset is None else f"{profile}-{dataset}"
    output_dir = Path(output_dir or OUTPUT_DIR / "notebooks" / run_name).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)

    def run(notebook: Path, parameters: dict[str, Any]) -> NotebookResult:
        if "output_dir" in declared_parameters(notebook):  # each notebook writes into <output_dir>/<its name>/
            parameters = {**parameters, "output_dir": str(output_dir)}
        return execute_notebook(notebook, parameters, output_dir / notebook.name, kernel=kernel,
                                log_output=log_output, timeout_s=timeout_s, formats=formats, kernels=kernels,
                                threads=threads or None)

    if jobs == 1:
        results = [run(notebook, parameters) for notebook, parameters in plan.items()]
    else:
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = [pool.submit(run, notebook, parameters) for notebook, parameters in plan.items()]
            try:
                results = [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    (output_dir / "summary.json").write_text(
        json.dumps([asdict(r) for r in results], indent=2, default=str))
    return results


def execute_notebook(notebook: Path, parameters: dict[str, Any], executed: Path, kernel: str = KERNEL,
                     log_output: bool = False, timeout_s: float = 0, formats: tuple[str, ...] = ("html",),
                     kernels: KernelPool | None = None, threads: int | None = None) -> NotebookResult:
    """Run one notebook with papermill in a fresh kernel (``parameters`` injected, at most
    ``timeout_s`` seconds from its first cell; 0 = no limit; ``threads``: its torch threads,
    :func:`kernel_threads`; ``kernels``: run in this thread's kernel of the pool instead) into
    ``executed``, and write its ``formats`` beside it; failures and time-outs raise
    :class:`NotebookError`."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    print(f"[sspa notebooks] {notebook.name} {parameters}", flush=True)
    start = time.perf_counter()
    deadline = _Deadline(timeout_s) if timeout_s else None
    if kernels is None:
        where = {"kernel_manager_class": _ipc_kernel_manager(threads)}
    elif Path(kernels.cwd).resolve() != notebook.parent.resolve():
        raise ValueError(f"the kernel pool works in {kernels.cwd}, not in {notebook.parent}")
    else:
        where = {"km": kernels.acquire()}
    try:
        try:
            papermill.execute_notebook(
                str(notebook), str(executed), parameters=parameters, kernel_name=kernel,
                # the kernel starts in the notebook's folder; papermill's cwd= would chdir the whole
                # process, and concurrent jobs would then leave it in another notebook's folder
                resources={"metadata": {"path": str(notebook.parent)}}, progress_bar=False, log_output=log_output,
                timeout_func=deadline, **where,
            )
        except BaseException:
            if kernels is not None:  # a timed-out cell may still be running there
                kernels.discard()
            raise
    except TimeoutError:  # nbclient's CellTimeoutError, raised only by the deadline
        export_html(executed)
        first_line = (deadline.cell.source if deadline.cell else "").strip().splitlines()[:1] or [""]
        raise NotebookError(
            f"{notebook.name}: cell `{first_line[0]}` was still running at the notebook's time "
            f"limit of {timeout_s:g} s (timeout_s in the parameter files); executed copy: {executed}"
        ) from None
    except PapermillExecutionError as err:
        export_html(executed)
        first_line = (err.source or "").strip().splitlines()[:1] or [""]
        raise NotebookError(
            f"{notebook.name}: cell {err.cell_index} of the executed copy (In "
            f"[{err.exec_count}], `{first_line[0]}`) failed with "
            f"{err.ename}: {err.evalue}; executed copy: {executed}"
        ) from None
    seconds = time.perf_counter() - start
    html = export_html(executed)
    for name in formats:
        if name != "html":
            EXPORTS[name](executed)
    print(f"[sspa notebooks] {notebook.name} done in {seconds:.1f} s", flush=True)
    return NotebookResult(notebook.stem, str(executed), str(html), seconds, parameters)
