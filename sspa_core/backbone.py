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
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import open_clip
import torch
from open_clip.model import CLIP, resize_pos_embed
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transform import PreprocessCfg, merge_preprocess_dict
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer, text_global_pool
from torch import nn

from sspa_core import paths

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
TINY_MODELS = ("sspa-tiny-vit", "sspa-tiny-rn")
TINY_CLIP_DIR = paths.DATA_DIR / "tiny_clip"
CONTEXT_TOKEN = "X"  # CoOp's placeholder word for the learnable context tokens

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


class PromptTextEncoder(nn.Module):
    """The CLIP text tower, taking learnable context vectors in place of prompt words (CoOp).

    A view over the text modules of ``clip`` (``token_embedding``, ``positional_embedding``,
    ``transformer``, ``ln_final``, ``text_projection``): it registers no parameters of its own,
    so the CLIP model stays their single owner (one state_dict entry each, moved by ``.to``).
    """

    def __init__(self, clip: CLIP, tokenizer) -> None:
        super().__init__()
        self.__dict__["_clip"] = clip  # not a registered submodule: see the class docstring
        self.tokenizer = tokenizer

    @property
    def width(self) -> int:
        return self._clip.token_embedding.embedding_dim

    @property
    def context_length(self) -> int:
        return self._clip.context_length

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        device = self._clip.token_embedding.weight.device
        return self.tokenizer(list(texts)).to(device)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._clip.token_embedding(tokens)

    def tokenize_with_context(self, names: list[str], n_ctx: int) -> torch.Tensor:
        """Tokens of ``"X X ... X {name}."`` with ``n_ctx`` placeholders at positions
        1..n_ctx (position 0 is the start-of-text token)."""
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be at least 1, got {n_ctx}")
        placeholder = " ".join([CONTEXT_TOKEN] * n_ctx)
        prompts = [f"{placeholder} {name}." for name in names]
        encode = getattr(self.tokenizer, "encode", None)
        if encode is not None:
            for name, prompt in zip(names, prompts):
                length = len(encode(prompt)) + 2
                if length > self.context_length:
                    raise ValueError(
                        f"prompt for {name!r} with {n_ctx} context tokens needs {length} tokens, "
                        f"more than the context length {self.context_length}"
                    )
        tokens = self.tokenize(prompts)
        x_id = self.tokenize([CONTEXT_TOKEN])[0, 1]
        if not bool((tokens[:, 1:n_ctx + 1] == x_id).all()):
            raise ValueError("the tokenizer does not map the context placeholder to one token each")
        return tokens

    def _pooled_length(self, tokens: torch.Tensor) -> int:
        """The shortest prefix of the context that still holds every row's pooled token.

        With a causal mask (``clip.attn_mask``) the feature at a position depends only on the
        positions before it, so for end-of-text pooling the positions after the last end-of-text
        token can be dropped without changing the result: prompts of a few tokens then cost a
        few tokens, not the whole context (32 for the tiny CLIPs, 77 for OpenAI's).
        """
        clip = self._clip
        if clip.attn_mask is None or clip.text_pool_type not in ("argmax", "eos") or tokens.shape[0] == 0:
            return tokens.shape[1]
        if clip.text_pool_type == "argmax":
            last = tokens.argmax(dim=-1)
        else:
            last = (tokens == clip.text_eos_id).int().argmax(dim=-1)
        return int(last.max()) + 1

    def _encode_embeddings(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``clip.encode_text`` from the token-embedding step on (open_clip 3.3 CLIP), over the
        context trimmed by :meth:`_pooled_length`."""
        clip = self._clip
        cast_dtype = clip.transformer.get_cast_dtype()
        length = self._pooled_length(tokens)
        x, tokens = x[:, :length], tokens[:, :length]
        mask = None if clip.attn_mask is None else clip.attn_mask[:length, :length]
        x = x.to(cast_dtype) + clip.positional_embedding[:length].to(cast_dtype)
        return self._pool_and_project(clip.transformer(x, attn_mask=mask), tokens)

    def _pool_and_project(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The end of ``clip.encode_text``: final LayerNorm, pooling, text projection."""
        clip = self._clip
        x = clip.ln_final(x)
        x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
        if clip.text_projection is None:
            return x
        if isinstance(clip.text_projection, nn.Linear):
            return clip.text_projection(x)
        return x @ clip.text_projection

    def _shares_prefixes(self) -> bool:
        """True when :meth:`_encode_shared_prefix` applies: a causal mask, end-of-text pooling
        and open_clip's standard self-attention blocks (batch first, no gradient checkpointing)."""
        clip, transformer = self._clip, self._clip.transformer
        return (
            clip.attn_mask is not None and clip.text_pool_type in ("argmax", "eos")
            and transformer.batch_first and not transformer.grad_checkpointing
            and all(type(block) is ResidualAttentionBlock and not hasattr(block, "ln_1_kv")
                    and block.attn.batch_first for block in transformer.resblocks)
        )

    def _encode_shared_prefix(self, prefix: torch.Tensor, suffix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Features of the rows ``[prefix ‖ suffix_c]``, whose first ``P`` embeddings ``prefix``
        [1, P, width] (start token + shared context) are the same in every row.

        Under the causal mask the states of those positions are the same in every row, so they
        go through each block once; only the suffixes [C, S, width] (label words, end of text)
        are computed per row, attending to the shared states. Equal to :meth:`_encode_embeddings`
        of the concatenation, for ``P + C·S`` positions instead of ``C·(P + S)``.
        """
        clip = self._clip
        cast_dtype = clip.transformer.get_cast_dtype()
        n_prefix, length = prefix.shape[1], prefix.shape[1] + suffix.shape[1]
        positions = clip.positional_embedding[:length].to(cast_dtype)
        shared = prefix.to(cast_dtype) + positions[:n_prefix]
        rows = suffix.to(cast_dtype) + positions[n_prefix:]
        mask = clip.attn_mask[:length, :length].to(cast_dtype)
        for block in clip.transformer.resblocks:
            query = block.ln_1(rows)
            keys = torch.cat([block.ln_1(shared).expand(rows.shape[0], -1, -1), query], dim=1)
            attended = block.attn(query, keys, keys, need_weights=False, attn_mask=mask[n_prefix:])[0]
            rows = rows + block.ls_1(attended)
            rows = rows + block.ls_2(block.mlp(block.ln_2(rows)))
            shared = block(shared, attn_mask=mask[:n_prefix, :n_prefix])
        return self._pool_and_project(rows, tokens[:, n_prefix:length])

    def forward(self, ctx: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Text features [C, d] of prompts whose positions 1..n_ctx are replaced by ``ctx``:
        ``[n_ctx, width]`` shared by every row (run once for all rows by
        :meth:`_encode_shared_prefix` where the text tower allows), or ``[C, n_ctx, width]``
        per row."""
        n_rows = tokens.shape[0]
        if ctx.dim() not in (2, 3) or ctx.shape[-1] != self.width or (ctx.dim() == 3 and ctx.shape[0] != n_rows):
            raise ValueError(
                f"ctx must be [n_ctx, {self.width}] or [{n_rows}, n_ctx, {self.width}], "
                f"got {tuple(ctx.shape)}"
            )
        n_ctx = ctx.shape[-2]
        embedded = self.embed_tokens(tokens)
        if ctx.dim() == 2 and self._shares_prefixes():
            length = self._pooled_length(tokens)
            if length > 1 + n_ctx:  # every row's end-of-text token lies after the shared context
                prefix = torch.cat([embedded[:1, :1], ctx.unsqueeze(0).to(embedded.dtype)], dim=1)
                return self._encode_shared_prefix(prefix, embedded[:, 1 + n_ctx:length], tokens)
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(n_rows, -1, -1)
        x = torch.cat([embedded[:, :1], ctx.to(embedded.dtype), embedded[:, 1 + n_ctx:]], dim=1)
        return self._encode_embeddings(x, tokens)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Same as ``clip.encode_text(tokens)`` (unnormalised)."""
        return self._encode_embeddings(self.embed_tokens(tokens), tokens)


class CLIPBackbone(nn.Module):
    """An open_clip CLIP with dense image features and a prompt-aware text encoder.

    ``logit_scale`` is CLIP's learned temperature with ``exp()`` applied (τ_s of eqs. 14–16).
    Dense features (``docs/method.md``, "Backbone"): ViT: patch tokens after ``ln_post`` multiplied by ``proj``;
    ModifiedResNet: the attention pool's value and output projections (``v_proj`` then
    ``c_proj``) applied to every grid location after adding its positional embedding
    (DualCoOp / MaskCLIP style), so ``x0`` is an attention-weighted average of the rows
    ``[mean token, X]``.
    """

    def __init__(self, clip: CLIP, tokenizer, name: str = "") -> None:
        super().__init__()
        if not isinstance(clip.visual, (VisionTransformer, ModifiedResNet)):
            raise ValueError(f"dense features unsupported for {type(clip.visual).__name__}")
        if isinstance(clip.visual, VisionTransformer) and clip.visual.attn_pool is not None:
            raise ValueError("dense features unsupported for a ViT with an attentional pooler")
        self.name = name  # the open_clip model name, "" when unknown
        self.clip = clip
        self.tokenizer = tokenizer
        self.text = PromptTextEncoder(clip, tokenizer)

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
                  image_size: int | None = None, device: str = "cpu") -> CLIPBackbone:
    """Load an open_clip CLIP as a :class:`CLIPBackbone`.

    ``name``: a tiny model (``sspa-tiny-vit``, ``sspa-tiny-rn``) or any open_clip model name;
    ``pretrained``: an open_clip tag (e.g. ``"openai"``; downloads, needs internet) or a local
    checkpoint file; ``None``/``""`` means the shipped checkpoint for the tiny models and a
    random initialisation otherwise. ``image_size`` overrides the input size: without weights,
    open_clip's ``force_image_size`` builds the model at that size; a checkpoint is loaded at its
    own size and resized by :func:`set_image_size`, since open_clip's resizing on load covers
    neither the ModifiedResNet attention pool nor float16 checkpoints (the shipped tiny CLIPs)
    on the CPU.
    """
    checkpoint = _resolve_pretrained(name, pretrained)
    if checkpoint is None:
        logging.getLogger(__name__).info("%s: random initialisation (no pretrained weights)", name)
    force = image_size if checkpoint is None else None
    clip = open_clip.create_model(name, pretrained=checkpoint, device=device, force_image_size=force)
    if image_size is not None and image_size != _square_size(clip.visual):
        set_image_size(clip, image_size)
    clip.eval()
    return CLIPBackbone(clip, open_clip.get_tokenizer(name), name).to(device)
