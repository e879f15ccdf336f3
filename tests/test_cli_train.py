"""``sspa train`` / ``eval`` / ``predict`` end to end on the synthetic domain, and the run configs."""

from __future__ import annotations

import json

import pytest
import yaml

from sspa_core import backbone  # noqa: F401  (registers the tiny-CLIP model configs)
from sspa_core import config as config_module
from sspa_core.cli import main
from sspa_core.data import available_datasets, dataset_class
from sspa_core.data.synthetic import SyntheticScenes

SHIPPED = config_module.available_configs()


def tiny_overrides(weights, cache_dir, **extra) -> list[str]:
    values = {
        "model.pretrained": str(weights), "model.descriptions": "", "model.sspa.kap_source": "template",
        "model.sspa.n_ctx": 4, "dataset.image_size": 64, "dataset.kwargs.num_images": 16,
        "dataset.eval_kwargs.num_images": 8, "train.epochs": 2, "train.batch_size": 8,
        "train.eval_batch_size": 8, "train.progress": False, "train.ema": True, "train.ema_decay": 0.5,
        "train.feature_cache_dir": str(cache_dir), **extra,
    }
    args = []
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


@pytest.fixture(scope="module")
def trained_run(tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    argv = ["train", "--config", "synthetic_natural", "--output-dir", str(out),
            *tiny_overrides(tiny_weights, out.parent / "features")]
    assert main(argv) == 0
    return out, argv


def test_train_writes_checkpoints_logs_and_the_resolved_config(trained_run, capsys):
    out, argv = trained_run
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["model"]["sspa"] == {"logit_bias": -6.0, "kap_source": "template", "n_ctx": 4}
    assert resolved["dataset"]["image_size"] == 64 and resolved["output_dir"] == str(out)
    assert resolved["train"]["cache_features"] is True  # from the shipped synthetic_natural config
    history = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and 0 < history[-1]["mAP"] <= 1
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"best.pt", "last.pt"}

    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0  # a finished run resumes to the same end
    assert json.loads((out / "metrics.json").read_text()) == history
    assert "note: resuming" not in capsys.readouterr().err  # the same settings: nothing to say


def test_resuming_with_other_settings_says_which(trained_run, tmp_path, capsys):
    import shutil

    out, argv = trained_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    argv = [*argv[:argv.index("--output-dir") + 1], str(copy), *argv[argv.index("--output-dir") + 2:]]
    capsys.readouterr()
    assert main([*argv, "--set", "train.epochs=3", "--set", "train.device=cpu", "--resume"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: resuming")]
    assert notes == [f"note: resuming {copy}/checkpoints/last.pt with 1 other setting(s): train.epochs 2 -> 3"]
    assert [h["epoch"] for h in json.loads((copy / "metrics.json").read_text())] == [1, 2, 3]


def test_eval_reproduces_the_training_evaluation(trained_run, tmp_path):
    out, _ = trained_run
    assert main(["eval", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--device", "cpu",
                 "--output-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "eval.json").read_text())
    last = json.loads((out / "metrics.json").read_text())[-1]
    # training evaluated cached float16 features; eval recomputes them from the images
    assert metrics["mAP"] == pytest.approx(last["mAP"], abs=0.02)
    assert set(metrics) <= set(last)
    for weights in ("raw", "ema"):  # either set by name, against the training evaluation of that set
        assert main(["eval", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--device", "cpu",
                     "--weights", weights, "--output-dir", str(tmp_path / weights)]) == 0
        named = json.loads((tmp_path / weights / "eval.json").read_text())
        assert named["mAP"] == pytest.approx(last[f"mAP_{weights}"], abs=0.02)


def test_predict_prints_top_labels_and_saves_a_figure(trained_run, tmp_path, capsys):
    out, _ = trained_run
    scenes = SyntheticScenes("natural", "test", num_images=2, image_size=64)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"scene{i}.png")
        scenes.render(i).save(paths[-1])
    outputs = tmp_path / "predictions"
    assert main(["predict", *map(str, paths), "--checkpoint", str(out / "checkpoints" / "best.pt"),
                 "--top-k", "3", "--output-dir", str(outputs), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model sspa (sspa-tiny-vit) trained on synthetic_natural") and len(lines) >= 1 + 2 * 4
    assert lines[1].startswith(f"{paths[0]}: ") and lines[1].endswith(" at score >= 0.5")
    score, label = lines[2].split(maxsplit=1)
    assert 0 <= float(score) <= 1 and label in scenes.label_names
    saved = json.loads((outputs / "predictions.json").read_text())
    predictions = saved["predictions"]
    assert saved["trained_on"] == lines[0] and predictions[0]["threshold"] == 0.5
    assert [p["image"] for p in predictions] == list(map(str, paths)) and len(predictions[0]["top"]) == 3
    assert predictions[0]["top"][0] == {"label": label, "score": pytest.approx(float(score), abs=5e-4)}
    assert (label in predictions[0]["labels"]) == (float(score) >= 0.5)
    assert (outputs / "maps.png").stat().st_size > 0
    with pytest.raises(SystemExit) as exit_info:  # the former --figure FILE: the figure goes in --output-dir
        main(["predict", str(paths[0]), "--checkpoint", str(out / "checkpoints" / "best.pt"),
              "--figure", str(tmp_path / "old.png"), "--device", "cpu"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --figure" in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown config key 'train.lrr'"),
    ("train.epochs=two", "expects a int"),
    ("model.name=resnet", "unknown model 'resnet'"),
    ("model.sspa.aggregator=median", "aggregator"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("train.monitor=accuracy", "train.monitor='accuracy' is not a metric of the natural domain"),
    ("train.amp_dtype=half", "unknown train.amp_dtype 'half'"),
])
def test_bad_configuration_gives_a_clear_error_before_loading_anything(override, message, tmp_path, capsys):
    argv = ["train", "--config", "synthetic_natural", "--output-dir", str(tmp_path), "--set", override,
            "--set", "model.pretrained=/nonexistent.pt"]  # would fail later, on loading
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_config_name_lists_the_shipped_ones(capsys):
    assert main(["train", "--config", "imagenet"]) == 2
    err = capsys.readouterr().err
    assert "config 'imagenet' not found" in err and "synthetic_natural" in err


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_are_valid_and_say_whose_hyperparameters_they_are(name):
    text = (config_module.CONFIG_DIR / f"{name}.yaml").read_text()
    assert "project's choices, not the\n# paper's" in text
    resolved = config_module.load_config(name)
    ds = resolved["dataset"]
    assert ds["name"] in available_datasets()
    if not ds["name"].startswith("synthetic"):
        assert {ds["train_split"], ds["eval_split"]} <= set(dataset_class(ds["name"]).SPLITS)
        assert ds["image_size"] == (448 if ds["domain"] == "natural" else 224)  # docs/method.md §Training defaults
    assert resolved["train"]["ema_decay"] == 0.9997  # the paper's value


def test_every_dataset_has_a_config():
    expected = {"coco", "voc", "nuswide", "pa100k", "rap", "peta", "multiscene", "mlrsnet", "aid",
                "synthetic_natural", "synthetic_pedestrian", "synthetic_remote_sensing"}
    assert expected <= set(SHIPPED)


def test_overrides_are_typed_and_saved(tmp_path):
    resolved = config_module.load_config("coco", ["train.lr=3e-4", "train.epochs=3", "model.sspa.gate=false"])
    assert resolved["train"]["lr"] == 3e-4 and isinstance(resolved["train"]["lr"], float)
    assert resolved["model"]["sspa"] == {"gate": False}
    path = config_module.save_config(resolved, tmp_path / "config.yaml")
    assert config_module.validate_config(yaml.safe_load(path.read_text())) == resolved


def test_each_split_gets_its_own_dataset_arguments():
    from sspa_core.engine import build_dataset

    resolved = config_module.load_config("synthetic_natural", ["dataset.kwargs.num_images=12",
                                                                "dataset.eval_kwargs.num_images=5"])
    assert len(build_dataset(resolved, "train", augment=False)) == 12  # augmentation off, still train size
    assert len(build_dataset(resolved, "val", augment=False)) == 5


def test_compare_models_trains_each_model_under_its_protocol(tiny_weights, tmp_path):
    from sspa_core.engine import compare_models, load_checkpoint

    values = [arg for arg in tiny_overrides(tiny_weights, tmp_path / "features", **{"train.epochs": 1})
              if arg != "--set"]
    config = config_module.load_config("synthetic_natural", [*values, f"output_dir={tmp_path / 'runs'}"])
    assert config["train"]["cache_features"] is True  # the config's fast mode ...
    rows = compare_models(config, ["zeroshot", "sspa", "dualcoop"], seeds=[0])
    trains_encoder = {}
    for row in rows:
        saved = yaml.safe_load((row["output_dir"] / "config.yaml").read_text())["train"]
        trains_encoder[row["model"]] = not (saved["cache_features"] or saved["freeze_image_encoder"])
        assert row["scores"].shape == row["targets"].shape and len(row["scores"]) == 8
    # what a report quotes: 16 training images in batches of 8 for one epoch; zero-shot CLIP trains nothing
    assert {row["model"]: (row["train_images"], row["steps"]) for row in rows} == {
        "zeroshot": (16, 0), "sspa": (16, 2), "dualcoop": (16, 2)}
    # ... but SSPA trains its image encoder, as in the paper; the DualCoOp-style head does not
    assert trains_encoder == {"zeroshot": False, "sspa": True, "dualcoop": False}
    # the real datasets' configs train the image encoder and cache nothing: DualCoOp still keeps CLIP frozen
    end_to_end = config_module.merge(config, {"train": {"cache_features": False, "freeze_image_encoder": False}})
    (dualcoop,) = compare_models(end_to_end, ["dualcoop"], seeds=[0])
    saved = yaml.safe_load((dualcoop["output_dir"] / "config.yaml").read_text())["train"]
    assert saved["freeze_image_encoder"] is True and saved["cache_features"] is False
    trained = load_checkpoint(dualcoop["output_dir"] / "checkpoints" / "last.pt")["model"]
    assert "positive.ctx" in trained and not any(key.startswith("backbone.clip.visual.") for key in trained)
    (fast,) = compare_models(config, ["sspa"], seeds=[0], protocol="config")
    assert yaml.safe_load((fast["output_dir"] / "config.yaml").read_text())["train"]["cache_features"] is True
    with pytest.raises(ValueError, match="unknown protocol"):
        compare_models(config, ["sspa"], protocol="fast")


def test_compare_models_resumes_an_interrupted_comparison_exactly(tiny_weights, tmp_path, monkeypatch):
    import numpy as np

    from sspa_core.engine import Trainer, compare_models
    from sspa_core.errors import CheckpointError

    values = [arg for arg in tiny_overrides(tiny_weights, tmp_path / "features", **{"train.checkpoint_every": 1})
              if arg != "--set"]  # 2 epochs of 2 steps; a checkpoint after every step
    config = {name: config_module.load_config("synthetic_natural", [*values, f"output_dir={tmp_path / name}"])
              for name in ("whole", "broken")}
    expected = compare_models(config["whole"], ["unid", "sspa"], seeds=[0], protocol="config")
    steps, stop_at, real_step = {"unid": 0, "sspa": 0}, [2], Trainer.train_step

    def step(self, batch):
        steps[self.model_name] += 1
        if self.model_name == "sspa" and steps["sspa"] == stop_at[0]:
            raise KeyboardInterrupt  # killed in SSPA's first epoch, after its first step was saved
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", step)
    with pytest.raises(KeyboardInterrupt):
        compare_models(config["broken"], ["unid", "sspa"], seeds=[0], protocol="config")
    assert steps == {"unid": 4, "sspa": 2}
    steps.update(unid=0, sspa=0)
    stop_at[0] = None
    resumed = compare_models(config["broken"], ["unid", "sspa"], seeds=[0], protocol="config", resume=True)
    assert steps == {"unid": 0, "sspa": 3}  # Uni-D had finished: only scored again; SSPA went on from step 1
    assert [row["resumed"] for row in resumed] == [True, True] and not any(row["resumed"] for row in expected)
    for want, got in zip(expected, resumed, strict=True):
        assert got["history"] == [{**row, "epoch_time_s": got_row["epoch_time_s"]}
                                  for row, got_row in zip(want["history"], got["history"], strict=True)]
        assert np.array_equal(got["scores"], want["scores"])
    last = tmp_path / "broken" / "sspa-seed0" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    other = config_module.merge(config["broken"], {"train": {"lr": 0.5}})
    with pytest.raises(CheckpointError, match=rf"{last} is a run with other settings \(1 differ, e\.g\. train\.lr: "
                                              r"[\d.e-]+ there, 0\.5 here\); to train afresh, delete its folder"):
        compare_models(other, ["sspa"], seeds=[0], protocol="config", resume=True)
    assert last.read_bytes() == before
