"""Platt scaling of uncalibrated logits before eq. 18, and its refusal of degenerate scores."""

import pytest
import torch

from sspa_core.calibration import DegenerateScores, platt_scaling


def test_platt_scaling_recovers_a_known_scale_and_shift():
    torch.manual_seed(0)
    logits = 20 + 5 * torch.randn(4000, 1)
    targets = torch.bernoulli(torch.sigmoid(0.8 * logits - 16))
    a, b = platt_scaling(logits, targets)
    assert a.item() == pytest.approx(0.8, abs=0.1) and b.item() == pytest.approx(-16, abs=2)


@pytest.mark.parametrize("logits, targets, message", [
    (torch.zeros(0, 3), torch.zeros(0, 3), "fitting set is empty"),
    (torch.tensor([[1.0, float("nan")]]), torch.tensor([[1.0, 0.0]]), "1 of 2 scores are NaN or infinite"),
    (torch.tensor([[1.0, float("inf")]]), torch.tensor([[1.0, 0.0]]), "NaN or infinite"),
    (torch.full((3, 2), 7.0), torch.tensor([[1.0, 0.0]] * 3), "all 6 scores are equal"),
    (torch.randn(3, 2), torch.zeros(3, 2), "every target is 0"),
])
def test_degenerate_scores_are_refused_with_the_reason(logits, targets, message):
    with pytest.raises(DegenerateScores, match=message):
        platt_scaling(logits, targets)
    assert issubclass(DegenerateScores, ValueError)
