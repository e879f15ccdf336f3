"""The training engine, in the shape of open_clip's trainer.

- :mod:`~sspa_core.engine.runtime`: devices, the process group and random states;
- :mod:`~sspa_core.engine.checkpoint`: safe reads and compatibility checks;
- :mod:`~sspa_core.engine.evaluation`: scores of a dataset (also under DDP) and their metrics;
- :mod:`~sspa_core.engine.trainer`: the training loop (:class:`Trainer`);
- :mod:`~sspa_core.engine.quick_fit`: a few steps of a head on cached features (notebooks);
- :mod:`~sspa_core.engine.runs`: runs from a config (train, compare, evaluate, predict);
- :mod:`~sspa_core.engine.heads`: the trained heads shipped in ``data/heads/``.

The pieces every optimisation loop shares (atomic writes, seeds, the warm-up + cosine schedule,
one optimisation step and its mixed precision, parameter groups) live below the method, in
:mod:`sspa_core.training`; the engine re-exports them. Names are imported on first use, so
``import sspa_core.engine.checkpoint`` does not load the trainer, the data or the models.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "sspa_core.training": (
        "AMP_DTYPES", "Precision", "atomic_save", "optimisation_step", "optimizer_groups", "seed_everything",
        "to_float", "uses_weight_decay", "warmup_cosine",
    ),
    "sspa_core.engine.checkpoint": (
        "CHECKPOINT_FORMAT", "check_compatible", "load_checkpoint", "load_trainable_state", "require_writable_dir",
        "trainable_state",
    ),
    "sspa_core.engine.evaluation": ("check_monitor", "compute_metrics", "gather_scores", "metric_names"),
    "sspa_core.engine.quick_fit": ("fit_on_features",),
    "sspa_core.engine.runs": (
        "CONFIG_PROTOCOL", "PAPER_PROTOCOL", "build_dataset", "build_model_from_config", "check_run_config",
        "compare_models", "default_output_dir", "evaluate_checkpoint", "load_trained_model", "predict_images",
        "top_labels", "train_from_config",
    ),
    "sspa_core.engine.runtime": (
        "DistInfo", "SeededItems", "init_distributed", "resolve_device", "rng_state", "seed_worker", "set_rng_state",
    ),
    "sspa_core.engine.trainer": ("Trainer",),
}
#: exported name -> the module that defines it
_HOME = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use (PEP 562)."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
