"""Optimiser parameter groups: a learning rate per part of the model, weight decay only where it
regularises.

Weight decay pulls a parameter towards 0, which is a prior for weight matrices but not for
scales, offsets or embeddings of meaning: it is left off every parameter with fewer than two
dimensions (biases, LayerNorm weights, the aggregator's log τ, the logit bias, CLIP's logit scale
and class embedding), as open_clip's training does (``exclude = p.ndim < 2 or "bn"/"ln"/"bias"/
"logit_scale" in name``), and off the learnable prompt context vectors (``*.ctx``), which are
points in the token-embedding space whose norm the text encoder reads. (CoOp's own recipe, via
Dassl, does decay its context by 5e-4 under SGD; this is a choice, stated as one.)
"""

from __future__ import annotations

from typing import Any

from torch import nn


def uses_weight_decay(name: str, param: nn.Parameter) -> bool:
    """False for parameters with fewer than two dimensions and for prompt contexts (``*ctx``)."""
    return param.ndim >= 2 and name.rsplit(".", 1)[-1] != "ctx"


def optimizer_groups(model: nn.Module, lrs: dict[str, float], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups of the parts of ``model.param_groups()`` named in ``lrs`` (part -> learning
    rate, e.g. ``"head"``, ``"image_encoder"``, ``"text_encoder"``, in the order of ``lrs``; other
    parts are not trained), each split into a group with ``weight_decay`` and one without
    (:func:`uses_weight_decay`). Groups keep the part's ``name`` and say ``decay`` (True/False);
    empty groups are left out."""
    names = {id(p): n for n, p in model.named_parameters()}
    parts = model.param_groups()
    groups = []
    for part, lr in lrs.items():
        for decay in (True, False):
            chosen = [p for p in parts.get(part, []) if uses_weight_decay(names.get(id(p), ""), p) == decay]
            if chosen:
                groups.append({"params": chosen, "lr": lr, "weight_decay": weight_decay if decay else 0.0,
                               "name": part, "decay": decay})
    return groups
