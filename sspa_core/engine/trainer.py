"""The training loop: one model on one dataset, with evaluation, checkpoints and logs.

Optimisation follows the paper's training setup where it is given (§IV-B) and this project's
choices where it is not: AdamW with a lower learning rate for the encoders than for the head and
no weight decay on scales, offsets and prompt contexts (:func:`sspa_core.training.optimizer_groups`),
a linear warm-up then cosine decay (:func:`sspa_core.training.warmup_cosine`, stepped per
batch), an exponential moving average of the parameters (decay 0.9997 after a warm-up,
:func:`sspa_core.training.ema_decay`, via ``torch.optim.swa_utils.AveragedModel``; buffers are
copied, not averaged), mixed precision (:class:`sspa_core.training.Precision`), gradient-norm
clipping, and the loss of eq. 19 (:func:`sspa_core.model.build_loss`). Every epoch ends with an
evaluation by :func:`sspa_core.metrics.evaluate`, ``last.pt``/``best.pt`` checkpoints (``best.pt``
is a hard link to the ``last.pt`` of its epoch, so a fine-tuned backbone is not stored twice) and
JSON + CSV logs.

EMA or raw weights (``train.eval_weights``): with ``"best"`` (the default) each evaluation scores
both the raw and the EMA weights and reports the metrics of the better on ``train.monitor`` (the
EMA on a tie); ``"ema"``/``"raw"`` always report one. Each history row says which
(``"weights": "ema"|"raw"``) and holds the monitored metric of both (``<monitor>_raw``,
``<monitor>_ema``); a checkpoint stores the choice of its last evaluation (``"weights"``, also in
``best``), which :func:`sspa_core.engine.runs.load_trained_model` loads by default. Choosing
between the two on the evaluation split is a selection on it, like that of ``best.pt``.

Resume: a checkpoint, also one written inside an epoch (``train.checkpoint_every``), stores the
position in the epoch and every state (:mod:`sspa_core.engine.checkpoint`); with the seeded order
and augmentation of :mod:`sspa_core.engine.runtime`, a resumed run replays exactly the batches of
an uninterrupted one.

Distributed: under ``torchrun`` the model is wrapped in ``DistributedDataParallel``,
``train.batch_size`` is the global batch split across processes, and evaluation gathers every
process's scores. Only process 0 writes files; a resumed distributed run restores process 0's
random state on every process.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from sspa_core.config import save_config
from sspa_core.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    check_compatible,
    load_checkpoint,
    load_trainable_state,
    setting_differences,
    trainable_state,
)
from sspa_core.engine.evaluation import Forward, check_monitor, compute_metrics, gather_scores, to_device
from sspa_core.engine.runtime import DistInfo, SeededItems, rng_state, seed_worker, set_rng_state
from sspa_core.features import CachedFeatures, batch_loader
from sspa_core.training import (
    Precision,
    atomic_link,
    atomic_save,
    atomic_write_text,
    ema_decay,
    optimisation_step,
    optimizer_groups,
    warmup_cosine,
)

#: the two sets of weights a run keeps: the exponential moving average and the raw ones; a
#: checkpoint records which one its evaluation chose (``"weights"``), and loading one names them
WEIGHTS = ("ema", "raw")
#: values of ``train.eval_weights``: the better of the two on ``train.monitor``, or always one
EVAL_WEIGHTS = ("best", *WEIGHTS)


def ema_update_fn(decay: float, warmup: bool) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """``multi_avg_fn`` of ``AveragedModel``: ``ema ← ema + (1 − d)(w − ema)``, ``d`` from
    :func:`~sspa_core.training.ema_decay` at the model's count of averaging updates
    (``n_averaged``, kept in checkpoints)."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        weight = 1 - ema_decay(decay, int(n_averaged), warmup)
        if torch.is_floating_point(ema_params[0]):
            torch._foreach_lerp_(ema_params, params, weight)
        else:
            for ema_param, param in zip(ema_params, params):
                ema_param.copy_(ema_param * (1 - weight) + param * weight)

    return update


class Trainer:
    """Trains one model on one dataset (images, or cached features), see the module docstring.

    ``config`` is a resolved config (layout of :data:`sspa_core.config.DEFAULTS`): its ``train``
    section sets the optimisation, and the whole of it is stored in checkpoints. ``model_name``
    and ``label_names`` identify the run (a checkpoint of another run is refused); the dataset's
    ``domain`` (:data:`sspa_core.domains.DOMAINS`) picks the metric set of the evaluation.
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, label_names: list[str], model_name: str,
                 config: dict[str, Any], output_dir: str | Path, device: torch.device,
                 dist_info: DistInfo | None = None, domain: str = "natural"):
        self.config = config
        self.train_cfg = tc = config["train"]
        self.model = model.to(device)
        self.loss_fn = loss_fn
        self.label_names = list(label_names)
        self.model_name = model_name
        self.output_dir = Path(output_dir)
        self.device = device
        self.dist = dist_info or DistInfo()
        self.domain = domain
        check_monitor(tc["monitor"], domain)
        if tc["eval_weights"] not in EVAL_WEIGHTS:
            raise ValueError(f"unknown train.eval_weights {tc['eval_weights']!r}; valid: {', '.join(EVAL_WEIGHTS)}")
        lrs = {"head": tc["lr"], "image_encoder": tc["encoder_lr"], "text_encoder": tc["encoder_lr"]}
        self.param_groups = optimizer_groups(self.model, lrs, tc["weight_decay"])
        self.trainable = [p for g in self.param_groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(self.param_groups) if self.trainable else None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.precision = Precision.from_config(device, tc["amp"], tc["amp_dtype"])
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=ema_update_fn(tc["ema_decay"], tc["ema_warmup"]), use_buffers=False)
            if tc["ema"] and self.trainable else None
        )
        self.weights = "raw" if self.ema is None else "ema"  # the weights of the last evaluation's metrics
        self.forward = Forward(self.model)
        if self.dist.distributed and self.trainable:
            ids = [device.index] if device.type == "cuda" else None
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward, device_ids=ids, find_unused_parameters=True
            )
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"value": -math.inf, "epoch": 0, "weights": self.weights}
        self.epoch = 0  # the epoch in progress (0-based)
        self.step_in_epoch = 0  # batches of that epoch already trained
        self._loss_sum = 0.0
        self._loss_count = 0

    # -- data

    def _train_loader(self, dataset: Dataset, epoch: int, skip: int) -> DataLoader:
        tc = self.train_cfg
        per_rank = self._per_rank_batch()
        sampler = DistributedSampler(dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                     shuffle=True, seed=tc["seed"], drop_last=False)
        sampler.set_epoch(epoch)
        indices = list(sampler)[skip * per_rank:]
        if isinstance(dataset, SeededItems):
            dataset.epoch = epoch
        generator = torch.Generator().manual_seed(tc["seed"] * 7919 + epoch)
        return batch_loader(dataset, per_rank, indices, num_workers=tc["num_workers"],
                            worker_init_fn=seed_worker, generator=generator, pin_memory=self.device.type == "cuda")

    def _per_rank_batch(self) -> int:
        batch = self.train_cfg["batch_size"]
        if batch % self.dist.world_size:
            raise ValueError(f"train.batch_size={batch} is not divisible by the {self.dist.world_size} processes")
        return batch // self.dist.world_size

    def steps_per_epoch(self, dataset: Dataset) -> int:
        per_rank_items = math.ceil(len(dataset) / self.dist.world_size)
        return math.ceil(per_rank_items / self._per_rank_batch())

    def build_scheduler(self, steps_per_epoch: int) -> None:
        """:func:`warmup_cosine` over ``train.epochs`` with ``train.warmup_epochs`` of warm-up."""
        total = self.train_cfg["epochs"] * steps_per_epoch
        self.scheduler = warmup_cosine(self.optimizer, total, round(self.train_cfg["warmup_epochs"] * steps_per_epoch))

    # -- checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model_name": self.model_name,
            "label_names": self.label_names,
            "config": self.config,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "loss_sum": self._loss_sum,
            "loss_count": self._loss_count,
            "model": trainable_state(self.model),
            "ema": None if self.ema is None else {
                "model": trainable_state(self.ema.module), "n_averaged": self.ema.n_averaged.detach().clone()},
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.precision.scaler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "best": self.best,
            "weights": self.weights,
        }

    def load_state_dict(self, ckpt: dict[str, Any], source: str = "checkpoint") -> None:
        check_compatible(ckpt, self.model_name, self.label_names, source)
        load_trainable_state(self.model, ckpt["model"], source)
        if self.ema is not None:
            if ckpt["ema"] is None:
                raise ValueError(f"{source} holds no EMA weights but train.ema is on")
            load_trainable_state(self.ema.module, ckpt["ema"]["model"], source)
            self.ema.n_averaged.copy_(ckpt["ema"]["n_averaged"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:  # empty when written without a scaler (e.g. a CPU run resumed on CUDA)
            self.precision.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        self.epoch = int(ckpt["epoch"])
        self.step_in_epoch = int(ckpt["step_in_epoch"])
        self._loss_sum = float(ckpt["loss_sum"])
        self._loss_count = int(ckpt["loss_count"])
        self.history = list(ckpt["history"])
        self.best = dict(ckpt["best"])
        self.weights = ckpt.get("weights", self.weights)
        changed = setting_differences(ckpt["config"], self.config)
        if changed and self.dist.is_main:  # allowed (e.g. more epochs), but said
            print(f"note: resuming {source} with {len(changed)} other setting(s): "
                  + ", ".join(f"{key} {was!r} -> {now!r}" for key, was, now in changed), file=sys.stderr)

    def save(self, name: str) -> Path | None:
        if not self.dist.is_main:
            return None
        return atomic_save(self.state_dict(), self.output_dir / "checkpoints" / name)

    # -- training and evaluation

    def train_step(self, batch: dict[str, Any]) -> float:
        """One :func:`optimisation_step` on one batch, then the EMA update; returns the loss."""
        batch = to_device(batch, self.device)
        loss = optimisation_step(
            lambda: self.forward(batch), lambda outputs: self.loss_fn(outputs, batch["target"], batch["mask"]),
            self.optimizer, precision=self.precision, scheduler=self.scheduler,
            grad_clip=self.train_cfg["grad_clip"], where=f"epoch {self.epoch + 1}, step {self.step_in_epoch + 1}",
        )
        if self.ema is not None:
            self.ema.update_parameters(self.model)
            # buffers are copied, not averaged: some are constants such as -inf attention masks
            for ema_buffer, buffer in zip(self.ema.module.buffers(), self.model.buffers()):
                ema_buffer.copy_(buffer)
        return float(loss)

    def predict_scores(self, dataset: Dataset, weights: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`gather_scores` of the ``"ema"`` or ``"raw"`` weights (None: those the last
        evaluation chose, :attr:`weights`)."""
        weights = weights or self.weights
        if weights not in ("ema", "raw") or (weights == "ema" and self.ema is None):
            raise ValueError(f"no {weights!r} weights to score (EMA on: {self.ema is not None})")
        model = self.ema.module if weights == "ema" else self.model
        return gather_scores(model, dataset, batch_size=self.train_cfg["eval_batch_size"],
                             num_workers=self.train_cfg["num_workers"], device=self.device,
                             dist_info=self.dist, precision=self.precision, progress=self._progress())

    def evaluate(self, dataset: Dataset, weights: str | None = None) -> dict[str, float]:
        return compute_metrics(*self.predict_scores(dataset, weights), domain=self.domain)

    def evaluate_both(self, dataset: Dataset) -> tuple[str, dict[str, dict[str, float]]]:
        """Metrics of the raw and (when on) the EMA weights, and the choice of ``train.eval_weights``."""
        choice = self.train_cfg["eval_weights"]
        kinds = ["raw"] if self.ema is None else {"best": ["raw", "ema"], "ema": ["ema"], "raw": ["raw"]}[choice]
        metrics = {kind: self.evaluate(dataset, kind) for kind in kinds}
        if len(metrics) == 1:
            return kinds[0], metrics
        monitor = self.train_cfg["monitor"]
        return ("ema" if metrics["ema"][monitor] >= metrics["raw"][monitor] else "raw"), metrics

    def _progress(self) -> bool:
        return bool(self.train_cfg["progress"]) and self.dist.is_main

    def fit(self, train_set: Dataset, eval_set: Dataset, resume: str | Path | dict[str, Any] | None = None,
            resume_source: str | None = None) -> list[dict[str, float]]:
        """Train ``train.epochs`` epochs (from the state of ``resume``, a checkpoint file or one
        already read by :func:`load_checkpoint`, named ``resume_source`` in messages, when given),
        evaluating after each. Resuming with settings other than the checkpoint's is allowed (e.g.
        more epochs) and prints a note naming them."""
        tc = self.train_cfg
        self.eval_set = eval_set
        if not isinstance(train_set, (SeededItems, CachedFeatures)):  # cached features draw no augmentation
            train_set = SeededItems(train_set, tc["seed"])
        steps = self.steps_per_epoch(train_set)
        self.train_images = len(train_set)  # what a report of the run quotes
        self.total_steps = tc["epochs"] * steps if self.optimizer is not None else 0
        if self.optimizer is not None:
            self.build_scheduler(steps)
        if isinstance(resume, dict):
            self.load_state_dict(resume, source=resume_source or "the checkpoint to resume")
        elif resume is not None:
            self.load_state_dict(load_checkpoint(resume), source=str(resume))
        if self.dist.is_main:
            save_config(self.config, self.output_dir / "config.yaml")
        if self.optimizer is None:  # nothing to train (e.g. zero-shot CLIP): evaluate once
            if not self.history:
                self._end_epoch(eval_set, epoch_time=0.0, train_loss=float("nan"), epoch=0)
            return self.history
        checkpoint_every = tc["checkpoint_every"]
        while self.epoch < tc["epochs"]:
            start = time.perf_counter()
            self.model.train()
            loader = self._train_loader(train_set, self.epoch, self.step_in_epoch)
            bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{tc['epochs']}", leave=False,
                       initial=self.step_in_epoch, total=steps, disable=not self._progress())
            for batch in bar:
                loss = self.train_step(batch)
                self._loss_sum += loss
                self._loss_count += 1
                self.step_in_epoch += 1
                bar.set_postfix(loss=f"{loss:.4f}")
                if checkpoint_every and self.step_in_epoch % checkpoint_every == 0 and self.step_in_epoch < steps:
                    self.save("last.pt")
            bar.close()
            train_loss = self._mean_train_loss()
            self.epoch += 1
            self.step_in_epoch, self._loss_sum, self._loss_count = 0, 0.0, 0
            self._end_epoch(eval_set, time.perf_counter() - start, train_loss, self.epoch)
        return self.history

    def _mean_train_loss(self) -> float:
        """Mean batch loss of the epoch, averaged over every process."""
        totals = torch.tensor([self._loss_sum, self._loss_count], dtype=torch.float64, device=self.device)
        if self.dist.distributed:
            dist.all_reduce(totals)
        return float(totals[0] / totals[1].clamp(min=1))

    def _end_epoch(self, eval_set: Dataset, epoch_time: float, train_loss: float, epoch: int) -> None:
        monitor = self.train_cfg["monitor"]
        self.weights, both = self.evaluate_both(eval_set)
        metrics = both[self.weights]
        record = {"epoch": epoch, "train_loss": train_loss, "epoch_time_s": epoch_time,
                  **{f"lr_{g['name']}": g["lr"] for g in (self.optimizer.param_groups if self.optimizer else [])},
                  **metrics, "weights": self.weights, **{f"{monitor}_{kind}": m[monitor] for kind, m in both.items()}}
        self.history.append(record)
        improved = metrics[monitor] > self.best["value"]
        if improved:
            self.best = {"value": metrics[monitor], "epoch": epoch, "weights": self.weights}
        if self.dist.is_main:
            last = self.save("last.pt")
            if improved:  # the same state: best.pt is a second name of this last.pt
                atomic_link(last, last.with_name("best.pt"))
            self._write_logs()
            if self._progress():
                tqdm.write(f"epoch {epoch}: loss {train_loss:.4f}  {monitor} {metrics[monitor]:.4f} "
                           f"({self.weights} weights)")

    def _write_logs(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(self.history, indent=1), self.output_dir / "metrics.json")
        columns = list(dict.fromkeys(k for row in self.history for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(buffer.getvalue(), self.output_dir / "metrics.csv")
