"""Quaternion algebra and the quaternion linear layer of Quaternion Semantic Modeling (eq. 1, 2, 7-9).

A quaternion ``Q = r + x i + y j + z k`` with ``i² = j² = k² = ijk = −1`` (eq. 1) is stored as a
tensor whose last dimension holds ``(r, x, y, z)``. The Hamilton product (eq. 2) is
non-commutative; left multiplication by ``Q`` is the real 4×4 matrix returned by
:func:`left_matrix`. A real feature of width ``4k`` is read as a quaternion with ``k``-wide
components by cutting it into four equal chunks (eq. 7, :func:`split_quaternion`), and
:class:`QuaternionLinear` multiplies it by a quaternion weight (eq. 8-9).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _check_quaternion(q: Tensor, name: str) -> None:
    if q.shape[-1:] != (4,):
        raise ValueError(f"{name} must have a last dimension of size 4 (r, x, y, z), got shape {tuple(q.shape)}")


def hamilton_product(p: Tensor, q: Tensor) -> Tensor:
    """Hamilton product ``p ⊗ q`` (eq. 2) of quaternions ``[..., 4]`` (broadcast over ``...``)."""
    _check_quaternion(p, "p")
    _check_quaternion(q, "q")
    r1, x1, y1, z1 = p.unbind(-1)
    r2, x2, y2, z2 = q.unbind(-1)
    return torch.stack(
        (
            r1 * r2 - x1 * x2 - y1 * y2 - z1 * z2,
            r1 * x2 + x1 * r2 + y1 * z2 - z1 * y2,
            r1 * y2 - x1 * z2 + y1 * r2 + z1 * x2,
            r1 * z2 + x1 * y2 - y1 * x2 + z1 * r2,
        ),
        dim=-1,
    )


def _left_block(r: Tensor, x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    """Assemble ``[[r, −x, −y, −z], [x, r, −z, y], [y, z, r, −x], [z, −y, x, r]]`` from four
    ``[..., a, b]`` blocks into one ``[..., 4a, 4b]`` real matrix (left multiplication by
    ``r + x i + y j + z k``)."""
    rows = (
        (r, -x, -y, -z),
        (x, r, -z, y),
        (y, z, r, -x),
        (z, -y, x, r),
    )
    return torch.cat([torch.cat(row, dim=-1) for row in rows], dim=-2)


def left_matrix(q: Tensor) -> Tensor:
    """Real 4×4 matrix ``L(q)`` of left multiplication, ``L(q) @ p == q ⊗ p``; shape ``[..., 4, 4]``."""
    _check_quaternion(q, "q")
    r, x, y, z = (c[..., None, None] for c in q.unbind(-1))
    return _left_block(r, x, y, z)


def split_quaternion(h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Read a real feature ``[..., 4k]`` as a quaternion: four equal chunks ``(r, x, y, z)`` of
    width ``k`` along the last dimension (eq. 7; no parameters)."""
    if h.dim() == 0 or h.shape[-1] % 4 != 0 or h.shape[-1] == 0:
        raise ValueError(f"the last dimension must be a positive multiple of 4, got shape {tuple(h.shape)}")
    r, x, y, z = h.chunk(4, dim=-1)
    return r, x, y, z


def conjugate(q: Tensor) -> Tensor:
    """Conjugate ``q* = r − x i − y j − z k``; ``q ⊗ q* = |q|²``."""
    _check_quaternion(q, "q")
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def norm(q: Tensor) -> Tensor:
    """Modulus ``|q| = sqrt(r² + x² + y² + z²)``, shape ``[...]``; ``|p ⊗ q| = |p| |q|``."""
    _check_quaternion(q, "q")
    return torch.linalg.vector_norm(q, dim=-1)


class QuaternionLinear(nn.Module):
    """Quaternion linear layer ``Q_l(h) = W ⊗ h + b`` (eq. 8-9).

    The weight ``W = W_r + W_x i + W_y j + W_z k`` holds four real ``[out/4, in/4]`` matrices;
    the input ``h [..., in]`` is split into ``(r, x, y, z)`` (eq. 7) and the output components
    ``(R, I, J, K)`` are concatenated in that order. The product equals a real linear map whose
    ``[out, in]`` weight is the block matrix of :func:`left_matrix` with the four weight
    matrices as blocks (:meth:`real_weight`): a quarter of the parameters of ``nn.Linear``.

    Initialisation follows Parcollet et al. (2019, "Quaternion recurrent neural networks"): each
    quaternion weight has a modulus ``φ ~ σ·χ₄``, a phase ``θ ~ U(−π, π)`` and a random unit
    pure quaternion ``u``; ``W = φ (cos θ + u sin θ)``, with the Glorot scale
    ``σ = 1 / sqrt(2 (in/4 + out/4))``, so ``E|W|² = 4σ²`` and the entries of
    :meth:`real_weight` have mean variance ``σ² = 2 / (in + out)``: every output unit receives the
    same input variance as in a Glorot-initialised real layer of the same size. The bias (width
    ``out``) starts at zero.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if value <= 0 or value % 4 != 0:
                raise ValueError(f"QuaternionLinear {name} must be a positive multiple of 4, got {value}")
        self.in_features = in_features
        self.out_features = out_features
        shape = (out_features // 4, in_features // 4)
        self.weight_r = nn.Parameter(torch.empty(shape))
        self.weight_x = nn.Parameter(torch.empty(shape))
        self.weight_y = nn.Parameter(torch.empty(shape))
        self.weight_z = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Quaternion Glorot initialisation (Parcollet et al. 2019), see the class docstring."""
        n_out, n_in = self.weight_r.shape
        sigma = 1.0 / math.sqrt(2.0 * (n_in + n_out))
        modulus = sigma * torch.linalg.vector_norm(torch.randn(n_out, n_in, 4), dim=-1)
        phase = torch.empty(n_out, n_in).uniform_(-math.pi, math.pi)
        axis = F.normalize(torch.randn(n_out, n_in, 3), dim=-1)
        self.weight_r.copy_(modulus * torch.cos(phase))
        for weight, component in zip((self.weight_x, self.weight_y, self.weight_z), axis.unbind(-1)):
            weight.copy_(modulus * component * torch.sin(phase))
        if self.bias is not None:
            self.bias.zero_()

    def real_weight(self) -> Tensor:
        """The ``[out, in]`` real block matrix of eq. 8 (rows R, I, J, K; columns r, x, y, z)."""
        return _left_block(self.weight_r, self.weight_x, self.weight_y, self.weight_z)

    def forward(self, h: Tensor) -> Tensor:
        if h.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"QuaternionLinear expects inputs [..., {self.in_features}], got shape {tuple(h.shape)}"
            )
        return F.linear(h, self.real_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
