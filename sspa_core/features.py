"""Frozen-backbone feature cache: ``(x0, X)`` computed once per image, stored on disk.

With the image encoder frozen, the dense features ``x0 ∈ R^d`` and ``X ∈ R^{M×d}`` (docs/method.md
§Backbone) of an image never change, so they are computed once per split and the head trains
on them through ``model.forward_features(x0, X)``. The images go through the evaluation
transform: train-time augmentation is off in this mode.

A cache entry is a folder ``<cache_dir>/<dataset_id>/<key>/`` holding ``x0.npy`` ``[N, d]``,
``X.npy`` ``[N, M, d]`` (read back memory-mapped), ``targets.npy``, ``masks.npy`` and
``meta.json``. The key hashes the backbone name, a fingerprint of the image-encoder weights
(:func:`backbone_fingerprint`, which names the dense-feature mode unless it is ``"tokens"``),
the input size, the dataset id, the split, the number of images and the dataset's content
fingerprint (:meth:`~sspa_core.data.base.MultiLabelDataset.fingerprint`: its labels, annotation
files and image files), so a change to any of them computes a new entry; an entry whose stored
fields differ from the expected ones is rebuilt, never reused. Entries are written to a
temporary folder ``.tmp-<pid>@<host>-*`` and renamed into place; the temporary folders of
processes that died (killed while caching) are removed when caching starts next to them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from sspa_core.data.base import MultiLabelDataset, content_hash
from sspa_core.paths import CACHE_DIR

FEATURE_DTYPES = {"float16": np.float16, "float32": np.float32}
STALE_TMP_SECONDS = 24 * 3600  # a temporary entry of another host (or unknown owner) this old is abandoned
_TMP_NAME = re.compile(r"\.tmp-(\d+)@(.*)-[^-]*")


def module_fingerprint(module: nn.Module) -> str:
    """A short SHA-256 of a module's state (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype}".encode())
        # reshape: a 0-dim tensor (e.g. BatchNorm's num_batches_tracked) cannot be viewed as bytes
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


def backbone_fingerprint(backbone) -> str:
    """:func:`module_fingerprint` of the image encoder, followed by ``+<mode>`` when the
    backbone's ``dense_features`` is not ``"tokens"``, so the features of different modes never
    share a cache entry (and the keys of ``"tokens"`` entries stay as they were)."""
    fingerprint = module_fingerprint(backbone.clip.visual)
    mode = backbone.dense_features
    return fingerprint if mode == "tokens" else f"{fingerprint}+{mode}"


def feature_cache_key(backbone_name: str, fingerprint: str, image_size: int, dataset_id: str,
                      split: str, num_images: int, dtype: str, content: str) -> str:
    """The identity of one cache entry (a short hash of everything the features depend on;
    ``content``: the dataset's content fingerprint)."""
    fields = [backbone_name, fingerprint, image_size, dataset_id, split, num_images, dtype, content]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:20]


def content_fingerprint(dataset: Dataset) -> str:
    """The dataset's :meth:`~sspa_core.data.base.MultiLabelDataset.fingerprint`; any other
    dataset is identified by its class, label names, targets and masks (its images unseen)."""
    if isinstance(dataset, MultiLabelDataset):
        return dataset.fingerprint()
    return content_hash([type(dataset).__name__, list(dataset.label_names)],
                        np.asarray(dataset.targets), getattr(dataset, "masks", None))


def _owner_is_gone(name: str, age: float) -> bool:
    """Whether the temporary entry ``name`` belongs to a process that no longer runs (on this
    host), or is older than :data:`STALE_TMP_SECONDS`."""
    match = _TMP_NAME.fullmatch(name)
    if match and match.group(2) == socket.gethostname():
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, owned by another user
            return False
        return False
    return age > STALE_TMP_SECONDS


def sweep_stale_entries(folder: Path) -> list[Path]:
    """Remove the ``.tmp-*`` folders in ``folder`` that a killed caching run left; returns them."""
    removed = []
    now = time.time()
    for path in folder.glob(".tmp-*"):
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if path.is_dir() and _owner_is_gone(path.name, age):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _entry_matches(folder: Path, meta: dict) -> bool:
    """Whether the cache entry in ``folder`` is complete and was computed for ``meta``."""
    try:
        stored = json.loads((folder / "meta.json").read_text())
        complete = all((folder / n).is_file() for n in ("x0.npy", "X.npy", "targets.npy", "masks.npy"))
    except (OSError, ValueError):
        return False
    return complete and all(stored.get(k) == v for k, v in meta.items())


class CachedFeatures(Dataset):
    """Items ``{"x0": [d], "X": [M, d], "target": [C], "mask": [C], "index": int}`` (float32).

    A list of indices gives the whole batch at once (``x0`` [B, d], ``X`` [B, M, d], ...,
    ``index`` [B]): one read and one dtype conversion per batch instead of one per item, which
    :func:`batch_loader` uses (the head of a small model trains faster than items are collated).
    """

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        for name in ("x0.npy", "X.npy", "targets.npy", "masks.npy", "meta.json"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"feature cache {folder} lacks {name}")
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text())
        self.x0 = np.load(folder / "x0.npy", mmap_mode="r")
        self.X = np.load(folder / "X.npy", mmap_mode="r")
        self.targets = np.load(folder / "targets.npy")
        self.masks = np.load(folder / "masks.npy")
        self.label_names: list[str] = self.meta["label_names"]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int | Sequence[int]) -> dict:
        rows = i if isinstance(i, (int, np.integer)) else np.asarray(i, dtype=np.int64)
        return {
            "x0": torch.from_numpy(np.array(self.x0[rows], dtype=np.float32)),
            "X": torch.from_numpy(np.array(self.X[rows], dtype=np.float32)),
            "target": torch.from_numpy(self.targets[rows].astype(np.float32)),
            "mask": torch.from_numpy(self.masks[rows].astype(np.float32)),
            "index": i if isinstance(i, (int, np.integer)) else torch.from_numpy(rows),
        }


#: how torch re-raises an error of a DataLoader worker: its type, with the worker's traceback as the message
_WORKER_ERROR = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")


def worker_error(err: Exception) -> Exception | None:
    """The error a DataLoader worker raised, rebuilt from torch's copy of it (the same type, with
    the original message in place of the worker's whole traceback); None if ``err`` is not one."""
    text = str(err)
    kind = type(err)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    at = text.rfind(f"\n{name}: ")
    if not _WORKER_ERROR.match(text) or at < 0:
        return None
    try:
        return kind(text[at + len(name) + 3:].rstrip("\n"))
    except Exception:  # a type that takes other arguments: keep torch's copy
        return None


class _Loader(DataLoader):
    """A DataLoader whose workers' errors arrive as with ``num_workers=0`` (:func:`worker_error`)."""

    def __iter__(self):
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as err:
                original = worker_error(err)
                if original is None:
                    raise
                raise original from err
            yield batch


def batch_loader(dataset: Dataset, batch_size: int, sampler: Iterable[int] | None = None, **kwargs) -> DataLoader:
    """A DataLoader over ``sampler`` (default: dataset order) in batches of ``batch_size``: a
    :class:`CachedFeatures` is read a whole batch at a time, any other dataset item by item.
    ``kwargs`` go to the DataLoader (workers, generator, pin_memory). An error in a worker is
    raised as the worker raised it (one line, as without workers), not with its traceback."""
    sampler = range(len(dataset)) if sampler is None else sampler
    if isinstance(dataset, CachedFeatures):
        batches = BatchSampler(sampler, batch_size, drop_last=False)
        return _Loader(dataset, batch_size=None, sampler=batches, **kwargs)
    return _Loader(dataset, batch_size=batch_size, sampler=sampler, **kwargs)


@torch.no_grad()
def dense_features(backbone, dataset: Dataset, n: int | None = None, batch_size: int = 32,
                   device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x0 [N, d], X [N, M, d], targets [N, C])`` of the first ``n`` images, in memory: the
    small-scale counterpart of :func:`extract_features` for notebooks and demonstrations."""
    count = len(dataset) if n is None else min(n, len(dataset))
    if count == 0:
        raise ValueError("cannot compute features of an empty dataset")
    was_training = backbone.training
    backbone.eval()
    x0s, patches, targets = [], [], []
    for batch in DataLoader(Subset(dataset, range(count)), batch_size=batch_size):
        x0, X = backbone.encode_image_dense(batch["image"].to(device))
        x0s.append(x0)
        patches.append(X)
        targets.append(batch["target"].to(device))
    backbone.train(was_training)
    return torch.cat(x0s), torch.cat(patches), torch.cat(targets)


@torch.no_grad()
def extract_features(backbone, dataset: Dataset, folder: str | Path, dtype: str = "float16",
                     batch_size: int = 64, num_workers: int = 0, device: str | torch.device = "cpu",
                     progress: bool = True) -> None:
    """Run ``backbone.encode_image_dense`` over ``dataset`` once and write the arrays to ``folder``."""
    if dtype not in FEATURE_DTYPES:
        raise ValueError(f"feature dtype {dtype!r} is not one of {sorted(FEATURE_DTYPES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    was_training = backbone.training
    backbone.eval()
    loader = batch_loader(dataset, batch_size, num_workers=num_workers, pin_memory=torch.device(device).type == "cuda")
    n = len(dataset)
    x0_out = X_out = None
    targets = masks = None
    start = 0
    for batch in tqdm(loader, desc="caching features", disable=not progress, leave=False):
        x0, X = backbone.encode_image_dense(batch["image"].to(device))
        if x0_out is None:
            np_dtype = FEATURE_DTYPES[dtype]
            x0_out = np.lib.format.open_memmap(folder / "x0.npy", "w+", np_dtype, (n, x0.shape[1]))
            X_out = np.lib.format.open_memmap(folder / "X.npy", "w+", np_dtype, (n, *X.shape[1:]))
            targets = np.zeros((n, batch["target"].shape[1]), np.float32)
            masks = np.ones_like(targets)
        stop = start + len(x0)
        x0_out[start:stop] = x0.float().cpu().numpy()
        X_out[start:stop] = X.float().cpu().numpy()
        targets[start:stop] = batch["target"].numpy()
        masks[start:stop] = batch["mask"].numpy()
        start = stop
    backbone.train(was_training)
    if x0_out is None:
        raise ValueError("cannot cache features of an empty dataset")
    x0_out.flush()
    X_out.flush()
    np.save(folder / "targets.npy", targets)
    np.save(folder / "masks.npy", masks)


def cached_features(backbone, dataset, *, backbone_name: str, dataset_id: str, split: str,
                    cache_dir: str | Path | None = None, dtype: str = "float16",
                    batch_size: int = 64, num_workers: int = 0,
                    device: str | torch.device = "cpu", progress: bool = True) -> CachedFeatures:
    """Load the cached ``(x0, X)`` of ``dataset`` (a ``MultiLabelDataset`` built with the
    evaluation transform), computing and storing them on the first call, and again whenever
    the stored entry was made for other contents (see the module docstring)."""
    cache_dir = Path(cache_dir) if cache_dir else CACHE_DIR / "features"
    fingerprint = backbone_fingerprint(backbone)
    image_size = int(backbone.image_size)
    content = content_fingerprint(dataset)
    key = feature_cache_key(backbone_name, fingerprint, image_size, dataset_id, split, len(dataset), dtype, content)
    folder = cache_dir / dataset_id.replace("/", "_") / split / key
    meta = {"backbone": backbone_name, "fingerprint": fingerprint, "image_size": image_size,
            "dataset_id": dataset_id, "split": split, "num_images": len(dataset), "dtype": dtype,
            "content": content, "label_names": list(dataset.label_names)}
    if not _entry_matches(folder, meta):
        folder.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_entries(folder.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}@{socket.gethostname()}-", dir=folder.parent))
        try:
            extract_features(backbone, dataset, tmp, dtype, batch_size, num_workers, device, progress)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            if folder.exists() and not _entry_matches(folder, meta):
                shutil.rmtree(folder)  # an incomplete or foreign entry under this key
            try:
                os.replace(tmp, folder)
            except OSError:  # another process stored the same entry first
                if not _entry_matches(folder, meta):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return CachedFeatures(folder)
