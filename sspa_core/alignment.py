"""Cross-modal attention (eq. 3), the gate (eq. 11) and Gated Dual-Modal Alignments (eq. 12-13).

Text features ``T ∈ R^{C×d}`` (one per label) and patch features ``X ∈ R^{M×d}`` attend to each
other: the visual-to-semantic branch refines the label features with the image patches, the
semantic-to-visual branch refines the patches with the label features. Attention maps and gate
vectors are returned so that notebooks can plot them (paper Fig. 8).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _check_features(name: str, value: Tensor, dim: int) -> None:
    if value.dim() != 3 or value.shape[-1] != dim:
        raise ValueError(f"{name} must have shape [B, n, {dim}], got {tuple(value.shape)}")


class CrossModalAttention(nn.Module):
    """``CMA(A, B) = softmax((A W_q) Bᵀ / √d) B`` (eq. 3).

    Only the query is projected (``W_q``, no bias); keys and values are the raw features of the
    other modality, and there is no output projection.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.query = nn.Linear(dim, dim, bias=False)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """``a [B, n, d]`` attends to ``b [B, m, d]``: returns ``(output [B, n, d], attention [B, n, m])``;
        each attention row sums to 1."""
        _check_features("a", a, self.dim)
        _check_features("b", b, self.dim)
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"batch sizes differ: a has {a.shape[0]}, b has {b.shape[0]}")
        scores = self.query(a) @ b.transpose(-1, -2) / math.sqrt(self.dim)
        attention = scores.softmax(dim=-1)
        return attention @ b, attention


class Gate(nn.Module):
    """Gated modulation (eq. 11) [reconstruction after Kumar & Vepa 2020].

    For the query-side input ``A`` and the attended features ``B = CMA(A, ·)``:
    ``P = tanh(B W_p + b_p)`` (modulated input), ``G = σ([A ‖ B] W_g + b_g)`` (gate vector),
    ``Gate(A, B) = G ⊙ P``. ``[A ‖ B] W_g`` is computed as ``A W_g,A + B W_g,B`` (the two
    halves of the same weight), which skips building the concatenation.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.modulation = nn.Linear(dim, dim)
        self.gate = nn.Linear(2 * dim, dim)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(G ⊙ P, G)``, both shaped like ``a``."""
        if a.shape != b.shape or a.shape[-1] != self.dim:
            raise ValueError(f"Gate expects two inputs [..., {self.dim}] of one shape, "
                             f"got {tuple(a.shape)} and {tuple(b.shape)}")
        modulated = torch.tanh(self.modulation(b))
        w_a, w_b = self.gate.weight.split(self.dim, dim=1)
        gate = torch.sigmoid(nn.functional.linear(a, w_a, self.gate.bias) + nn.functional.linear(b, w_b))
        return gate * modulated, gate


class FeedForward(nn.Module):
    """``MLP(LN(x))``: LayerNorm, then Linear d→d, GELU, Linear d→d (the residual is the caller's)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _AlignmentBranch(nn.Module):
    """One GDMA branch: ``Â = CMA(A, B)``; ``Ā = A + Gate(A, Â)`` (or ``A + Â`` without gate);
    ``A^{fn} = Ā + MLP(LN(Ā))``."""

    def __init__(self, dim: int, gate: bool):
        super().__init__()
        self.attention = CrossModalAttention(dim)
        self.gate = Gate(dim) if gate else None
        self.feed_forward = FeedForward(dim)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        attended, attention = self.attention(a, b)
        if self.gate is None:
            gate_vector = None
            mixed = a + attended
        else:
            gated, gate_vector = self.gate(a, attended)
            mixed = a + gated
        return mixed + self.feed_forward(mixed), attention, gate_vector


class GatedDualModalAlignment(nn.Module):
    """Gated Dual-Modal Alignments, one layer with two symmetric branches (eq. 12-13).

    - visual-to-semantic (eq. 12): ``T̂ = CMA(T^{uf}, X)``; ``T̄ = T^{uf} + Gate(T^{uf}, T̂)``;
      ``T^{fn} = T̄ + MLP(LN(T̄))``;
    - semantic-to-visual (eq. 13): ``X̂ = CMA(X, T^{uf})``; ``X̄ = X + Gate(X, X̂)``;
      ``X^{fn} = X̄ + MLP(LN(X̄))``.

    Both branches read the same inputs (``T^{uf}`` and ``X``), not each other's outputs. The
    residual/LayerNorm placement is a reconstruction (docs/method.md §Reconstructions). Switches for Tables VIII-IX:
    ``visual_to_semantic``, ``semantic_to_visual`` and ``gate`` (without it the branch adds the
    attended features directly, ``T̄ = T^{uf} + T̂``). A disabled branch has no parameters and
    passes its input through unchanged.
    """

    def __init__(
        self, dim: int, visual_to_semantic: bool = True, semantic_to_visual: bool = True, gate: bool = True
    ):
        super().__init__()
        self.dim = dim
        self.use_gate = gate
        self.visual_to_semantic = _AlignmentBranch(dim, gate) if visual_to_semantic else None
        self.semantic_to_visual = _AlignmentBranch(dim, gate) if semantic_to_visual else None

    def forward(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``t``: label features ``[B, C, d]`` or ``[C, d]`` (shared by the batch, broadcast);
        ``x``: patch features ``[B, M, d]``.

        Returns ``(T^{fn} [B, C, d], X^{fn} [B, M, d], extras)``; ``extras`` holds, for each
        enabled branch, ``"attn_text" [B, C, M]`` / ``"attn_visual" [B, M, C]`` and, with the
        gate on, ``"gate_text" [B, C, d]`` / ``"gate_visual" [B, M, d]``. A disabled text branch
        returns ``t`` broadcast to ``[B, C, d]``, a disabled visual branch returns ``x`` itself.
        """
        _check_features("x", x, self.dim)
        if t.dim() == 2:
            t = t.unsqueeze(0).expand(x.shape[0], -1, -1)
        _check_features("t", t, self.dim)
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"batch sizes differ: t has {t.shape[0]}, x has {x.shape[0]}")
        extras: dict[str, Tensor] = {}
        t_fn, x_fn = t, x
        if self.visual_to_semantic is not None:
            t_fn, extras["attn_text"], gate_text = self.visual_to_semantic(t, x)
            if gate_text is not None:
                extras["gate_text"] = gate_text
        if self.semantic_to_visual is not None:
            x_fn, extras["attn_visual"], gate_visual = self.semantic_to_visual(x, t)
            if gate_visual is not None:
                extras["gate_visual"] = gate_visual
        return t_fn, x_fn, extras
