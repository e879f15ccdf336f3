"""Run configurations: one readable YAML per dataset (``sspa_core/configs/<name>.yaml``) merged
over :data:`DEFAULTS`, plus ``key=value`` overrides from the command line.

``dataset.domain`` names the dataset's domain (``natural``, ``pedestrian``, ``remote_sensing``;
:mod:`sspa_core.domains`), which chooses the metric set reported
(:func:`sspa_core.metrics.metric_set_for`); the former names ``remote`` and ``aerial`` are read
with a DeprecationWarning.

Every key must exist in :data:`DEFAULTS` (an unknown key is an error naming it), except under
``dataset.kwargs``/``dataset.eval_kwargs`` (passed to the dataset constructor) and ``model.sspa`` (validated by
:class:`sspa_core.model.SSPAConfig`). Learning rates, epochs and batch sizes are this project's
choices: the paper's values are lost (docs/method.md §Training defaults).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from sspa_core.domains import canonical_domain

_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

#: Sub-trees whose keys are free-form (checked by their consumer, not here).
OPEN_SECTIONS = ("dataset.kwargs", "dataset.eval_kwargs", "model.sspa")

DEFAULTS: dict[str, Any] = {
    "dataset": {
        "name": "synthetic_natural",  # a name of sspa_core.data.get_dataset
        "root": "",  # dataset folder (ignored by the synthetic domains)
        "train_split": "train",
        "eval_split": "val",  # evaluated after every epoch; best checkpoint chosen on it
        "image_size": 224,
        "domain": "natural",  # natural | pedestrian | remote_sensing; chooses the metric set
        "kwargs": {},  # extra dataset arguments (synthetic: num_images, seed)
        "eval_kwargs": {},  # overrides of kwargs for the evaluation split
    },
    "model": {
        "name": "sspa",  # sspa | zeroshot | unid | dualcoop | clip_ft (both encoders) | clip_ft_image
        "backbone": "sspa-tiny-vit",
        "pretrained": "",  # "" = the shipped tiny-CLIP checkpoint; a path or an open_clip tag
        "dense_features": "tokens",  # ViT X: tokens (paper) | maskclip | sclip | clearclip (docs/method.md §Backbone)
        "descriptions": "",  # KAP description set (load_descriptions name); "" = template only
        "sspa": {},  # SSPAConfig fields (ablation switches, loss parameters)
    },
    "train": {
        "epochs": 10,
        "batch_size": 32,  # global batch (split across processes under torchrun)
        "lr": 1e-3,  # head (prompts, QSM, GDMA, aggregator)
        "encoder_lr": 1e-5,  # image encoder (lower, docs/method.md §Training defaults)
        "weight_decay": 1e-4,
        "warmup_epochs": 1.0,  # linear warm-up (LinearLR), then cosine decay to 0 (CosineAnnealingLR)
        "grad_clip": 1.0,  # max gradient norm; 0 = off
        "ema": True,
        "ema_decay": 0.9997,  # paper value, the decay after the warm-up
        "ema_warmup": True,  # decay min(ema_decay, (1 + n) / (10 + n)) at update n, so short runs average too
        "eval_weights": "best",  # best = score raw and EMA weights, keep the better on monitor | ema | raw
        "amp": True,  # mixed precision: autocast, with a gradient scaler for float16
        "amp_dtype": "auto",  # auto = float16 on CUDA, float32 on CPU; float16 | bfloat16 on any device
        "freeze_image_encoder": False,
        "cache_features": False,  # train the head on cached (x0, X); implies a frozen encoder
        "feature_dtype": "float16",  # on-disk dtype of the feature cache
        "feature_cache_dir": "",  # "" = CACHE_DIR/features
        "num_workers": 0,
        "eval_batch_size": 64,
        "checkpoint_every": 0,  # also save last.pt every N steps inside an epoch; 0 = per epoch
        "monitor": "mAP",  # metric that selects best.pt (higher is better)
        "seed": 0,
        "device": "auto",  # auto = cuda when available, else cpu
        "progress": True,  # tqdm progress bars
    },
    "output_dir": "",  # "" = OUTPUT_DIR/<dataset>/<model>
}


def available_configs() -> list[str]:
    """Names of the shipped per-dataset configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _check_keys(tree: dict, reference: dict, prefix: str = "") -> None:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if key not in reference:
            valid = ", ".join(f"{prefix}{k}" for k in reference)
            raise ValueError(f"unknown config key {path!r}; valid keys here: {valid}")
        if path in OPEN_SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"config key {path!r} must be a mapping, got {value!r}")
        elif isinstance(reference[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"config key {path!r} must be a mapping, got {value!r}")
            _check_keys(value, reference[key], path + ".")
        else:
            tree[key] = _coerce(path, value, reference[key])


def _coerce(path: str, value: Any, default: Any) -> Any:
    """Give ``value`` the type of the default (YAML reads ``3e-4`` as a string, ``1`` as an int)."""
    kind = type(default)
    if kind is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif kind is bool and isinstance(value, bool):
        return value
    elif kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    elif kind is str and value is None:
        return ""
    raise ValueError(f"config key {path!r} expects a {kind.__name__}, got {value!r}")


def merge(base: dict, update: dict) -> dict:
    """Recursive merge of ``update`` into a copy of ``base`` (mappings merge, values replace)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict:
    """A ``key=value`` override as a tree: ``"train.lr=3e-4"`` -> ``{"train": {"lr": 0.0003}}``,
    ``"epochs=3"`` -> ``{"epochs": 3}``. The value is read as YAML, with ``3e-4`` a number as
    in YAML 1.2 (PyYAML's 1.1 reads it as text) and nothing after ``=`` giving ``""``; text
    without ``=`` or with an empty key (or key part) is a ValueError."""
    key, sep, raw = text.partition("=")
    parts = [part.strip() for part in key.split(".")]
    if not sep or not all(parts):
        raise ValueError(f"override {text!r} is not of the form key=value "
                         "(a dotted key such as train.lr=3e-4 reaches into a section)")
    tree: dict = {}
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ValueError(f"override {text!r}: the value is not valid YAML ({_yaml_problem(err)}); "
                         "quote text, e.g. key='a: b'") from None
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value):
        value = float(value)
    node[parts[-1]] = value
    return tree


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong in a YAML text and where, in one line."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(err, 'problem', None) or type(err).__name__}{where}"


def _check_domain(config: dict) -> dict:
    """Replace a former domain name by the current one (with a DeprecationWarning)."""
    try:
        config["dataset"]["domain"] = canonical_domain(config["dataset"]["domain"])
    except ValueError as err:
        raise ValueError(f"config key 'dataset.domain': {err}") from None
    return config


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Resolve a config: :data:`DEFAULTS` <- the YAML (a shipped name or a file path) <- overrides."""
    return load_config_with_sources(name_or_path, overrides)[0]


def load_config_with_sources(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                             ) -> tuple[dict, dict[str, str]]:
    """The config of :func:`load_config` and, for each leaf (a dotted key such as ``train.lr``; an
    empty mapping is a leaf), where its value came from: ``"default"`` (:data:`DEFAULTS`), the
    config file (its path, relative to the repository for a shipped config) or ``"--set"``."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"config {str(name_or_path)!r} not found; shipped configs: {', '.join(available_configs())}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        problem = _yaml_problem(err) if isinstance(err, yaml.YAMLError) else "not UTF-8 text"
        raise ValueError(f"config file {path} is not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at top level")
    _check_keys(data, DEFAULTS)
    layers = [(DEFAULTS, "default"), (data, _source_name(path))]
    config = merge(DEFAULTS, data)
    for text in overrides:
        update = parse_override(text)
        _check_keys(update, DEFAULTS)
        layers.append((update, "--set"))
        config = merge(config, update)
    sources = {key: next(name for layer, name in reversed(layers) if _holds(layer, key))
               for key in _leaf_keys(config)}
    return _check_domain(config), sources


def _source_name(path: Path) -> str:
    """A config file as a source: relative to the repository when it lies in it."""
    try:
        return path.resolve().relative_to(CONFIG_DIR.parents[1]).as_posix()
    except ValueError:
        return str(path)


def _leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    """The dotted keys of the values of ``tree`` that are not non-empty mappings."""
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            keys += _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _holds(tree: dict, dotted: str) -> bool:
    """Whether ``tree`` has a value at the dotted key."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def validate_config(config: dict) -> dict:
    """Check the keys of an already resolved config (e.g. one read back from a checkpoint)."""
    _check_keys(config, DEFAULTS)
    return _check_domain(merge(DEFAULTS, config))


def save_config(config: dict, path: str | Path) -> Path:
    """Write the resolved config as YAML (the record of a run, next to its outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return path
