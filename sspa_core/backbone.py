"""The CLIP backbone: open_clip image and text encoders, dense image features and a prompt-aware
text encoder (``docs/method.md``, "Backbone").

Notation follows the paper's framework figure: ``x0 ∈ R^d`` is the global image feature (class
token for ViT, attention-pooled feature for ModifiedResNet) and ``X ∈ R^{M×d}`` the M patch /
grid features, both in the joint image–text space of width ``d``.

Importing this module registers the tiny-CLIP configs of the offline world
(``sspa-tiny-vit``, ``sspa-tiny-rn``; JSON files in ``sspa_core/model_configs``) with
``open_clip.add_model_config``, so ``open_clip.create_model("sspa-tiny-vit", ...)`` works
everywhere.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, resize_pos_embed
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transform import PreprocessCfg, merge_preprocess_dict
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

from sspa_core import paths
from sspa_core.data.safe_pickle import refused_by_torch
from sspa_core.errors import InputError, WeightsUnavailable
from sspa_core.text_encoder import PromptTextEncoder

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
TINY_MODELS = ("sspa-tiny-vit", "sspa-tiny-rn")
TINY_CLIP_DIR = paths.DATA_DIR / "tiny_clip"
#: ``model.dense_features``: how a ViT tower makes X (docs/method.md §Backbone); "tokens" is the paper's
DENSE_FEATURES = ("tokens", "maskclip", "sclip", "clearclip")

open_clip.add_model_config(MODEL_CONFIG_DIR)


def shipped_checkpoint(name: str) -> Path:
    """Path of the committed tiny-CLIP checkpoint ``data/tiny_clip/<name>.pt``."""
    if name not in TINY_MODELS:
        raise ValueError(f"no shipped checkpoint for {name!r}; shipped models: {TINY_MODELS}")
    return TINY_CLIP_DIR / f"{name}.pt"


def pretraining_output(name: str) -> Path:
    """Where ``sspa pretrain`` writes tiny CLIP ``name`` by default: over the shipped checkpoint
    when the data folder is the repository's (or ``SSPA_DATA_DIR``), else
    ``OUTPUT_DIR/tiny_clip/<name>.pt``, since an installed package's data stay read only."""
    if paths.DATA_DIR == paths.PACKAGED_DATA_DIR:
        return paths.OUTPUT_DIR / "tiny_clip" / f"{name}.pt"
    return shipped_checkpoint(name)


def _check_model_name(name: str) -> None:
    if name not in open_clip.list_models():
        raise ValueError(
            f"unknown model {name!r}: expected one of the tiny models {TINY_MODELS} or an "
            "open_clip model name such as 'ViT-B-16' or 'RN101' (see open_clip.list_models())"
        )


def _resolve_pretrained(name: str, pretrained: str | os.PathLike | None) -> str | None:
    """Map ``pretrained`` to what ``open_clip.create_model`` accepts (a tag or an existing file),
    raising a clear error for an unknown model, a missing file or an unknown tag."""
    _check_model_name(name)
    if pretrained is None or str(pretrained) == "":
        if name not in TINY_MODELS:
            return None  # random initialisation, as open_clip does without weights
        path = shipped_checkpoint(name)
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped checkpoint {path} is missing; rebuild it with "
                f"`sspa pretrain --backbone {name}`"
            )
        return str(path)
    pretrained = str(pretrained)
    if os.path.isfile(pretrained):
        return pretrained
    if open_clip.get_pretrained_cfg(name, pretrained):
        return pretrained
    looks_like_path = os.sep in pretrained or Path(pretrained).suffix in {
        ".pt", ".pth", ".bin", ".safetensors", ".npz"
    }
    if looks_like_path:
        raise FileNotFoundError(f"checkpoint file not found: {pretrained}")
    tags = open_clip.list_pretrained_tags_by_model(name)
    raise ValueError(
        f"pretrained {pretrained!r} is neither a file nor a known tag of {name!r} "
        f"(known tags: {tags or 'none'})"
    )


def fetch_pretrained(name: str, pretrained: str | os.PathLike | None) -> str | None:
    """:func:`_resolve_pretrained`, and for an open_clip tag the download of its weights into
    open_clip's cache (where ``open_clip.create_model`` finds them). A failed download raises
    :class:`WeightsUnavailable` naming the weights and how to pass a local file instead."""
    checkpoint = _resolve_pretrained(name, pretrained)
    if checkpoint is None or os.path.isfile(checkpoint):
        return checkpoint
    cfg = open_clip.get_pretrained_cfg(name, checkpoint)
    source = cfg.get("hf_hub") or cfg.get("url", "")
    try:
        open_clip.pretrained.download_pretrained(cfg)
    except (OSError, RuntimeError) as err:  # no connection, offline mode, file gone, bad checksum
        reason = " ".join(str(err).split()).split("Last error: ")[-1].split(". ")[0][:200]
        raise WeightsUnavailable(
            f"could not download the pretrained weights {checkpoint!r} of {name} from {source} ({reason}); "
            f"download them where there is a connection and pass the file with "
            f"--set model.pretrained=/path/to/file.pt (load_backbone(pretrained=...))"
        ) from err
    return checkpoint


def preprocess_cfg(name: str, pretrained: str | os.PathLike | None = None,
                   image_size: int | None = None) -> dict[str, Any]:
    """The image preprocessing (open_clip's ``preprocess_cfg``: mean, std, interpolation, resize
    mode, size) of the model :func:`load_backbone` returns for these arguments, without building
    it: open_clip's defaults (OpenAI CLIP's mean and std) updated by the pretrained tag's config,
    as ``open_clip.create_model`` does. A checkpoint file carries none, so it keeps the defaults."""
    _check_model_name(name)
    tag = str(pretrained) if pretrained else ""
    from_tag = open_clip.get_pretrained_cfg(name, tag) if tag and not os.path.isfile(tag) else {}
    cfg = merge_preprocess_dict(PreprocessCfg(), from_tag)
    cfg["size"] = image_size or open_clip.get_model_config(name)["vision_cfg"]["image_size"]
    return cfg


def _resize_grid(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A ``[1 + h*w, width]`` positional embedding resized to ``grid`` by open_clip's
    ``resize_pos_embed`` (bicubic, antialiased, the leading class token kept), in float32."""
    state = {"visual.positional_embedding": pos_embed.float()}
    resize_pos_embed(state, SimpleNamespace(visual=SimpleNamespace(grid_size=grid)))
    return state["visual.positional_embedding"].to(pos_embed.dtype)


def set_image_size(clip: CLIP, image_size: int) -> None:
    """Change the input size of an existing ``clip.visual`` in place, resizing its positional
    embedding: the ViT patch grid, or the ModifiedResNet attention-pool grid (which open_clip's
    ``force_image_size`` builds but its checkpoint loading does not resize)."""
    visual = clip.visual
    if isinstance(visual, VisionTransformer):
        stride, owner = visual.patch_size[0], visual
    elif isinstance(visual, ModifiedResNet):
        stride, owner = 32, visual.attnpool
    else:
        raise ValueError(f"input-size override unsupported for {type(visual).__name__}")
    if image_size % stride:
        raise ValueError(f"image_size {image_size} is not a multiple of {stride} "
                         f"(the {type(visual).__name__} stride)")
    grid = (image_size // stride, image_size // stride)
    pos = owner.positional_embedding
    owner.positional_embedding = nn.Parameter(_resize_grid(pos.detach(), grid), requires_grad=pos.requires_grad)
    if isinstance(visual, VisionTransformer):
        visual.grid_size, visual.image_size = grid, (image_size, image_size)
    else:
        visual.image_size = image_size
    if hasattr(visual, "preprocess_cfg"):
        visual.preprocess_cfg["size"] = (image_size, image_size)


def _square_size(visual: nn.Module) -> int:
    size = visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _check_dense_features(visual: nn.Module, mode: str) -> None:
    """Refuse a ``mode`` that is not in :data:`DENSE_FEATURES` or that ``visual`` cannot run:
    the training-free variants need a ViT whose last block is open_clip's
    ``ResidualAttentionBlock`` with a packed ``nn.MultiheadAttention``."""
    if mode not in DENSE_FEATURES:
        raise ValueError(f"unknown dense_features {mode!r}; valid: {', '.join(DENSE_FEATURES)}")
    if mode == "tokens":
        return
    if not isinstance(visual, VisionTransformer):
        raise ValueError(f"dense_features {mode!r} applies to ViT image towers only; a "
                         f"{type(visual).__name__}'s dense features are already the attention pool's value "
                         f"path (MaskCLIP-style): use 'tokens' (valid for a ViT: {', '.join(DENSE_FEATURES)})")
    block = visual.transformer.resblocks[-1]
    attn = getattr(block, "attn", None)
    if not (isinstance(block, ResidualAttentionBlock) and isinstance(attn, nn.MultiheadAttention)
            and attn._qkv_same_embed_dim and attn.bias_k is None):
        raise ValueError(f"dense_features {mode!r} needs a last ViT block with a packed nn.MultiheadAttention "
                         f"(open_clip's ResidualAttentionBlock); this model's is {type(block).__name__} with "
                         f"{type(attn).__name__}: use 'tokens'")


def _last_block_variant(block: ResidualAttentionBlock, x: torch.Tensor, mode: str) -> torch.Tensor:
    """The last ViT block's output under a training-free dense-feature ``mode`` for its input
    ``x`` [B, N, D] (batch first, class token included; docs/method.md §Backbone).

    With ``z = ln_1(x)`` and per head ``q, k, v`` from the packed ``in_proj`` and ``s = d_h^-1/2``,
    ``O = out_proj(a)`` where ``a`` is ``v`` (maskclip), ``[softmax(s q qᵀ) + softmax(s k kᵀ)] v``
    (sclip) or ``softmax(s q qᵀ) v`` (clearclip). maskclip and sclip keep the block's residual and
    FFN, ``y = x + O``, ``y + mlp(ln_2(y))``; clearclip returns ``O`` alone. Layer scales
    (``ls_1``, ``ls_2``), where the block has them, scale each branch as in the block."""
    attn = block.attn
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    if mode == "maskclip":
        mixed = v
    else:
        q, k, v = (t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2) for t in (q, k, v))  # [B, H, N, d_h]
        scale = q.shape[-1] ** -0.5
        weights = torch.softmax(q @ q.transpose(-2, -1) * scale, dim=-1)
        if mode == "sclip":
            weights = weights + torch.softmax(k @ k.transpose(-2, -1) * scale, dim=-1)
        mixed = (weights @ v).transpose(1, 2).flatten(2)
    out = block.ls_1(attn.out_proj(mixed))
    if mode == "clearclip":
        return out
    y = x + out
    return y + block.ls_2(block.mlp(block.ln_2(y)))


class CLIPBackbone(nn.Module):
    """An open_clip CLIP with dense image features and a prompt-aware text encoder.

    ``logit_scale`` is CLIP's learned temperature with ``exp()`` applied (τ_s of eqs. 14–16).
    Dense features (``docs/method.md``, "Backbone"): ViT: patch tokens after ``ln_post`` multiplied by ``proj``;
    ModifiedResNet: the attention pool's value and output projections (``v_proj`` then
    ``c_proj``) applied to every grid location after adding its positional embedding
    (DualCoOp / MaskCLIP style), so ``x0`` is an attention-weighted average of the rows
    ``[mean token, X]``. ``dense_features`` (one of :data:`DENSE_FEATURES`) chooses a ViT's
    last block for X alone (:func:`_last_block_variant`); ``x0`` is ``clip.encode_image`` in every mode.
    """

    def __init__(self, clip: CLIP, tokenizer, name: str = "", dense_features: str = "tokens") -> None:
        super().__init__()
        if not isinstance(clip.visual, (VisionTransformer, ModifiedResNet)):
            raise ValueError(f"dense features unsupported for {type(clip.visual).__name__}")
        if isinstance(clip.visual, VisionTransformer) and clip.visual.attn_pool is not None:
            raise ValueError("dense features unsupported for a ViT with an attentional pooler")
        self.name = name  # the open_clip model name, "" when unknown
        self.clip = clip
        self.tokenizer = tokenizer
        self.text = PromptTextEncoder(clip, tokenizer)
        self.dense_features = dense_features

    @property
    def dense_features(self) -> str:
        """How a ViT makes X: ``"tokens"`` (the paper's) or a training-free variant of the last
        block, ``"maskclip"``, ``"sclip"``, ``"clearclip"``; a ModifiedResNet takes ``"tokens"`` only."""
        return self._dense_features

    @dense_features.setter
    def dense_features(self, mode: str) -> None:
        _check_dense_features(self.clip.visual, mode)
        self._dense_features = mode

    @property
    def embed_dim(self) -> int:
        return int(self.clip.visual.output_dim)

    @property
    def image_size(self) -> int:
        return _square_size(self.clip.visual)

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        """open_clip's image preprocessing of this model (mean, std, interpolation, size), for
        :func:`sspa_core.data.build_transform`."""
        return dict(open_clip.get_model_preprocess_cfg(self.clip))

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp()

    def num_patches(self) -> int:
        """M, the number of dense features at the current input size."""
        visual = self.clip.visual
        if isinstance(visual, VisionTransformer):
            return visual.grid_size[0] * visual.grid_size[1]
        return (self.image_size // 32) ** 2

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """x0 [B, d], as ``clip.encode_image`` (unnormalised)."""
        return self.clip.encode_image(images)

    def encode_image_dense(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 [B, d], X [B, M, d]) in the joint space, unnormalised."""
        visual = self.clip.visual
        if isinstance(visual, VisionTransformer) and self.dense_features != "tokens":
            return self._encode_vit_variant(images)
        if isinstance(visual, VisionTransformer):
            x = visual.transformer(visual._embeds(images))
            pooled, tokens = visual._pool(x)
            if visual.final_ln_after_pool:
                tokens = visual.ln_post(tokens)
            return pooled @ visual.proj, tokens @ visual.proj
        x = visual.stem(images)
        x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
        pool = visual.attnpool
        grid = x.flatten(2).transpose(1, 2)  # [B, HW, C]
        grid = grid + pool.positional_embedding[1:].to(grid.dtype)
        dense = pool.c_proj(pool.v_proj(grid))
        return pool(x), dense

    def _encode_vit_variant(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, X) of a ViT under a training-free ``dense_features``: one pass through the blocks
        keeps the last block's input; x0 is pooled from the ordinary output and X is
        ``ln_post(patch rows of the variant's output) @ proj``."""
        visual = self.clip.visual
        transformer = visual.transformer
        x = visual._embeds(images)
        depth = len(transformer.resblocks)
        if depth > 1:
            x, (last_input,) = transformer.forward_intermediates(x, indices=[depth - 2])
        else:
            last_input, x = x, transformer(x)
        pooled, _ = visual._pool(x)
        _, tokens = visual._global_pool(_last_block_variant(transformer.resblocks[-1], last_input,
                                                            self.dense_features))
        return pooled @ visual.proj, visual.ln_post(tokens) @ visual.proj

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Features [n, d] of plain texts through the (frozen) text tower."""
        return self.text.encode_tokens(self.text.tokenize(texts))

    def text_parameters(self) -> list[nn.Parameter]:
        """Every parameter of the text tower."""
        clip = self.clip
        params = [clip.token_embedding.weight, clip.positional_embedding]
        params += list(clip.transformer.parameters()) + list(clip.ln_final.parameters())
        if isinstance(clip.text_projection, nn.Module):
            params += list(clip.text_projection.parameters())
        elif clip.text_projection is not None:
            params.append(clip.text_projection)
        return params

    def freeze_text(self) -> None:
        """Stop training the text tower; gradients still flow through it to its inputs."""
        for param in self.text_parameters():
            param.requires_grad_(False)

    def freeze_image(self) -> None:
        for param in self.clip.visual.parameters():
            param.requires_grad_(False)


def load_backbone(name: str = "sspa-tiny-vit", pretrained: str | os.PathLike | None = None,
                  image_size: int | None = None, device: str = "cpu",
                  dense_features: str = "tokens") -> CLIPBackbone:
    """Load an open_clip CLIP as a :class:`CLIPBackbone`.

    ``name``: a tiny model (``sspa-tiny-vit``, ``sspa-tiny-rn``) or any open_clip model name;
    ``pretrained``: an open_clip tag (e.g. ``"openai"``; downloads, needs internet) or a local
    checkpoint file; ``None``/``""`` means the shipped checkpoint for the tiny models and a
    random initialisation otherwise. ``image_size`` overrides the input size: without weights,
    open_clip's ``force_image_size`` builds the model at that size; a checkpoint is loaded at its
    own size and resized by :func:`set_image_size`, since open_clip's resizing on load covers
    neither the ModifiedResNet attention pool nor float16 checkpoints (the shipped tiny CLIPs)
    on the CPU. ``dense_features``: see :attr:`CLIPBackbone.dense_features`.
    """
    checkpoint = fetch_pretrained(name, pretrained)
    if checkpoint is None:
        logging.getLogger(__name__).info("%s: random initialisation (no pretrained weights)", name)
    force = image_size if checkpoint is None else None
    try:
        clip = open_clip.create_model(name, pretrained=checkpoint, device=device, force_image_size=force)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        if checkpoint is None or not os.path.isfile(checkpoint):
            raise
        reason = (refused_by_torch(err) if isinstance(err, pickle.UnpicklingError)
                  else str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__)
        raise InputError(f"pretrained weights {checkpoint} could not be loaded into {name} ({reason}); "
                         f"pass an open_clip checkpoint of {name} (model.pretrained)") from err
    if image_size is not None and image_size != _square_size(clip.visual):
        set_image_size(clip, image_size)
    clip.eval()
    return CLIPBackbone(clip, open_clip.get_tokenizer(name), name, dense_features).to(device)
