"""The prompt-aware text encoder: CLIP's text tower fed with learnable context vectors (CoOp),
used by CAP (eq. 5) and by the DualCoOp-style baseline (``docs/method.md`` §Backbone).

Checked against open_clip's own ``encode_text`` in ``tests/test_backbone.py``.
"""

from __future__ import annotations

import torch
from open_clip.model import CLIP
from open_clip.transformer import ResidualAttentionBlock, text_global_pool
from torch import nn

CONTEXT_TOKEN = "X"  # CoOp's placeholder word for the learnable context tokens


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
