"""Runs described by a config: build the dataset and model, train, compare models, evaluate a
checkpoint and predict the labels of image files.

A run is a resolved config (:func:`sspa_core.config.load_config`); its outputs (checkpoints, logs,
the resolved config) go to ``output_dir`` (default ``outputs/<dataset>/<model>``).
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from sspa_core.config import check_settings, merge, parse_override, validate_config
from sspa_core.engine.checkpoint import (
    check_compatible,
    check_same_settings,
    load_checkpoint,
    load_trainable_state,
    require_writable_dir,
)
from sspa_core.engine.evaluation import check_monitor, compute_metrics, gather_scores
from sspa_core.engine.run_folder import claim_run_folder
from sspa_core.engine.runtime import DistInfo, init_distributed, resolve_device
from sspa_core.engine.trainer import EVAL_WEIGHTS, WEIGHTS, Trainer
from sspa_core.paths import CACHE_DIR, OUTPUT_DIR
from sspa_core.training import Precision, check_amp_dtype, seed_everything


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
    from sspa_core.backbone import preprocess_cfg
    from sspa_core.data import build_transform, get_dataset

    ds, mc = config["dataset"], config["model"]
    kwargs = dict(ds["kwargs"]) if split == ds["train_split"] else {**ds["kwargs"], **ds["eval_kwargs"]}
    preprocess = preprocess_cfg(mc["backbone"], mc["pretrained"] or None, ds["image_size"])
    transform = build_transform(ds["image_size"], train=augment, preprocess=preprocess)
    return get_dataset(ds["name"], ds["root"], split, transform=transform, image_size=ds["image_size"], **kwargs)


#: models that fine-tune the image encoder, so cannot train on cached features
FINE_TUNED = ("clip_ft", "clip_ft_image")

def check_run_config(config: dict[str, Any]) -> None:
    """Fail fast (before any weights or images load) on values no run can use: the keys, types and
    ranges of :data:`sspa_core.config.SCHEMA`, then the names its owners define (model, domain,
    dense features, dataset, feature dtype, weights), ``train.monitor`` (a metric of the domain's
    metric set) and the dataset's keyword arguments."""
    from sspa_core.backbone import DENSE_FEATURES
    from sspa_core.baselines import MODEL_NAMES
    from sspa_core.data import available_datasets, check_dataset_kwargs
    from sspa_core.domains import DOMAINS
    from sspa_core.features import FEATURE_DTYPES
    from sspa_core.model import SSPAConfig

    check_settings(config)
    if config["model"]["name"] not in MODEL_NAMES:
        raise ValueError(f"unknown model {config['model']['name']!r} (model.name); valid: {', '.join(MODEL_NAMES)}")
    if config["dataset"]["domain"] not in DOMAINS:
        raise ValueError(f"unknown domain {config['dataset']['domain']!r} (dataset.domain); valid: {DOMAINS}")
    SSPAConfig.from_dict(config["model"]["sspa"])
    if config["model"]["dense_features"] not in DENSE_FEATURES:
        raise ValueError(f"unknown dense features {config['model']['dense_features']!r} (model.dense_features); "
                         f"valid: {', '.join(DENSE_FEATURES)}")
    ds, tc = config["dataset"], config["train"]
    if ds["name"] not in available_datasets():
        raise ValueError(f"unknown dataset {ds['name']!r} (dataset.name); valid: {', '.join(available_datasets())}")
    check_dataset_kwargs(ds["name"], ds["kwargs"], "dataset.kwargs")
    check_dataset_kwargs(ds["name"], ds["eval_kwargs"], "dataset.eval_kwargs")
    check_amp_dtype(tc["amp_dtype"])
    if tc["feature_dtype"] not in FEATURE_DTYPES:
        raise ValueError(f"unknown train.feature_dtype {tc['feature_dtype']!r}; valid: {', '.join(FEATURE_DTYPES)}")
    check_monitor(tc["monitor"], ds["domain"])
    if tc["eval_weights"] not in EVAL_WEIGHTS:
        raise ValueError(f"unknown train.eval_weights {tc['eval_weights']!r}; valid: {', '.join(EVAL_WEIGHTS)}")
    if tc["cache_features"] and config["model"]["name"] in FINE_TUNED:
        raise ValueError(f"model {config['model']['name']} fine-tunes the image encoder: it cannot train on "
                         "cached features (use model.name=unid for a linear probe, or train.cache_features=false)")


def build_model_from_config(config: dict[str, Any], label_names: list[str], device: torch.device):
    """Backbone + model + loss of a resolved config; the image encoder is frozen when
    ``train.freeze_image_encoder`` or ``train.cache_features`` is set."""
    from sspa_core.backbone import load_backbone
    from sspa_core.baselines import build_model
    from sspa_core.model import SSPAConfig, build_loss

    check_run_config(config)
    mc, tc = config["model"], config["train"]
    backbone = load_backbone(mc["backbone"], pretrained=mc["pretrained"] or None,
                             image_size=config["dataset"]["image_size"], device=str(device),
                             dense_features=mc["dense_features"])
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
    """``output_dir`` of the config, or ``OUTPUT_DIR/<dataset>/<model>``."""
    if config["output_dir"]:
        return Path(config["output_dir"])
    return OUTPUT_DIR / config["dataset"]["name"] / config["model"]["name"]


def train_from_config(config: dict[str, Any], resume: str | Path | dict[str, Any] | None = None,
                      dist_info: DistInfo | None = None, overwrite: bool = False) -> Trainer:
    """Train the run a resolved config describes; returns the finished :class:`Trainer`.

    ``resume`` continues from a checkpoint: a path, one already read by :func:`load_checkpoint`,
    or ``"auto"``, ``<output_dir>/checkpoints/last.pt`` (an error if there is none). The output
    folder is locked while the run trains, and a run already in it is refused unless it is
    resumed or ``overwrite`` (:func:`~sspa_core.engine.run_folder.claim_run_folder`).
    """
    from sspa_core.backbone import fetch_pretrained

    config = validate_config(config)
    check_run_config(config)
    tc, ds, mc = config["train"], config["dataset"], config["model"]
    device = resolve_device(tc["device"], int(os.environ.get("LOCAL_RANK", "0")))
    dist_info = dist_info or init_distributed(device)
    output_dir = require_writable_dir(default_output_dir(config), "--output-dir")
    if tc["cache_features"]:
        require_writable_dir(tc["feature_cache_dir"] or CACHE_DIR / "features", "train.feature_cache_dir")
    config = {**config, "output_dir": str(output_dir)}
    claim = (claim_run_folder(output_dir, resume == "auto", overwrite or resume is not None)
             if dist_info.is_main else nullcontext())
    with claim:
        if resume == "auto":
            resume = output_dir / "checkpoints" / "last.pt"
        source = "the checkpoint to resume" if isinstance(resume, dict) else str(resume)
        if resume is not None and not isinstance(resume, dict):
            resume = load_checkpoint(resume)
        if resume is not None:  # a checkpoint of another run is refused before any data is built
            check_compatible(resume, mc["name"], None, source, backbone=mc["backbone"])
        fetch_pretrained(mc["backbone"], mc["pretrained"] or None)
        seed_everything(tc["seed"])
        train_set = build_dataset(config, ds["train_split"], augment=not tc["cache_features"])
        eval_set = build_dataset(config, ds["eval_split"], augment=False)
        label_names = list(train_set.label_names)
        if list(eval_set.label_names) != label_names:
            raise ValueError(f"splits {ds['train_split']!r} and {ds['eval_split']!r} have different label sets")
        if resume is not None:
            check_compatible(resume, mc["name"], label_names, source)
        backbone, model, loss_fn = build_model_from_config(config, label_names, device)
        if tc["cache_features"]:
            train_set, eval_set = (_features(config, backbone, s, split, device, dist_info)
                                   for s, split in ((train_set, ds["train_split"]), (eval_set, ds["eval_split"])))
        seed_everything(tc["seed"])
        trainer = Trainer(model, loss_fn, label_names, config["model"]["name"], config, output_dir,
                          device, dist_info, domain=ds["domain"])
        trainer.fit(train_set, eval_set, resume=resume, resume_source=source)
        return trainer


def _features(config, backbone, dataset, split, device, dist_info: DistInfo):
    """The cached features of ``split``; under DDP process 0 computes them, the others read them."""
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
    if dist_info.is_main:
        features = load()
        dist.barrier()
        return features
    dist.barrier()
    return load()


#: Each model's own training protocol, applied by :func:`compare_models` over the config's
#: ``train`` section. SSPA trains the image encoder and keeps the text encoder frozen (paper
#: §IV-B: "The text encoder remains frozen"); so does its Uni-D ablation (Table IX). CLIP-FT
#: fine-tunes both encoders (the paper: "all parameters including both image and text
#: encoders"; the model itself unfreezes the text tower), ``clip_ft_image`` the image encoder
#: only. The DualCoOp-style head keeps all of CLIP frozen, as in its paper (whatever the config's
#: ``train.freeze_image_encoder``), and follows the config's feature cache; zero-shot CLIP trains
#: nothing.
PAPER_PROTOCOL: dict[str, dict[str, Any]] = {
    **{name: {"cache_features": False, "freeze_image_encoder": False} for name in ("sspa", "unid", *FINE_TUNED)},
    "dualcoop": {"freeze_image_encoder": True},
}
#: With ``protocol="config"`` every model follows the config, except the CLIP-FT variants, which
#: cannot train on cached features of a frozen encoder.
CONFIG_PROTOCOL: dict[str, dict[str, Any]] = {name: PAPER_PROTOCOL[name] for name in FINE_TUNED}


def compare_models(config: dict[str, Any], model_names: list[str] | tuple[str, ...],
                   seeds: list[int] | tuple[int, ...] = (0,), protocol: str = "paper",
                   resume: bool = False) -> list[dict[str, Any]]:
    """Train every model of ``model_names`` with every seed on the same data, epochs, batch
    size and learning rates (an equal budget); outputs go to ``<output_dir>/<model>-seed<seed>``.
    ``resume=True`` continues each run from its ``checkpoints/last.pt`` where it has one (an
    interrupted comparison goes on where it stopped; a finished run is only scored again) and
    refuses one made with other settings (:func:`check_same_settings`); by default every run
    trains afresh.

    ``protocol="paper"`` trains each model as its paper does (:data:`PAPER_PROTOCOL`: the image
    encoder trained for SSPA, Uni-D and CLIP-FT); ``"config"`` keeps the config's encoder
    settings for all but CLIP-FT (e.g. every head on cached features, for a quick look).
    One row per run: ``model``, ``seed``, ``metrics`` (last epoch, on the evaluation split, of the
    weights its ``"weights"`` names), ``history``, ``output_dir``, ``resumed`` (whether it went on
    from a checkpoint), ``train_images`` and ``steps`` (optimisation steps in all; 0 for a model
    with nothing to train), and those weights' evaluation ``scores``/``targets``/``masks`` (dataset order)."""
    protocols = {"paper": PAPER_PROTOCOL, "config": CONFIG_PROTOCOL}
    if protocol not in protocols:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {sorted(protocols)}")
    config = validate_config(config)
    base = default_output_dir(config)
    rows = []
    for name in model_names:
        for seed in seeds:
            run = validate_config(merge(config, {
                "model": {"name": name}, "output_dir": str(base / f"{name}-seed{seed}"),
                "train": {"seed": seed, **protocols[protocol].get(name, {})}}))
            last, saved = Path(run["output_dir"]) / "checkpoints" / "last.pt", None
            if resume and last.is_file():
                saved = load_checkpoint(last)
                check_same_settings(saved["config"], run, str(last))
            trainer = train_from_config(run, resume=saved, overwrite=True)
            scores, targets, masks = trainer.predict_scores(trainer.eval_set)
            rows.append({"model": name, "seed": seed, "metrics": trainer.history[-1], "history": trainer.history,
                         "output_dir": trainer.output_dir, "resumed": saved is not None,
                         "train_images": trainer.train_images, "steps": trainer.total_steps,
                         "scores": scores, "targets": targets, "masks": masks})
    return rows


def load_trained_model(checkpoint: str | Path, device: str | torch.device = "cpu", weights: str | None = None,
                       overrides: list[str] | tuple[str, ...] = ()):
    """Rebuild the model of a checkpoint with its ``weights``: ``"ema"`` (the moving average),
    ``"raw"``, or None for those its last evaluation chose (``ckpt["weights"]``, the choice
    ``train.eval_weights`` made). Returns ``(model, config, checkpoint dict)``; ``overrides``
    (``key=value``) patch the stored config."""
    if weights not in (None, *WEIGHTS):
        raise ValueError(f"unknown weights {weights!r}; valid: {', '.join(WEIGHTS)} (or None: the run's choice)")
    ckpt = load_checkpoint(checkpoint)
    config = validate_config(ckpt["config"])
    for text in overrides:
        config = validate_config(merge(config, parse_override(text)))
    check_compatible(ckpt, config["model"]["name"], None, str(checkpoint), backbone=config["model"]["backbone"])
    device = torch.device(device) if not isinstance(device, torch.device) else device
    _, model, _ = build_model_from_config(config, list(ckpt["label_names"]), device)
    if weights == "ema" and ckpt["ema"] is None:
        raise ValueError(f"{checkpoint} holds no EMA weights (its run had train.ema off): load weights='raw'")
    chosen = weights or ckpt.get("weights", "ema")
    state = ckpt["ema"]["model"] if (chosen == "ema" and ckpt["ema"] is not None) else ckpt["model"]
    load_trainable_state(model, state, str(checkpoint))
    model.eval()
    return model, config, ckpt


def evaluate_checkpoint(checkpoint: str | Path, split: str | None = None, device: str = "auto",
                        weights: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, float]:
    """Metrics of a checkpoint on ``split`` (default: the config's evaluation split), with its
    ``weights`` (``"ema"``, ``"raw"`` or None for the run's choice; :func:`load_trained_model`)."""
    device = resolve_device(device)
    model, config, ckpt = load_trained_model(checkpoint, device, weights, overrides)
    split = split or config["dataset"]["eval_split"]
    dataset = build_dataset(config, split, augment=False)
    check_compatible(ckpt, config["model"]["name"], list(dataset.label_names), str(checkpoint))
    tc = config["train"]
    scores = gather_scores(model, dataset, batch_size=tc["eval_batch_size"], num_workers=tc["num_workers"],
                           device=device, precision=Precision.from_config(device, tc["amp"], tc["amp_dtype"]),
                           progress=bool(tc["progress"]))
    return compute_metrics(*scores, domain=config["dataset"]["domain"])


@torch.no_grad()
def predict_images(model: nn.Module, image_size: int, images: list[str | Path | Image.Image],
                   device: str | torch.device = "cpu") -> tuple[torch.Tensor, dict[str, Any]]:
    """Scores ŷ [N, C] (eq. 18) of images (PIL images, or files read by
    :func:`sspa_core.data.images.read_image`) and the model's raw outputs (patch weights, gates)."""
    from sspa_core.data import build_transform
    from sspa_core.data.images import read_image

    transform = build_transform(image_size, train=False, preprocess=model.backbone.preprocess_cfg)
    pixels = [transform(image if isinstance(image, Image.Image) else read_image(image)) for image in images]
    outputs = model(torch.stack(pixels).to(device))
    return outputs["score"].float().cpu(), outputs


def top_labels(scores: torch.Tensor, label_names: list[str], k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``k`` highest-scoring labels of each row, with their scores."""
    if k < 1:
        raise ValueError(f"top-k must be >= 1, got {k}")
    values, indices = scores.topk(min(k, scores.shape[1]), dim=1)
    return [[(label_names[j], float(v)) for v, j in zip(row_v.tolist(), row_i.tolist())]
            for row_v, row_i in zip(values, indices)]
