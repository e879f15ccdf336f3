"""The SSPA model (paper Fig. 2) and its configuration: every ablation switch of Tables VI–IX
and Fig. 5–6 lives in :class:`SSPAConfig`.

Global branch (eq. 18): ``s^G_j = τ_g · cos(x0, t^g_j)`` with its own learnable prompts.
Regional branch: KAP ``T^{ka}`` (eq. 4) and CAP ``T^{ca}`` (eq. 5) are synthesised with ``x0``
by QSM into ``T^{uf}`` (eq. 6–10), aligned with the patches ``X`` by GDMA (eq. 11–13), and the
soft aggregator turns ``s_ij = τ_s · cos(x^{fn}_i, t^{fn}_j)`` into ``s^R`` (eq. 14–16).
``T^{fn}`` serves as the class centres: there is no classifier. ``τ_s = τ_g`` is the CLIP logit
scale of the backbone, kept fixed. Final score ``ŷ = (σ(s^G) + σ(s^R)) / 2`` (eq. 18).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from sspa_core.aggregation import AGGREGATION_MODES, PRESENCE_MODES, SoftAggregator, patch_label_similarity
from sspa_core.alignment import GatedDualModalAlignment
from sspa_core.losses import AsymmetricLoss, SSPALoss
from sspa_core.prompting import (
    QSM_INPUTS,
    SYNTHESIS_MODES,
    ContextPromptLearner,
    DynamicSemanticFilter,
    KnowledgeAwarePrompts,
    QuaternionSemanticModeling,
)

if TYPE_CHECKING:
    from sspa_core.backbone import CLIPBackbone

_CHOICES: dict[str, tuple[str, ...]] = {
    "kap_source": ("llm", "template"),
    "cap_mode": ("soft", "dsf"),
    "synthesis": SYNTHESIS_MODES,
    "qsm_input": QSM_INPUTS,
    "aggregator": AGGREGATION_MODES,
    "presence": PRESENCE_MODES,
    "branches": ("both", "global", "regional"),
}


@dataclass
class SSPAConfig:
    """Ablation switches and hyper-parameters of SSPA (defaults = the full method).

    - ``use_kap``, ``kap_source`` ("llm" descriptions or "template" only): Table VI / Fig. 6;
    - ``use_cap``, ``cap_mode`` ("soft" = CoOp prompts only, "dsf" = with eq. 5): Table VI;
    - ``synthesis`` ("qsm" | "sum" | "concat" | "mlp" | "mlp_wide"): Table VII, "mlp" a real
      MLP with QSM's parameter count, "mlp_wide" QSM's layout with real layers (~1.43× QSM's
      parameters); ``qsm_input`` selects QSM's H (eq. 6): "concat" [rec, default] or the
      alternative "sum" (the "mlp" variant then matches that QSM's count);
    - ``visual_to_semantic``, ``semantic_to_visual``, ``gate``: Tables VIII–IX;
    - ``aggregator`` ("soft" | "mean" | "max"), ``presence`` ("softmax" [rec] | "sigmoid"),
      ``tau_init``: Fig. 5, eq. 14–15;
    - ``branches`` ("both" | "global" | "regional"): eq. 18;
    - ``n_ctx`` learnable prompt tokens per branch (16, CoOp's default [rec]), ``ctx_init``
      an optional initialising phrase; ``quaternion_width`` 4k (None = the embed dim d);
    - loss (eq. 17, 19): ``gamma_pos``, ``gamma_neg``, ``clip`` (ASL defaults [rec]),
      ``detach_focusing`` (focusing weights without gradient, as ASL's reference training;
      :class:`sspa_core.losses.AsymmetricLoss`) and ``regional_weight`` λ;
    - ``logit_bias``: None (eq. 18 as written: ``s = τ · cos``) or the initial value of a
      learnable scalar ``b`` added to each branch's logits, ``s = τ · cos + b`` (a deviation,
      after SigLIP's learnable bias, Zhai et al. 2023). CLIP's cosines of absent labels are
      far above 0 (tiny CLIP: τ ≈ 14, cos ≈ 0.3), so without ``b`` every σ(s) starts near 1
      and the first steps of ASL only push all scores down, scrambling the zero-shot ranking;
      a negative ``b`` starts the probabilities low and the ranking untouched.
    """

    use_kap: bool = True
    kap_source: str = "llm"
    use_cap: bool = True
    cap_mode: str = "dsf"
    synthesis: str = "qsm"
    qsm_input: str = "concat"
    visual_to_semantic: bool = True
    semantic_to_visual: bool = True
    gate: bool = True
    aggregator: str = "soft"
    presence: str = "softmax"
    branches: str = "both"
    n_ctx: int = 16
    ctx_init: str | None = None
    quaternion_width: int | None = None
    tau_init: float = 0.05
    gamma_pos: float = 0.0
    gamma_neg: float = 4.0
    clip: float = 0.05
    detach_focusing: bool = True
    regional_weight: float = 1.0
    logit_bias: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming a bad value (with the valid ones) or an impossible combination."""
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"SSPAConfig.{name}={value!r} is invalid; valid values: {choices}")
        for name in ("use_kap", "use_cap", "visual_to_semantic", "semantic_to_visual", "gate", "detach_focusing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SSPAConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.n_ctx, int) or self.n_ctx < 1:
            raise ValueError(f"SSPAConfig.n_ctx must be a positive integer, got {self.n_ctx!r}")
        if self.quaternion_width is not None and (
            not isinstance(self.quaternion_width, int) or self.quaternion_width <= 0 or self.quaternion_width % 4
        ):
            raise ValueError(
                "SSPAConfig.quaternion_width (4k) must be a positive multiple of 4 or None, "
                f"got {self.quaternion_width!r}"
            )
        if not self.tau_init > 0:
            raise ValueError(f"SSPAConfig.tau_init must be > 0, got {self.tau_init}")
        if self.gamma_pos < 0 or self.gamma_neg < 0 or not 0 <= self.clip < 1 or self.regional_weight < 0:
            raise ValueError(
                "SSPAConfig loss parameters need gamma_pos, gamma_neg, regional_weight >= 0 and 0 <= clip < 1; "
                f"got gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, clip={self.clip}, "
                f"regional_weight={self.regional_weight}"
            )
        if self.logit_bias is not None and not (
            isinstance(self.logit_bias, (int, float)) and not isinstance(self.logit_bias, bool)
            and math.isfinite(self.logit_bias)
        ):
            raise ValueError(f"SSPAConfig.logit_bias must be None or a finite number, got {self.logit_bias!r}")
        if self.branches != "global" and not (self.use_kap or self.use_cap):
            raise ValueError(
                "the regional branch needs label features: enable use_kap or use_cap "
                "(or set branches='global')"
            )

    @property
    def uses_global(self) -> bool:
        return self.branches in ("both", "global")

    @property
    def uses_regional(self) -> bool:
        return self.branches in ("both", "regional")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> SSPAConfig:
        """Build from a (possibly partial) dict; unknown keys are an error naming the valid ones."""
        values = dict(values or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown SSPAConfig key(s) {unknown}; valid keys: {valid}")
        return cls(**values)


def build_loss(config: SSPAConfig) -> SSPALoss:
    """The objective of eq. 19 with the config's ASL parameters (eq. 17) and λ."""
    asl = AsymmetricLoss(gamma_pos=config.gamma_pos, gamma_neg=config.gamma_neg, clip=config.clip,
                         detach_focusing=config.detach_focusing)
    return SSPALoss(asl, regional_weight=config.regional_weight)


def prediction(global_logits: Tensor | None, regional_logits: Tensor | None) -> Tensor:
    """Eq. 18: ``(σ(s^G) + σ(s^R)) / 2``, or the one present branch's sigmoid."""
    probs = [torch.sigmoid(s) for s in (global_logits, regional_logits) if s is not None]
    if not probs:
        raise ValueError("neither global nor regional logits are present")
    return torch.stack(probs).mean(0)


class MultiLabelCLIPHead(nn.Module):
    """Shared interface of SSPA and the baselines: ``forward(images)`` runs the image encoder
    and :meth:`forward_features` on its dense output ``(x0 [B,d], X [B,M,d])``; the output dict
    holds ``"global"``, ``"regional"`` (logits [B,C] or None), ``"score"`` [B,C] (eq. 18),
    ``"patch_weights"`` ([B,M,C] or None), ``"gates"`` and ``"attention"`` (dicts)."""

    def __init__(self, backbone: CLIPBackbone, label_names: Sequence[str]):
        super().__init__()
        self.backbone = backbone
        self.label_names = list(label_names)
        if not self.label_names:
            raise ValueError("label_names is empty")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def logit_scale(self) -> Tensor:
        """The CLIP logit scale (exp applied), used fixed: it is not trained here."""
        return torch.as_tensor(self.backbone.logit_scale).detach()

    def forward(self, images: Tensor) -> dict[str, Any]:
        x0, patches = self.backbone.encode_image_dense(images)
        return self.forward_features(x0, patches)

    def forward_features(self, x0: Tensor, patches: Tensor) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _check_features(x0: Tensor, patches: Tensor, dim: int) -> None:
        if x0.dim() != 2 or x0.shape[1] != dim:
            raise ValueError(f"x0 must have shape [B, {dim}], got {tuple(x0.shape)}")
        if patches.dim() != 3 or patches.shape[0] != x0.shape[0] or patches.shape[2] != dim:
            raise ValueError(f"X must have shape [{x0.shape[0]}, M, {dim}], got {tuple(patches.shape)}")

    @staticmethod
    def _outputs(
        global_logits: Tensor | None,
        regional_logits: Tensor | None,
        patch_weights: Tensor | None = None,
        gates: dict[str, Tensor] | None = None,
        attention: dict[str, Tensor] | None = None,
    ) -> dict[str, Any]:
        return {
            "global": global_logits,
            "regional": regional_logits,
            "score": prediction(global_logits, regional_logits),
            "patch_weights": patch_weights,
            "gates": gates or {},
            "attention": attention or {},
        }

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split for separate learning rates: the image encoder's, the text
        encoder's (CLIP-FT trains it) and the rest ("head": prompts, QSM, GDMA, aggregator,
        classifiers). Frozen ones are left out."""
        image = [p for p in self.backbone.clip.visual.parameters() if p.requires_grad]
        text = [p for p in self.backbone.text_parameters() if p.requires_grad]
        head = [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("backbone.")]
        return {"image_encoder": image, "text_encoder": text, "head": head}


class SSPA(MultiLabelCLIPHead):
    """Split-and-Synthesize Prompting with Gated Alignments (see the module docstring).

    ``descriptions`` (label → LLM sentence) feed KAP when ``config.kap_source == "llm"``; the
    text encoder of ``backbone`` is frozen here (the image encoder stays trainable).
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        label_names: Sequence[str],
        config: SSPAConfig | None = None,
        descriptions: dict[str, str] | None = None,
    ):
        super().__init__(backbone, label_names)
        config = SSPAConfig() if config is None else config
        config.validate()
        self.config = config
        backbone.freeze_text()
        text, dim, names = backbone.text, backbone.embed_dim, self.label_names
        self.global_prompts = (
            ContextPromptLearner(text, names, config.n_ctx, config.ctx_init) if config.uses_global else None
        )
        self.kap = self.cap = self.dsf = self.qsm = self.gdma = self.aggregator = None
        if config.uses_regional:
            if config.use_kap:
                if config.kap_source == "llm" and descriptions is None:
                    raise ValueError(
                        "kap_source='llm' needs label descriptions (sspa_core.descriptions."
                        "load_descriptions); pass descriptions= or set kap_source='template'"
                    )
                self.kap = KnowledgeAwarePrompts(
                    text, names, descriptions if config.kap_source == "llm" else None,
                    model_name=str(getattr(backbone, "name", "")),
                )
            if config.use_cap:
                self.cap = ContextPromptLearner(text, names, config.n_ctx, config.ctx_init)
                if config.cap_mode == "dsf":
                    self.dsf = DynamicSemanticFilter(dim)
            self.qsm = QuaternionSemanticModeling(
                dim, config.quaternion_width, config.synthesis, config.qsm_input,
                n_inputs=int(config.use_kap) + int(config.use_cap),
            )
            self.gdma = GatedDualModalAlignment(
                dim, config.visual_to_semantic, config.semantic_to_visual, config.gate
            )
            self.aggregator = SoftAggregator(config.aggregator, config.tau_init, config.presence)
        self.logit_bias = (
            None if config.logit_bias is None
            else nn.Parameter(torch.full((2,), float(config.logit_bias)))  # (global, regional)
        )

    def label_features(self, x0: Tensor, patches: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``T^{uf}`` [B, C, d] from KAP, CAP(+DSF) and x0 (eq. 4–10), and the DSF attention."""
        parts, attention = [], {}
        if self.kap is not None:
            parts.append(self.kap())
        if self.cap is not None:
            t_ca = self.cap()
            if self.dsf is not None:
                t_ca, attention["dsf"] = self.dsf(t_ca, patches)
            parts.append(t_ca)
        return self.qsm(parts, x0), attention

    def forward_features(self, x0: Tensor, patches: Tensor) -> dict[str, Any]:
        self._check_features(x0, patches, self.backbone.embed_dim)
        scale = self.logit_scale().to(x0.device)
        global_logits = regional_logits = weights = None
        gates: dict[str, Tensor] = {}
        attention: dict[str, Tensor] = {}
        if self.global_prompts is not None:
            global_logits = patch_label_similarity(x0.unsqueeze(1), self.global_prompts(), scale).squeeze(1)
        if self.qsm is not None:
            t_uf, attention = self.label_features(x0, patches)
            t_fn, x_fn, extras = self.gdma(t_uf, patches)
            gates = {k.removeprefix("gate_"): v for k, v in extras.items() if k.startswith("gate_")}
            attention.update({k.removeprefix("attn_"): v for k, v in extras.items() if k.startswith("attn_")})
            regional_logits, weights = self.aggregator(patch_label_similarity(x_fn, t_fn, scale))
        if self.logit_bias is not None:
            global_logits = None if global_logits is None else global_logits + self.logit_bias[0]
            regional_logits = None if regional_logits is None else regional_logits + self.logit_bias[1]
        return self._outputs(global_logits, regional_logits, weights, gates, attention)
