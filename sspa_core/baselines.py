"""Baselines beside SSPA, with its interface (``forward(images)``, ``forward_features(x0, X)``,
an output dict with ``"global"``/``"regional"``/``"score"``, ``param_groups()``), and the
:func:`build_model` factory.

- :class:`ZeroShotCLIP`: ``s_j = τ · cos(x0, E_t("A photo of a {label_j}."))`` (Fig. 6 baseline),
  the one zero-shot path; :func:`zero_shot_scores` runs it over a dataset;
- :class:`UniD`: a learned linear classifier on the visual feature x0 (Table IX "Uni-D");
- :class:`DualCoOpHead`: learnable positive and negative prompts with class-specific region
  aggregation (Sun, Hu & Saenko, "DualCoOp", NeurIPS 2022);
- :class:`CLIPFineTune`: CLIP-FT, both encoders fine-tuned, the text features of the labels as
  class centres; :class:`CLIPImageFineTune` (``clip_ft_image``): the image encoder fine-tuned
  with a linear head, the text encoder frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sspa_core.aggregation import patch_label_similarity
from sspa_core.model import SSPA, MultiLabelCLIPHead, SSPAConfig
from sspa_core.prompting import ContextPromptLearner, KnowledgeAwarePrompts, template_sentence

if TYPE_CHECKING:
    from sspa_core.backbone import CLIPBackbone
    from sspa_core.data.base import MultiLabelDataset

MODEL_NAMES = ("sspa", "zeroshot", "unid", "dualcoop", "clip_ft", "clip_ft_image")


class ZeroShotCLIP(MultiLabelCLIPHead):
    """Zero-shot CLIP: the features of :func:`sspa_core.prompting.template_sentence` (KAP without
    descriptions) as class centres; ``"global"`` logits ``τ · cos(x0, t_j)``. Freezes the whole
    backbone: nothing is trained."""

    def __init__(self, backbone: CLIPBackbone, label_names: Sequence[str]):
        super().__init__(backbone, label_names)
        backbone.requires_grad_(False)
        self.prompts = KnowledgeAwarePrompts(
            backbone.text, self.label_names, None, model_name=str(getattr(backbone, "name", ""))
        )

    def forward_features(self, x0: Tensor, patches: Tensor) -> dict[str, Any]:
        self._check_features(x0, patches, self.backbone.embed_dim)
        scale = self.logit_scale().to(x0.device)
        return self._outputs(patch_label_similarity(x0.unsqueeze(1), self.prompts(), scale).squeeze(1), None)


@torch.no_grad()
def _zero_shot(backbone: CLIPBackbone, dataset: MultiLabelDataset, batch_size: int,
               score: Callable[[ZeroShotCLIP, Tensor], Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """``score(model, images)`` of a :class:`ZeroShotCLIP` over ``dataset`` (N×C) and its targets,
    leaving ``backbone`` as it was found (its ``requires_grad`` flags and training mode)."""
    flags = [p.requires_grad for p in backbone.parameters()]
    was_training = backbone.training
    device = next(backbone.parameters()).device
    scores, targets = [], []
    try:
        model = ZeroShotCLIP(backbone, dataset.label_names).eval()
        for batch in DataLoader(dataset, batch_size=batch_size):
            images = batch["image"].to(device)
            if images.shape[-1] != backbone.image_size:
                raise ValueError(f"dataset images are {images.shape[-1]} px but the backbone expects "
                                 f"{backbone.image_size} px (pass image_size to load_backbone)")
            scores.append(score(model, images).float().cpu())
            targets.append(batch["target"])
    finally:
        for param, flag in zip(backbone.parameters(), flags):
            param.requires_grad_(flag)
        backbone.train(was_training)
    return torch.cat(scores).numpy(), torch.cat(targets).numpy()


def zero_shot_scores(backbone: CLIPBackbone, dataset: MultiLabelDataset,
                     batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """:class:`ZeroShotCLIP`'s ``"global"`` logits ``τ · cos(x0, E_t(TEMPLATE(label)))`` over
    ``dataset`` (N×C) and its targets (N×C). ``backbone`` is left as it was found (its
    ``requires_grad`` flags and training mode), so a model being trained can be scored."""
    return _zero_shot(backbone, dataset, batch_size, lambda model, images: model(images)["global"])


class CLIPFineTune(MultiLabelCLIPHead):
    """CLIP-FT as the paper describes it (Tables IV–V): CLIP fine-tuned end to end, "all
    parameters including both image and text encoders". The class centres are the text
    encoder's features of "A photo of a {label}." (:func:`sspa_core.prompting.template_sentence`),
    recomputed with gradient at every forward pass; ``"global"`` logits
    ``τ · cos(x0, t_j) + b_j`` with a learnable bias per label started at ``logit_bias`` (0 when
    None, as :class:`UniD`), so training starts from zero-shot CLIP. Trains the text tower."""

    tokens: Tensor

    def __init__(self, backbone: CLIPBackbone, label_names: Sequence[str], logit_bias: float | None = None):
        super().__init__(backbone, label_names)
        for param in backbone.text_parameters():
            param.requires_grad_(True)
        texts = [template_sentence(name) for name in self.label_names]
        self.register_buffer("tokens", backbone.text.tokenize(texts), persistent=False)
        self.bias = nn.Parameter(torch.full((self.num_labels,), 0.0 if logit_bias is None else float(logit_bias)))

    def forward_features(self, x0: Tensor, patches: Tensor) -> dict[str, Any]:
        self._check_features(x0, patches, self.backbone.embed_dim)
        centres = self.backbone.text.encode_tokens(self.tokens)
        logits = patch_label_similarity(x0.unsqueeze(1), centres, self.logit_scale().to(x0.device)).squeeze(1)
        return self._outputs(logits + self.bias, None)


class CLIPImageFineTune(MultiLabelCLIPHead):
    """CLIP-FT with the text encoder frozen (``clip_ft_image``): the image encoder is trained
    together with a linear head on x0 (``"global"`` logits ``W x0 + b``). ``forward_features`` on
    cached features of a frozen encoder makes it a linear probe. The head starts at zero weight
    and bias."""

    def __init__(self, backbone: CLIPBackbone, label_names: Sequence[str]):
        super().__init__(backbone, label_names)
        backbone.freeze_text()
        self.classifier = nn.Linear(backbone.embed_dim, self.num_labels)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward_features(self, x0: Tensor, patches: Tensor) -> dict[str, Any]:
        self._check_features(x0, patches, self.backbone.embed_dim)
        return self._outputs(self.classifier(x0), None)


class UniD(CLIPImageFineTune):
    """Uni-D (Table IX): a learned linear classifier on the visual feature x0 instead of label
    representations as class centres. Its weights start at the zero-shot classifier
    ``τ · t_j / ‖t_j‖`` applied to normalised x0 (so training starts from zero-shot CLIP), its
    bias at ``logit_bias`` (0 when None), the initial bias of SSPA's branches in the same run
    (``SSPAConfig.logit_bias``): Uni-D is an SSPA ablation."""

    def __init__(self, backbone: CLIPBackbone, label_names: Sequence[str], logit_bias: float | None = None):
        super().__init__(backbone, label_names)
        prompts = KnowledgeAwarePrompts(
            backbone.text, self.label_names, None, model_name=str(getattr(backbone, "name", ""))
        )
        with torch.no_grad():
            centres = nn.functional.normalize(prompts(), dim=-1)
            self.classifier.weight.copy_(self.logit_scale() * centres)
            self.classifier.bias.fill_(0.0 if logit_bias is None else float(logit_bias))

    def forward_features(self, x0: Tensor, patches: Tensor) -> dict[str, Any]:
        self._check_features(x0, patches, self.backbone.embed_dim)
        return self._outputs(self.classifier(nn.functional.normalize(x0, dim=-1)), None)


class DualCoOpHead(MultiLabelCLIPHead):
    """DualCoOp-style head (Sun, Hu & Saenko, NeurIPS 2022), written from the paper's
    description: a positive and a negative learnable prompt per label (contexts shared by all
    labels, or class-specific), both through the frozen text encoder; for each label the
    patch-level similarities to the positive prompt, softmax-normalised over space, weigh the
    patch-level positive and negative similarities ("class-specific region feature
    aggregation"), and the label's probability is the softmax over (positive, negative):
    ``σ(s^+_j − s^-_j)``, returned as ``"regional"`` logits ``s^+ − s^-``.

    ``spatial_scale`` sharpens the spatial softmax (None = the CLIP logit scale); both are
    choices of this implementation, not values taken from the DualCoOp paper.
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        label_names: Sequence[str],
        n_ctx: int = 16,
        class_specific: bool = False,
        spatial_scale: float | None = None,
    ):
        super().__init__(backbone, label_names)
        backbone.freeze_text()
        self.positive = ContextPromptLearner(backbone.text, self.label_names, n_ctx, class_specific=class_specific)
        self.negative = ContextPromptLearner(backbone.text, self.label_names, n_ctx, class_specific=class_specific)
        self.spatial_scale = spatial_scale

    def forward_features(self, x0: Tensor, patches: Tensor) -> dict[str, Any]:
        self._check_features(x0, patches, self.backbone.embed_dim)
        scale = self.logit_scale().to(x0.device)
        cos_pos = patch_label_similarity(patches, self.positive(), 1.0)  # [B, M, C]
        cos_neg = patch_label_similarity(patches, self.negative(), 1.0)
        spatial = scale if self.spatial_scale is None else self.spatial_scale
        weights = (spatial * cos_pos).softmax(dim=1)
        logits = scale * (weights * (cos_pos - cos_neg)).sum(dim=1)
        return self._outputs(None, logits, weights)


def build_model(
    name: str,
    backbone: CLIPBackbone,
    label_names: Sequence[str],
    config: SSPAConfig | None = None,
    descriptions: dict[str, str] | None = None,
) -> MultiLabelCLIPHead:
    """``name`` in :data:`MODEL_NAMES`; ``config`` and ``descriptions`` are SSPA's (Uni-D, its
    ablation, and CLIP-FT take the initial logit bias from ``config``, the DualCoOp-style head
    ``n_ctx``)."""
    if name == "sspa":
        return SSPA(backbone, label_names, config, descriptions)
    if name == "zeroshot":
        return ZeroShotCLIP(backbone, label_names)
    if name == "unid":
        return UniD(backbone, label_names, logit_bias=config.logit_bias if config is not None else None)
    if name == "dualcoop":
        n_ctx = config.n_ctx if config is not None else 16
        return DualCoOpHead(backbone, label_names, n_ctx=n_ctx)
    if name == "clip_ft":
        return CLIPFineTune(backbone, label_names, logit_bias=config.logit_bias if config is not None else None)
    if name == "clip_ft_image":
        return CLIPImageFineTune(backbone, label_names)
    raise ValueError(f"unknown model {name!r}; valid names: {MODEL_NAMES}")


def zero_shot_patch_scores(backbone: CLIPBackbone, dataset: MultiLabelDataset,
                           batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Best-patch zero-shot scores ``τ · max_i cos(X_i, E_t(TEMPLATE(label)))`` over ``dataset``
    (N×C), with X the projected patch tokens of :meth:`CLIPBackbone.encode_image_dense` (the
    features of regional alignment), and its targets (N×C). The patch-level counterpart of
    :func:`zero_shot_scores`, with the same prompts and scale; ``backbone`` is likewise left as
    it was found."""
    def best_patch(model: ZeroShotCLIP, images: Tensor) -> Tensor:
        _, patches = backbone.encode_image_dense(images)
        return patch_label_similarity(patches, model.prompts(), model.logit_scale().to(images.device)).amax(dim=1)

    return _zero_shot(backbone, dataset, batch_size, best_patch)
