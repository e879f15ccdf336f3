"""Training engine, checkpoints and the ``sspa train`` / ``eval`` / ``predict`` commands.

Optimisation follows SPEC §1 "Training defaults": AdamW with a lower learning rate for the image
encoder than for the head, a linear warm-up then cosine decay (``LinearLR`` → ``CosineAnnealingLR``
in ``SequentialLR``, stepped per batch), an exponential moving average of the parameters (decay
0.9997 via ``torch.optim.swa_utils.AveragedModel``; buffers are copied, not averaged;
evaluation uses the EMA weights when it is on), mixed precision on CUDA only, gradient-norm clipping, and the loss of eq. 19
(:func:`sspa_core.model.build_loss`). Every epoch ends with an evaluation by
:func:`sspa_core.metrics.evaluate`, ``last.pt``/``best.pt`` checkpoints and JSON + CSV logs.

Determinism and resume: the training order of epoch ``e`` is a permutation drawn from
``(seed, e)`` (``DistributedSampler``, also with one process) and every item's augmentation is
seeded by ``(seed, e, index)``, so a run resumed from a checkpoint, even one written inside an
epoch (``train.checkpoint_every``), replays exactly the batches of an uninterrupted run.
Checkpoints hold only tensors and primitive containers (loaded with ``weights_only=True``);
frozen parameters are left out of them and rebuilt from the run's config.

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
``DistributedDataParallel`` (NCCL on CUDA, gloo on CPU), ``train.batch_size`` is the global batch
split across processes, and evaluation gathers every process's scores and drops the padding
duplicates of ``DistributedSampler``. Only process 0 writes files; a resumed distributed run
restores process 0's random state on every process.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import random
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from sspa_core.config import load_config, merge, save_config, validate_config
from sspa_core.features import CachedFeatures, batch_loader
from sspa_core.paths import OUTPUT_DIR

CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------- processes, seeds


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op without it)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` → the CUDA device of this process when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (every device's) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive NumPy's and Python's seeds from torch's worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """Every random state as tensors and primitives (storable with ``weights_only`` loading)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss": py_state[2]},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(int(v) for v in py_state["state"].tolist()), py_state["gauss"]))


class SeededItems(Dataset):
    """Wraps a dataset so that item ``i`` of epoch ``e`` draws its augmentation from a torch
    generator seeded by ``(seed, e, i)``: the same pixels in any process, worker or resumed run."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
            return self.dataset[i]


# ----------------------------------------------------------------------------- checkpoints


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``: a
    crash leaves either the previous file or the new one, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :class:`Trainer` (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an sspa training checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def check_compatible(ckpt: dict[str, Any], model_name: str, label_names: list[str], source: str = "checkpoint") -> None:
    """Refuse a checkpoint made for another model or another label set, saying what differs."""
    if ckpt["model_name"] != model_name:
        raise ValueError(f"{source} was trained for model {ckpt['model_name']!r}, not {model_name!r}")
    saved = list(ckpt["label_names"])
    if saved != list(label_names):
        if len(saved) != len(label_names):
            detail = f"{len(saved)} labels in the checkpoint, {len(label_names)} here"
        elif sorted(saved) == sorted(label_names):
            detail = "same labels in another order"
        else:
            missing = sorted(set(saved) ^ set(label_names))[:5]
            detail = f"labels differ, e.g. {missing}"
        raise ValueError(f"{source} was trained for another label set ({detail})")


def _frozen_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state without its frozen parameters (those are rebuilt from the config)."""
    frozen = _frozen_names(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load :func:`trainable_state` output; anything else missing or unexpected is an error."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = sorted(set(missing) - _frozen_names(model))
    if missing or unexpected:
        raise ValueError(
            f"{source} does not fit this model: missing {missing[:5]}, unexpected {sorted(unexpected)[:5]}"
        )


# ----------------------------------------------------------------------------- the engine


def _flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat_metrics(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, np.floating, np.integer)):
            out[f"{prefix}{key}"] = float(value)
    return out


class _Forward(nn.Module):
    """What DDP wraps: images through ``model(images)``, cached features through
    ``model.forward_features(x0, X)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        if "image" in batch:
            return self.model(batch["image"])
        return self.model.forward_features(batch["x0"], batch["X"])


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    """Trains one model on one dataset (images, or cached features), see the module docstring.

    ``config`` is a resolved config (layout of :data:`sspa_core.config.DEFAULTS`): its ``train``
    section sets the optimisation, and the whole of it is stored in checkpoints. ``model_name``
    and ``label_names`` identify the run (a checkpoint of another run is refused); ``domain``
    picks the metric set of :func:`sspa_core.metrics.evaluate`.
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, label_names: list[str], model_name: str,
                 config: dict[str, Any], output_dir: str | Path, device: torch.device,
                 dist_info: DistInfo | None = None, domain: str = "natural"):
        self.config = config
        self.train_cfg = config["train"]
        self.model = model.to(device)
        self.loss_fn = loss_fn
        self.label_names = list(label_names)
        self.model_name = model_name
        self.output_dir = Path(output_dir)
        self.device = device
        self.dist = dist_info or DistInfo()
        self.domain = domain
        groups = model.param_groups()
        tc = self.train_cfg
        param_groups = [
            {"params": groups["head"], "lr": tc["lr"], "name": "head"},
            {"params": groups["image_encoder"], "lr": tc["encoder_lr"], "name": "image_encoder"},
        ]
        self.param_groups = [g for g in param_groups if g["params"]]
        self.trainable = [p for g in self.param_groups for p in g["params"]]
        self.optimizer = (
            torch.optim.AdamW(self.param_groups, weight_decay=tc["weight_decay"]) if self.trainable else None
        )
        self.scheduler: SequentialLR | CosineAnnealingLR | None = None
        self.use_amp = bool(tc["amp"]) and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(tc["ema_decay"]), use_buffers=False)
            if tc["ema"] and self.trainable else None
        )
        self.forward = _Forward(self.model)
        if self.dist.distributed and self.trainable:
            ids = [device.index] if device.type == "cuda" else None
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward, device_ids=ids, find_unused_parameters=True
            )
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] = {"value": -math.inf, "epoch": 0}
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
                            worker_init_fn=_seed_worker, generator=generator, pin_memory=self.device.type == "cuda")

    def _per_rank_batch(self) -> int:
        batch = self.train_cfg["batch_size"]
        if batch % self.dist.world_size:
            raise ValueError(f"train.batch_size={batch} is not divisible by the {self.dist.world_size} processes")
        return batch // self.dist.world_size

    def steps_per_epoch(self, dataset: Dataset) -> int:
        per_rank_items = math.ceil(len(dataset) / self.dist.world_size)
        return math.ceil(per_rank_items / self._per_rank_batch())

    def build_scheduler(self, steps_per_epoch: int) -> None:
        total = max(1, self.train_cfg["epochs"] * steps_per_epoch)
        warmup = min(round(self.train_cfg["warmup_epochs"] * steps_per_epoch), total - 1)
        cosine = CosineAnnealingLR(self.optimizer, T_max=max(1, total - warmup))
        if warmup > 0:
            linear = LinearLR(self.optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup)
            self.scheduler = SequentialLR(self.optimizer, [linear, cosine], milestones=[warmup])
        else:
            self.scheduler = cosine

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
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "best": self.best,
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
        self.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        self.epoch = int(ckpt["epoch"])
        self.step_in_epoch = int(ckpt["step_in_epoch"])
        self._loss_sum = float(ckpt["loss_sum"])
        self._loss_count = int(ckpt["loss_count"])
        self.history = list(ckpt["history"])
        self.best = dict(ckpt["best"])

    def save(self, name: str) -> Path | None:
        if not self.dist.is_main:
            return None
        return atomic_save(self.state_dict(), self.output_dir / "checkpoints" / name)

    # -- training and evaluation

    def train_step(self, batch: dict[str, Any]) -> float:
        """One optimiser step on one batch; returns the loss."""
        batch = _to_device(batch, self.device)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
        with autocast:
            outputs = self.forward(batch)
            loss = self.loss_fn(outputs, batch["target"], batch["mask"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.train_cfg["grad_clip"] > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable, self.train_cfg["grad_clip"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
            # buffers are copied, not averaged: some are constants such as -inf attention masks
            for ema_buffer, buffer in zip(self.ema.module.buffers(), self.model.buffers()):
                ema_buffer.copy_(buffer)
        return float(loss.detach())

    def predict_scores(self, dataset: Dataset, use_ema: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`gather_scores` of the EMA weights (when on and ``use_ema``) or the raw ones."""
        model = self.ema.module if (use_ema and self.ema is not None) else self.model
        return gather_scores(model, dataset, batch_size=self.train_cfg["eval_batch_size"],
                             num_workers=self.train_cfg["num_workers"], device=self.device,
                             dist_info=self.dist, amp=self.use_amp, progress=self._progress())

    def evaluate(self, dataset: Dataset, use_ema: bool = True) -> dict[str, float]:
        return compute_metrics(*self.predict_scores(dataset, use_ema), domain=self.domain)

    def _progress(self) -> bool:
        return bool(self.train_cfg["progress"]) and self.dist.is_main

    def fit(self, train_set: Dataset, eval_set: Dataset, resume: str | Path | None = None) -> list[dict[str, float]]:
        """Train ``train.epochs`` epochs (from ``resume``'s state when given), evaluating after each."""
        tc = self.train_cfg
        self.eval_set = eval_set
        if not isinstance(train_set, (SeededItems, CachedFeatures)):  # cached features draw no augmentation
            train_set = SeededItems(train_set, tc["seed"])
        steps = self.steps_per_epoch(train_set)
        if self.optimizer is not None:
            self.build_scheduler(steps)
        if resume is not None:
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
        metrics = self.evaluate(eval_set)
        record = {"epoch": epoch, "train_loss": train_loss, "epoch_time_s": epoch_time,
                  **{f"lr_{g['name']}": g["lr"] for g in (self.optimizer.param_groups if self.optimizer else [])},
                  **metrics}
        self.history.append(record)
        monitor = self.train_cfg["monitor"]
        if monitor not in metrics:
            raise ValueError(f"train.monitor={monitor!r} is not among the metrics: {sorted(metrics)}")
        improved = metrics[monitor] > self.best["value"]
        if improved:
            self.best = {"value": metrics[monitor], "epoch": epoch}
        if self.dist.is_main:
            self.save("last.pt")
            if improved:
                self.save("best.pt")
            self._write_logs()
            if self._progress():
                tqdm.write(f"epoch {epoch}: loss {train_loss:.4f}  {monitor} {metrics[monitor]:.4f}")

    def _write_logs(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(json.dumps(self.history, indent=1), self.output_dir / "metrics.json")
        columns = list(dict.fromkeys(k for row in self.history for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.history)
        _atomic_write_text(buffer.getvalue(), self.output_dir / "metrics.csv")


@torch.no_grad()
def gather_scores(model: nn.Module, dataset: Dataset, *, batch_size: int = 64, num_workers: int = 0,
                  device: torch.device = torch.device("cpu"), dist_info: DistInfo | None = None,
                  amp: bool = False, progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores ŷ (eq. 18), targets and masks of the whole ``dataset`` (images or cached features)
    in dataset order; under DDP each process scores its shard, the shards are all-gathered and
    the padding duplicates of ``DistributedSampler`` dropped."""
    dist_info = dist_info or DistInfo()
    was_training = model.training
    model.eval()
    forward = _Forward(model)
    sampler = (DistributedSampler(dataset, dist_info.world_size, dist_info.rank, shuffle=False)
               if dist_info.distributed else None)
    loader = batch_loader(dataset, batch_size, sampler, num_workers=num_workers, worker_init_fn=_seed_worker,
                          pin_memory=device.type == "cuda")
    scores, targets, masks, indices = [], [], [], []
    autocast = torch.autocast("cuda", dtype=torch.float16) if amp else nullcontext()
    for batch in tqdm(loader, desc="evaluating", leave=False, disable=not progress):
        batch = _to_device(batch, device)
        with autocast:
            scores.append(forward(batch)["score"].float())
        targets.append(batch["target"].float())
        masks.append(batch["mask"].float())
        indices.append(torch.as_tensor(batch["index"], device=device))
    model.train(was_training)
    local = [torch.cat(t) for t in (scores, targets, masks, indices)]
    if dist_info.distributed:
        local = [_all_gather_cat(t) for t in local]
    score, target, mask, index = (t.cpu().numpy() for t in local)
    _, first = np.unique(index, return_index=True)
    return score[first], target[first], mask[first]


def compute_metrics(scores: np.ndarray, targets: np.ndarray, masks: np.ndarray | None, domain: str) -> dict[str, float]:
    """:func:`sspa_core.metrics.evaluate`, flattened to ``name -> float``."""
    from sspa_core.metrics import evaluate

    return _flat_metrics(evaluate(scores, targets, masks, domain=domain))


def _all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


# ----------------------------------------------------------------------------- runs from a config


def _dataset_id(config: dict[str, Any], split: str) -> str:
    """Name of a dataset view for the feature cache: name + a hash of its root and arguments."""
    ds = config["dataset"]
    kwargs = ds["kwargs"] if split == ds["train_split"] else {**ds["kwargs"], **ds["eval_kwargs"]}
    digest = hashlib.sha256(json.dumps([str(Path(ds["root"]).resolve()) if ds["root"] else "", kwargs],
                                       sort_keys=True).encode()).hexdigest()[:10]
    return f"{ds['name']}-{digest}"


def build_dataset(config: dict[str, Any], split: str, augment: bool) -> Dataset:
    """The dataset of ``split`` (``dataset.kwargs``, plus ``dataset.eval_kwargs`` for any split
    other than the training one) with the augmenting or the evaluation transform."""
    from sspa_core.data import build_transform, get_dataset

    ds = config["dataset"]
    kwargs = dict(ds["kwargs"]) if split == ds["train_split"] else {**ds["kwargs"], **ds["eval_kwargs"]}
    transform = build_transform(ds["image_size"], train=augment)
    return get_dataset(ds["name"], ds["root"], split, transform=transform, image_size=ds["image_size"], **kwargs)


def check_run_config(config: dict[str, Any]) -> None:
    """Fail fast (before any weights or images load) on values no run can use."""
    from sspa_core.baselines import MODEL_NAMES
    from sspa_core.metrics import DOMAINS
    from sspa_core.model import SSPAConfig

    if config["model"]["name"] not in MODEL_NAMES:
        raise ValueError(f"unknown model {config['model']['name']!r} (model.name); valid: {', '.join(MODEL_NAMES)}")
    if config["dataset"]["domain"] not in DOMAINS:
        raise ValueError(f"unknown metric domain {config['dataset']['domain']!r} (dataset.domain); valid: {DOMAINS}")
    SSPAConfig.from_dict(config["model"]["sspa"])
    tc = config["train"]
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if tc[key] < 1:
            raise ValueError(f"train.{key} must be >= 1, got {tc[key]}")
    if tc["cache_features"] and config["model"]["name"] == "clip_ft":
        raise ValueError("model clip_ft fine-tunes the image encoder: it cannot train on cached features "
                         "(use model.name=unid for a linear probe, or train.cache_features=false)")


def build_model_from_config(config: dict[str, Any], label_names: list[str], device: torch.device):
    """Backbone + model + loss of a resolved config; the image encoder is frozen when
    ``train.freeze_image_encoder`` or ``train.cache_features`` is set."""
    from sspa_core.backbone import load_backbone
    from sspa_core.baselines import build_model
    from sspa_core.model import SSPAConfig, build_loss

    check_run_config(config)
    mc, tc = config["model"], config["train"]
    backbone = load_backbone(mc["backbone"], pretrained=mc["pretrained"] or None,
                             image_size=config["dataset"]["image_size"], device=str(device))
    if tc["freeze_image_encoder"] or tc["cache_features"]:
        backbone.freeze_image()
    sspa_config = SSPAConfig.from_dict(mc["sspa"])
    descriptions = None
    if mc["descriptions"]:
        from sspa_core.descriptions import load_descriptions

        descriptions = load_descriptions(mc["descriptions"])
    model = build_model(mc["name"], backbone, label_names, config=sspa_config, descriptions=descriptions)
    return backbone, model.to(device), build_loss(sspa_config)


def default_output_dir(config: dict[str, Any]) -> Path:
    return Path(config["output_dir"]) if config["output_dir"] else OUTPUT_DIR / config["dataset"]["name"] / config["model"]["name"]


def train_from_config(config: dict[str, Any], resume: str | Path | None = None,
                      dist_info: DistInfo | None = None) -> Trainer:
    """Train the run a resolved config describes; returns the finished :class:`Trainer`.

    ``resume="auto"`` continues from ``<output_dir>/checkpoints/last.pt`` when it exists.
    """
    config = validate_config(config)
    check_run_config(config)
    tc, ds = config["train"], config["dataset"]
    device = resolve_device(tc["device"], int(os.environ.get("LOCAL_RANK", "0")))
    dist_info = dist_info or init_distributed(device)
    output_dir = default_output_dir(config)
    config = {**config, "output_dir": str(output_dir)}
    if resume == "auto":
        last = output_dir / "checkpoints" / "last.pt"
        resume = last if last.is_file() else None
    seed_everything(tc["seed"])
    train_set = build_dataset(config, ds["train_split"], augment=not tc["cache_features"])
    eval_set = build_dataset(config, ds["eval_split"], augment=False)
    label_names = list(train_set.label_names)
    if list(eval_set.label_names) != label_names:
        raise ValueError(f"splits {ds['train_split']!r} and {ds['eval_split']!r} have different label sets")
    backbone, model, loss_fn = build_model_from_config(config, label_names, device)
    if tc["cache_features"]:
        train_set, eval_set = (_features(config, backbone, s, split, device, dist_info)
                               for s, split in ((train_set, ds["train_split"]), (eval_set, ds["eval_split"])))
    seed_everything(tc["seed"])
    trainer = Trainer(model, loss_fn, label_names, config["model"]["name"], config, output_dir,
                      device, dist_info, domain=ds["domain"])
    trainer.fit(train_set, eval_set, resume=resume)
    return trainer


def _features(config, backbone, dataset, split, device, dist_info: DistInfo):
    from sspa_core.features import cached_features

    tc = config["train"]

    def load():
        return cached_features(backbone, dataset, backbone_name=config["model"]["backbone"],
                               dataset_id=_dataset_id(config, split), split=split,
                               cache_dir=tc["feature_cache_dir"] or None,
                               dtype=tc["feature_dtype"], batch_size=tc["eval_batch_size"],
                               num_workers=tc["num_workers"], device=device,
                               progress=bool(tc["progress"]) and dist_info.is_main)

    if not dist_info.distributed:
        return load()
    if dist_info.is_main:  # process 0 computes, the others read its entry
        features = load()
        dist.barrier()
        return features
    dist.barrier()
    return load()


#: Each model's own training protocol, applied by :func:`compare_models` over the config's
#: ``train`` section. SSPA trains the image encoder and keeps the text encoder frozen (paper
#: §IV-B: "The text encoder remains frozen"); so do its Uni-D ablation (Table IX) and CLIP-FT,
#: which fine-tunes the image encoder. The DualCoOp-style head keeps all of CLIP frozen, as in
#: its paper, and follows the config (feature cache or not); zero-shot CLIP trains nothing.
PAPER_PROTOCOL: dict[str, dict[str, Any]] = {
    name: {"cache_features": False, "freeze_image_encoder": False} for name in ("sspa", "unid", "clip_ft")
}
#: With ``protocol="config"`` every model follows the config, except CLIP-FT, which cannot
#: train on cached features of a frozen encoder.
CONFIG_PROTOCOL: dict[str, dict[str, Any]] = {"clip_ft": PAPER_PROTOCOL["clip_ft"]}


def compare_models(config: dict[str, Any], model_names: list[str] | tuple[str, ...],
                   seeds: list[int] | tuple[int, ...] = (0,), protocol: str = "paper") -> list[dict[str, Any]]:
    """Train every model of ``model_names`` with every seed on the same data, epochs, batch
    size and learning rates (an equal budget); outputs go to ``<output_dir>/<model>-seed<seed>``.

    ``protocol="paper"`` trains each model as its paper does (:data:`PAPER_PROTOCOL`: the image
    encoder trained for SSPA, Uni-D and CLIP-FT); ``"config"`` keeps the config's encoder
    settings for all but CLIP-FT (e.g. every head on cached features, for a quick look).
    One row per run: ``model``, ``seed``, ``metrics`` (last epoch, on the evaluation split),
    ``history``, ``output_dir``, and the evaluation ``scores``/``targets``/``masks`` (dataset order)."""
    protocols = {"paper": PAPER_PROTOCOL, "config": CONFIG_PROTOCOL}
    if protocol not in protocols:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {sorted(protocols)}")
    config = validate_config(config)
    base = default_output_dir(config)
    rows = []
    for name in model_names:
        for seed in seeds:
            run = merge(config, {"model": {"name": name}, "output_dir": str(base / f"{name}-seed{seed}"),
                                 "train": {"seed": seed, **protocols[protocol].get(name, {})}})
            trainer = train_from_config(run)
            scores, targets, masks = trainer.predict_scores(trainer.eval_set)
            rows.append({"model": name, "seed": seed, "metrics": trainer.history[-1], "history": trainer.history,
                         "output_dir": trainer.output_dir, "scores": scores, "targets": targets, "masks": masks})
    return rows


def load_trained_model(checkpoint: str | Path, device: str | torch.device = "cpu", use_ema: bool = True,
                       overrides: list[str] | tuple[str, ...] = ()):
    """Rebuild the model of a checkpoint (EMA weights when it holds them and ``use_ema``).
    Returns ``(model, config, checkpoint dict)``; ``overrides`` patch the stored config."""
    from sspa_core.config import parse_override

    ckpt = load_checkpoint(checkpoint)
    config = validate_config(ckpt["config"])
    for text in overrides:
        config = validate_config(merge(config, parse_override(text)))
    device = torch.device(device) if not isinstance(device, torch.device) else device
    _, model, _ = build_model_from_config(config, list(ckpt["label_names"]), device)
    state = ckpt["ema"]["model"] if (use_ema and ckpt["ema"] is not None) else ckpt["model"]
    load_trainable_state(model, state, str(checkpoint))
    model.eval()
    return model, config, ckpt


def evaluate_checkpoint(checkpoint: str | Path, split: str | None = None, device: str = "auto",
                        use_ema: bool = True, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, float]:
    """Metrics of a checkpoint on ``split`` (default: the config's evaluation split)."""
    device = resolve_device(device)
    model, config, ckpt = load_trained_model(checkpoint, device, use_ema, overrides)
    split = split or config["dataset"]["eval_split"]
    dataset = build_dataset(config, split, augment=False)
    check_compatible(ckpt, config["model"]["name"], list(dataset.label_names), str(checkpoint))
    tc = config["train"]
    scores = gather_scores(model, dataset, batch_size=tc["eval_batch_size"], num_workers=tc["num_workers"],
                           device=device, amp=bool(tc["amp"]) and device.type == "cuda", progress=bool(tc["progress"]))
    return compute_metrics(*scores, domain=config["dataset"]["domain"])


@torch.no_grad()
def predict_images(model: nn.Module, image_size: int, paths: list[str | Path],
                   device: str | torch.device = "cpu") -> tuple[torch.Tensor, dict[str, Any]]:
    """Scores ŷ [N, C] (eq. 18) of image files and the model's raw outputs (patch weights, gates)."""
    from PIL import Image

    from sspa_core.data import build_transform

    transform = build_transform(image_size, train=False)
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        with Image.open(path) as image:
            images.append(transform(image.convert("RGB")))
    outputs = model(torch.stack(images).to(device))
    return outputs["score"].float().cpu(), outputs


def top_labels(scores: torch.Tensor, label_names: list[str], k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``k`` highest-scoring labels of each row, with their scores."""
    if k < 1:
        raise ValueError(f"top-k must be >= 1, got {k}")
    values, indices = scores.topk(min(k, scores.shape[1]), dim=1)
    return [[(label_names[j], float(v)) for v, j in zip(row_v.tolist(), row_i.tolist())]
            for row_v, row_i in zip(values, indices)]


# ----------------------------------------------------------------------------- command line


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    """Arguments of ``sspa train``, ``sspa eval`` and ``sspa predict``."""
    if command == "train":
        parser.add_argument("--config", required=True,
                            help="a shipped config name (e.g. synthetic_natural, coco) or a YAML path")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config value, e.g. --set train.lr=3e-4 (repeatable)")
        parser.add_argument("--output-dir", help="where checkpoints, logs and the resolved config go")
        parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                            help="continue a run (default: <output-dir>/checkpoints/last.pt)")
        return
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by sspa train")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    if command == "eval":
        parser.add_argument("--split", help="dataset split (default: the config's eval_split)")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="patch the stored config, e.g. --set dataset.root=/data/coco")
        parser.add_argument("--output", help="also write the metrics to this JSON file")
    elif command == "predict":
        parser.add_argument("images", nargs="+", help="image files")
        parser.add_argument("--top-k", type=int, default=5)
        parser.add_argument("--figure", help="save the patch-importance and gate maps of the images here")
    else:
        raise ValueError(f"unknown command {command!r} for sspa_core.training")


def run_cli(args: argparse.Namespace) -> int:
    if args.command == "train":
        overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
        config = load_config(args.config, overrides)
        trainer = train_from_config(config, resume=args.resume)
        if trainer.dist.is_main:
            last = trainer.history[-1]
            monitor = config["train"]["monitor"]
            print(f"{monitor} {last[monitor]:.4f} after epoch {last['epoch']}; best {trainer.best['value']:.4f} "
                  f"(epoch {trainer.best['epoch']}); outputs in {trainer.output_dir}")
        if dist.is_initialized():
            dist.destroy_process_group()
        return 0
    if args.command == "eval":
        metrics = evaluate_checkpoint(args.checkpoint, args.split, args.device, not args.no_ema, args.overrides)
        for key, value in metrics.items():
            print(f"{key:>28s}  {value:.4f}")
        if args.output:
            Path(args.output).write_text(json.dumps(metrics, indent=1))
        return 0
    device = resolve_device(args.device)
    model, config, ckpt = load_trained_model(args.checkpoint, device, not args.no_ema)
    scores, outputs = predict_images(model, config["dataset"]["image_size"], args.images, device)
    label_names = list(ckpt["label_names"])
    for path, row in zip(args.images, top_labels(scores, label_names, args.top_k)):
        print(path)
        for label, score in row:
            print(f"  {score:.3f}  {label}")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        from PIL import Image

        from sspa_core.viz import prediction_figure

        size = config["dataset"]["image_size"]
        images = [Image.open(p).convert("RGB").resize((size, size)) for p in args.images]
        figure = prediction_figure(images, scores, label_names, outputs.get("patch_weights"),
                                   outputs.get("gates", {}).get("visual"), top_k=min(args.top_k, 3))
        figure.savefig(args.figure, dpi=120, bbox_inches="tight")
        print(f"figure saved to {args.figure}")
    return 0
