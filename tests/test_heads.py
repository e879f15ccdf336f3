"""The trained SSPA heads: export of a training checkpoint (``sspa export``) and the shipped heads,
which load like any checkpoint and reproduce the check score recorded beside them."""

from __future__ import annotations

import json

import pytest
import torch
from test_cli_train import tiny_overrides

from sspa_core.cli import main
from sspa_core.engine import load_checkpoint, load_trained_model
from sspa_core.engine.heads import (
    SHIPPED_HEADS,
    backbone_digest,
    check_score,
    head_summary,
    matching_head,
    shipped_head,
)
from sspa_core.paths import metadata_path


@pytest.fixture(scope="module")
def exported(tiny_weights, tmp_path_factory):
    run, heads = tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("heads")
    assert main(["train", "--config", "synthetic_pedestrian", "--output-dir", str(run),
                 *tiny_overrides(tiny_weights, run / "features", **{"train.monitor": "mA"})]) == 0
    assert main(["export", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--output-dir", str(heads),
                 "--command", "sspa train --config synthetic_pedestrian"]) == 0
    return run, heads / "synthetic_pedestrian.pt"


def test_export_keeps_the_weights_and_drops_training_state(exported):
    run, head = exported
    ckpt, original = load_checkpoint(head), load_checkpoint(run / "checkpoints" / "best.pt")
    assert not {"optimizer", "scheduler", "rng", "scaler"} & set(ckpt)
    assert ckpt["config"]["output_dir"] == "" and ckpt["config"]["train"]["feature_cache_dir"] == ""
    for key, value in original["model"].items():
        assert torch.equal(ckpt["model"][key], value)
    assert head.stat().st_size < (run / "checkpoints" / "best.pt").stat().st_size


def test_export_records_the_recipe_and_a_check_score_that_loading_reproduces(exported, tiny_weights):
    _, head = exported
    meta = json.loads(metadata_path(head).read_text())
    assert meta["command"] == "sspa train --config synthetic_pedestrian" and meta["monitor"] == "mA"
    assert meta["check"]["metric"] == "mA" and 0 < meta["check"]["value"] <= 1
    assert meta["backbone_sha256"] == backbone_digest({"model": {"pretrained": str(tiny_weights),
                                                                 "backbone": "sspa-tiny-vit"}})
    assert check_score(head) == pytest.approx(meta["check"]["value"], abs=1e-6)
    model, config, _ = load_trained_model(head)
    assert config["dataset"]["name"] == "synthetic_pedestrian" and not model.training


def test_export_refuses_what_is_not_a_training_checkpoint(tmp_path):
    bogus = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, bogus)
    assert main(["export", "--checkpoint", str(bogus), "--output-dir", str(tmp_path)]) == 2


@pytest.mark.parametrize("name", SHIPPED_HEADS)
def test_shipped_head_loads_and_scores_as_recorded(name):
    head = shipped_head(name)
    meta = json.loads(metadata_path(head).read_text())
    assert head.stat().st_size < 4_000_000, "a head of a frozen encoder holds no encoder weights"
    assert meta["command"] == f"sspa train --config {name}"
    ckpt = load_checkpoint(head)
    assert meta["backbone_sha256"] == backbone_digest(ckpt["config"]), \
        "the shipped tiny CLIP changed since this head was trained: run `make heads`"
    assert check_score(head) == pytest.approx(meta["check"]["value"], abs=0.01)
    recorded = f"{meta['monitor']} {100 * meta['best_value']:.1f} on the val split when it was made"
    made = f"`{meta['command']}`, {meta['epochs']} epochs"
    assert head_summary(head) == f"the shipped head {name}.pt ({made}): {recorded}"


def test_shipped_head_names_are_checked():
    with pytest.raises(ValueError, match="no shipped head"):
        shipped_head("coco")


def test_matching_head_only_for_the_same_backbone_and_size():
    natural = json.loads(metadata_path(shipped_head("synthetic_natural")).read_text())
    size = natural["image_size"]
    assert matching_head("synthetic_natural", natural["backbone"], "", size) == shipped_head("synthetic_natural")
    assert matching_head("synthetic_natural", natural["backbone"], "", None) is not None
    assert matching_head("synthetic_natural", natural["backbone"], "", size + 16) is None
    assert matching_head("synthetic_natural", natural["backbone"], "/my/weights.pt", size) is None
    assert matching_head("synthetic_natural", "ViT-B-16", "", size) is None
    assert matching_head("coco", natural["backbone"], "", size) is None
