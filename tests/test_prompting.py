"""KAP (eq. 4), CAP/CoOp prompts, DSF (eq. 5) and QSM with its Table VII alternatives."""

from __future__ import annotations

import pytest
import torch
import yaml
from helpers import random_backbone

from sspa_core.prompting import (
    PLAIN_LABEL,
    READABLE_NAMES_FILE,
    ContextPromptLearner,
    DynamicSemanticFilter,
    KnowledgeAwarePrompts,
    QuaternionSemanticModeling,
    knowledge_aware_text,
    readable_name,
    template_sentence,
)

LABELS = ["cat", "dog", "traffic light"]


@pytest.fixture(scope="module")
def backbone():
    return random_backbone("sspa-tiny-vit", 64)


def count_encode_calls(monkeypatch, text_encoder) -> list[int]:
    """Patch ``encode_tokens`` to record the number of rows of each call."""
    calls: list[int] = []
    original = text_encoder.encode_tokens

    def counted(tokens):
        calls.append(tokens.shape[0])
        return original(tokens)

    monkeypatch.setattr(text_encoder, "encode_tokens", counted)
    return calls


def test_kap_text_is_description_then_template(backbone):
    assert knowledge_aware_text(backbone.text, "cat", None) == "A photo of a cat."
    text = knowledge_aware_text(backbone.text, "cat", "A cat is a small furry animal.")
    assert text == "A cat is a small furry animal. A photo of a cat."


def test_the_offline_worlds_prompts_are_unchanged():
    """The shipped tiny CLIP and heads were trained on "A photo of a {label}." byte for byte."""
    from sspa_core.data.labels import load_label_names

    for label_set in ("synthetic_natural", "synthetic_pedestrian", "synthetic_remote_sensing"):
        for label in load_label_names(label_set):
            assert template_sentence(label) == f"A photo of a {label}."
    assert template_sentence("airplane") == "A photo of a airplane."  # even where English wants "an"


def test_identifier_style_labels_read_naturally(backbone):
    from sspa_core.data.labels import load_label_names

    assert template_sentence("accessoryHat") == "A photo of a hat."
    assert template_sentence("lowerBodyJeans") == "A photo of jeans."
    assert template_sentence("personalLess30") == "A photo of a person under 30."
    assert template_sentence("hs-BaldHead") == "A photo of a bald head."
    assert template_sentence("Age18-60") == "A photo of a person aged 18 to 60."
    assert template_sentence("bare-soil") == "A photo of bare soil."
    listed = yaml.safe_load(READABLE_NAMES_FILE.read_text())
    for label_set in ("peta", "rap", "pa100k", "aid", "multiscene", "mlrsnet"):  # each identifier is named
        identifiers = [label for label in load_label_names(label_set) if not PLAIN_LABEL.fullmatch(label)]
        assert identifiers == [label for label in listed.get(label_set, {}) if label in identifiers]
        assert all(template_sentence(label) == f"A photo of {listed[label_set][label]}." for label in identifiers)
    assert readable_name("upperElbowPad") == "an upper elbow pad"  # not listed: the rule, with its article
    assert readable_name("Hat_Red") == "a hat red"
    assert knowledge_aware_text(backbone.text, "accessoryHat", "Hat is a head covering.") == \
        "Hat is a head covering. A photo of a hat."


def test_kap_long_description_keeps_the_label_sentence(backbone):
    context = backbone.text.context_length
    clauses = "A cat is a small furry animal, with whiskers and a tail, " + "often seen on sofas, " * 20
    text = knowledge_aware_text(backbone.text, "traffic light", clauses)
    assert text.startswith("A cat is a small furry animal, with whiskers and a tail")
    assert text.endswith("sofas. A photo of a traffic light.")  # whole clauses, closed by a full stop
    assert int((backbone.text.tokenize([text])[0] != 0).sum()) < context  # not truncated
    one_clause = knowledge_aware_text(backbone.text, "cat", "furry " * 100)
    assert one_clause.startswith("furry furry") and one_clause.endswith("furry. A photo of a cat.")
    assert int((backbone.text.tokenize([one_clause])[0] != 0).sum()) < context


def test_kap_features_match_text_encoder_and_are_cached(backbone, tmp_path, monkeypatch):
    descriptions = {n: f"The {n} is a common object." for n in LABELS}
    calls = count_encode_calls(monkeypatch, backbone.text)
    kap = KnowledgeAwarePrompts(backbone.text, LABELS, descriptions, "tiny", cache_dir=tmp_path)
    assert sorted(calls) == [1, len(LABELS)]  # the fingerprint probe and the C texts, once
    expected = backbone.clip.encode_text(backbone.text.tokenize(kap.texts))  # open_clip's own path
    torch.testing.assert_close(kap(), expected, rtol=1e-5, atol=1e-5)
    calls.clear()
    for _ in range(2):
        kap()
    assert calls == []  # never recomputed per forward
    assert not kap.features.requires_grad
    again = KnowledgeAwarePrompts(backbone.text, LABELS, descriptions, "tiny", cache_dir=tmp_path)
    assert calls == [1]  # only the fingerprint probe: features came from disk
    torch.testing.assert_close(again(), kap())
    assert len(list((tmp_path / "text_features").glob("*.pt"))) == 1


def test_kap_disk_cache_distinguishes_weights_and_texts(tmp_path):
    first = KnowledgeAwarePrompts(random_backbone("sspa-tiny-vit", 64, seed=1).text, LABELS, None, "tiny", tmp_path)
    other = KnowledgeAwarePrompts(random_backbone("sspa-tiny-vit", 64, seed=2).text, LABELS, None, "tiny", tmp_path)
    assert not torch.allclose(first(), other())
    assert len(list((tmp_path / "text_features").glob("*.pt"))) == 2


def test_kap_rejects_missing_descriptions(backbone):
    with pytest.raises(ValueError, match="dog"):
        KnowledgeAwarePrompts(backbone.text, LABELS, {"cat": "x", "traffic light": "y"}, cache_dir=False)
    with pytest.raises(ValueError, match="duplicates"):
        KnowledgeAwarePrompts(backbone.text, ["cat", "cat"], None, cache_dir=False)


def test_context_prompts_from_phrase_equal_the_plain_prompt(backbone):
    """CoOp initialised with "a photo of a" reproduces E_t("a photo of a {label}.")."""
    learner = ContextPromptLearner(backbone.text, LABELS, n_ctx=4, init_phrase="a photo of a")
    expected = backbone.encode_text([f"a photo of a {n}." for n in LABELS])
    torch.testing.assert_close(learner(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="n_ctx=3"):
        ContextPromptLearner(backbone.text, LABELS, n_ctx=3, init_phrase="a photo of a")


def test_context_prompt_gradients_reach_ctx_only(backbone):
    backbone.freeze_text()
    learner = ContextPromptLearner(backbone.text, LABELS, n_ctx=4)
    assert [n for n, _ in learner.named_parameters()] == ["ctx"]
    assert learner.ctx.shape == (4, backbone.text.width)
    assert 0.015 < learner.ctx.std().item() < 0.025  # N(0, 0.02²) init
    learner().pow(2).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in backbone.text_parameters())
    specific = ContextPromptLearner(backbone.text, LABELS, n_ctx=2, class_specific=True)
    assert specific.ctx.shape == (len(LABELS), 2, backbone.text.width)
    assert specific().shape == (len(LABELS), backbone.embed_dim)


def test_context_prompts_cached_in_eval_until_ctx_changes(backbone, monkeypatch):
    learner = ContextPromptLearner(backbone.text, LABELS, n_ctx=2).eval()
    calls = []
    original = backbone.text.forward
    monkeypatch.setattr(backbone.text, "forward", lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        first = learner()
        learner()
        assert len(calls) == 1
        learner.ctx.add_(0.1)  # an optimizer step or load_state_dict: in place
        changed = learner()
    assert len(calls) == 2 and not torch.allclose(first, changed)
    learner.train()
    learner()
    learner()
    assert len(calls) == 4  # training: always recomputed, with gradients


def test_dsf_with_zero_query_adds_the_mean_patch():
    """With W_q = 0 the CMA attention is uniform: T̂ = T^l + mean(X); T^ca = T̂ + MLP(LN(T̂))."""
    torch.manual_seed(0)
    dsf = DynamicSemanticFilter(8)
    torch.nn.init.zeros_(dsf.cma.query.weight)
    t_l, x = torch.randn(3, 8), torch.randn(2, 5, 8)
    t_ca, attn = dsf(t_l, x)
    t_hat = t_l.unsqueeze(0) + x.mean(1, keepdim=True)
    torch.testing.assert_close(t_ca, t_hat + dsf.ffn(t_hat))
    assert attn.shape == (2, 3, 5)
    torch.testing.assert_close(attn, torch.full_like(attn, 0.2))


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("n_inputs", [1, 2])
def test_synthesis_parameter_counts(n_inputs):
    d, w = 16, 32  # embed dim, quaternion width 4k
    n = (n_inputs + 1) * d
    qsm = QuaternionSemanticModeling(d, w, "qsm", n_inputs=n_inputs)
    qsm_sum = QuaternionSemanticModeling(d, w, "qsm", qsm_input="sum", n_inputs=n_inputs)
    mlp = QuaternionSemanticModeling(d, w, "mlp", n_inputs=n_inputs)
    mlp_wide = QuaternionSemanticModeling(d, w, "mlp_wide", n_inputs=n_inputs)
    concat = QuaternionSemanticModeling(d, w, "concat", n_inputs=n_inputs)
    summed = QuaternionSemanticModeling(d, w, "sum", n_inputs=n_inputs)
    quaternion_layers = (w * w // 4 + w) + (w * d // 4 + d)  # a quarter of the real weights
    assert _params(qsm) == (n * w + w) + quaternion_layers
    assert _params(qsm_sum) == (d * w + w) + quaternion_layers
    assert _params(mlp_wide) == (n * w + w) + (w * w + w) + (w * d + d)  # QSM's layout, real layers
    assert abs(_params(mlp) - _params(qsm)) <= 0.05 * _params(qsm)  # Table VII: a "similar" budget
    assert _params(concat) == n * d + d
    assert _params(summed) == 0
    assert _params(qsm) < _params(mlp_wide)


def test_synthesis_forward_values():
    torch.manual_seed(0)
    d = 8
    t_ka, t_ca, x0 = torch.randn(3, d), torch.randn(2, 3, d), torch.randn(2, d)
    summed = QuaternionSemanticModeling(d, synthesis="sum")([t_ka, t_ca], x0)
    torch.testing.assert_close(summed, t_ka + t_ca + x0[:, None])
    concat = QuaternionSemanticModeling(d, synthesis="concat")
    cat = torch.cat([t_ka.expand(2, 3, d), t_ca, x0[:, None].expand(2, 3, d)], -1)
    torch.testing.assert_close(concat([t_ka, t_ca], x0), cat @ concat.embed.weight.T + concat.embed.bias)
    qsm = QuaternionSemanticModeling(d, 12, "qsm")
    hidden = torch.relu(qsm.layers[0](qsm.embed(cat)))
    torch.testing.assert_close(qsm([t_ka, t_ca], x0), qsm.layers[2](hidden))
    assert qsm([t_ka, t_ca], x0).shape == (2, 3, d)


def test_synthesis_rejects_bad_settings():
    with pytest.raises(ValueError, match="qsm"):
        QuaternionSemanticModeling(8, synthesis="attention")
    with pytest.raises(ValueError, match="multiples of 4"):
        QuaternionSemanticModeling(8, width=10)
    with pytest.raises(ValueError, match="qsm_input"):
        QuaternionSemanticModeling(8, qsm_input="product")
    with pytest.raises(ValueError, match="at least one"):
        QuaternionSemanticModeling(8)([], torch.randn(2, 8))
