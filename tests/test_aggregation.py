import math

import pytest
import torch
from torch.nn import functional as F

from sspa_core.aggregation import SoftAggregator, patch_label_similarity


def scores(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(2, 7, 5, generator=gen, dtype=torch.float64)


def with_tau(aggregator: SoftAggregator, tau: float) -> SoftAggregator:
    with torch.no_grad():
        aggregator.log_tau.fill_(math.log(tau))
    return aggregator.double()


def test_soft_weights_follow_eq_15():
    s = scores()
    agg = SoftAggregator().double()
    assert agg.tau.item() == pytest.approx(0.05)
    s_r, w = agg(s)
    p = torch.softmax(s, dim=-1)  # presence over labels
    expected_w = torch.softmax(p / 0.05, dim=1)  # importance over patches
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(s_r, (expected_w * s).sum(1))
    torch.testing.assert_close(w.sum(1), torch.ones(2, 5, dtype=torch.float64))


@pytest.mark.parametrize("presence", ["softmax", "sigmoid"])
def test_large_tau_tends_to_mean(presence):
    s = scores(1)
    s_r, w = with_tau(SoftAggregator(presence=presence), 1e6)(s)
    torch.testing.assert_close(s_r, s.mean(1), rtol=0, atol=1e-5)
    # and it is not the mean at the default temperature
    assert not torch.allclose(SoftAggregator(presence=presence).double()(s)[0], s.mean(1), atol=1e-2)


def test_small_tau_tends_to_max_of_presence_softmax():
    s = scores(2)
    s_r, w = with_tau(SoftAggregator(presence="softmax"), 1e-5)(s)
    best_patch = torch.softmax(s, dim=-1).argmax(dim=1, keepdim=True)  # arg-max_i p_ij
    torch.testing.assert_close(s_r, s.gather(1, best_patch)[:, 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(w, F.one_hot(best_patch[:, 0], 7).transpose(1, 2).double(), rtol=0, atol=1e-6)


def test_small_tau_tends_to_max_with_sigmoid_presence_and_moves_monotonically():
    s = scores(3) / 3  # keep σ(s) away from saturation so arg-max patches are well separated
    agg = SoftAggregator(presence="sigmoid")
    s_r, _ = with_tau(agg, 1e-6)(s)
    torch.testing.assert_close(s_r, s.amax(1), rtol=0, atol=1e-6)
    # s^R moves from mean to max as τ shrinks (Cov(s, σ(s)) >= 0 under the tilted weights)
    path = torch.stack([with_tau(agg, tau)(s)[0] for tau in (1e3, 1.0, 0.1, 0.01, 1e-3)])
    assert (path.diff(dim=0) >= -1e-12).all()
    assert (path[0] - s.mean(1)).abs().max() < 1e-3


def test_mean_and_max_modes_equal_torch():
    s = scores(4).requires_grad_()
    mean_r, mean_w = SoftAggregator("mean")(s)
    torch.testing.assert_close(mean_r, s.mean(1))
    torch.testing.assert_close(mean_w, torch.full_like(s, 1 / 7))
    max_r, max_w = SoftAggregator("max")(s)
    torch.testing.assert_close(max_r, s.amax(1))
    torch.testing.assert_close(max_w.sum(1), torch.ones(2, 5, dtype=torch.float64))
    max_r.sum().backward()
    assert (s.grad != 0).sum() == 2 * 5  # only the arg-max patches get gradient


def test_tau_is_learnable_only_in_soft_mode():
    assert [n for n, _ in SoftAggregator().named_parameters()] == ["log_tau"]
    assert list(SoftAggregator("mean").parameters()) == []
    assert SoftAggregator("max").tau is None
    agg = SoftAggregator()
    agg(scores().float())[0].sum().backward()
    assert agg.log_tau.grad is not None and agg.log_tau.grad != 0


def test_aggregator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="aggregation mode"):
        SoftAggregator("median")
    with pytest.raises(ValueError, match="presence"):
        SoftAggregator(presence="relu")
    with pytest.raises(ValueError, match="tau_init"):
        SoftAggregator(tau_init=0.0)
    with pytest.raises(ValueError, match=r"\[B, M, C\]"):
        SoftAggregator()(torch.zeros(7, 5))


def test_patch_label_similarity():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 8, generator=gen)
    t = torch.randn(2, 3, 8, generator=gen)
    s = patch_label_similarity(x, t, 10.0)
    expected = 10.0 * F.cosine_similarity(x[:, :, None], t[:, None], dim=-1)
    torch.testing.assert_close(s, expected)
    shared = patch_label_similarity(x, t[0], torch.tensor(10.0))
    torch.testing.assert_close(shared[0], s[0])
    assert shared.shape == (2, 6, 3)
    with pytest.raises(ValueError, match="batch sizes"):
        patch_label_similarity(x, t[:1], 1.0)
    with pytest.raises(ValueError, match="t_fn"):
        patch_label_similarity(x, torch.randn(3, 5), 1.0)
