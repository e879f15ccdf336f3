"""The v2 offline world: shipped descriptions fit the tiny CLIPs' text context, the best-patch
zero-shot scorer, and benchmarks/bench_world.py on the shipped checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from helpers import load_script, random_backbone
from torch.nn import functional as F

from sspa_core import paths
from sspa_core.backbone import TINY_MODELS
from sspa_core.baselines import zero_shot_patch_scores, zero_shot_scores
from sspa_core.data.synthetic import SyntheticScenes
from sspa_core.descriptions import DESCRIPTIONS_DIR
from sspa_core.metrics import mean_average_precision
from sspa_core.prompting import TEMPLATE

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_world.py"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")  # the template features' cache


@pytest.mark.parametrize("name", TINY_MODELS)
def test_every_shipped_description_fits_the_text_context(name):
    context = open_clip.get_model_config(name)["text_cfg"]["context_length"]
    tokenizer = open_clip.get_tokenizer(name)
    files = sorted(DESCRIPTIONS_DIR.glob("*.json"))
    assert files
    too_long = {
        f"{path.stem}:{label}": len(tokenizer.encode(sentence)) + 2
        for path in files
        for label, sentence in json.loads(path.read_text())["descriptions"].items()
        if len(tokenizer.encode(sentence)) + 2 > context
    }
    assert not too_long, f"descriptions longer than {context} tokens: {too_long}"


def test_patch_scores_match_open_clips_own_patch_tokens():
    backbone = random_backbone("sspa-tiny-vit")
    scenes = SyntheticScenes("natural", "val", num_images=3, image_size=backbone.image_size)
    scores, targets = zero_shot_patch_scores(backbone, scenes, batch_size=2)
    assert scores.shape == targets.shape == (3, len(scenes.label_names))
    assert np.isfinite(scores).all()
    assert np.array_equal(targets, scenes.targets)
    assert all(p.requires_grad for p in backbone.parameters())  # left as found

    visual = backbone.clip.visual
    images = torch.stack([scenes[i]["image"] for i in range(3)])
    texts = [TEMPLATE.format(label=n) for n in scenes.label_names]
    visual.output_tokens = True
    with torch.no_grad():
        _, tokens = visual(images)  # after ln_post, not yet projected
        labels = F.normalize(backbone.clip.encode_text(backbone.tokenizer(texts)), dim=-1)
        cos = F.normalize(tokens @ visual.proj, dim=-1) @ labels.T
        expected = backbone.logit_scale * cos.amax(dim=1)
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-4, atol=1e-4)


def test_single_patch_scores_equal_the_global_scores():
    """A ModifiedResNet at 32 px has one grid cell; without positional embedding its attention
    pool averages two identical tokens, so x0 equals the one patch X and the scores agree."""
    backbone = random_backbone("sspa-tiny-rn", 32)
    backbone.clip.visual.attnpool.positional_embedding.data.zero_()
    assert backbone.num_patches() == 1
    scenes = SyntheticScenes("pedestrian", "val", num_images=4, image_size=32)
    patch, _ = zero_shot_patch_scores(backbone, scenes)
    global_scores, _ = zero_shot_scores(backbone, scenes)
    np.testing.assert_allclose(patch, global_scores, rtol=1e-4, atol=1e-4)


def test_patch_scores_refuse_images_of_another_size():
    backbone = random_backbone("sspa-tiny-vit")
    scenes = SyntheticScenes("natural", "val", num_images=2, image_size=backbone.image_size + 16)
    with pytest.raises(ValueError, match="pass image_size"):
        zero_shot_patch_scores(backbone, scenes)


@pytest.mark.slow
def test_bench_world_prints_a_table_per_shipped_model():
    done = subprocess.run([sys.executable, str(SCRIPT), "--num-images", "8", "--threads", "1", "--why"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("best-patch mAP") == len(TINY_MODELS)
    assert out.count("image-to-caption R@1") == len(TINY_MODELS)
    for header in ("domain", "chance", "x0 mAP", "descriptions fit", "pretraining:", "domain mix: natural"):
        assert header in out
    for domain in ("natural", "pedestrian", "remote_sensing"):
        assert out.count(f"\n{domain} ") == len(TINY_MODELS)


bench_world = load_script(SCRIPT)


def test_label_sizes_are_fractions_for_shown_labels_and_nan_for_the_rest():
    scenes = SyntheticScenes("natural", "val", num_images=20, image_size=32)
    sizes = scenes.label_sizes()
    shown = scenes.targets.sum(0) > 0
    assert np.isnan(sizes[~shown]).all()
    assert ((sizes[shown] > 0) & (sizes[shown] <= 1)).all()
    one = SyntheticScenes("natural", "val", num_images=1, image_size=32)  # one scene: its first elements
    first = {}
    for el in one.layouts[0].elements:
        for label in el.labels:
            first.setdefault(label, max(el.box[2] - el.box[0], el.box[3] - el.box[1]))
    sizes = one.label_sizes()
    assert {one.label_names[k]: sizes[k] for k in np.flatnonzero(~np.isnan(sizes))} == pytest.approx(first)


def test_why_report_scores_the_template_like_the_zero_shot_scorer():
    backbone = random_backbone("sspa-tiny-vit", image_size=32)
    lines = bench_world.why_report(backbone, num_images=12)
    scenes = SyntheticScenes("natural", "val", num_images=12, image_size=32)
    expected = mean_average_precision(*zero_shot_scores(backbone, scenes))
    prompts = lines[1]
    assert f'"{TEMPLATE}" {expected:.4f}' in prompts
    for name in ('"{label}"', '"a {label}."', "caption templates (mean)"):
        assert name in prompts
    counts = scenes.targets.sum(1).astype(int)
    assert lines[2].count("(") == len(set(counts[counts > 0]))
    assert lines[3].count(":") == 5  # the heading and four size quartiles
    r1 = float(lines[4].rsplit(" ", 1)[1])
    assert 0 <= r1 <= 1
    with torch.no_grad():
        captions = F.normalize(backbone.encode_text(scenes.captions).float(), dim=-1)
        prompts = F.normalize(backbone.encode_text([TEMPLATE.format(label=n) for n in scenes.label_names]).float(),
                              dim=-1)
    text_only = mean_average_precision((captions @ prompts.T).numpy(), scenes.targets)
    assert f"(text tower alone): mAP {text_only:.4f};" in lines[5]
    assert lines[5].count(":") == 6  # the heading, the mAP and four size quartiles


def test_labels_by_size_covers_the_shown_labels_smallest_first():
    scenes = SyntheticScenes("natural", "val", num_images=20, image_size=32)
    sizes, parts = scenes.label_sizes(), scenes.labels_by_size(3)
    assert sorted(np.concatenate(parts)) == list(np.flatnonzero(scenes.targets.sum(0) > 0))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert sizes[parts[0]].max() <= sizes[parts[1]].min() and sizes[parts[1]].max() <= sizes[parts[2]].min()
