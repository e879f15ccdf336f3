"""Baselines: zero-shot CLIP, Uni-D, the DualCoOp-style head and CLIP-FT, and build_model."""

from __future__ import annotations

import pytest
import torch
from helpers import random_backbone
from test_model import DESCRIPTIONS, LABELS, N_CTX, SIZE
from torch.nn import functional as F

from sspa_core import paths
from sspa_core.baselines import MODEL_NAMES, DualCoOpHead, build_model, zero_shot_scores
from sspa_core.losses import AsymmetricLoss
from sspa_core.model import SSPAConfig
from sspa_core.training import optimizer_groups


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")


def make(name: str, backbone_name: str = "sspa-tiny-vit", size: int = SIZE):
    torch.manual_seed(0)
    backbone = random_backbone(backbone_name, size)
    return build_model(name, backbone, LABELS, SSPAConfig(n_ctx=N_CTX), DESCRIPTIONS)


def zero_shot_logits(backbone, images):
    """Independent reference: τ · cos(encode_image, encode_text("A photo of a {label}."))."""
    image = F.normalize(backbone.encode_image(images), dim=-1)
    text = F.normalize(backbone.encode_text([f"A photo of a {n}." for n in LABELS]), dim=-1)
    return backbone.logit_scale * image @ text.T


@pytest.mark.parametrize("backbone_name", ["sspa-tiny-vit", "sspa-tiny-rn"])
@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_runs_on_tiny_backbones(name, backbone_name, size):
    model = make(name, backbone_name, size)
    images = torch.randn(2, 3, size, size)
    out = model(images)
    assert {"global", "regional", "score", "patch_weights", "gates", "attention"} <= set(out)
    assert out["score"].shape == (2, len(LABELS))
    assert ((out["score"] >= 0) & (out["score"] <= 1)).all()
    groups = model.param_groups()
    if name == "zeroshot":
        assert groups == {"image_encoder": [], "text_encoder": [], "head": []}
        assert not any(p.requires_grad for p in model.parameters())
        return
    out["score"].sum().backward()
    assert groups["head"] and all(p.grad is not None for p in groups["head"])
    assert any(p.grad is not None for p in groups["image_encoder"])
    text_trained = [p.requires_grad for p in model.backbone.text_parameters()]
    assert all(text_trained) if name == "clip_ft" else not any(text_trained)  # CLIP-FT trains both encoders


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_equals_forward_features(name):
    model = make(name).eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model(images)["score"],
                                   model.forward_features(*model.backbone.encode_image_dense(images))["score"])


def test_zero_shot_matches_clip_and_unid_starts_there():
    zero_shot = make("zeroshot")
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        reference = zero_shot_logits(zero_shot.backbone, images)
        torch.testing.assert_close(zero_shot(images)["global"], reference, rtol=1e-4, atol=1e-4)
        unid = make("unid")
        torch.testing.assert_close(unid(images)["global"], zero_shot_logits(unid.backbone, images),
                                   rtol=1e-4, atol=1e-4)
        torch.manual_seed(0)
        biased = build_model("unid", random_backbone("sspa-tiny-vit", SIZE), LABELS, SSPAConfig(logit_bias=-6.0))
        torch.testing.assert_close(biased(images)["global"], zero_shot_logits(biased.backbone, images) - 6.0,
                                   rtol=1e-4, atol=1e-4)


class _Images(torch.utils.data.Dataset):
    """The dataset interface zero_shot_scores reads: ``label_names`` and image/target items."""

    label_names = LABELS

    def __init__(self, images, targets):
        self.images, self.targets = images, targets

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "target": self.targets[i]}


def test_zero_shot_scores_over_a_dataset_match_clip():
    torch.manual_seed(1)
    backbone = random_backbone("sspa-tiny-vit", SIZE)
    images, targets = torch.randn(5, 3, SIZE, SIZE), torch.randint(0, 2, (5, len(LABELS))).float()
    with torch.no_grad():
        reference = zero_shot_logits(backbone, images)
    backbone.train().requires_grad_(True)  # e.g. a model being pretrained, scored between steps
    scores, returned = zero_shot_scores(backbone, _Images(images, targets), batch_size=2)
    torch.testing.assert_close(torch.from_numpy(scores), reference, rtol=1e-4, atol=1e-4)
    assert (returned == targets.numpy()).all()
    assert backbone.training and all(p.requires_grad for p in backbone.parameters())  # left as found
    with pytest.raises(ValueError, match=f"{SIZE + 32} px but the backbone expects {SIZE} px"):
        zero_shot_scores(backbone, _Images(torch.randn(1, 3, SIZE + 32, SIZE + 32), targets[:1]))


def test_clip_ft_fine_tunes_both_encoders_from_zero_shot_clip():
    model = make("clip_ft")
    images = torch.randn(2, 3, SIZE, SIZE)
    out = model(images)
    torch.testing.assert_close(out["global"], zero_shot_logits(model.backbone, images), rtol=1e-4, atol=1e-4)
    AsymmetricLoss()(out["global"], torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])).backward()
    text = model.backbone.text_parameters()
    groups = model.param_groups()
    assert {id(p) for p in groups["text_encoder"]} == {id(p) for p in text}
    assert all(p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0 for p in text)
    assert any(p.grad is not None for p in groups["image_encoder"]) and model.bias.grad is not None
    optimised = {id(p) for g in optimizer_groups(model, {"head": 1.0, "image_encoder": 0.1, "text_encoder": 0.1}, 0.1)
                 if g["name"] == "text_encoder" for p in g["params"]}
    assert optimised == {id(p) for p in text}


def test_clip_ft_image_freezes_the_text_encoder_and_is_a_linear_head_on_x0():
    model = make("clip_ft_image")
    assert model.param_groups()["text_encoder"] == []
    x0, patches = torch.randn(2, model.backbone.embed_dim), torch.randn(2, 5, model.backbone.embed_dim)
    torch.testing.assert_close(model.forward_features(x0, patches)["score"], torch.full((2, 3), 0.5))
    torch.nn.init.normal_(model.classifier.weight)
    expected = x0 @ model.classifier.weight.T + model.classifier.bias
    torch.testing.assert_close(model.forward_features(x0, patches)["global"], expected)
    model.backbone.freeze_image()  # linear probe
    assert model.param_groups()["image_encoder"] == []


def test_dualcoop_positive_minus_negative_with_spatial_softmax():
    torch.manual_seed(0)
    backbone = random_backbone("sspa-tiny-vit", SIZE)
    head = DualCoOpHead(backbone, LABELS, n_ctx=2)
    x0, patches = torch.randn(2, backbone.embed_dim), torch.randn(2, 6, backbone.embed_dim)
    with torch.no_grad():
        head.negative.ctx.copy_(head.positive.ctx)
    out = head.forward_features(x0, patches)
    torch.testing.assert_close(out["score"], torch.full((2, 3), 0.5))  # equal prompts: undecided
    torch.testing.assert_close(out["patch_weights"].sum(1), torch.ones(2, 3))
    with torch.no_grad():
        head.negative.ctx.normal_(0, 0.02)
        out = head.forward_features(x0, patches)
        pos = F.normalize(patches, dim=-1) @ F.normalize(head.positive(), dim=-1).T
        neg = F.normalize(patches, dim=-1) @ F.normalize(head.negative(), dim=-1).T
        scale = backbone.logit_scale
        weights = (scale * pos).softmax(1)
        expected = scale * ((weights * pos).sum(1) - (weights * neg).sum(1))
    torch.testing.assert_close(out["regional"], expected)
    specific = DualCoOpHead(backbone, LABELS, n_ctx=2, class_specific=True)
    assert specific.positive.ctx.shape[0] == len(LABELS)


def test_build_model_rejects_unknown_names():
    backbone = random_backbone("sspa-tiny-vit", SIZE)
    with pytest.raises(ValueError, match="dualcoop"):
        build_model("q2l", backbone, LABELS)
