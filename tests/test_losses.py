import pytest
import torch
from torch.nn import functional as F

from sspa_core.losses import AsymmetricLoss, SSPALoss


def batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(4, 6, generator=gen, dtype=torch.float64)
    target = (torch.rand(4, 6, generator=gen) < 0.4).double()
    return logits, target


def test_asl_without_focusing_or_clip_is_bce():
    logits, target = batch()
    asl = AsymmetricLoss(gamma_pos=0, gamma_neg=0, clip=0)
    torch.testing.assert_close(asl(logits, target), F.binary_cross_entropy_with_logits(logits, target))
    # stays exact for large logits (log-sigmoid, no probability round-off)
    big = torch.tensor([[30.0, -30.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(AsymmetricLoss(0, 0, 0, eps=0)(big, y), F.binary_cross_entropy_with_logits(big, y))


def test_asl_gradient_matches_bce():
    logits, target = batch(1)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    AsymmetricLoss(0, 0, 0)(a, target).backward()
    F.binary_cross_entropy_with_logits(b, target).backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_mask_ignores_entries():
    logits, target = batch(2)
    mask = torch.ones_like(target)
    mask[0, :3] = 0
    mask[2, 5] = 0
    asl = AsymmetricLoss()
    full = AsymmetricLoss()(logits, target, mask)
    changed = logits.clone()
    changed[mask == 0] = 100.0  # ignored entries may hold anything
    torch.testing.assert_close(asl(changed, target, mask), full)
    per_entry = torch.stack(
        [asl(logits[i : i + 1, j : j + 1], target[i : i + 1, j : j + 1]) for i in range(4) for j in range(6)]
    )
    torch.testing.assert_close(full, per_entry[mask.flatten() == 1].mean())
    torch.testing.assert_close(asl(logits, target, torch.ones_like(target)), asl(logits, target))
    assert asl(logits, target, torch.zeros_like(target)) == 0


def test_clip_shifts_negative_probabilities():
    m = 0.2
    logits = torch.tensor([[-3.0, 0.0, 1.0, 2.5]], dtype=torch.float64)
    negatives = torch.zeros_like(logits)
    p = torch.sigmoid(logits)
    p_m = (p - m).clamp(min=0)
    per_entry = -torch.log(1 - p_m)
    torch.testing.assert_close(AsymmetricLoss(0, 0, clip=m)(logits, negatives), per_entry.mean())
    # an easy negative (p = 0.047 < m) costs nothing; γ− focuses on p_m
    assert AsymmetricLoss(0, 0, clip=m)(logits[:, :1], negatives[:, :1]) == 0
    torch.testing.assert_close(AsymmetricLoss(0, 4, clip=m)(logits, negatives), (p_m**4 * per_entry).mean())
    # positives are not clipped
    positives = torch.ones_like(logits)
    expected = F.binary_cross_entropy_with_logits(logits, positives)
    torch.testing.assert_close(AsymmetricLoss(0, 4, clip=m)(logits, positives), expected)


def test_focusing_matches_paper_formula():
    logits, target = batch(3)
    p = torch.sigmoid(logits)
    p_m = (p - 0.05).clamp(min=0)
    expected = -(target * (1 - p) ** 1 * torch.log(p) + (1 - target) * p_m**4 * torch.log(1 - p_m))
    torch.testing.assert_close(AsymmetricLoss(gamma_pos=1, gamma_neg=4, clip=0.05)(logits, target), expected.mean())


def test_detached_focusing_keeps_the_loss_and_changes_the_gradient():
    logits, target = batch(6)
    p = torch.sigmoid(logits)
    p_m = (p - 0.05).clamp(min=0)
    grads, values = {}, {}
    for detach in (True, False):
        x = logits.clone().requires_grad_()
        values[detach] = AsymmetricLoss(gamma_pos=1, gamma_neg=4, detach_focusing=detach)(x, target)
        values[detach].backward()
        grads[detach] = x.grad
    torch.testing.assert_close(values[True], values[False])
    assert not torch.allclose(grads[True], grads[False])
    # detached, the weights w are constants: d/ds of -w·log p is -w·(1 - p), of -w·log(1 - p_m) is w·p(1 - p)/(1 - p_m)
    weight_pos, weight_neg = (1 - p), p_m**4
    expected = (target * -weight_pos * (1 - p) + (1 - target) * weight_neg * p * (1 - p) / (1 - p_m)) / target.numel()
    torch.testing.assert_close(grads[True], expected)
    assert AsymmetricLoss().detach_focusing  # the reference training default


def test_default_asl_has_finite_gradients():
    logits, target = batch(4)
    logits = torch.cat((logits, torch.tensor([[-50.0, 50.0, 0, 0, 0, 0]], dtype=torch.float64))).requires_grad_()
    target = torch.cat((target, torch.tensor([[1.0, 0, 0, 1, 0, 1]], dtype=torch.float64)))
    for asl in (AsymmetricLoss(), AsymmetricLoss(0, 0, 0.05)):
        logits.grad = None
        asl(logits, target).backward()
        assert torch.isfinite(logits.grad).all()


def test_asl_rejects_bad_input():
    with pytest.raises(ValueError, match="target shape"):
        AsymmetricLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mask shape"):
        AsymmetricLoss()(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match="clip"):
        AsymmetricLoss(clip=1.0)
    with pytest.raises(ValueError, match="focusing"):
        AsymmetricLoss(gamma_neg=-1)


def test_sspa_loss_sums_present_branches():
    logits, target = batch(5)
    regional = logits.flip(0)
    asl = AsymmetricLoss()
    loss = SSPALoss(asl, regional_weight=0.5)
    both = loss({"global": logits, "regional": regional}, target)
    torch.testing.assert_close(both, asl(logits, target) + 0.5 * asl(regional, target))
    torch.testing.assert_close(loss({"global": logits, "regional": None}, target), asl(logits, target))
    torch.testing.assert_close(loss({"regional": regional}, target), 0.5 * asl(regional, target))
    mask = torch.ones_like(target)
    mask[1] = 0
    torch.testing.assert_close(loss({"global": logits}, target, mask), asl(logits, target, mask))
    assert isinstance(SSPALoss().asl, AsymmetricLoss)
    with pytest.raises(ValueError, match="neither"):
        loss({"final": logits}, target)
