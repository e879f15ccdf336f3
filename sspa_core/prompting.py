"""Split-and-Synthesize Prompting (SSP): knowledge-aware prompts (KAP, eq. 4), context-aware
prompts (CAP) with Dynamic Semantic Filtering (DSF, eq. 5), the global-branch prompts (eq. 18)
and Quaternion Semantic Modeling (QSM, eq. 6, 10) with the Table VII alternatives.

Naming follows the paper: ``T^{ka}`` knowledge-aware, ``T^l`` learnable, ``T^{ca}``
context-aware, ``T^g`` global, ``T^{uf}`` unified label features (all C×d); ``x0`` the global
image feature (B×d) and ``X`` the patch features (B×M×d).

The prompt modules keep a plain (unregistered) reference to the frozen text encoder, so that
their parameters are only their own; the encoder itself belongs to the backbone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from torch import nn

from sspa_core import paths
from sspa_core.alignment import CrossModalAttention, FeedForward
from sspa_core.descriptions import label_phrase
from sspa_core.quaternion import QuaternionLinear
from sspa_core.training import atomic_save

if TYPE_CHECKING:
    from sspa_core.text_encoder import PromptTextEncoder

TEMPLATE = "A photo of a {label}."
READABLE_TEMPLATE = "A photo of {name}."  # an identifier-style label: its readable name, article included
READABLE_NAMES_FILE = paths.DATA_DIR / "labels" / "readable_names.yaml"
PLAIN_LABEL = re.compile(r"[a-z]+(?: [a-z]+)*")  # lower-case words and spaces: "apple", "parking lot"
SYNTHESIS_MODES = ("qsm", "sum", "concat", "mlp", "mlp_wide")
QSM_INPUTS = ("concat", "sum")


def _check_labels(label_names: Sequence[str]) -> list[str]:
    names = [str(n) for n in label_names]
    if not names:
        raise ValueError("label_names is empty: at least one label is needed")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"label_names has duplicates: {dup}")
    return names


def _fits(text_encoder: PromptTextEncoder, text: str) -> bool:
    """True when ``text`` tokenizes without truncation (its end-of-text token is not forced)."""
    tokens = text_encoder.tokenize([text])
    return int((tokens[0] != 0).sum()) < tokens.shape[1]


def knowledge_aware_text(
    text_encoder: PromptTextEncoder, label: str, description: str | None
) -> str:
    """Eq. 4 input: ``D_j + " A photo of a {label_j}."``, or the template alone
    (:func:`template_sentence`: an identifier-style label is written readably).

    Deviation from the paper: a description too long for the text encoder's context is
    shortened so that the closing template sentence (which names the label) survives, where
    the tokenizer would cut the label name away: it keeps the longest run of whole clauses (up
    to a comma, closed with a full stop) that fits, or whole words when not even the first
    clause fits.
    """
    sentence = template_sentence(label)
    if not description:
        return sentence
    words = description.split()

    def compose(kept: list[str]) -> str:
        if not kept:
            return sentence
        return f"{' '.join(kept).rstrip(',;:.')}. {sentence}"

    if _fits(text_encoder, f"{' '.join(words)} {sentence}"):
        return f"{' '.join(words)} {sentence}"
    lo, hi = 0, len(words)  # the most words that fit: words[:lo] fits, words[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(text_encoder, compose(words[:mid])):
            lo = mid
        else:
            hi = mid
    clause_ends = [i + 1 for i in range(lo) if words[i].endswith((",", ";", ":"))]
    return compose(words[: clause_ends[-1]] if clause_ends else words[:lo])


@functools.cache
def _readable_names() -> dict[str, str]:
    """Label -> readable name, over every list of :data:`READABLE_NAMES_FILE` (a label keeps one
    name across lists)."""
    names: dict[str, str] = {}
    for label_list, listed in yaml.safe_load(READABLE_NAMES_FILE.read_text(encoding="utf-8")).items():
        for label, name in listed.items():
            if names.setdefault(label, name) != name:
                raise ValueError(f"{READABLE_NAMES_FILE}: {label!r} of {label_list} is named both "
                                 f"{names[label]!r} and {name!r}")
    return names


def readable_name(label: str) -> str:
    """What follows "A photo of" for an identifier-style label (``accessoryHat`` -> ``a hat``,
    ``lowerBodyJeans`` -> ``jeans``): its entry in :data:`READABLE_NAMES_FILE`, else the rule's
    phrase (:func:`sspa_core.descriptions.label_phrase`) after "a" or "an"."""
    if label in _readable_names():
        return _readable_names()[label]
    phrase = label_phrase(label)
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def template_sentence(label: str) -> str:
    """The template sentence of a label (eq. 4's closing sentence, the zero-shot prompt;
    docs/method.md §KAP). A plain lower-case word or phrase (:data:`PLAIN_LABEL`: every label of
    the offline world) fills :data:`TEMPLATE` as it is, so the prompts that the shipped tiny CLIP
    and heads were trained with do not change; an identifier-style label (``accessoryHat``,
    ``hs-BaldHead``, ``Age18-60``) reads ``"A photo of {readable_name(label)}."``.
    """
    if PLAIN_LABEL.fullmatch(label):
        return TEMPLATE.format(label=label)
    return READABLE_TEMPLATE.format(name=readable_name(label))


FINGERPRINT_PROBE = "a photo."


def _text_encoder_fingerprint(text_encoder: PromptTextEncoder) -> str:
    """A short hash of the encoder's features of a fixed probe text: it depends on every text
    weight, so the on-disk cache never serves features of other weights under the same name."""
    with torch.no_grad():
        probe = text_encoder.encode_tokens(text_encoder.tokenize([FINGERPRINT_PROBE]))
    return hashlib.sha256(probe.detach().float().cpu().numpy().round(4).tobytes()).hexdigest()[:16]


class KnowledgeAwarePrompts(nn.Module):
    """KAP (eq. 4): ``T^{ka} = E_t(D_j + " A photo of a {label_j}.")`` through the frozen
    text encoder.

    Computed once at construction under ``no_grad`` and kept as the (non-persistent) buffer
    ``features`` [C, d]; :meth:`forward` just returns it. An on-disk cache under
    ``cache_dir/text_features`` (default ``sspa_core.paths.CACHE_DIR``, read at call time;
    ``False`` disables it) is keyed by the model name, a fingerprint of the text encoder's
    weights (its features of one probe text) and a hash of the texts. ``descriptions=None``
    gives the template only ("A photo of a {label}.", the zero-shot CLIP prompt).
    """

    features: torch.Tensor

    def __init__(
        self,
        text_encoder: PromptTextEncoder,
        label_names: Sequence[str],
        descriptions: dict[str, str] | None = None,
        model_name: str = "",
        cache_dir: str | Path | None | bool = None,
    ):
        super().__init__()
        names = _check_labels(label_names)
        if descriptions is not None:
            missing = [n for n in names if n not in descriptions]
            if missing:
                raise ValueError(f"descriptions lack {len(missing)} label(s): {missing[:10]}")
        self.label_names = names
        self.texts = [
            knowledge_aware_text(text_encoder, n, None if descriptions is None else descriptions[n])
            for n in names
        ]
        self.cache_path: Path | None = None
        if cache_dir is not False:
            cache_dir = paths.CACHE_DIR if cache_dir is None or cache_dir is True else cache_dir
            key = json.dumps(
                {"model": model_name, "weights": _text_encoder_fingerprint(text_encoder),
                 "texts": self.texts}
            )
            digest = hashlib.sha256(key.encode()).hexdigest()[:24]
            safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name)
            self.cache_path = Path(cache_dir) / "text_features" / f"{safe_name or 'model'}-{digest}.pt"
        self.register_buffer("features", self._load_or_encode(text_encoder), persistent=False)

    def _load_or_encode(self, text_encoder: PromptTextEncoder) -> torch.Tensor:
        device = text_encoder.tokenize(self.texts[:1]).device
        if self.cache_path is not None and self.cache_path.is_file():
            cached = torch.load(self.cache_path, map_location="cpu", weights_only=True)
            if cached.shape[0] == len(self.texts):
                return cached.to(device)
        with torch.no_grad():
            tokens = text_encoder.tokenize(self.texts).to(device)
            features = text_encoder.encode_tokens(tokens).detach().float()
        if self.cache_path is not None:
            atomic_save(features.cpu(), self.cache_path)  # a private temporary file: concurrent runs are safe
        return features

    def forward(self) -> torch.Tensor:
        return self.features


class ContextPromptLearner(nn.Module):
    """CAP's learnable prompts (CoOp, Zhou et al. 2022): N context vectors shared by all
    labels, ``V_j = [p_1 … p_N, w_j]``; ``T^l = E_t(V)`` [C, d] through the frozen encoder
    (gradients reach ``ctx`` only). The global branch uses its own instance for ``T^g``.

    ``ctx`` is initialised N(0, 0.02²), or from the token embeddings of ``init_phrase``
    (whose token count must equal ``n_ctx``). With ``class_specific=True`` each label gets
    its own context ([C, N, width]), as CoOp's CSC variant. In eval mode without gradients the
    features are cached until ``ctx`` changes (in-place updates bump its version counter).
    """

    def __init__(
        self,
        text_encoder: PromptTextEncoder,
        label_names: Sequence[str],
        n_ctx: int = 16,
        init_phrase: str | None = None,
        class_specific: bool = False,
    ):
        super().__init__()
        names = _check_labels(label_names)
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
        object.__setattr__(self, "text_encoder", text_encoder)
        self.label_names = names
        self.n_ctx = n_ctx
        self.register_buffer("tokens", text_encoder.tokenize_with_context(names, n_ctx), persistent=False)
        width = text_encoder.width
        if init_phrase:
            phrase = text_encoder.tokenize([init_phrase])
            n_phrase = int((phrase[0] != 0).sum()) - 2  # minus start and end tokens
            if n_phrase != n_ctx:
                raise ValueError(
                    f"init_phrase {init_phrase!r} has {n_phrase} tokens but n_ctx={n_ctx}"
                )
            with torch.no_grad():
                ctx = text_encoder.embed_tokens(phrase)[0, 1 : 1 + n_ctx].detach().clone().float()
        else:
            ctx = torch.randn(n_ctx, width) * 0.02
        if class_specific:
            ctx = ctx.unsqueeze(0).repeat(len(names), 1, 1)
        self.ctx = nn.Parameter(ctx)
        self._cache: torch.Tensor | None = None
        self._cache_key: tuple | None = None

    def forward(self) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return self.text_encoder(self.ctx, self.tokens)
        key = (self.ctx._version, self.ctx.data_ptr(), self.ctx.device, self.ctx.dtype)
        if self._cache is None or key != self._cache_key:
            self._cache = self.text_encoder(self.ctx, self.tokens)
            self._cache_key = key
        return self._cache


class DynamicSemanticFilter(nn.Module):
    """DSF (eq. 5) [rec: residual/LayerNorm placement]:
    ``T̂ = T^l + CMA(T^l, X)``; ``T^{ca} = T̂ + MLP(LN(T̂))``.

    ``forward(t_l [C,d] or [B,C,d], x [B,M,d]) -> (T^{ca} [B,C,d], attention [B,C,M])``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.cma = CrossModalAttention(dim)
        self.ffn = FeedForward(dim)

    def forward(self, t_l: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if t_l.dim() == 2:
            t_l = t_l.unsqueeze(0).expand(x.shape[0], -1, -1)
        attended, attn = self.cma(t_l, x)
        t_hat = t_l + attended
        return t_hat + self.ffn(t_hat), attn


def qsm_parameter_count(in_dim: int, dim: int, width: int) -> int:
    """Parameters of QSM: the embedding ``W_e, b_e`` (in_dim → 4k, eq. 6) and two quaternion
    layers 4k → 4k → d (eq. 10), each with a quarter of a real layer's weights."""
    return (in_dim * width + width) + (width * width // 4 + width) + (width * dim // 4 + dim)


def matched_mlp_width(in_dim: int, dim: int, budget: int) -> int:
    """Hidden width ``h`` of a real MLP in_dim → h → h → d whose parameter count
    ``h² + (in_dim + d + 2) h + d`` is nearest to ``budget`` (the root of the quadratic, rounded)."""
    b = in_dim + dim + 2
    return max(1, round((math.sqrt(b * b + 4 * (budget - dim)) - b) / 2))


class QuaternionSemanticModeling(nn.Module):
    """Synthesis of ``T^{ka}``, ``T^{ca}`` and ``x0`` into ``T^{uf}`` [B, C, d].

    ``synthesis`` (Table VII):
      - ``"qsm"`` (eq. 6, 10): ``H = [T^{ka} ‖ T^{ca} ‖ 1·x0ᵀ] W_e + b_e`` (n·d → 4k), read as a
        quaternion (eq. 7), ``T^{uf} = Q_{l2}(ReLU(Q_{l1}(H)))`` with quaternion layers 4k → 4k
        → d. The concatenated H is a reconstruction [rec]; ``qsm_input="sum"`` selects the
        alternative ``H = (T^{ka} + T^{ca} + x0) W_e + b_e`` (d → 4k).
      - ``"sum"``: ``T^{ka} + T^{ca} + x0`` (no parameters);
      - ``"concat"``: ``[T^{ka} ‖ T^{ca} ‖ x0] W + b`` (n·d → d);
      - ``"mlp"``: a real MLP of QSM's depth, n·d → h → h → d, with the hidden width ``h``
        (:func:`matched_mlp_width`) that gives it QSM's parameter count (within ~1%), as the
        paper's "similar" parameter budget asks;
      - ``"mlp_wide"``: the QSM layout with real layers (n·d → 4k → 4k → d), ~1.43× QSM's
        parameters (the real 4k → 4k and 4k → d layers have 4× the quaternion ones' weights).
    ``n_inputs`` is the number of label-feature sources present (1 when KAP or CAP is off);
    ``x0`` is always appended.
    """

    def __init__(
        self,
        dim: int,
        width: int | None = None,
        synthesis: str = "qsm",
        qsm_input: str = "concat",
        n_inputs: int = 2,
    ):
        super().__init__()
        if synthesis not in SYNTHESIS_MODES:
            raise ValueError(f"synthesis must be one of {SYNTHESIS_MODES}, got {synthesis!r}")
        if qsm_input not in QSM_INPUTS:
            raise ValueError(f"qsm_input must be one of {QSM_INPUTS}, got {qsm_input!r}")
        if n_inputs not in (1, 2):
            raise ValueError(f"n_inputs must be 1 or 2 (KAP and/or CAP), got {n_inputs}")
        width = dim if width is None else width
        if synthesis in ("qsm", "mlp", "mlp_wide") and (width <= 0 or width % 4 or dim % 4):
            raise ValueError(
                f"quaternion width (4k) and embed dim must be positive multiples of 4, got "
                f"width={width}, dim={dim}"
            )
        self.synthesis = synthesis
        self.qsm_input = qsm_input
        in_dim = (n_inputs + 1) * dim
        if synthesis == "qsm":
            self.embed = nn.Linear(in_dim if qsm_input == "concat" else dim, width)
            self.layers = nn.Sequential(
                QuaternionLinear(width, width, bias=True), nn.ReLU(), QuaternionLinear(width, dim, bias=True)
            )
        elif synthesis in ("mlp", "mlp_wide"):
            hidden = width if synthesis == "mlp_wide" else matched_mlp_width(
                in_dim, dim, qsm_parameter_count(in_dim if qsm_input == "concat" else dim, dim, width))
            self.embed = nn.Linear(in_dim, hidden)
            self.layers = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        elif synthesis == "concat":
            self.embed = nn.Linear(in_dim, dim)
            self.layers = nn.Identity()
        else:
            self.embed = None
            self.layers = nn.Identity()

    def forward(self, label_features: Sequence[torch.Tensor], x0: torch.Tensor) -> torch.Tensor:
        """``label_features``: the present ones of (T^{ka}, T^{ca}), each [C,d] or [B,C,d]."""
        if not label_features:
            raise ValueError("QSM needs at least one of T^ka, T^ca")
        batch, dim = x0.shape
        num_labels = label_features[0].shape[-2]
        parts = [
            (t.unsqueeze(0) if t.dim() == 2 else t).to(x0.dtype).expand(batch, num_labels, dim)
            for t in label_features
        ]
        parts.append(x0.unsqueeze(1).expand(batch, num_labels, dim))
        if self.synthesis == "sum" or (self.synthesis == "qsm" and self.qsm_input == "sum"):
            fused = torch.stack(parts).sum(0)
        else:
            fused = torch.cat(parts, dim=-1)
        if self.embed is not None:
            fused = self.embed(fused)
        return self.layers(fused)
