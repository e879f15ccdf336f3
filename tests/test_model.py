"""SSPAConfig validation, the SSPA model's outputs, gradients, ablation switches and caching."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import random_backbone

from sspa_core import paths
from sspa_core.engine.quick_fit import fit_on_features
from sspa_core.model import SSPA, SSPAConfig, build_loss
from sspa_core.prompting import QuaternionSemanticModeling, matched_mlp_width

LABELS = ["cat", "dog", "car"]
DESCRIPTIONS = {n: f"A {n} is a thing one often sees in a street or a house." for n in LABELS}
N_CTX = 4
SIZE = 64  # small inputs keep the tests fast (4×4 ViT patches)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")


@pytest.fixture(scope="module")
def vit():
    return random_backbone("sspa-tiny-vit", SIZE)


def build(backbone, **overrides) -> SSPA:
    torch.manual_seed(0)
    return SSPA(backbone, LABELS, SSPAConfig(n_ctx=N_CTX, **overrides), DESCRIPTIONS)


def trainable(model) -> int:
    return sum(p.numel() for p in model.param_groups()["head"])


def test_config_round_trip_and_validation():
    config = SSPAConfig(synthesis="mlp", gate=False, branches="regional")
    assert SSPAConfig.from_dict(config.to_dict()) == config
    assert SSPAConfig.from_dict({}) == SSPAConfig()
    with pytest.raises(ValueError, match=r"synthesis.*'qsm', 'sum', 'concat', 'mlp'"):
        SSPAConfig(synthesis="attention")
    with pytest.raises(ValueError, match="aggregator"):
        SSPAConfig(aggregator="median")
    with pytest.raises(ValueError, match="valid keys"):
        SSPAConfig.from_dict({"use_gate": False})
    with pytest.raises(ValueError, match="use_kap or use_cap"):
        SSPAConfig(use_kap=False, use_cap=False)
    assert SSPAConfig(use_kap=False, use_cap=False, branches="global").uses_regional is False
    with pytest.raises(ValueError, match="multiple of 4"):
        SSPAConfig(quaternion_width=30)
    with pytest.raises(ValueError, match="n_ctx"):
        SSPAConfig(n_ctx=0)
    with pytest.raises(ValueError, match="True or False"):
        SSPAConfig(gate="yes")
    with pytest.raises(ValueError, match="logit_bias"):
        SSPAConfig(logit_bias=float("nan"))


def test_logit_bias_shifts_both_branches_and_is_learned(vit):
    images = torch.randn(2, 3, SIZE, SIZE)
    plain, biased = build(vit), build(vit, logit_bias=-3.0)
    biased.load_state_dict(plain.state_dict(), strict=False)  # same weights, bias aside
    out, shifted = plain(images), biased(images)
    for branch in ("global", "regional"):
        torch.testing.assert_close(shifted[branch], out[branch] - 3.0)
    torch.testing.assert_close(shifted["score"], ((out["global"] - 3).sigmoid() + (out["regional"] - 3).sigmoid()) / 2)
    build_loss(biased.config)(shifted, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])).backward()
    assert biased.logit_bias.grad is not None and bool((biased.logit_bias.grad != 0).all())


def test_llm_kap_needs_descriptions(vit):
    with pytest.raises(ValueError, match="kap_source='template'"):
        SSPA(vit, LABELS, SSPAConfig(n_ctx=N_CTX))
    model = SSPA(vit, LABELS, SSPAConfig(n_ctx=N_CTX, kap_source="template"))
    assert model.kap.texts[0] == "A photo of a cat."


def test_outputs_and_eq18_score(vit):
    model = build(vit)
    out = model(torch.randn(2, 3, SIZE, SIZE))
    M, C, d = vit.num_patches(), len(LABELS), vit.embed_dim
    assert out["global"].shape == out["regional"].shape == out["score"].shape == (2, C)
    torch.testing.assert_close(out["score"], (out["global"].sigmoid() + out["regional"].sigmoid()) / 2)
    assert out["patch_weights"].shape == (2, M, C)
    torch.testing.assert_close(out["patch_weights"].sum(1), torch.ones(2, C))
    assert out["gates"]["text"].shape == (2, C, d) and out["gates"]["visual"].shape == (2, M, d)
    assert set(out["attention"]) == {"dsf", "text", "visual"}
    only_global = build(vit, branches="global")(torch.randn(2, 3, SIZE, SIZE))
    assert only_global["regional"] is None
    torch.testing.assert_close(only_global["score"], only_global["global"].sigmoid())


def test_forward_equals_forward_features(vit):
    model = build(vit).eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        direct = model(images)
        cached = model.forward_features(*vit.encode_image_dense(images))
    for key in ("global", "regional", "score", "patch_weights"):
        torch.testing.assert_close(direct[key], cached[key])


def test_gradients_reach_prompts_not_text_encoder(vit):
    model = build(vit)
    out = model(torch.randn(2, 3, SIZE, SIZE))
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    build_loss(model.config)(out, target).backward()
    for learner in (model.cap, model.global_prompts):
        assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vit.text_parameters())
    assert any(p.grad is not None for p in vit.clip.visual.parameters())  # image encoder trains
    groups = model.param_groups()
    image_ids = {id(p) for p in groups["image_encoder"]}
    head_ids = {id(p) for p in groups["head"]}
    assert not image_ids & head_ids and id(model.cap.ctx) in head_ids
    assert not {id(p) for p in vit.text_parameters()} & (image_ids | head_ids) and groups["text_encoder"] == []
    model.zero_grad(set_to_none=True)


def test_kap_features_not_recomputed_on_forward(vit, monkeypatch):
    model = build(vit)
    calls = []
    original = vit.text.encode_tokens
    monkeypatch.setattr(vit.text, "encode_tokens", lambda tokens: calls.append(1) or original(tokens))
    images = torch.randn(2, 3, SIZE, SIZE)
    model(images)
    model(images)
    assert calls == []


D = 128  # embed dim of the tiny models; quaternion width 4k = d by default
TEXT_WIDTH = 128  # token width of the tiny ViT's text tower (one context vector)
GATE = (D * D + D) + (2 * D * D + D)  # modulation d→d and gate 2d→d (eq. 11)
BRANCH = D * D + GATE + 2 * D + 2 * (D * D + D)  # W_q, gate, LN + MLP (eq. 12 / 13)
DSF = D * D + 2 * D + 2 * (D * D + D)  # W_q, LN + MLP (eq. 5)


def qsm_params(width: int = D, inputs: int = 3) -> int:
    """eq. 6 embedding (inputs·d → 4k) and two quaternion layers (eq. 10: 4k → 4k → d)."""
    return (inputs * D * width + width) + (width * width // 4 + width) + (width * D // 4 + D)


def mlp_params(width: int, inputs: int = 3) -> int:
    """A real MLP inputs·d → h → h → d."""
    return (inputs * D * width + width) + (width * width + width) + (width * D + D)


# change of the trainable head parameters against the full model, per switch
ABLATIONS = {
    "gate": ({"gate": False}, -2 * GATE),
    "v2s": ({"visual_to_semantic": False}, -BRANCH),
    "s2v": ({"semantic_to_visual": False}, -BRANCH),
    "no_gdma": ({"visual_to_semantic": False, "semantic_to_visual": False}, -2 * BRANCH),
    "kap_template": ({"kap_source": "template"}, 0),
    "no_kap": ({"use_kap": False}, qsm_params(inputs=2) - qsm_params()),
    "no_cap": ({"use_cap": False}, -N_CTX * TEXT_WIDTH - DSF + qsm_params(inputs=2) - qsm_params()),
    "cap_soft": ({"cap_mode": "soft"}, -DSF),
    "sum": ({"synthesis": "sum"}, -qsm_params()),
    "concat": ({"synthesis": "concat"}, (3 * D * D + D) - qsm_params()),
    "mlp": ({"synthesis": "mlp"}, mlp_params(matched_mlp_width(3 * D, D, qsm_params())) - qsm_params()),
    "mlp_wide": ({"synthesis": "mlp_wide"}, 3 * (D * D + D * D) // 4),  # real layers: 4× the weights
    "qsm_sum_input": ({"qsm_input": "sum"}, qsm_params(inputs=1) - qsm_params()),
    "width_64": ({"quaternion_width": 64}, qsm_params(width=64) - qsm_params()),
    "mean": ({"aggregator": "mean"}, -1),
    "max": ({"aggregator": "max"}, -1),
    "sigmoid": ({"presence": "sigmoid"}, 0),
    "global": ({"branches": "global"}, None),
    "regional": ({"branches": "regional"}, -N_CTX * TEXT_WIDTH),
    "logit_bias": ({"logit_bias": -3.0}, 2),  # one learnable scalar per branch
}


@pytest.fixture(scope="module")
def full_count(vit) -> int:
    return trainable(build(vit))


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_ablation_switch_builds_runs_and_counts(vit, full_count, name):
    overrides, delta = ABLATIONS[name]
    model = build(vit, **overrides)
    out = model(torch.randn(2, 3, SIZE, SIZE))
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    loss = build_loss(model.config)(out, target)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.param_groups()["head"])
    if delta is None:  # global branch only: its prompt context is all that is trained
        assert trainable(model) == N_CTX * 128 and out["regional"] is None
    else:
        assert trainable(model) - full_count == delta
    if overrides.get("gate") is False or name == "no_gdma":
        assert out["gates"] == {}
    model.zero_grad(set_to_none=True)
    vit.zero_grad(set_to_none=True)


def test_config_fields_are_all_exercised():
    switches = {k for overrides, _ in ABLATIONS.values() for k in overrides}
    loss_and_init = {"n_ctx", "ctx_init", "tau_init", "gamma_pos", "gamma_neg", "clip", "detach_focusing",
                     "regional_weight"}
    assert {f.name for f in dataclasses.fields(SSPAConfig)} == switches | loss_and_init


@pytest.fixture(scope="module")
def perturbed_full(vit) -> SSPA:
    """The full model with every head parameter moved off its initial value (zero-initialised or
    symmetric starts could hide a switch)."""
    model = build(vit)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.param_groups()["head"]:
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_ablation_switch_changes_the_logits(vit, perturbed_full, name):
    """With the full model's weights wherever the shapes match and the same input, each switch
    changes the scores, so none is silently ignored."""
    model = build(vit, **ABLATIONS[name][0])
    full_state = perturbed_full.state_dict()
    model.load_state_dict({k: v for k, v in full_state.items() if k in model.state_dict()
                           and v.shape == model.state_dict()[k].shape}, strict=False)
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full, ablated = perturbed_full.eval()(images), model.eval()(images)
    assert (full["score"] - ablated["score"]).abs().max() > 1e-4
    assert any(ablated[b] is None or (full[b] - ablated[b]).abs().max() > 1e-4 for b in ("global", "regional"))


@pytest.mark.parametrize(("n_inputs", "qsm_input"), [(2, "concat"), (1, "concat"), (2, "sum")])
def test_table_vii_mlp_has_the_parameters_of_qsm_and_the_wide_one_more(n_inputs, qsm_input):
    def count(synthesis: str) -> int:
        module = QuaternionSemanticModeling(D, None, synthesis, qsm_input, n_inputs=n_inputs)
        return sum(p.numel() for p in module.parameters())

    assert abs(count("mlp") / count("qsm") - 1) < 0.05
    if qsm_input == "concat":
        assert count("mlp_wide") / count("qsm") > 1.3


@pytest.mark.parametrize("name", ["sspa-tiny-vit", "sspa-tiny-rn"])
@pytest.mark.parametrize("size", [64, 96])
def test_sspa_on_tiny_backbones_and_sizes(name, size):
    torch.manual_seed(0)
    backbone = random_backbone(name, size)
    model = SSPA(backbone, LABELS, SSPAConfig(n_ctx=N_CTX), DESCRIPTIONS)
    out = model(torch.randn(2, 3, size, size))
    assert out["score"].shape == (2, len(LABELS))
    assert out["patch_weights"].shape == (2, backbone.num_patches(), len(LABELS))
    out["score"].sum().backward()
    assert model.cap.ctx.grad is not None


def test_fit_on_features_lowers_the_loss(vit):
    model = build(vit, kap_source="template")
    torch.manual_seed(1)
    x0, patches = torch.randn(8, D), torch.randn(8, 4, D)
    targets = (torch.rand(8, len(LABELS)) > 0.5).float()
    losses = fit_on_features(model, x0, patches, targets, build_loss(model.config), steps=15, lr=1e-2, batch_size=8)
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="differ in length"):
        fit_on_features(model, x0, patches[:4], targets, build_loss(model.config))
