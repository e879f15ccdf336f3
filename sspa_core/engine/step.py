"""One optimisation step, shared by every training loop, and its mixed precision.

The forward pass runs under ``torch.autocast`` on the run's device when mixed precision is on
(:class:`Precision`); the loss is then computed in float32 outside autocast, on the outputs cast
to float32, so a sum over labels or a log-sigmoid never runs in half precision. float16 needs a
gradient scaler (its exponent range is small): the loss is scaled before ``backward``, the
gradients unscaled before clipping, and a step whose gradients overflowed is skipped with a
smaller scale. bfloat16 has float32's exponent range and runs without one; it is the usual mixed
precision on a CPU. Used by :class:`sspa_core.engine.Trainer`,
:func:`sspa_core.model.fit_on_features` and :func:`sspa_core.tiny_clip.pretrain_tiny_clip`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

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
