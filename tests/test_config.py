"""Run configs: the ``key=value`` override parser and the domain vocabulary of ``dataset.domain``."""

from __future__ import annotations

import pytest
import yaml

from sspa_core.config import load_config, parse_override, validate_config


@pytest.mark.parametrize("text, tree", [
    ("train.lr=3e-4", {"train": {"lr": 3e-4}}),
    ("model.sspa.gate=false", {"model": {"sspa": {"gate": False}}}),
    ("epochs=3", {"epochs": 3}),
    (" backbone = RN101", {"backbone": "RN101"}),
    ("dataset.kwargs={num_images: 8, seed: 2}", {"dataset": {"kwargs": {"num_images": 8, "seed": 2}}}),
    ("pretrained=", {"pretrained": ""}),
    ("expr=a=b", {"expr": "a=b"}),  # only the first = separates the key
    ("warmup=-1.5E+2", {"warmup": -150.0}),  # a number, as in YAML 1.2
    ("tag=v1e5", {"tag": "v1e5"}),
])
def test_override_values_are_read_as_yaml(text, tree):
    assert parse_override(text) == tree


@pytest.mark.parametrize("text", ["epochs", "=3", " =3", "train.=3", ".lr=3", "train..lr=3"])
def test_override_without_a_key_or_equals_sign_is_refused(text):
    with pytest.raises(ValueError, match="not of the form key=value"):
        parse_override(text)


def test_config_domain_takes_the_current_vocabulary(tmp_path):
    assert load_config("synthetic_remote_sensing")["dataset"]["domain"] == "remote_sensing"
    with pytest.warns(DeprecationWarning, match="'remote' is deprecated.*'remote_sensing'"):
        config = load_config("aid", ["dataset.domain=remote"])
    assert config["dataset"]["domain"] == "remote_sensing"
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"name": "synthetic_remote_sensing", "domain": "aerial"}}))
    with pytest.warns(DeprecationWarning, match="'aerial' is deprecated"):
        assert load_config(path)["dataset"]["domain"] == "remote_sensing"
    with pytest.warns(DeprecationWarning):  # a run config read back from an older checkpoint
        assert validate_config({"dataset": {"domain": "remote"}})["dataset"]["domain"] == "remote_sensing"
    with pytest.raises(ValueError, match="'dataset.domain': unknown domain 'medical'.*remote_sensing"):
        load_config("coco", ["dataset.domain=medical"])


def test_fidelity_keys_have_their_defaults_and_are_checked():
    from sspa_core.engine import check_run_config

    config = load_config("coco")
    assert config["train"]["ema_warmup"] is True and config["train"]["eval_weights"] == "best"
    assert config["model"]["sspa"].get("synthesis", "qsm") == "qsm"
    with pytest.raises(ValueError, match="train.eval_weights"):
        check_run_config(load_config("synthetic_natural", ["train.eval_weights=average"]))
    for name in ("clip_ft", "clip_ft_image"):
        with pytest.raises(ValueError, match=f"model {name} fine-tunes the image encoder"):
            check_run_config(load_config("synthetic_natural", [f"model.name={name}", "train.cache_features=true"]))
    with pytest.raises(ValueError, match="detach_focusing must be True or False"):
        check_run_config(load_config("synthetic_natural", ["model.sspa.detach_focusing=1"]))


def test_each_value_names_where_it_came_from():
    from sspa_core.config import load_config_with_sources

    config, sources = load_config_with_sources("coco", ["train.lr=1e-3", "model.sspa.gate=false"])
    assert config == load_config("coco", ["train.lr=1e-3", "model.sspa.gate=false"])
    assert sources["train.grad_clip"] == "default"
    assert sources["dataset.image_size"] == "sspa_core/configs/coco.yaml"
    assert sources["train.lr"] == sources["model.sspa.gate"] == "--set"
    assert sources["dataset.kwargs"] == "default"  # an empty mapping is a leaf
    assert load_config_with_sources("synthetic_natural")[1]["dataset.kwargs.num_images"].endswith(
        "synthetic_natural.yaml")


@pytest.mark.parametrize("override, message", [
    ("train.lr=-1", r"train\.lr must be >= 0, got -1"),
    ("train.lr=.nan", r"train\.lr must be a finite number, got nan"),
    ("train.ema_decay=1.5", r"train\.ema_decay must be between 0 and 1, got 1\.5"),
    ("train.epochs=0", r"train\.epochs must be >= 1, got 0"),
    ("train.epochs=2.5", r"'train\.epochs' expects a int, got 2\.5"),
    ("train.amp=maybe", r"'train\.amp' expects a bool"),
    ("train.lrate=1", r"unknown config key 'train\.lrate'"),
])
def test_the_schema_refuses_a_bad_value_when_the_config_is_read(override, message):
    """Types, finiteness and ranges are checked as a config is loaded, before any data is built."""
    with pytest.raises(ValueError, match=message):
        load_config("synthetic_natural", [override])


def test_every_setting_is_documented_once_and_defaults_follow_the_schema():
    from sspa_core.config import DEFAULTS, OPEN_SECTIONS, SCHEMA, check_settings, describe_key

    flat = {}

    def walk(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict) and f"{prefix}{key}" not in OPEN_SECTIONS:
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(DEFAULTS)
    assert flat == {key: setting.default for key, setting in SCHEMA.items()}
    assert all(setting.doc for setting in SCHEMA.values())
    assert describe_key("dataset.kwargs.num_images").startswith("(in dataset.kwargs) extra dataset arguments")
    with pytest.raises(KeyError):
        describe_key("nothing.here")
    config = load_config("coco")
    config["train"]["seed"] = -3  # a config built in code, not read: check_settings refuses it too
    with pytest.raises(ValueError, match=r"train\.seed must be between 0 and 1000000, got -3"):
        check_settings(config)
    assert config["train"]["seed"] == -3  # and leaves it as it was


def test_the_former_name_of_the_remote_sensing_scenes_is_read_with_a_warning():
    """``synthetic_aerial`` took the paper's name, ``synthetic_remote_sensing``; the old name still
    reaches the same config, dataset, descriptions, shipped head and records, with a warning."""
    from sspa_core.data import get_dataset, protocol_splits
    from sspa_core.descriptions import load_descriptions
    from sspa_core.engine.heads import matching_head
    from sspa_core.results import load_result

    new = load_config("synthetic_remote_sensing")
    with pytest.warns(DeprecationWarning, match="'synthetic_aerial' is deprecated.*'synthetic_remote_sensing'"):
        assert load_config("synthetic_aerial") == new
    with pytest.warns(DeprecationWarning):  # a config read back from a checkpoint made before the rename
        old = validate_config({"dataset": {"name": "synthetic_aerial", "domain": "remote_sensing"},
                               "model": {"descriptions": "synthetic_aerial"}})
    assert old["dataset"]["name"] == old["model"]["descriptions"] == "synthetic_remote_sensing"
    with pytest.warns(DeprecationWarning):
        assert protocol_splits("synthetic_aerial") == protocol_splits("synthetic_remote_sensing")
    with pytest.warns(DeprecationWarning):
        scenes = get_dataset("synthetic_aerial", None, "test", image_size=32, num_images=2)
    assert scenes.label_names == get_dataset("synthetic_remote_sensing", None, "test", image_size=32,
                                             num_images=2).label_names
    with pytest.warns(DeprecationWarning):
        assert load_descriptions("synthetic_aerial") == load_descriptions("synthetic_remote_sensing")
    with pytest.warns(DeprecationWarning):
        assert matching_head("synthetic_aerial", "sspa-tiny-vit") == matching_head("synthetic_remote_sensing",
                                                                                    "sspa-tiny-vit")
    with pytest.warns(DeprecationWarning):
        assert load_result("compare_models", "synthetic_aerial")["config"] == "synthetic_remote_sensing"


def test_every_notebook_parameter_has_a_setting_that_accepts_its_default():
    import ast

    from sspa_core.config import NOTEBOOK_SCHEMA, notebook_setting
    from sspa_core.notebook_params import declared_parameters, list_notebooks

    declared = {name: default for notebook in list_notebooks()
                for name, default in declared_parameters(notebook).items()}
    assert set(declared) == set(NOTEBOOK_SCHEMA)  # no parameter without a setting, no setting unused
    for name, default in declared.items():
        value = ast.literal_eval(default)
        assert notebook_setting(name).check(name, value) == value


def test_notebook_parameters_that_are_run_settings_are_checked_by_the_run_schema():
    from sspa_core.config import SCHEMA, notebook_setting

    assert notebook_setting("image_size") is SCHEMA["dataset.image_size"]
    with pytest.raises(ValueError, match=r"seed must be between 0 and 1000000, got -1"):
        notebook_setting("seed").check("seed", -1)
    with pytest.raises(KeyError, match="not in sspa_core.config.NOTEBOOK_SCHEMA"):
        notebook_setting("epochs")


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, r"steps must be >= 1, got 0"),
    ("batch_size", 1, r"batch_size must be >= 2, got 1"),
    ("lr", 0.0, r"lr must be > 0, got 0\.0"),
    ("patch_weight", float("nan"), r"patch_weight must be a finite number"),
    ("warmup_steps", 2.5, r"'warmup_steps' expects a int"),
    ("num_images", 10, r"num_images 10 < batch_size 64"),
])
def test_pretraining_settings_are_checked_by_their_schema(field, value, message):
    from sspa_core.tiny_clip import PretrainSettings

    with pytest.raises(ValueError, match=message):
        PretrainSettings(**{field: value})


def test_the_shipped_recipes_are_the_schema_with_what_differs():
    from sspa_core.config import PRETRAIN_SCHEMA
    from sspa_core.tiny_clip import DEFAULTS, PretrainSettings

    assert DEFAULTS["sspa-tiny-vit"] == PretrainSettings()
    assert PretrainSettings().steps == PRETRAIN_SCHEMA["steps"].default
    assert (DEFAULTS["sspa-tiny-rn"].steps, DEFAULTS["sspa-tiny-rn"].num_images) == (500, 10000)
    assert PretrainSettings(lr="3e-4").lr == 3e-4  # read like a YAML value
