import math

import pytest
import torch

from sspa_core.alignment import CrossModalAttention, FeedForward, Gate, GatedDualModalAlignment

D = 8


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_cma_equals_hand_written_attention():
    torch.manual_seed(0)
    cma = CrossModalAttention(D).double()
    a = torch.randn(2, 3, D, dtype=torch.float64)
    b = torch.randn(2, 5, D, dtype=torch.float64)
    out, attn = cma(a, b)
    w_q = cma.query.weight.T  # x @ W_q
    expected_attn = torch.softmax(a @ w_q @ b.transpose(1, 2) / math.sqrt(D), dim=-1)
    torch.testing.assert_close(attn, expected_attn)
    torch.testing.assert_close(out, expected_attn @ b)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3, dtype=torch.float64))
    assert n_params(cma) == D * D  # query projection only, no bias


def test_cma_rejects_bad_shapes():
    cma = CrossModalAttention(D)
    with pytest.raises(ValueError, match="batch sizes"):
        cma(torch.zeros(2, 3, D), torch.zeros(1, 5, D))
    with pytest.raises(ValueError, match=r"\[B, n, 8\]"):
        cma(torch.zeros(2, 3, D + 1), torch.zeros(2, 5, D))


def test_gate_formula():
    torch.manual_seed(0)
    gate = Gate(D).double()
    a = torch.randn(4, D, dtype=torch.float64)
    b = torch.randn(4, D, dtype=torch.float64) * 5
    out, g = gate(a, b)
    p = torch.tanh(b @ gate.modulation.weight.T + gate.modulation.bias)
    expected_g = torch.sigmoid(torch.cat((a, b), -1) @ gate.gate.weight.T + gate.gate.bias)
    torch.testing.assert_close(g, expected_g)
    torch.testing.assert_close(out, expected_g * p)
    assert (g > 0).all() and (g < 1).all()
    assert out.abs().max() < 1  # |G ⊙ tanh(.)| < 1
    with pytest.raises(ValueError, match="one shape"):
        gate(a, b[:2])


def test_feed_forward_is_mlp_of_layernorm():
    torch.manual_seed(0)
    ff = FeedForward(D)
    x = torch.randn(3, D) * 10 + 4
    first, second = ff.net[1], ff.net[3]
    expected = second(torch.nn.functional.gelu(first(torch.nn.functional.layer_norm(x, (D,)))))
    torch.testing.assert_close(ff(x), expected)
    assert n_params(ff) == 2 * D + 2 * (D * D + D)


BRANCH_WITH_GATE = D * D + (D * D + D) + (2 * D * D + D) + 2 * D + 2 * (D * D + D)  # CMA + gate + LN/MLP
BRANCH_NO_GATE = D * D + 2 * D + 2 * (D * D + D)


@pytest.mark.parametrize(
    "v2s, s2v, gate, expected_params",
    [
        (True, True, True, 2 * BRANCH_WITH_GATE),
        (True, False, True, BRANCH_WITH_GATE),
        (False, True, True, BRANCH_WITH_GATE),
        (True, True, False, 2 * BRANCH_NO_GATE),
        (False, True, False, BRANCH_NO_GATE),
        (False, False, True, 0),
    ],
)
def test_gdma_switches(v2s, s2v, gate, expected_params):
    torch.manual_seed(0)
    gdma = GatedDualModalAlignment(D, visual_to_semantic=v2s, semantic_to_visual=s2v, gate=gate)
    assert n_params(gdma) == expected_params
    t = torch.randn(2, 4, D, requires_grad=True)
    x = torch.randn(2, 6, D, requires_grad=True)
    t_fn, x_fn, extras = gdma(t, x)
    assert t_fn.shape == (2, 4, D) and x_fn.shape == (2, 6, D)
    expected_keys = set()
    if v2s:
        expected_keys |= {"attn_text", "gate_text"} if gate else {"attn_text"}
        assert extras["attn_text"].shape == (2, 4, 6)
    else:
        torch.testing.assert_close(t_fn, t)
    if s2v:
        expected_keys |= {"attn_visual", "gate_visual"} if gate else {"attn_visual"}
        assert extras["attn_visual"].shape == (2, 6, 4)
    else:
        assert x_fn is x
    assert set(extras) == expected_keys
    if gate and v2s:
        assert extras["gate_text"].shape == (2, 4, D)
    if gate and s2v:
        assert extras["gate_visual"].shape == (2, 6, D)
    if expected_params:
        (t_fn.square().sum() + x_fn.square().sum()).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gdma.parameters())
        assert t.grad is not None and x.grad is not None


def test_gdma_branch_equations():
    torch.manual_seed(0)
    gdma = GatedDualModalAlignment(D).double()
    t = torch.randn(2, 4, D, dtype=torch.float64)
    x = torch.randn(2, 6, D, dtype=torch.float64)
    t_fn, x_fn, _ = gdma(t, x)
    v2s, s2v = gdma.visual_to_semantic, gdma.semantic_to_visual
    t_hat, _ = v2s.attention(t, x)
    t_bar = t + v2s.gate(t, t_hat)[0]
    torch.testing.assert_close(t_fn, t_bar + v2s.feed_forward(t_bar))
    x_hat, _ = s2v.attention(x, t)  # reads T^uf, not T^fn
    x_bar = x + s2v.gate(x, x_hat)[0]
    torch.testing.assert_close(x_fn, x_bar + s2v.feed_forward(x_bar))

    ungated = GatedDualModalAlignment(D, gate=False).double()
    t_fn, _, _ = ungated(t, x)
    t_bar = t + ungated.visual_to_semantic.attention(t, x)[0]
    torch.testing.assert_close(t_fn, t_bar + ungated.visual_to_semantic.feed_forward(t_bar))


def test_gdma_broadcasts_shared_text():
    torch.manual_seed(0)
    gdma = GatedDualModalAlignment(D)
    t = torch.randn(4, D)
    x = torch.randn(3, 6, D)
    shared = gdma(t, x)
    batched = gdma(t.expand(3, -1, -1), x)
    torch.testing.assert_close(shared[0], batched[0])
    torch.testing.assert_close(shared[1], batched[1])
    with pytest.raises(ValueError, match="batch sizes"):
        gdma(torch.randn(2, 4, D), x)
