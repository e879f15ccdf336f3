"""A run folder holds one run: :func:`claim_run_folder` locks it for one training at a time and
refuses to start afresh over a run already in it (continue it with ``--resume``, or replace it
with ``--overwrite``).

The lock is ``fcntl.flock`` on :data:`LOCK_NAME` in the folder, which records the holder's pid and
host; the kernel releases it when the process ends, however it ends, so a killed run leaves no
stale lock. While it holds the lock, a training removes the temporary files a killed checkpoint
write left behind.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sspa_core.errors import InputError

LOCK_NAME = ".sspa-train.lock"
#: what a training writes into its folder (a run that started, finished or was interrupted)
RUN_FILES = ("checkpoints/last.pt", "checkpoints/best.pt", "metrics.json", "config.yaml")
#: temporary files of a checkpoint write (``atomic_save``, ``atomic_link``) that a kill left behind
STALE_PATTERNS = (".*.pt.*.tmp", ".*.pt.*.link")


def run_files(folder: Path) -> list[Path]:
    """The files of :data:`RUN_FILES` present in ``folder``."""
    return [folder / name for name in RUN_FILES if (folder / name).is_file()]


@contextmanager
def claim_run_folder(folder: str | Path, resume: bool, overwrite: bool = False) -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block; an :class:`InputError` if another training
    holds it, if ``resume`` and the folder has no ``checkpoints/last.pt``, or if neither ``resume``
    nor ``overwrite`` and it holds a run's files."""
    folder = Path(folder)
    with open(folder / LOCK_NAME, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise InputError(f"{folder} is in use by another training ({holder}); wait for it to end "
                             "or choose another --output-dir") from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        lock.flush()
        for pattern in STALE_PATTERNS:
            for stale in (folder / "checkpoints").glob(pattern):
                stale.unlink(missing_ok=True)
        present = run_files(folder)
        if resume and folder / "checkpoints" / "last.pt" not in present:
            raise InputError(f"--resume: nothing to resume in {folder} (no checkpoints/last.pt: the run stopped "
                             "before its first checkpoint, or none was started here); to train afresh, leave out "
                             "--resume" + (" and pass --overwrite" if present else ""))
        if not resume and not overwrite and present:
            raise InputError(f"{folder} holds a run ({', '.join(str(p.relative_to(folder)) for p in present)}); "
                             "continue it with --resume, replace it with --overwrite, or choose another "
                             "--output-dir")
        yield
