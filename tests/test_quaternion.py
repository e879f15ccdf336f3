import numpy as np
import pytest
import quaternion as npq  # numpy-quaternion: an independent implementation
import torch
from torch import nn

from sspa_core.quaternion import (
    QuaternionLinear,
    conjugate,
    hamilton_product,
    left_matrix,
    norm,
    split_quaternion,
)

ONE, I, J, K = torch.eye(4, dtype=torch.float64)


def test_hamilton_product_matches_numpy_quaternion():
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    q = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    expected = npq.as_float_array(npq.as_quat_array(p.numpy()) * npq.as_quat_array(q.numpy()))
    np.testing.assert_allclose(hamilton_product(p, q).numpy(), expected, rtol=1e-12, atol=1e-12)
    # non-commutative: q ⊗ p differs
    assert not torch.allclose(hamilton_product(q, p), hamilton_product(p, q))


def test_hamilton_product_broadcasts():
    p = torch.randn(3, 1, 4, dtype=torch.float64)
    q = torch.randn(5, 4, dtype=torch.float64)
    out = hamilton_product(p, q)
    assert out.shape == (3, 5, 4)
    torch.testing.assert_close(out[2, 4], hamilton_product(p[2, 0], q[4]))


def test_unit_products():
    minus_one = -ONE
    for unit in (I, J, K):
        torch.testing.assert_close(hamilton_product(unit, unit), minus_one)
    torch.testing.assert_close(hamilton_product(hamilton_product(I, J), K), minus_one)
    torch.testing.assert_close(hamilton_product(I, J), K)
    torch.testing.assert_close(hamilton_product(J, I), -K)
    torch.testing.assert_close(hamilton_product(J, K), I)
    torch.testing.assert_close(hamilton_product(K, I), J)


def test_left_matrix_equals_product():
    p = torch.randn(20, 4, dtype=torch.float64)
    q = torch.randn(20, 4, dtype=torch.float64)
    torch.testing.assert_close((left_matrix(p) @ q[..., None])[..., 0], hamilton_product(p, q))
    torch.testing.assert_close(left_matrix(ONE), torch.eye(4, dtype=torch.float64))


def test_conjugate_and_norm():
    p = torch.randn(10, 4, dtype=torch.float64)
    q = torch.randn(10, 4, dtype=torch.float64)
    squared = hamilton_product(p, conjugate(p))
    torch.testing.assert_close(squared[:, 0], norm(p) ** 2)
    torch.testing.assert_close(squared[:, 1:], torch.zeros(10, 3, dtype=torch.float64))
    torch.testing.assert_close(norm(hamilton_product(p, q)), norm(p) * norm(q))
    expected = npq.as_float_array(npq.as_quat_array(p.numpy()).conjugate())
    np.testing.assert_allclose(conjugate(p).numpy(), expected)


def test_split_quaternion():
    h = torch.arange(24.0).reshape(2, 12)
    r, x, y, z = split_quaternion(h)
    assert r.shape == (2, 3)
    torch.testing.assert_close(torch.cat((r, x, y, z), dim=-1), h)
    torch.testing.assert_close(y[0], torch.tensor([6.0, 7.0, 8.0]))
    with pytest.raises(ValueError, match="multiple of 4"):
        split_quaternion(torch.zeros(2, 6))


def test_bad_quaternion_shape():
    with pytest.raises(ValueError, match="size 4"):
        hamilton_product(torch.zeros(3), torch.zeros(4))


def test_quaternion_linear_equals_block_matrix_and_hamilton_product():
    torch.manual_seed(0)
    layer = QuaternionLinear(8, 12).double()
    with torch.no_grad():
        layer.bias.normal_()
    h = torch.randn(5, 8, dtype=torch.float64)
    out = layer(h)
    torch.testing.assert_close(out, h @ layer.real_weight().T + layer.bias)
    # against eq. 8 written out with scalar quaternions: output unit a, input unit b
    r, x, y, z = split_quaternion(h)
    weights = torch.stack((layer.weight_r, layer.weight_x, layer.weight_y, layer.weight_z), dim=-1)  # [3, 2, 4]
    inputs = torch.stack((r, x, y, z), dim=-1)  # [5, 2, 4]
    per_pair = hamilton_product(weights[None], inputs[:, None])  # [5, 3, 2, 4]
    expected = per_pair.sum(dim=2).transpose(1, 2).reshape(5, 12) + layer.bias
    torch.testing.assert_close(out, expected)


def test_quaternion_linear_parameter_count():
    quat = QuaternionLinear(64, 32)
    real = nn.Linear(64, 32)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert quat.weight_r.shape == (8, 16)
    assert quat.real_weight().shape == real.weight.shape
    assert count(quat) - 32 == (count(real) - 32) // 4
    assert count(QuaternionLinear(64, 32, bias=False)) == 64 * 32 // 4


@pytest.mark.parametrize("sizes", [(6, 8), (8, 10), (0, 8)])
def test_quaternion_linear_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="multiple of 4"):
        QuaternionLinear(*sizes)


def test_quaternion_linear_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[\.\.\., 8\]"):
        QuaternionLinear(8, 8)(torch.zeros(2, 12))


def test_quaternion_init_matches_glorot_scale():
    torch.manual_seed(0)
    layer = QuaternionLinear(256, 256)
    weight = layer.real_weight().detach()
    assert abs(weight.var().item() / (2 / 512) - 1) < 0.05
    torch.testing.assert_close(layer.bias, torch.zeros(256))
    # gradients reach all four components
    layer(torch.randn(3, 256)).sum().backward()
    components = (layer.weight_r, layer.weight_x, layer.weight_y, layer.weight_z)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in components)
