"""Run the ordered notebooks end to end with papermill, per profile and per dataset, and export
them (HTML, reveal.js slides, readable offline: :mod:`sspa_core.notebooks.export`), optionally
with a Markdown summary of the run (:func:`write_summary`). Which notebooks run with which
parameters and time limit comes from :mod:`sspa_core.notebook_params` (its public names, and the
export's, are importable from here too).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shlex
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from sspa_core.config import parse_override
from sspa_core.errors import InputError
from sspa_core.notebook_params import (
    DEFAULT_TIMEOUT_S,
    NOTEBOOKS_DIR,
    PARAMS_DIR,
    PROFILES,
    dataset_commands,
    dataset_parameter_files,
    declared_parameters,
    list_notebooks,
    resolve_parameters,
    resolve_timeout,
)
from sspa_core.notebooks.export import MATHJAX_ENTRY, export_html, export_slides, local_mathjax, local_reveal
from sspa_core.paths import OUTPUT_DIR

__all__ = [
    "DEFAULT_TIMEOUT_S", "EXPORTS", "HEADLESS_ENV", "KERNEL", "MATHJAX_ENTRY", "NOTEBOOKS_DIR", "PARAMS_DIR",
    "PROFILES", "RUN_KEYS", "THREAD_ENV", "KeptKernels", "NotebookError", "NotebookResult", "check_device",
    "command_line", "dataset_commands", "dataset_parameter_files", "declared_parameters", "execute_notebook",
    "export_html", "export_slides", "fetch_weights", "ipc_kernel_manager", "kernel_threads", "list_notebooks",
    "local_mathjax", "local_reveal", "resolve_parameters", "resolve_timeout", "run_notebooks", "write_summary"]

#: the kernels of a run have no front end to show widgets (sspa_core.explorers reads it)
HEADLESS_ENV = "SSPA_HEADLESS"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # torch's CPU thread count (see kernel_threads)
KERNEL = "python3"


class NotebookError(RuntimeError):
    """A notebook failed: names the notebook, the cell and the exception."""


@dataclass
class NotebookResult:
    name: str
    executed: str
    html: str
    seconds: float
    parameters: dict[str, Any]


class KeptKernels(Protocol):
    """Kernels kept from one notebook to the next (the tests' ``helpers.KernelPool``), which
    :func:`run_notebooks` can run in instead of starting a fresh kernel per notebook."""

    cwd: Path  # the folder the kernels work in: the notebooks'

    def acquire(self) -> Any:
        """This thread's kernel manager, started if needed and cleared for the next notebook."""

    def discard(self) -> None:
        """Stop this thread's kernel (after a failure: a timed-out cell may still be running)."""


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


def check_device(plan: dict[Path, dict[str, Any]]) -> None:
    """Stop before any kernel starts when a notebook of ``plan`` asks for a CUDA ``device`` (the
    ``full`` and ``gpu`` profiles do) on a machine without one: an :class:`InputError` of one line
    saying to pass ``-p device=cpu`` or to use a GPU."""
    wanted = sorted({str(p["device"]) for p in plan.values() if str(p.get("device", "")).startswith("cuda")})
    if not wanted:
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"the notebooks ask for device {wanted[0]!r} but this machine has no CUDA GPU; "
                         "pass -p device=cpu (with -p profile=smoke for small sizes) or run on a GPU")


def kernel_threads(jobs: int) -> int | None:
    """The CPU threads each kernel's torch gets when ``jobs`` kernels run at once: its share of
    the cores (at least 1), or ``None`` (torch's default, every core) for a single kernel. Two
    kernels that each spin an OpenMP team over every core slow each other down about threefold on
    2 cores (``benchmarks/bench_notebooks.py`` measures it), so concurrent kernels split them."""
    if jobs <= 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // jobs)


def ipc_kernel_manager(threads: int | None = None) -> type:
    """A kernel manager that talks to the kernel over local IPC sockets in a private temporary
    folder instead of TCP ports, so no network port is opened (and ipykernel does not warn about
    unencrypted TCP in every run's log), and starts it with :data:`HEADLESS_ENV` set (no front end:
    the explorers draw static figures) without touching this process's environment, loads
    :mod:`sspa_core.notebooks.export` in it as an IPython extension (each figure's title becomes its
    alt text in the exports), and does not interrupt a kernel it is shutting down (see
    ``_async_interrupt_kernel``). ``threads``
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
            kw["extra_arguments"] = [*(kw.get("extra_arguments") or []),
                                     "--IPKernelApp.extra_extensions=sspa_core.notebooks.export"]
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
    kernels: KeptKernels | None = None,
    threads: int | None = None,
    summary: Path | None = None,
) -> list[NotebookResult]:
    """Execute the selected notebooks; executed copies and HTML go to ``output_dir`` (default
    ``outputs/notebooks/<profile>[-<dataset>]``). Each notebook may run ``timeout_s`` seconds
    (default: :func:`resolve_timeout`; 0 = no limit). A CUDA device without a GPU stops the run
    first (:func:`check_device`), then the CLIP weights are fetched (:func:`fetch_weights`). ``jobs``
    notebooks run at once, each in its own kernel (the notebooks share no state, and each kernel's
    torch gets its share of the cores, :func:`kernel_threads`; two jobs on two cores take about 40%
    as long as one); results come in notebook order. Raises
    :class:`NotebookError` naming the notebook and cell at the first failure or time-out (its
    executed copy and HTML are still written; notebooks not yet started are not run).
    ``formats``: the exports written beside each executed copy (:data:`EXPORTS`: ``html``,
    ``slides``). ``kernels``: run in these kept kernels (:class:`KeptKernels`) instead of fresh ones.
    ``threads``: each fresh kernel's torch threads (default :func:`kernel_threads` of ``jobs``; pass
    it when the caller runs several of these calls at once; 0 leaves torch's default).
    ``summary``: a Markdown file written at the end, also when the run stops (:func:`write_summary`)."""
    unknown = set(formats) - set(EXPORTS)
    if unknown:
        raise ValueError(f"unknown export format(s) {sorted(unknown)}; choose from {sorted(EXPORTS)}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if threads is None:
        threads = kernel_threads(jobs)
    plan = resolve_parameters(profile, dataset, only, overrides, notebooks_dir, params_dir)
    limit = resolve_timeout(profile, dataset, params_dir) if timeout_s is None else timeout_s
    run_name = profile if dataset is None else f"{profile}-{dataset}"
    output_dir = Path(output_dir or OUTPUT_DIR / "notebooks" / run_name).resolve()
    outcomes: dict[Path, tuple[str, float]] = {}  # notebook -> (status, seconds) once it has run

    def run(notebook: Path, parameters: dict[str, Any]) -> NotebookResult:
        if "output_dir" in declared_parameters(notebook):  # each notebook writes into <output_dir>/<its name>/
            parameters = {**parameters, "output_dir": str(output_dir)}
        start = time.perf_counter()
        try:
            result = execute_notebook(notebook, parameters, output_dir / notebook.name, kernel=kernel,
                                      log_output=log_output, timeout_s=limit, formats=formats,
                                      kernels=kernels, threads=threads or None)
        except BaseException as err:
            outcomes[notebook] = (f"failed: {err}" if isinstance(err, NotebookError) else "stopped",
                                  time.perf_counter() - start)
            raise
        outcomes[notebook] = ("ok", result.seconds)
        return result

    stopped = None
    try:
        check_device(plan)
        fetch_weights(plan)
        output_dir.mkdir(parents=True, exist_ok=True)
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
    except BaseException as err:
        stopped = " ".join(str(err).split()) or type(err).__name__
        raise
    finally:
        if summary is not None:
            command = command_line(profile, dataset, only, overrides, output_dir, timeout_s=timeout_s,
                                   formats=formats, jobs=jobs, summary=summary)
            write_summary(summary, command, plan, outcomes, output_dir, stopped)
    (output_dir / "summary.json").write_text(
        json.dumps([asdict(r) for r in results], indent=2, default=str))
    return results


#: the run-wide parameters a summary names (as the notebooks received them)
RUN_KEYS = ("dataset", "data_root", "backbone", "pretrained", "image_size", "device", "profile")


def command_line(profile: str, dataset: str | None, only: list[str] | None, overrides: dict[str, Any] | None,
                 output_dir: Path, timeout_s: float | None = None, formats: tuple[str, ...] = ("html",),
                 jobs: int = 1, summary: Path | None = None) -> str:
    """The ``sspa notebooks`` command that repeats a :func:`run_notebooks` call (each ``-p`` value
    written so that it reads back as the same value)."""
    words = ["sspa", "notebooks", "--profile", profile, *(["--dataset", dataset] if dataset else []),
             *(["--only", *only] if only else [])]
    for key, value in (overrides or {}).items():
        same = isinstance(value, str) and value and parse_override(f"x={value}")["x"] == value
        words += ["-p", f"{key}={value if same else json.dumps(value, default=str)}"]
    words += ["--output-dir", str(output_dir)]
    if timeout_s is not None:
        words += ["--timeout-s", f"{timeout_s:g}"]
    if tuple(formats) != ("html",):
        words += ["--to", *formats]
    if jobs > 1:
        words += ["--jobs", str(jobs)]
    if summary is not None:
        words += ["--summary", str(summary)]
    return shlex.join(words)


def _gpu(devices: list[str]) -> str:
    """`` (<the GPU's name>)`` when ``devices`` include a CUDA device, else nothing."""
    if not any(d.startswith("cuda") for d in devices):
        return ""
    import torch

    return f" ({torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA GPU on this machine'})"


def write_summary(path: Path, command: str, plan: dict[Path, dict[str, Any]],
                  outcomes: dict[Path, tuple[str, float]], output_dir: Path, stopped: str | None = None) -> Path:
    """A short Markdown record of a run at ``path``: the command, the run-wide parameters
    (:data:`RUN_KEYS`: the dataset and its root, the backbone and weights, the device, a GPU with its
    name, ...), each notebook of ``plan`` with its status (``ok``, ``failed: ...``, ``not run``) from
    ``outcomes``, wall time and the files it wrote in ``output_dir``; ``stopped``: the error that
    ended the run, if any."""
    lines = ["# sspa notebooks", "", f"    {command}", "", "| | |", "|---|---|"]
    for key in RUN_KEYS:
        values = sorted({str(parameters[key]) for parameters in plan.values() if key in parameters})
        if values:
            extra = _gpu(values) if key == "device" else ""
            lines.append(f"| {key} | {', '.join(f'`{v}`' for v in values)}{extra} |")
    lines += [f"| output folder | `{output_dir}` |", f"| result | {f'stopped: {stopped}' if stopped else 'ok'} |",
              "", "| notebook | status | wall time | files |", "|---|---|---|---|"]
    for notebook in plan:
        status, seconds = outcomes.get(notebook, ("not run", None))
        files = sorted(f"{p.name}/" if p.is_dir() else p.name for p in Path(output_dir).glob(f"{notebook.stem}*"))
        wall = "" if seconds is None else f"{seconds:.1f} s"
        lines.append(f"| {notebook.stem} | {status.replace('|', '/')} | {wall} | {', '.join(files)} |")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def execute_notebook(notebook: Path, parameters: dict[str, Any], executed: Path, kernel: str = KERNEL,
                     log_output: bool = False, timeout_s: float = 0, formats: tuple[str, ...] = ("html",),
                     kernels: KeptKernels | None = None, threads: int | None = None) -> NotebookResult:
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
        where = {"kernel_manager_class": ipc_kernel_manager(threads)}
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
