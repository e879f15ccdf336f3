"""Does a map fall on the objects? Boxes on a patch grid and the localization measures.

A dataset whose annotations hold boxes (the synthetic scenes, which know every object's box;
COCO and VOC, from their annotation files) gives each image's objects as ``(box, labels)`` pairs,
``box`` = (x0, y0, x1, y1) as fractions of the image side (:func:`scene_objects`). This module turns them
into per-patch masks on any ``grid`` × ``grid`` patch grid (row-major, as the models return
patches) and scores a map ``[M]`` over the patches against them:

- **pointing game**: a hit when the patch with the largest value has its centre inside one of the
  label's boxes; its chance level is the share of patch centres inside the boxes (a map that
  picks a patch at random);
- **mass ratio**: the map's mass on the boxes (patches weighted by the share of their area the
  boxes cover) over the boxes' area share: 1 for a uniform map, above 1 when the map
  concentrates on the object;
- **ROC AUC**: how well a per-patch score (the gate) separates object from background patches.

The same masks give the tiny CLIP's pretraining its patch targets (``sspa_core.engine.pretraining``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

Box = tuple[float, float, float, float]
Objects = Iterable[tuple[Box, Sequence[str]]]


def layout_objects(layout) -> list[tuple[Box, tuple[str, ...]]]:
    """The ``(box, labels)`` pairs of a synthetic layout's labelled elements (clutter, which shows
    no label, left out)."""
    return [(tuple(e.box), tuple(e.labels)) for e in layout.elements if e.labels]


def scene_objects(dataset, index: int) -> list[tuple[Box, tuple[str, ...]]]:
    """The labelled objects of image ``index`` as ``(box, labels)`` pairs: the dataset's own
    (``sspa_core.data.base.MultiLabelDataset.objects``; empty where its annotations hold no
    boxes, ``has_boxes`` False); an empty list for an object that is no such dataset."""
    objects = getattr(dataset, "objects", None)
    return [] if objects is None else objects(index)


def _selected(objects: Objects, only: Sequence[str] | None) -> list[Box]:
    return [tuple(float(v) for v in box) for box, names in objects
            if names and (only is None or set(names) & set(only))]


def patch_coverage(objects: Objects, grid: int, only: Sequence[str] | None = None,
                   samples: int = 8) -> np.ndarray:
    """The share of each patch's area that the objects (those showing one of ``only`` when
    given) cover: ``[grid²]`` in [0, 1]; ``samples``² points per patch."""
    side = grid * samples
    centres = (np.arange(side) + 0.5) / side
    covered = np.zeros((side, side), dtype=bool)
    for x0, y0, x1, y1 in _selected(objects, only):
        covered |= ((centres[:, None] >= y0) & (centres[:, None] < y1)
                    & (centres[None, :] >= x0) & (centres[None, :] < x1))
    return covered.reshape(grid, samples, grid, samples).mean(axis=(1, 3)).ravel()


def patch_centres_inside(objects: Objects, grid: int, only: Sequence[str] | None = None) -> np.ndarray:
    """Which patches have their centre inside one of the objects' boxes: ``[grid²]`` bool."""
    return patch_coverage(objects, grid, only, samples=1) > 0


def label_masks(objects: Objects, label_names: Sequence[str], grid: int,
                samples: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per label, ``(centres inside [C, M] bool, area coverage [C, M])`` of its boxes."""
    objects = list(objects)
    inside = np.stack([patch_centres_inside(objects, grid, [name]) for name in label_names])
    cover = np.stack([patch_coverage(objects, grid, [name], samples) for name in label_names])
    return inside, cover


def target_mask(objects: Objects, grid: int, only: Sequence[str] | None = None) -> np.ndarray:
    """The patches that show the objects, for training: those whose centre lies in a box, and
    for a box that holds no patch centre (an object smaller than a patch) the patch it covers
    most. ``[grid²]`` bool."""
    mask = np.zeros(grid * grid, dtype=bool)
    for box in _selected(objects, only):
        inside = patch_centres_inside([(box, ("_",))], grid)
        if inside.any():
            mask |= inside
        else:
            mask[patch_coverage([(box, ("_",))], grid).argmax()] = True
    return mask


def pointing_game(maps: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """``(hit rate, chance)`` over the rows of ``maps [K, M]`` (one map per present label) with
    ``inside [K, M]`` (:func:`patch_centres_inside` of that label). Rows whose label has no patch
    centre inside a box are skipped (no hit is possible)."""
    maps, inside = np.asarray(maps, dtype=float), np.asarray(inside, dtype=bool)
    if maps.shape != inside.shape or maps.ndim != 2:
        raise ValueError(f"maps and inside must both be [K, M], got {maps.shape} and {inside.shape}")
    keep = inside.any(axis=1)
    if not keep.any():
        return float("nan"), float("nan")
    maps, inside = maps[keep], inside[keep]
    hits = inside[np.arange(len(maps)), maps.argmax(axis=1)]
    return float(hits.mean()), float(inside.mean(axis=1).mean())


def mass_ratios(maps: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Per row of ``maps [K, M]`` (non-negative), its mass on the boxes, ``Σ_m w_m c_m / Σ_m w_m``
    with ``c = cover [K, M]`` (:func:`patch_coverage`), over the boxes' area share
    ``mean_m c_m``; rows with no covered area are dropped."""
    maps, cover = np.asarray(maps, dtype=float), np.asarray(cover, dtype=float)
    if maps.shape != cover.shape or maps.ndim != 2:
        raise ValueError(f"maps and cover must both be [K, M], got {maps.shape} and {cover.shape}")
    if (maps < 0).any():
        raise ValueError("mass ratios need non-negative maps (weights or attention)")
    keep = (cover.sum(axis=1) > 0) & (maps.sum(axis=1) > 0)
    maps, cover = maps[keep], cover[keep]
    share = (maps * cover).sum(axis=1) / maps.sum(axis=1)
    return share / cover.mean(axis=1)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The probability that a positive scores above a negative (ties count one half): the area
    under the ROC curve, by the Mann-Whitney rank sum."""
    positive, negative = np.ravel(positive).astype(float), np.ravel(negative).astype(float)
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    _, inverse, counts = np.unique(np.concatenate([positive, negative]), return_inverse=True,
                                   return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # tied values share their mean rank
    n_pos = len(positive)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * len(negative)))


def map_scores(maps: np.ndarray, inside: np.ndarray, cover: np.ndarray, present: np.ndarray) -> dict[str, float]:
    """The pointing game (with its chance) and the median mass ratio of per-label maps
    ``maps [N, C, M]`` over the present labels (``present [N, C]`` bool), against the labels'
    boxes (``inside`` and ``cover [N, C, M]``, :func:`label_masks` of each image)."""
    rows = np.asarray(present, dtype=bool)
    maps = np.asarray(maps, dtype=float)[rows]
    hit, chance = pointing_game(maps, np.asarray(inside)[rows])
    ratios = mass_ratios(np.clip(maps, 0, None), np.asarray(cover)[rows])
    return {"pointing": hit, "chance": chance, "mass_ratio": float(np.median(ratios)) if len(ratios) else float("nan"),
            "pairs": int(rows.sum())}


def gate_scores(gates: np.ndarray, objects: np.ndarray, background: np.ndarray) -> dict[str, float]:
    """How the visual gate ``G [N, M, d]`` (eq. 11) tells object patches (``objects [N, M]`` bool:
    a patch centre inside some labelled box) from background patches (``background [N, M]``: no
    box covers any of the patch). ``auc``: ROC AUC of the gate's mean over channels;
    ``best_channel_auc``: the largest AUC of a single channel (either direction), since the gate
    acts per channel; ``object_mean`` / ``background_mean``: the mean gate on each; ``spread``: the
    standard deviation of the gate across patches over that across channels (near 0: the gate is
    a per-channel constant that does not depend on where the patch is)."""
    gates = np.asarray(gates, dtype=float)
    objects, background = np.asarray(objects, dtype=bool), np.asarray(background, dtype=bool)
    mean = gates.mean(axis=-1)
    per_channel = [roc_auc(gates[..., k][objects], gates[..., k][background]) for k in range(gates.shape[-1])]
    best = max(per_channel, key=lambda a: abs(a - 0.5)) if per_channel else float("nan")
    return {"auc": roc_auc(mean[objects], mean[background]), "best_channel_auc": float(best),
            "object_mean": float(mean[objects].mean()), "background_mean": float(mean[background].mean()),
            "spread": float(gates.std(axis=1).mean() / max(gates.std(axis=2).mean(), 1e-12))}


def scene_masks(objects: Sequence[Objects], label_names: Sequence[str], grid: int) -> dict[str, np.ndarray]:
    """Per image of ``objects`` (a list of ``(box, labels)`` lists), the label masks
    (``inside``, ``cover`` [N, C, M], :func:`label_masks`) and the object / background patches
    (``objects``, ``background`` [N, M]) that :func:`gate_scores` compares."""
    inside, cover, on_object, background = [], [], [], []
    empty = np.zeros((0, grid * grid))
    for scene in objects:
        scene = list(scene)
        i, c = label_masks(scene, label_names, grid) if len(label_names) else (empty.astype(bool), empty)
        inside.append(i)
        cover.append(c)
        on_object.append(patch_centres_inside(scene, grid))
        background.append(patch_coverage(scene, grid) == 0)
    return {"inside": np.stack(inside), "cover": np.stack(cover), "objects": np.stack(on_object),
            "background": np.stack(background)}


@torch.no_grad()
def model_maps(backbone, dataset, num_images: int, head=None, batch_size: int = 64) -> dict[str, np.ndarray]:
    """The patch features ``patches [N, M, d]`` of ``backbone`` (``encode_image_dense``) and the
    ``targets [N, C]`` of the first ``num_images`` images of ``dataset`` and, with a ``head``
    (SSPA or a baseline: ``forward_features``), its maps over the patches: ``weights`` (w of
    eq. 15) and the attentions ``dsf`` (eq. 5) and ``text`` (visual-to-semantic, eq. 3, 12) as
    [N, C, M], and the visual gate ``gate`` [N, M, d] (eq. 11); parts a head lacks are absent."""
    from torch.utils.data import DataLoader, Subset

    modules = [m for m in (backbone, head) if m is not None]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    kept: dict[str, list[np.ndarray]] = {}
    for batch in DataLoader(Subset(dataset, range(min(num_images, len(dataset)))), batch_size=batch_size):
        x0, patches = backbone.encode_image_dense(batch["image"])
        parts = {"patches": patches, "targets": batch["target"]}
        if head is not None:
            out = head.forward_features(x0, patches)
            parts.update({"weights": None if out["patch_weights"] is None else out["patch_weights"].transpose(1, 2),
                          "dsf": out["attention"].get("dsf"), "text": out["attention"].get("text"),
                          "gate": out["gates"].get("visual")})
        for key, value in parts.items():
            if value is not None:
                kept.setdefault(key, []).append(value.float().numpy())
    for m, mode in zip(modules, modes):
        m.train(mode)
    return {key: np.concatenate(values) for key, values in kept.items()}


def patch_text_maps(patches: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """``cos(x_m, t_c)`` of patch features ``[N, M, d]`` and label texts ``[C, d]`` as maps
    ``[N, C, M]``: the bare CLIP's own evidence, with no head."""
    patches = patches / np.linalg.norm(patches, axis=-1, keepdims=True)
    texts = texts / np.linalg.norm(texts, axis=-1, keepdims=True)
    return np.einsum("nmd,cd->ncm", patches, texts)


def as_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """A tensor (detached, float, on the CPU) or array-like as a float NumPy array."""
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def localization_caption(what: str, maps, objects: Sequence[Objects], label_names: Sequence[str],
                         targets) -> str:
    """The "what you should see" line under a map: ``maps [N, C, M]`` (one map per image and
    label, e.g. w transposed, or an attention), scored with :func:`map_scores` against the boxes of
    the present labels (``targets [N, C]``) of the N images (``objects``, :func:`scene_objects`
    of each). A map that does not localize says so; without boxes (a dataset whose annotations
    hold none, e.g. NUS-WIDE) the line says that the map cannot be checked."""
    maps, targets = as_numpy(maps), as_numpy(targets) > 0
    if not any(list(scene) for scene in objects):
        return f"{what}: no boxes for these images, so the map cannot be checked against the objects."
    grid = int(round(maps.shape[-1] ** 0.5))
    masks = scene_masks(objects, label_names, grid)
    s = map_scores(maps, masks["inside"], masks["cover"], targets)
    numbers = (f"{what} peaks inside the label's boxes for {s['pointing']:.0%} of {s['pairs']} present labels "
               f"(pointing game; a random patch: {s['chance']:.0%}) and puts {s['mass_ratio']:.1f}x its uniform "
               f"share on them (median)")
    if s["pointing"] >= 0.5 and s["mass_ratio"] >= 2:
        verdict = "it finds the objects"
    elif s["pointing"] >= 1.5 * s["chance"] and s["mass_ratio"] > 1.2:
        verdict = "it leans towards the objects but often misses them"
    else:
        verdict = "it does not show where the objects are"
    return f"{numbers}: {verdict}."


def gate_caption(what: str, gates, objects: Sequence[Objects]) -> str:
    """The "what you should see" line under a map of the visual gate ``gates [N, M, d]``
    (eq. 11): :func:`gate_scores` against the images' boxes, in words."""
    if not any(list(scene) for scene in objects):
        return f"{what}: no boxes for these images, so the gate cannot be checked against the objects."
    gates = as_numpy(gates)
    grid = int(round(gates.shape[1] ** 0.5))
    masks = scene_masks(objects, [], grid)
    g = gate_scores(gates, masks["objects"], masks["background"])
    numbers = (f"{what}: mean {g['object_mean']:.3f} on object patches, {g['background_mean']:.3f} on background; "
               f"ROC AUC object vs background {g['auc']:.2f} (0.5: no difference; best single channel "
               f"{g['best_channel_auc']:.2f})")
    if g["auc"] >= 0.65:
        verdict = "it lets more in on the objects than on the background"
    elif g["auc"] <= 0.35:
        verdict = "it lets more in on the background than on the objects"
    else:
        verdict = "it barely tells objects from background"
    return f"{numbers}: {verdict}."
