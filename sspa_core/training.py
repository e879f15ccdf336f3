"""The pieces every optimisation loop shares: the tiny-CLIP pretraining, the quick fit on cached
features and the trainer (:mod:`sspa_core.engine`) all import them from here, below the method.

- **Atomic writes** (:func:`atomic_save`, :func:`atomic_link`, :func:`atomic_write_text`): a crash
  or a full disk leaves either the previous file or the new one, never a truncated one.
- **Seeds** (:func:`seed_everything`).
- **Parameter groups** (:func:`optimizer_groups`, :func:`weight_decay_groups`): weight decay pulls a
  parameter towards 0, which is a prior for weight matrices but not for scales, offsets or
  embeddings of meaning: it is left off every parameter with fewer than two dimensions (biases,
  LayerNorm weights, the aggregator's log τ, the logit bias, CLIP's logit scale and class
  embedding), as open_clip's training does (``exclude = p.ndim < 2 or "bn"/"ln"/"bias"/
  "logit_scale" in name``), and off the learnable prompt context vectors (``*.ctx``), which are
  points in the token-embedding space whose norm the text encoder reads. (CoOp's own recipe, via
  Dassl, does decay its context by 5e-4 under SGD; this is a choice, stated as one.)
- **The learning-rate schedule** (:func:`warmup_cosine`): ``LinearLR`` (from ``start_factor`` × lr
  to lr) → ``CosineAnnealingLR`` (to 0) in ``SequentialLR``, stepped once per optimiser step; the
  trainer gives its warm-up in epochs (``train.warmup_epochs``), the pretraining in steps.
- **One optimisation step and its mixed precision** (:func:`optimisation_step`, :class:`Precision`):
  the forward pass runs under ``torch.autocast`` on the run's device when mixed precision is on;
  the loss is then computed in float32 outside autocast, on the outputs cast to float32, so a sum
  over labels or a log-sigmoid never runs in half precision. float16 needs a gradient scaler (its
  exponent range is small): the loss is scaled before ``backward``, the gradients unscaled before
  clipping, and a step whose gradients overflowed is skipped with a smaller scale. bfloat16 has
  float32's exponent range and runs without one; it is the usual mixed precision on a CPU.
- **The EMA decay** (:func:`ema_decay`) of the trainer's moving average of the weights.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from sspa_core.errors import OutputError

# ----------------------------------------------------------------------------- atomic writes


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``: a
    crash leaves either the previous file or the new one, never a truncated one. The file gets
    the permissions of a plain ``open`` (``mkstemp`` would leave it readable by its owner only).
    A write that fails (a full disk or quota) raises an :class:`~sspa_core.errors.OutputError`
    saying how much space the file needs and how much is free; the previous file is kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _failed_write(err):
            raise _write_error(path, err, _tensor_bytes(obj)) from err
        raise
    return path


def _failed_write(err: BaseException) -> bool:
    """Whether ``torch.save`` failed because the file could not be written: an ``OSError`` from a
    plain write, or the ``RuntimeError`` its zip writer raises for a short write."""
    if isinstance(err, OSError):
        return not isinstance(err, (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError))
    return isinstance(err, RuntimeError) and any(
        mark in str(err) for mark in ("unexpected pos", "file write failed", "inline_container"))


def _write_error(path: Path, err: BaseException, need: int | None = None) -> OutputError:
    """The :class:`OutputError` for a failed write of ``path`` (about ``need`` bytes)."""
    free = _gib(shutil.disk_usage(path.parent).free)
    space = f"the file needs about {_gib(need)} and {free} are free" if need else f"{free} are free"
    reason = " ".join(str(err).split())[:120]
    return OutputError(
        f"could not write {path} ({reason}): {space} on its file system (or a quota or file-size limit "
        f"stopped it); free some space or choose another --output-dir. {path.name} was not changed.")


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in ``obj`` (nested dicts, lists and tuples): about its file size."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def atomic_link(source: str | Path, path: str | Path) -> Path:
    """Make ``path`` a second name of the file ``source`` (a hard link, or a copy where the file
    system has none), replacing ``path`` atomically. Used for ``best.pt`` when it would hold the
    same state as the ``last.pt`` just written: no second serialisation and no second copy on
    disk. :func:`atomic_save` replaces ``last.pt`` by a new file later, so ``best.pt`` keeps its
    content."""
    source, path = Path(source), Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network and FAT file systems)
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if _failed_write(err):
            raise _write_error(path, err, source.stat().st_size) from err
        raise
    return path


def atomic_write_text(text: str, path: Path) -> None:
    """Write a text file through a temporary file and ``os.replace`` (logs read while training)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- seeds


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (every device's) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- parameter groups


def uses_weight_decay(name: str, param: nn.Parameter) -> bool:
    """False for parameters with fewer than two dimensions and for prompt contexts (``*ctx``)."""
    return param.ndim >= 2 and name.rsplit(".", 1)[-1] != "ctx"


def weight_decay_groups(named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float,
                        **options: Any) -> list[dict[str, Any]]:
    """``named_params`` as optimiser groups: one with ``weight_decay`` (where
    :func:`uses_weight_decay`), one without, each with ``options`` (e.g. ``lr``, ``name``) and
    ``decay`` (True/False); empty groups are left out."""
    named_params = list(named_params)
    groups = []
    for decay in (True, False):
        chosen = [p for n, p in named_params if uses_weight_decay(n, p) == decay]
        if chosen:
            groups.append({"params": chosen, **options, "weight_decay": weight_decay if decay else 0.0,
                           "decay": decay})
    return groups


def optimizer_groups(model: nn.Module, lrs: dict[str, float], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups of the parts of ``model.param_groups()`` named in ``lrs`` (part -> learning
    rate, e.g. ``"head"``, ``"image_encoder"``, ``"text_encoder"``, in the order of ``lrs``; other
    parts are not trained), each split by :func:`weight_decay_groups`. Groups keep the part's
    ``name``."""
    names = {id(p): n for n, p in model.named_parameters()}
    parts = model.param_groups()
    return [group for part, lr in lrs.items()
            for group in weight_decay_groups([(names.get(id(p), ""), p) for p in parts.get(part, [])],
                                             weight_decay, lr=lr, name=part)]


# ----------------------------------------------------------------------------- schedule and step


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int,
                  start_factor: float = 0.01) -> LRScheduler:
    """Warm-up over ``warmup_steps`` (at most ``total_steps - 1``), then cosine decay until
    ``total_steps``; without warm-up, the cosine decay alone."""
    total = max(1, total_steps)
    warmup = max(0, min(warmup_steps, total - 1))
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
    if warmup == 0:
        return cosine
    linear = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


#: Values of ``train.amp_dtype`` besides ``"auto"`` (float16 on CUDA, no autocast elsewhere).
AMP_DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def check_amp_dtype(name: str) -> None:
    """Refuse a ``train.amp_dtype`` that is neither ``"auto"`` nor a key of :data:`AMP_DTYPES`."""
    if name != "auto" and name not in AMP_DTYPES:
        raise ValueError(f"unknown train.amp_dtype {name!r}; valid: auto, {', '.join(AMP_DTYPES)}")


class Precision:
    """Autocast dtype (``None``: full float32) and gradient scaler of one device type."""

    def __init__(self, device_type: str = "cpu", dtype: torch.dtype | None = None):
        if dtype is not None and dtype not in AMP_DTYPES.values():
            raise ValueError(f"mixed precision supports {list(AMP_DTYPES)}, not {dtype}")
        self.device_type = device_type
        self.dtype = dtype
        self.scaler = torch.amp.GradScaler(device_type, enabled=dtype == torch.float16)

    @classmethod
    def from_config(cls, device: torch.device, amp: bool, amp_dtype: str = "auto") -> Precision:
        """``train.amp`` and ``train.amp_dtype`` on ``device``: ``"auto"`` is float16 on CUDA and
        full precision elsewhere; ``"float16"`` or ``"bfloat16"`` autocast on any device."""
        check_amp_dtype(amp_dtype)
        if not amp or (amp_dtype == "auto" and device.type != "cuda"):
            return cls(device.type)
        return cls(device.type, AMP_DTYPES["float16" if amp_dtype == "auto" else amp_dtype])

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype) if self.enabled else nullcontext()

    def __repr__(self) -> str:
        return f"Precision({self.device_type!r}, {self.dtype}, scaler={self.scaler.is_enabled()})"


def to_float(outputs: Any) -> Any:
    """``outputs`` (a tensor, or mappings and sequences of them) with floating tensors in float32."""
    if torch.is_tensor(outputs):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, dict):
        return {k: to_float(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(to_float(v) for v in outputs)
    return outputs


def optimisation_step(forward: Callable[[], Any], loss_fn: Callable[[Any], Tensor], optimizer: Optimizer, *,
                      precision: Precision | None = None, scheduler: LRScheduler | None = None,
                      grad_clip: float = 0.0, where: str = "") -> Tensor:
    """``forward()`` under autocast, ``loss_fn(outputs in float32)``, backward through the
    gradient scaler, gradient-norm clipping at ``grad_clip`` (0: off) over the optimiser's
    parameters, then the optimiser and scheduler steps. Returns the detached float32 loss.

    Raises ``FloatingPointError`` on a non-finite loss (``where`` says at which step)."""
    precision = precision or Precision()
    with precision.autocast():
        outputs = forward()
    loss = loss_fn(to_float(outputs))
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss.item()}" + (f" at {where}" if where else ""))
    optimizer.zero_grad(set_to_none=True)
    scaler = precision.scaler
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None:
        scheduler.step()
    return loss.detach()


# ----------------------------------------------------------------------------- moving average


def ema_decay(decay: float, updates: int, warmup: bool = True) -> float:
    """Decay of the EMA update that follows ``updates`` earlier averaging updates: ``decay``, or
    with ``warmup`` ``min(decay, (1 + n) / (10 + n))``, the ``num_updates`` form of
    ``tf.train.ExponentialMovingAverage`` (timm's ModelEmaV3 warm-up is the power form
    ``1 − (1 + n)^(−2/3)``; ModelEmaV2 has none). Without it the average of a run of ``n``
    steps still holds ``decay^n`` of the initial weights (0.9997^1000 = 0.74)."""
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay
