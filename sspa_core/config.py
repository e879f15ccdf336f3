"""Run configurations: one readable YAML per dataset (``sspa_core/configs/<name>.yaml``) merged
over :data:`DEFAULTS`, plus ``key=value`` overrides from the command line.

:data:`SCHEMA` holds every setting once: its default, what it means and its range. A config file
and each override are checked against it when they are read (an unknown key, a wrong type, a
non-finite or out-of-range number is an error naming the key), before any data or weights load.

``dataset.domain`` names the dataset's domain (``natural``, ``pedestrian``, ``remote_sensing``;
:mod:`sspa_core.domains`), which chooses the metric set reported
(:func:`sspa_core.metrics.metric_set_for`); the former names ``remote`` and ``aerial`` are read
with a DeprecationWarning, as is the former config name ``synthetic_aerial``
(:data:`sspa_core.domains.DEPRECATED_NAMES`).

Every key must exist in :data:`SCHEMA`, except under
``dataset.kwargs``/``dataset.eval_kwargs`` (passed to the dataset constructor) and ``model.sspa`` (validated by
:class:`sspa_core.model.SSPAConfig`). Learning rates, epochs and batch sizes are this project's
choices: the paper's values are lost (docs/method.md §Training defaults).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sspa_core.domains import canonical_domain, canonical_name

_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

@dataclass(frozen=True)
class Setting:
    """One config value: its default (which also fixes its type), what it means, and for a number
    the range it must lie in (``low``/``high``, both allowed unless ``above``: then the value must
    exceed ``low``; a float must also be finite); for text, optionally the values it may take."""

    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    above: bool = False
    choices: tuple[str, ...] = ()

    def check(self, key: str, value: Any) -> Any:
        """``value`` with the default's type (YAML reads ``3e-4`` as text, ``1`` as an int), or a
        ValueError naming ``key``: a wrong type, a non-finite float, a number out of range."""
        value = _coerce(key, value, self.default)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            too_low = self.low is not None and (value <= self.low if self.above else value < self.low)
            if too_low or (self.high is not None and value > self.high):
                bound = (f"{'>' if self.above else '>='} {self.low}" if self.high is None
                         else f"between {self.low} and {self.high}")
                raise ValueError(f"{key} must be {bound}, got {value}")
        if self.choices and value not in self.choices:
            raise ValueError(f"{key} must be one of {', '.join(self.choices)}; got {value!r}")
        return value


#: Every setting of a run, by dotted key: default, meaning and range in one place (``sspa config
#: show`` prints them). A mapping default is a free-form section, checked by its consumer: the
#: dataset's keyword arguments (:func:`sspa_core.data.check_dataset_kwargs`) and ``model.sspa``
#: (:class:`sspa_core.model.SSPAConfig`); names (model, dataset, metric) are checked against their
#: owners by :func:`sspa_core.engine.runs.check_run_config`.
SCHEMA: dict[str, Setting] = {
    "dataset.name": Setting("synthetic_natural", "a name of sspa_core.data.get_dataset"),
    "dataset.root": Setting("", "dataset folder (ignored by the synthetic domains)"),
    "dataset.train_split": Setting("train", "the split trained on"),
    "dataset.eval_split": Setting("val", "evaluated after every epoch; best.pt is chosen on it"),
    "dataset.image_size": Setting(224, "input size in pixels (square)", low=1),
    "dataset.domain": Setting("natural", "natural | pedestrian | remote_sensing; chooses the metric set"),
    "dataset.kwargs": Setting({}, "extra dataset arguments (synthetic: num_images, seed; any: max_images)"),
    "dataset.eval_kwargs": Setting({}, "overrides of dataset.kwargs for the evaluation split"),
    "model.name": Setting("sspa", "sspa | zeroshot | unid | dualcoop | clip_ft (both encoders) | clip_ft_image"),
    "model.backbone": Setting("sspa-tiny-vit", "an open_clip model name or a shipped tiny CLIP"),
    "model.pretrained": Setting("", "'' = the shipped tiny-CLIP checkpoint; a path or an open_clip tag"),
    "model.dense_features": Setting("tokens", "ViT patch features X: tokens (paper) | maskclip | sclip | clearclip "
                                              "(docs/method.md §Backbone)"),
    "model.descriptions": Setting("", "KAP description set (a load_descriptions name); '' = template only"),
    "model.sspa": Setting({}, "SSPAConfig fields (ablation switches, loss parameters)"),
    "train.epochs": Setting(10, "passes over the training split", low=1),
    "train.batch_size": Setting(32, "global batch (split across processes under torchrun)", low=1),
    "train.lr": Setting(1e-3, "head learning rate (prompts, QSM, GDMA, aggregator)", low=0),
    "train.encoder_lr": Setting(1e-5, "image-encoder learning rate (docs/method.md §Training defaults)", low=0),
    "train.weight_decay": Setting(1e-4, "AdamW weight decay (none on biases, norms, scales, prompt contexts)", low=0),
    "train.warmup_epochs": Setting(1.0, "linear warm-up, then cosine decay to 0", low=0),
    "train.grad_clip": Setting(1.0, "max gradient norm; 0 = off", low=0),
    "train.ema": Setting(True, "keep an exponential moving average of the weights"),
    "train.ema_decay": Setting(0.9997, "the EMA decay after its warm-up (the paper's value)", low=0, high=1),
    "train.ema_warmup": Setting(True, "decay min(ema_decay, (1 + n) / (10 + n)) at update n, so short runs "
                                      "average too"),
    "train.eval_weights": Setting("best", "best = score the raw and EMA weights, keep the better on monitor | "
                                          "ema | raw"),
    "train.amp": Setting(True, "mixed precision: autocast, with a gradient scaler for float16"),
    "train.amp_dtype": Setting("auto", "auto = float16 on CUDA, float32 on CPU; float16 | bfloat16 on any device"),
    "train.freeze_image_encoder": Setting(False, "train the head only"),
    "train.cache_features": Setting(False, "train the head on cached (x0, X); implies a frozen encoder"),
    "train.feature_dtype": Setting("float16", "on-disk dtype of the feature cache"),
    "train.feature_cache_dir": Setting("", "'' = CACHE_DIR/features"),
    "train.num_workers": Setting(0, "DataLoader worker processes", low=0),
    "train.eval_batch_size": Setting(64, "batch size of the evaluations", low=1),
    "train.checkpoint_every": Setting(0, "also save last.pt every N steps inside an epoch; 0 = per epoch", low=0),
    "train.monitor": Setting("mAP", "metric that selects best.pt (higher is better)"),
    "train.seed": Setting(0, "seed of the model, the data order and the augmentations (the seeds derived from "
                             "it fit torch's 64 bits)", low=0, high=1_000_000),
    "train.device": Setting("auto", "auto = cuda when available, else cpu"),
    "train.progress": Setting(True, "tqdm progress bars"),
    "output_dir": Setting("", "'' = OUTPUT_DIR/<dataset>/<model>"),
}

#: The tiny CLIP's pretraining recipe (:func:`sspa_core.engine.pretraining.pretrain_tiny_clip`,
#: ``sspa pretrain``), checked by :class:`sspa_core.tiny_clip.PretrainSettings`. The defaults are
#: the shipped ViT's recipe; ``sspa_core.tiny_clip.DEFAULTS`` states what differs for the ResNet.
PRETRAIN_SCHEMA: dict[str, Setting] = {
    "steps": Setting(2200, "optimisation steps", low=1),
    "batch_size": Setting(64, "scenes per step (the contrastive loss needs at least two)", low=2),
    "lr": Setting(1e-3, "peak AdamW learning rate (linear warm-up, then cosine decay to 0)", low=0, above=True),
    "num_images": Setting(24000, "rendered training scenes over all domains (at least one batch)", low=2),
    "warmup_steps": Setting(100, "steps of the linear warm-up", low=0),
    "weight_decay": Setting(0.1, "AdamW weight decay (none on biases, norms and scales)", low=0),
    "patch_weight": Setting(1.0, "weight of the patch-text loss on the labels' boxes beside the caption loss "
                                 "(0: captions only)", low=0),
}

#: The notebooks' parameters (``notebooks/params/*.yaml``, ``sspa notebooks -p``), each checked
#: once when a run's parameters are resolved (:func:`sspa_core.notebook_params.resolve_parameters`):
#: a name that is also a run setting refers to its :data:`SCHEMA` key (its type, range and
#: meaning; the notebook's parameter cell keeps its own default), the others are settings of
#: their own.
NOTEBOOK_SCHEMA: dict[str, Setting | str] = {
    "dataset": "dataset.name",
    "data_root": "dataset.root",
    "backbone": "model.backbone",
    "pretrained": "model.pretrained",
    "descriptions": "model.descriptions",
    "image_size": "dataset.image_size",
    "device": "train.device",
    "seed": "train.seed",
    "profile": Setting("smoke", "the notebooks' size switch: smoke = CPU/CI sizes, full = the larger budget",
                       choices=("smoke", "full")),
    "output_dir": Setting("outputs", "figures, checkpoints and logs of the notebook go here"),
    "solutions": Setting(False, "fill in the exercises' reference solutions (so every check must pass)"),
    "retrain": Setting(False, "00: pretrain the tiny CLIP again with the shipped recipe"),
    "resume": Setting(False, "06, 07: each model goes on from its last checkpoint in output_dir"),
    "llm": Setting("", "02: causal LM of the live run ('' = the offline SmolLM2 GGUF, or a hub id, folder or "
                       ".gguf file)"),
    "natural": Setting("synthetic_natural", "07: the natural-domain reference of the domain gap (a config name)"),
    "natural_root": Setting("", "07: the folder of `natural` when it is a real dataset"),
}


def notebook_setting(name: str) -> Setting:
    """The :class:`Setting` that checks notebook parameter ``name`` (:data:`NOTEBOOK_SCHEMA`)."""
    if name not in NOTEBOOK_SCHEMA:
        raise KeyError(f"notebook parameter {name!r} is not in sspa_core.config.NOTEBOOK_SCHEMA")
    entry = NOTEBOOK_SCHEMA[name]
    return SCHEMA[entry] if isinstance(entry, str) else entry


#: Sub-trees whose keys are free-form (checked by their consumer, not here).
OPEN_SECTIONS = tuple(key for key, setting in SCHEMA.items() if isinstance(setting.default, dict))


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *sections, name = key.split(".")
        node = tree
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = copy.deepcopy(value)
    return tree


def describe_key(key: str) -> str:
    """What the setting at dotted ``key`` means: its :data:`SCHEMA` entry, or for a key inside a
    free-form section, that section's."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        setting = SCHEMA.get(".".join(parts[:end]))
        if setting is not None:
            return setting.doc if end == len(parts) else f"(in {'.'.join(parts[:end])}) {setting.doc}"
    raise KeyError(f"unknown config key {key!r}")


#: The defaults of :data:`SCHEMA` as a config tree (what a config file and overrides merge over).
DEFAULTS: dict[str, Any] = _nested({key: setting.default for key, setting in SCHEMA.items()})


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
            tree[key] = SCHEMA[path].check(path, value)


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
    raise ValueError(f"{path!r} expects a {kind.__name__}, got {value!r}")


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
    """Replace a former domain, dataset or description-set name by the current one (with a
    DeprecationWarning)."""
    try:
        config["dataset"]["domain"] = canonical_domain(config["dataset"]["domain"])
    except ValueError as err:
        raise ValueError(f"config key 'dataset.domain': {err}") from None
    config["dataset"]["name"] = canonical_name(config["dataset"]["name"])
    config["model"]["descriptions"] = canonical_name(config["model"]["descriptions"])
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
        path = CONFIG_DIR / f"{canonical_name(str(name_or_path))}.yaml"
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
    """Check the keys, types and ranges of an already resolved config (e.g. one read back from a
    checkpoint) against :data:`SCHEMA`; returns it merged over :data:`DEFAULTS`."""
    _check_keys(config, DEFAULTS)
    return _check_domain(merge(DEFAULTS, config))


def check_settings(config: dict) -> None:
    """Raise a ValueError naming the first key of ``config`` that :data:`SCHEMA` refuses (an
    unknown key, a wrong type, a non-finite or out-of-range number); ``config`` is not changed."""
    _check_keys(copy.deepcopy(config), DEFAULTS)


def save_config(config: dict, path: str | Path) -> Path:
    """Write the resolved config as YAML (the record of a run, next to its outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return path
