"""``model.dense_features``: the ViT's last-layer tokens (the paper's, unchanged) and the
training-free MaskCLIP / SCLIP / ClearCLIP variants of its last block (docs/method.md §Backbone),
each checked against a hand-written last block computed from the block's packed weights."""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from torch import nn
from torch.utils.data import Dataset

from sspa_core.backbone import DENSE_FEATURES, CLIPBackbone, load_backbone
from sspa_core.config import DEFAULTS, load_config
from sspa_core.engine.runs import build_model_from_config, check_run_config
from sspa_core.features import backbone_fingerprint, cached_features, module_fingerprint

VARIANTS = ("maskclip", "sclip", "clearclip")


def _one_block_vit() -> CLIPBackbone:
    """A random ViT CLIP with a single block (its last block's input is the embedding itself)."""
    vision = {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16}
    text = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}
    return CLIPBackbone(CLIP(32, vision, text).eval(), open_clip.get_tokenizer("sspa-tiny-vit"))


@pytest.fixture(scope="module")
def vits() -> dict[str, CLIPBackbone]:
    torch.manual_seed(0)
    return {"sspa-tiny-vit": load_backbone("sspa-tiny-vit"),
            "ViT-B-16@64": load_backbone("ViT-B-16", image_size=64),
            "one-block": _one_block_vit()}


def _images(backbone: CLIPBackbone, n: int = 2) -> torch.Tensor:
    size = backbone.image_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def _hand_written(backbone: CLIPBackbone, images: torch.Tensor, mode: str) -> torch.Tensor:
    """X of ``mode`` written out: blocks 1..L-1 as open_clip runs them, then the last block head
    by head from its packed in_proj (q, k, v rows in that order) and out_proj."""
    visual = backbone.clip.visual
    *first, last = visual.transformer.resblocks
    assert isinstance(last.ls_1, nn.Identity) and isinstance(last.ls_2, nn.Identity)
    x = visual._embeds(images)
    for block in first:
        x = block(x)
    z = last.ln_1(x)
    width, heads = z.shape[-1], last.attn.num_heads
    w, b = last.attn.in_proj_weight, last.attn.in_proj_bias
    q, k, v = (F.linear(z, w[i * width:(i + 1) * width], b[i * width:(i + 1) * width]) for i in range(3))
    d = width // heads
    outputs = []
    for h in range(heads):
        qh, kh, vh = (t[..., h * d:(h + 1) * d] for t in (q, k, v))
        if mode == "maskclip":
            outputs.append(vh)
            continue
        attention = torch.softmax(qh @ qh.transpose(1, 2) / math.sqrt(d), dim=-1)
        if mode == "sclip":
            attention = attention + torch.softmax(kh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)
        outputs.append(attention @ vh)
    o = F.linear(torch.cat(outputs, dim=-1), last.attn.out_proj.weight, last.attn.out_proj.bias)
    if mode == "clearclip":
        y = o
    else:
        y = x + o
        y = y + last.mlp(last.ln_2(y))
    return visual.ln_post(y[:, 1:]) @ visual.proj


@pytest.mark.parametrize("name", ["sspa-tiny-vit", "ViT-B-16@64"])
def test_tokens_are_the_last_layer_tokens_bit_for_bit(vits, name):
    backbone = vits[name]
    assert backbone.dense_features == "tokens" and DEFAULTS["model"]["dense_features"] == "tokens"
    visual, images = backbone.clip.visual, _images(backbone)
    with torch.no_grad():
        x0, patches = backbone.encode_image_dense(images)
        pooled, tokens = visual._pool(visual.transformer(visual._embeds(images)))
        assert torch.equal(patches, visual.ln_post(tokens) @ visual.proj if visual.final_ln_after_pool
                           else tokens @ visual.proj)
        assert torch.equal(x0, backbone.clip.encode_image(images))


@pytest.mark.parametrize("mode", VARIANTS)
@pytest.mark.parametrize("name", ["sspa-tiny-vit", "ViT-B-16@64", "one-block"])
def test_variant_matches_a_hand_written_last_block_and_keeps_x0(vits, name, mode):
    backbone = vits[name]
    images = _images(backbone)
    backbone.dense_features = mode
    try:
        with torch.no_grad():
            x0, patches = backbone.encode_image_dense(images)
            expected = _hand_written(backbone, images, mode)
            assert torch.equal(x0, backbone.clip.encode_image(images))
    finally:
        backbone.dense_features = "tokens"
    assert patches.shape == (2, backbone.num_patches(), backbone.embed_dim)
    torch.testing.assert_close(patches, expected)
    with torch.no_grad():
        assert not torch.allclose(patches, backbone.encode_image_dense(images)[1], atol=1e-3)


def test_clearclip_trains_through_the_last_attention_and_never_reads_its_ffn(vits):
    backbone = vits["sspa-tiny-vit"]
    backbone.dense_features = "clearclip"
    try:
        backbone.encode_image_dense(_images(backbone))[1].sum().backward()
    finally:
        backbone.dense_features = "tokens"
    last = backbone.clip.visual.transformer.resblocks[-1]
    assert last.attn.in_proj_weight.grad.abs().sum() > 0 and last.mlp.c_fc.weight.grad is None
    backbone.clip.zero_grad(set_to_none=True)


@pytest.mark.parametrize("mode", VARIANTS)
def test_a_resnet_tower_takes_tokens_only(mode):
    with pytest.raises(ValueError, match="ViT image towers only.*use 'tokens'"):
        load_backbone("sspa-tiny-rn", dense_features=mode)
    assert load_backbone("sspa-tiny-rn", dense_features="tokens").dense_features == "tokens"


def test_unknown_modes_and_unsupported_blocks_are_refused(vits):
    with pytest.raises(ValueError, match="unknown dense_features 'values'; valid: tokens, maskclip, sclip, clearclip"):
        load_backbone("sspa-tiny-vit", dense_features="values")
    backbone = _one_block_vit()
    with pytest.raises(ValueError, match="unknown dense_features"):
        backbone.dense_features = "MaskCLIP"
    backbone.clip.visual.transformer.resblocks[-1].attn = nn.Identity()
    with pytest.raises(ValueError, match="packed nn.MultiheadAttention.*Identity"):
        backbone.dense_features = "sclip"
    assert backbone.dense_features == "tokens"


def test_the_config_key_is_validated_and_reaches_the_backbone(monkeypatch):
    check_run_config(load_config("synthetic_natural", ["model.dense_features=clearclip"]))
    with pytest.raises(ValueError, match=r"'value' \(model.dense_features\); valid: tokens, maskclip"):
        check_run_config(load_config("synthetic_natural", ["model.dense_features=value"]))
    seen = {}

    def fake_load_backbone(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr("sspa_core.backbone.load_backbone", fake_load_backbone)
    with pytest.raises(RuntimeError, match="stop"):
        build_model_from_config(load_config("synthetic_natural", ["model.dense_features=sclip"]), ["a"], "cpu")
    assert seen["dense_features"] == "sclip"


class _Images(Dataset):
    label_names = ["a", "b"]
    masks = None

    def __init__(self, images: torch.Tensor):
        self.images = images
        self.targets = torch.ones(len(images), 2).numpy()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "target": torch.ones(2), "mask": torch.ones(2), "index": i}


def test_feature_cache_entries_of_different_modes_never_mix(tmp_path):
    backbone = load_backbone("sspa-tiny-vit", image_size=32)
    assert backbone_fingerprint(backbone) == module_fingerprint(backbone.clip.visual)  # "tokens" keys unchanged
    dataset = _Images(_images(backbone, 3))
    kwargs = dict(backbone_name="sspa-tiny-vit", dataset_id="fixed", split="val", cache_dir=tmp_path,
                  dtype="float32", progress=False)
    folders = set()
    for mode in DENSE_FEATURES:
        backbone.dense_features = mode
        cache = cached_features(backbone, dataset, **kwargs)
        with torch.no_grad():
            patches = backbone.encode_image_dense(dataset.images)[1]
        torch.testing.assert_close(torch.from_numpy(np.array(cache.X)), patches)
        folders.add(cache.folder)
    assert len(folders) == len(DENSE_FEATURES)
