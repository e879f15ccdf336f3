"""The training engine, in the shape of open_clip's trainer.

- :mod:`~sspa_core.engine.runtime`: devices, the process group, seeds and random states;
- :mod:`~sspa_core.engine.checkpoint`: atomic writes, safe reads, compatibility checks;
- :mod:`~sspa_core.engine.schedule`: the warm-up + cosine learning-rate schedule;
- :mod:`~sspa_core.engine.optim`: optimiser parameter groups (learning rates, weight decay);
- :mod:`~sspa_core.engine.step`: one optimisation step and its mixed precision;
- :mod:`~sspa_core.engine.evaluation`: scores of a dataset (also under DDP) and their metrics;
- :mod:`~sspa_core.engine.trainer`: the training loop (:class:`Trainer`);
- :mod:`~sspa_core.engine.runs`: runs from a config (train, compare, evaluate, predict).
"""

from sspa_core.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    check_compatible,
    load_checkpoint,
    load_trainable_state,
    require_writable_dir,
    trainable_state,
)
from sspa_core.engine.evaluation import check_monitor, compute_metrics, gather_scores, metric_names
from sspa_core.engine.optim import optimizer_groups, uses_weight_decay
from sspa_core.engine.runs import (
    CONFIG_PROTOCOL,
    PAPER_PROTOCOL,
    build_dataset,
    build_model_from_config,
    check_run_config,
    compare_models,
    default_output_dir,
    evaluate_checkpoint,
    load_trained_model,
    predict_images,
    top_labels,
    train_from_config,
)
from sspa_core.engine.runtime import (
    DistInfo,
    SeededItems,
    init_distributed,
    resolve_device,
    rng_state,
    seed_everything,
    seed_worker,
    set_rng_state,
)
from sspa_core.engine.schedule import warmup_cosine
from sspa_core.engine.step import AMP_DTYPES, Precision, optimisation_step, to_float
from sspa_core.engine.trainer import Trainer

__all__ = [
    "AMP_DTYPES", "CHECKPOINT_FORMAT", "CONFIG_PROTOCOL", "PAPER_PROTOCOL", "DistInfo", "Precision", "SeededItems",
    "Trainer", "atomic_save", "build_dataset", "build_model_from_config", "check_compatible", "check_monitor",
    "check_run_config", "compare_models", "compute_metrics", "default_output_dir", "evaluate_checkpoint",
    "gather_scores", "init_distributed", "load_checkpoint", "load_trainable_state", "load_trained_model",
    "metric_names", "optimisation_step", "optimizer_groups", "predict_images", "require_writable_dir",
    "resolve_device", "rng_state", "seed_everything", "seed_worker", "set_rng_state", "to_float", "top_labels",
    "train_from_config", "trainable_state", "uses_weight_decay", "warmup_cosine",
]
