"""The tiny CLIP: registered configs, pretraining at a tiny size, checkpoint round trip through
open_clip's own loader, the shipped checkpoints and their zero-shot quality."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch

from sspa_core import paths
from sspa_core.backbone import TINY_MODELS, load_backbone, shipped_checkpoint
from sspa_core.baselines import zero_shot_scores
from sspa_core.cli import main as sspa_main
from sspa_core.data.synthetic import SyntheticScenes
from sspa_core.domains import DOMAINS
from sspa_core.engine.pretraining import pretrain_tiny_clip
from sspa_core.localization import patch_centres_inside, scene_objects
from sspa_core.losses import patch_text_loss
from sspa_core.metrics import mean_average_precision
from sspa_core.paths import metadata_path
from sspa_core.tiny_clip import (
    DOMAIN_SHARE,
    check_zero_shot,
    label_vocabulary,
    patch_targets,
    render_caption_set,
    save_tiny_checkpoint,
)


def test_configs_are_registered_with_open_clip():
    assert set(TINY_MODELS) <= set(open_clip.list_models())
    vit = open_clip.create_model("sspa-tiny-vit")
    rn = open_clip.create_model("sspa-tiny-rn")
    assert type(vit.visual).__name__ == "VisionTransformer"
    assert type(rn.visual).__name__ == "ModifiedResNet"


@pytest.mark.parametrize("name", TINY_MODELS)
def test_checkpoint_round_trip_through_open_clip(tmp_path, name):
    torch.manual_seed(0)
    model = open_clip.create_model(name).eval()
    path = save_tiny_checkpoint(model, tmp_path / "a.pt")
    loaded = open_clip.create_model(name, pretrained=str(path)).eval()
    save_tiny_checkpoint(loaded, tmp_path / "b.pt")
    again = open_clip.create_model(name, pretrained=str(tmp_path / "b.pt")).eval()
    size = loaded.visual.image_size
    size = size[0] if isinstance(size, tuple) else size
    images = torch.randn(2, 3, size, size)
    tokens = open_clip.get_tokenizer(name)(["a dog and a cat.", "a red car."])
    with torch.no_grad():
        first, second = loaded(images, tokens), again(images, tokens)
        original = model(images, tokens)
    for a, b, c in zip(first, second, original):
        assert torch.equal(a, b)  # fp16 storage is lossless on a second round
        assert torch.allclose(a, c, atol=2e-2)  # and close to the fp32 model


@pytest.mark.slow
def test_pretrain_at_tiny_size_writes_a_loadable_checkpoint_and_learns(tmp_path):
    out = tmp_path / "tiny.pt"
    meta = pretrain_tiny_clip("sspa-tiny-vit", out, steps=30, batch_size=16, lr=1e-3,
                              num_images=48, image_size=32, domains=("natural",),
                              warmup_steps=3, progress=False, check_images=4)
    assert out.is_file() and meta["file_bytes"] == out.stat().st_size
    assert meta["domain_images"] == {"natural": 48} and 0 <= meta["zero_shot_check"]["mAP"] <= 1
    assert meta["loss_last"] < meta["loss_first"] - 0.3
    assert json.loads(metadata_path(out).read_text())["steps"] == 30
    assert open_clip.create_model("sspa-tiny-vit", pretrained=str(out)).visual.grid_size == (7, 7)
    bb = load_backbone("sspa-tiny-vit", pretrained=str(out), image_size=96)
    with torch.no_grad():
        x0, dense = bb.encode_image_dense(torch.randn(1, 3, 96, 96))
    assert dense.shape == (1, 36, bb.embed_dim) and torch.isfinite(x0).all()


def test_rendered_set_holds_each_labels_patches():
    tokenizer = open_clip.get_tokenizer("sspa-tiny-vit")
    data = render_caption_set(("natural", "remote_sensing"), 6, 32, 0, tokenizer, grid=7, progress=False)
    names, prompts = label_vocabulary(("natural", "remote_sensing"))
    assert len(set(names)) == len(names) == len(prompts) and prompts[0].startswith("a photo of")
    scenes = SyntheticScenes("natural", "train", num_images=5, image_size=32)
    _, _, labels, masks = data[0]
    targets = patch_targets(data.region_labels[:1], data.region_masks[:1], len(names))[0]  # [M, L]
    assert targets.shape == (49, len(names))
    for k, name in enumerate(scenes.layouts[0].labels):
        assert names[int(labels[k])] == name
        inside = patch_centres_inside(scene_objects(scenes, 0), 7, [name])
        assert masks[k].numpy()[inside].all()  # every patch centre in the label's boxes is a target
        assert torch.equal(targets[:, names.index(name)], masks[k].float())
    assert labels[len(scenes.layouts[0].labels):].eq(-1).all()  # padding
    absent = [j for j, name in enumerate(names) if name not in scenes.layouts[0].labels]
    assert targets[:, absent].sum() == 0


def test_patch_text_loss_prefers_patches_that_match_their_labels():
    texts = torch.eye(3, 4)
    patches = torch.zeros(1, 2, 4)
    patches[0, 0, 0] = patches[0, 1, 2] = 1.0  # patch 0 shows label 0, patch 1 label 2
    targets = torch.zeros(1, 2, 3)
    targets[0, 0, 0] = targets[0, 1, 2] = 1
    scale, bias = torch.tensor(10.0), torch.tensor(-5.0)
    right = patch_text_loss(patches, texts, targets, scale, bias)
    wrong = patch_text_loss(patches.flip(1), texts, targets, scale, bias)
    assert right < wrong
    logits = 10 * patches[0] @ texts.T - 5
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[0], reduction="sum") / 2
    assert right == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="targets"):
        patch_text_loss(patches, texts, targets[..., :2], scale, bias)


def test_pretraining_mix_is_mostly_natural_and_covers_every_domain():
    assert tuple(DOMAIN_SHARE) == DOMAINS and sum(DOMAIN_SHARE.values()) == pytest.approx(1)
    assert DOMAIN_SHARE["natural"] >= 0.7 and min(DOMAIN_SHARE.values()) > 0


@pytest.mark.parametrize("name", TINY_MODELS)
def test_v2_input_and_context(name):
    config = open_clip.get_model_config(name)
    assert config["text_cfg"]["context_length"] == 77
    visual = open_clip.create_model(name).visual
    grid = visual.grid_size if hasattr(visual, "grid_size") else (visual.attnpool.positional_embedding.shape[0] - 1,)
    assert int(np.prod(grid)) >= 49 and config["vision_cfg"]["image_size"] >= 112


def test_pretrain_refuses_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny model"):
        pretrain_tiny_clip("ViT-B-16", tmp_path / "x.pt")
    with pytest.raises(ValueError, match="patch_weight"):
        pretrain_tiny_clip("sspa-tiny-vit", tmp_path / "x.pt", patch_weight=float("nan"))
    with pytest.raises(ValueError, match="unknown domain 'moon'"):
        pretrain_tiny_clip("sspa-tiny-vit", tmp_path / "x.pt", domains=("moon",), steps=1,
                           batch_size=2, num_images=2)


def test_cli_pretrain_runs_at_tiny_size(tmp_path, capsys):
    out = tmp_path / "sspa-tiny-rn.pt"
    code = sspa_main(["pretrain", "--backbone", "sspa-tiny-rn", "--steps", "2", "--batch-size", "4",
                      "--warmup-steps", "1", "--num-images", "8", "--image-size", "32", "--domains", "natural",
                      "--check-images", "0", "--output-dir", str(tmp_path)])
    assert code == 0 and out.is_file()
    meta = json.loads(metadata_path(out).read_text())
    assert (meta["steps"], meta["batch_size"], meta["warmup_steps"], meta["num_images"]) == (2, 4, 1, 8)
    assert "sspa pretrain: sspa-tiny-rn" in capsys.readouterr().out
    # the 1×1 attention-pool grid was resized back to the config's 7×7
    open_clip.create_model("sspa-tiny-rn", pretrained=str(out))


@pytest.mark.parametrize("name", TINY_MODELS)
def test_shipped_checkpoint_is_small_and_loads(name):
    path = shipped_checkpoint(name)
    assert path.is_file(), f"missing {path}: run `sspa pretrain --model {name}`"
    assert path.stat().st_size <= 20_000_000
    meta = json.loads(metadata_path(path).read_text())
    assert meta["model"] == name and meta["total_seconds"] > 0
    bb = load_backbone(name)
    assert bb.image_size == meta["image_size"]
    check = meta["zero_shot_check"]
    assert check_zero_shot(name, path, check["num_images"]) == pytest.approx(check["mAP"], abs=0.005)


def test_zero_shot_scores_with_the_shipped_checkpoint_beat_chance(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path)  # the template features' on-disk cache
    bb = load_backbone("sspa-tiny-vit")
    scenes = SyntheticScenes("natural", "test", num_images=64, image_size=bb.image_size, seed=0)
    scores, targets = zero_shot_scores(bb, scenes, batch_size=32)
    assert scores.shape == targets.shape == (64, len(scenes.label_names))
    present = targets.sum(0) > 0
    chance = targets.mean(0)[present].mean()  # mAP of a constant scorer
    assert mean_average_precision(scores, targets) > 1.5 * chance
    with pytest.raises(ValueError, match="px"):
        zero_shot_scores(bb, SyntheticScenes("natural", "test", num_images=2,
                                             image_size=bb.image_size + 32, seed=0))
    assert np.isfinite(scores).all()
