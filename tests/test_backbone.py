"""The CLIP backbone wrapper: prompt-aware text encoder, dense features, input-size override,
freezing and loading errors, checked against open_clip's own functions."""

from __future__ import annotations

import open_clip
import pytest
import torch
from helpers import random_backbone
from PIL import Image
from torchvision import transforms as T

from sspa_core.backbone import (
    CLIPBackbone,
    load_backbone,
    preprocess_cfg,
    set_image_size,
)
from sspa_core.data import build_transform

NAMES = ("sspa-tiny-vit", "sspa-tiny-rn")
LABELS = ["dog", "traffic light", "hair drier"]


@pytest.mark.parametrize("name", NAMES)
def test_context_of_a_photo_of_a_reproduces_encode_text(name):
    bb = random_backbone(name)
    n_ctx = 4
    tokens = bb.text.tokenize_with_context(LABELS, n_ctx)
    ctx = bb.text.embed_tokens(bb.text.tokenize(["a photo of a"]))[0, 1:1 + n_ctx]
    with torch.no_grad():
        ours = bb.text(ctx, tokens)
        per_row = bb.text(ctx.expand(len(LABELS), -1, -1), tokens)
        reference = bb.clip.encode_text(open_clip.get_tokenizer(name)([f"a photo of a {n}." for n in LABELS]))
    assert ours.shape == (len(LABELS), bb.embed_dim)
    assert torch.allclose(ours, reference, atol=1e-5)
    assert torch.allclose(per_row, reference, atol=1e-5)
    assert torch.allclose(bb.encode_text(["a photo of a dog."]), reference[:1], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_trimmed_context_matches_encode_text_for_short_and_full_texts(name):
    bb = random_backbone(name)
    texts = ["dog.", "a photo of a traffic light.", " ".join(["word"] * 80)]  # the last fills the context
    tokens = bb.text.tokenize(texts)
    assert bb.text._pooled_length(tokens[:2]) == int(tokens[1].argmax()) + 1 < bb.text.context_length
    assert bb.text._pooled_length(tokens) == bb.text.context_length
    with torch.no_grad():
        reference = bb.clip.encode_text(tokens)
        for i in range(len(texts)):  # alone, each row is trimmed to its own length
            assert torch.allclose(bb.text.encode_tokens(tokens[i:i + 1]), reference[i:i + 1], atol=1e-5)
        assert torch.allclose(bb.text.encode_tokens(tokens), reference, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_shared_context_runs_once_with_the_same_values_and_gradients(name):
    bb = random_backbone(name)
    bb.freeze_text()
    assert bb.text._shares_prefixes()
    tokens = bb.text.tokenize_with_context(LABELS, 5)
    ctx = torch.randn(5, bb.text.width, requires_grad=True)
    per_row_ctx = ctx.detach().clone().requires_grad_()
    weights = torch.randn(len(LABELS), bb.embed_dim)
    shared = bb.text(ctx, tokens)  # the shared-prefix path
    per_row = bb.text(per_row_ctx.expand(len(LABELS), -1, -1), tokens)  # every row in full
    torch.testing.assert_close(shared, per_row, atol=1e-5, rtol=1e-5)
    (shared * weights).sum().backward()
    (per_row * weights).sum().backward()
    torch.testing.assert_close(ctx.grad, per_row_ctx.grad, atol=1e-5, rtol=1e-4)


def test_context_tokens_sit_at_positions_one_to_n_ctx():
    bb = random_backbone("sspa-tiny-vit")
    tokens = bb.text.tokenize_with_context(["dog"], 3)
    x_id = bb.text.tokenize(["X"])[0, 1]
    assert tokens[0, 0] == bb.tokenizer.sot_token_id
    assert (tokens[0, 1:4] == x_id).all() and tokens[0, 4] != x_id


def test_too_long_prompt_and_bad_ctx_shape_are_refused():
    bb = random_backbone("sspa-tiny-vit")
    with pytest.raises(ValueError, match="context length"):
        bb.text.tokenize_with_context(["dog"], bb.text.context_length)
    tokens = bb.text.tokenize_with_context(LABELS, 2)
    with pytest.raises(ValueError, match="ctx must be"):
        bb.text(torch.zeros(2, bb.text.width + 1), tokens)


@pytest.mark.parametrize("name", NAMES)
def test_x0_equals_encode_image(name):
    bb = random_backbone(name)
    images = torch.randn(2, 3, bb.image_size, bb.image_size)
    with torch.no_grad():
        x0, _ = bb.encode_image_dense(images)
        assert torch.allclose(x0, bb.clip.encode_image(images), atol=1e-5)
        assert torch.allclose(bb.encode_image(images), bb.clip.encode_image(images))


def test_vit_dense_equals_open_clip_tokens_times_proj():
    bb = random_backbone("sspa-tiny-vit")
    images = torch.randn(2, 3, bb.image_size, bb.image_size)
    with torch.no_grad():
        _, dense = bb.encode_image_dense(images)
        bb.clip.visual.output_tokens = True
        pooled, tokens = bb.clip.visual(images)
    assert torch.allclose(dense, tokens @ bb.clip.visual.proj, atol=1e-5)


def test_resnet_x0_is_an_attention_average_of_mean_token_and_dense_rows():
    """With one attention head, x0 = c_proj(Σ_j a_j v_proj(t_j)) with Σ a_j = 1 over
    [mean token, grid]: x0 lies in the affine hull of the value-projected rows, which random
    vectors of width d > M + 1 do not (the dense rows do not depend on the head count)."""
    bb = random_backbone("sspa-tiny-rn", image_size=128).double()  # M = 16 < d = 128
    bb.clip.visual.attnpool.num_heads = 1
    with torch.no_grad():
        images = torch.randn(1, 3, 128, 128, dtype=torch.float64)
        x0, dense = bb.encode_image_dense(images)
        visual = bb.clip.visual
        feat = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))
        pool = visual.attnpool
        mean_row = pool.c_proj(pool.v_proj(feat.flatten(2).mean(-1) + pool.positional_embedding[0]))
    rows = torch.cat([mean_row, dense[0]])  # [M + 1, d]

    def affine_residual(target: torch.Tensor) -> float:
        basis = (rows[1:] - rows[0]).T
        coef = torch.linalg.lstsq(basis, (target - rows[0]).unsqueeze(1)).solution
        residual = (basis @ coef).squeeze(1) - (target - rows[0])
        return float(residual.norm() / target.norm())

    assert affine_residual(x0[0]) < 1e-8
    assert affine_residual(torch.randn(bb.embed_dim, dtype=torch.float64)) > 0.1


@pytest.mark.parametrize("name,size,grid", [
    ("sspa-tiny-vit", 224, 14), ("sspa-tiny-vit", 288, 18),
    ("sspa-tiny-rn", 224, 7), ("sspa-tiny-rn", 288, 9),
])
def test_dense_shapes_at_two_input_sizes(name, size, grid):
    bb = random_backbone(name, image_size=size)
    assert bb.image_size == size and bb.num_patches() == grid * grid
    with torch.no_grad():
        x0, dense = bb.encode_image_dense(torch.randn(2, 3, size, size))
    assert x0.shape == (2, bb.embed_dim)
    assert dense.shape == (2, grid * grid, bb.embed_dim)
    assert torch.isfinite(dense).all()


def test_in_place_resize_matches_open_clips_forced_size_loading(tmp_path):
    torch.manual_seed(0)
    clip = open_clip.create_model("sspa-tiny-vit")
    torch.save(clip.state_dict(), tmp_path / "vit.pt")
    forced = open_clip.create_model("sspa-tiny-vit", pretrained=str(tmp_path / "vit.pt"), force_image_size=160)
    set_image_size(clip, 160)
    assert clip.visual.grid_size == forced.visual.grid_size == (10, 10)
    assert clip.visual.preprocess_cfg["size"] == (160, 160)
    assert clip.visual.positional_embedding.shape[0] == 101  # class token + 10 x 10 grid
    assert torch.allclose(clip.visual.positional_embedding, forced.visual.positional_embedding, atol=1e-6)


def test_float16_checkpoint_loads_at_another_size(tmp_path):
    # open_clip cannot resize a float16 positional embedding on load (CPU); load_backbone can
    torch.manual_seed(0)
    clip = open_clip.create_model("sspa-tiny-vit")
    torch.save(clip.half().state_dict(), tmp_path / "vit-half.pt")
    with pytest.raises(NotImplementedError):
        open_clip.create_model("sspa-tiny-vit", pretrained=str(tmp_path / "vit-half.pt"), force_image_size=160)
    bb = load_backbone("sspa-tiny-vit", pretrained=str(tmp_path / "vit-half.pt"), image_size=160)
    assert bb.preprocess_cfg["size"] == (160, 160) and bb.num_patches() == 100
    set_image_size(clip.float(), 160)
    assert torch.allclose(bb.clip.visual.positional_embedding, clip.visual.positional_embedding, atol=1e-6)


def test_input_size_must_fit_the_stride():
    clip = open_clip.create_model("sspa-tiny-rn")
    with pytest.raises(ValueError, match="multiple of 32"):
        set_image_size(clip, 100)


def test_freeze_text_keeps_gradients_flowing_to_context():
    bb = random_backbone("sspa-tiny-vit")
    bb.freeze_text()
    tokens = bb.text.tokenize_with_context(LABELS, 2)
    ctx = torch.randn(2, bb.text.width, requires_grad=True)
    bb.text(ctx, tokens).sum().backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    text_params = bb.text_parameters()
    visual_ids = {id(p) for p in bb.clip.visual.parameters()}
    others = [n for n, p in bb.clip.named_parameters() if id(p) not in visual_ids
              and all(p is not q for q in text_params)]
    assert others == ["logit_scale"]  # every non-visual parameter but the scale is text
    for param in text_params:
        assert not param.requires_grad and param.grad is None
    assert all(p.requires_grad for p in bb.clip.visual.parameters())
    bb.freeze_image()
    assert not any(p.requires_grad for p in bb.clip.visual.parameters())


def test_state_dict_has_each_parameter_once():
    bb = random_backbone("sspa-tiny-vit")
    assert set(bb.state_dict()) == {f"clip.{k}" for k in bb.clip.state_dict()}


def test_load_backbone_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_backbone("sspa-tiny-vit", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown model"):
        load_backbone("no-such-model")
    with pytest.raises(ValueError, match="known tag"):
        load_backbone("sspa-tiny-vit", pretrained="openai")


def test_load_backbone_from_local_checkpoint_with_size_override(tmp_path):
    torch.manual_seed(1)
    clip = open_clip.create_model("sspa-tiny-rn")
    torch.save(clip.state_dict(), tmp_path / "rn.pt")
    bb = load_backbone("sspa-tiny-rn", pretrained=str(tmp_path / "rn.pt"), image_size=160)
    assert bb.image_size == 160 and bb.num_patches() == 25 and bb.preprocess_cfg["size"] == (160, 160)
    assert torch.equal(bb.clip.visual.conv1.weight, clip.visual.conv1.weight)
    pos = bb.clip.visual.attnpool.positional_embedding
    assert pos.shape[0] == 26 and torch.equal(pos[0], clip.visual.attnpool.positional_embedding[0])
    with torch.no_grad():
        x0, dense = bb.encode_image_dense(torch.randn(1, 3, 160, 160))
    assert dense.shape == (1, 25, 128)


def _normalize(transform: T.Compose) -> T.Normalize:
    return next(step for step in transform.transforms if isinstance(step, T.Normalize))


def test_transform_normalises_with_the_models_preprocess_cfg():
    mean, std = (0.5, 0.25, 0.125), (0.5, 0.5, 0.25)
    clip = open_clip.create_model("sspa-tiny-vit", force_preprocess_cfg={
        "mean": mean, "std": std, "interpolation": "bilinear"})
    bb = CLIPBackbone(clip, open_clip.get_tokenizer("sspa-tiny-vit"))
    transform = build_transform(32, preprocess=bb.preprocess_cfg)
    assert tuple(_normalize(transform).mean) == mean and tuple(_normalize(transform).std) == std
    assert transform.transforms[0].interpolation == T.InterpolationMode.BILINEAR
    image = transform(Image.new("RGB", (48, 40), (255, 0, 51)))
    assert image.shape == (3, 32, 32)
    expected = torch.tensor([(1 - 0.5) / 0.5, (0 - 0.25) / 0.5, (0.2 - 0.125) / 0.25])
    assert torch.allclose(image[:, 5, 7], expected, atol=1e-5)
    default = build_transform(32)  # no config: OpenAI CLIP's normalisation
    assert tuple(_normalize(default).mean) == open_clip.OPENAI_DATASET_MEAN
    assert default.transforms[0].interpolation == T.InterpolationMode.BICUBIC


@pytest.mark.parametrize("name", NAMES)
def test_preprocess_cfg_before_building_equals_the_built_models(name):
    before = preprocess_cfg(name, None, 96)
    after = load_backbone(name, image_size=96).preprocess_cfg
    size = after.pop("size")
    assert (size if isinstance(size, tuple) else (size, size)) == (96, 96) and before.pop("size") == 96
    assert before == after


def test_preprocess_cfg_of_a_pretrained_tag_without_download(tmp_path):
    siglip = preprocess_cfg("ViT-B-16-SigLIP", "webli")
    assert siglip["mean"] == siglip["std"] == (0.5, 0.5, 0.5) and siglip["resize_mode"] == "squash"
    assert preprocess_cfg("ViT-B-16", "openai")["mean"] == open_clip.OPENAI_DATASET_MEAN
    assert preprocess_cfg("ViT-B-16", tmp_path / "missing.pt")["std"] == open_clip.OPENAI_DATASET_STD
    with pytest.raises(ValueError, match="unknown model"):
        preprocess_cfg("no-such-model")


def test_pretraining_never_writes_into_an_installed_package(monkeypatch, tmp_path):
    from sspa_core import backbone, paths

    assert backbone.pretraining_output("sspa-tiny-rn") == backbone.shipped_checkpoint("sspa-tiny-rn")
    monkeypatch.setattr(paths, "DATA_DIR", paths.PACKAGED_DATA_DIR)
    monkeypatch.setattr(paths, "OUTPUT_DIR", tmp_path)
    assert backbone.pretraining_output("sspa-tiny-rn") == tmp_path / "tiny_clip" / "sspa-tiny-rn.pt"
