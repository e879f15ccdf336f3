"""Helpers shared by several test files (``from helpers import ...``: pytest puts ``tests/`` on
the import path)."""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import importlib.util
import re
import sys
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from types import ModuleType
from typing import Any

import open_clip
import torch
from torch import nn
from torch.utils.data import Dataset

from sspa_core.backbone import CLIPBackbone, set_image_size
from sspa_core.notebooks import KERNEL, NOTEBOOKS_DIR, ipc_kernel_manager


def load_script(path: Path) -> ModuleType:
    """The script at ``path`` (a benchmark, a fixture builder) as a module, with its folder on the
    import path while it loads, as when it is run (``from _common import ...``)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@functools.cache
def _pristine_backbone(name: str, image_size: int | None, seed: int) -> CLIPBackbone:
    torch.manual_seed(seed)
    backbone = CLIPBackbone(open_clip.create_model(name).eval(), open_clip.get_tokenizer(name))
    if image_size is not None and backbone.image_size != image_size:
        set_image_size(backbone.clip, image_size)
    return backbone


def random_backbone(name: str, image_size: int | None = None, seed: int = 0) -> CLIPBackbone:
    """A fresh copy of a randomly initialised open_clip model (seeded, no checkpoint) wrapped as
    the backbone, at ``image_size`` (None = the model's own); copies are cheaper than building
    the model again."""
    return copy.deepcopy(_pristine_backbone(name, image_size, seed))


class PatchModel(nn.Module):
    """A small model with the project's model interface (``forward``, ``forward_features``,
    ``param_groups``): a strided-conv "image encoder" and a two-branch head with dropout, so
    that resume must restore weights, optimiser, scheduler, EMA and the random state."""

    def __init__(self, num_labels: int = 5, dim: int = 8):
        super().__init__()
        self.encoder = nn.Conv2d(3, dim, 4, stride=4)
        self.global_head = nn.Linear(dim, num_labels)
        self.regional_head = nn.Linear(dim, num_labels)
        self.dropout = nn.Dropout(0.2)

    def forward(self, images: torch.Tensor) -> dict:
        patches = self.encoder(images).flatten(2).transpose(1, 2)
        return self.forward_features(patches.mean(1), patches)

    def forward_features(self, x0: torch.Tensor, patches: torch.Tensor) -> dict:
        global_logits = self.global_head(self.dropout(x0))
        regional_logits = self.regional_head(patches).amax(1)
        return {"global": global_logits, "regional": regional_logits,
                "score": (global_logits.sigmoid() + regional_logits.sigmoid()) / 2}

    def param_groups(self) -> dict:
        encoder = list(self.encoder.parameters())
        head = [p for n, p in self.named_parameters() if not n.startswith("encoder.")]
        return {"image_encoder": encoder, "head": head}


class NoisyImages(Dataset):
    """Random images whose items add fresh noise (a random augmentation)."""

    label_names = [f"label{i}" for i in range(5)]
    masks = None

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 16, 16, generator=g)
        self.targets = (torch.rand(n, 5, generator=g) < 0.4).float().numpy()
        self.targets[0] = 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i] + 0.1 * torch.randn(3, 16, 16),
                "target": torch.from_numpy(self.targets[i]), "mask": torch.ones(5), "index": i}


def run_concurrently(calls: dict[Hashable, Callable[[], Any]], jobs: int) -> dict[Hashable, Any]:
    """Call each of ``calls`` with ``jobs`` running at once (threads: each notebook run waits on its
    own kernel process, so two jobs keep a 2-core machine busy); ``{key: result or the exception
    it raised}``, so that one failing run fails only its own test. Calls start in the given order:
    put the longest first."""
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {key: pool.submit(call) for key, call in calls.items()}
    return {key: future.exception() or future.result() for key, future in futures.items()}


def drop_checkpoints(folder: Path) -> None:
    """Delete the checkpoints (``*.pt``) a notebook run wrote under ``folder``: a real CLIP's run of
    notebook 06 writes several GB, and the tests need only the executed notebook and its HTML."""
    for path in Path(folder).rglob("*.pt"):
        path.unlink()


def selected_runs(request, test_name: str, names: tuple[str, ...]) -> list[tuple]:
    """The parameters ``names`` of each test called ``test_name`` that this session runs (after
    ``-k`` and other deselection): a session fixture that runs notebooks for those tests runs no
    others."""
    return [tuple(item.callspec.params[n] for n in names) for item in request.session.items
            if getattr(item, "originalname", None) == test_name]


def file_size_limit(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.run`` that caps the size of any file the child writes at
    ``limit`` bytes (POSIX): a stand-in for a full disk, on which torch's writer fails the same way.
    A write past it fails with EFBIG instead of killing the child with SIGXFSZ."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


class KernelPool:
    """Kernels kept from one notebook to the next, one per calling thread, for checks that run
    many short notebooks (the test suite's dataset matrix). Before each notebook its thread's
    kernel is cleared (``%reset -f``: every name the last notebook defined is gone; figures closed;
    working folder restored) while the modules it imported stay loaded, so starting a kernel and
    importing torch, open_clip and matplotlib (about 15 s on a 2-core CPU) is paid once per
    thread. A kernel whose notebook failed or timed out is stopped, and the next notebook gets a
    fresh one. ``sspa notebooks`` does not use it: there every notebook gets a fresh kernel, as in
    a reader's Jupyter; ``run_notebooks(kernels=...)`` takes it (it is a
    :class:`~sspa_core.notebooks.KeptKernels`). ``threads``: each kernel's torch threads
    (``kernel_threads`` of the number of threads that use the pool). Use as a context manager; the
    kernels stop at its end."""

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
            km = ipc_kernel_manager(self.threads)(kernel_name=self.kernel)
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


#: a number in prose: digits with optional thousands separators and decimals, signed or not
_PROSE_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:[.,]\d+)*(?![\w])")
#: what a number in prose may refer to rather than quote (an equation, table, figure, section, notebook)
_REFERENCE = re.compile(r"(?:eqs?\.|Eq\.|Tables?|Figs?\.|Figure|§|sections?|notebooks?|Exercise|exercise|"
                        r"Q|questions?)\s*[\d,\s–-]*$")


def prose_numbers(markdown: str) -> list[tuple[str, str]]:
    """The numbers a Markdown cell quotes, with a little context: equations (``$...$``), code spans,
    link targets, headings, list markers, years, the **Time.** estimate and references (eq. 14,
    Table VI, section 3, notebook 04) are not quotes."""
    text = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)
    for pattern in (r"\$[^$]*\$", r"`[^`]*`", r"\]\([^)]*\)", r"^#+ .*$", r"^\s*\d+\.\s", r"\*\*Time\.\*\*.*$"):
        text = re.sub(pattern, " ", text, flags=re.M)
    found = []
    for match in _PROSE_NUMBER.finditer(text):
        number = match.group().replace("−", "-").lstrip("+")
        if _REFERENCE.search(text[max(0, match.start() - 24):match.start()]) or re.fullmatch(r"(19|20)\d\d", number):
            continue
        found.append((number, " ".join(text[max(0, match.start() - 40):match.end() + 20].split())))
    return found


def unbacked_prose_numbers(executed: Path, references: str) -> list[tuple[str, str]]:
    """The numbers that the Markdown cells of an executed notebook quote but that none of its
    outputs prints, none of its code cells sets and ``references`` (docs/method.md) does not
    state: a claim typed by hand that the run does not back. ``(number, context)`` pairs."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    backed = [references]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            backed.append(cell.source)
            for output in cell.get("outputs", []):
                backed.append("".join(output.get("text", "")))
                backed += ["".join(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    pool = "\n".join(backed)
    return [(number, context) for cell in notebook.cells if cell.cell_type == "markdown"
            for number, context in prose_numbers(cell.source) if number not in pool]
