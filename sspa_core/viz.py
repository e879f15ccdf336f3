"""Plotting helpers shared by the notebooks: a patch map over an image, the images and labels an
attention figure shows, the true objects of a scene drawn as labelled boxes, and a label–label
similarity heatmap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from PIL import Image

from sspa_core.localization import as_numpy, layout_objects


def patch_grid(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """Reshape M patch values ([M] or [h, w]) into a square [h, w] grid."""
    values = as_numpy(values)
    if values.ndim == 2:
        return values
    if values.ndim != 1:
        raise ValueError(f"patch values must have shape [M] or [h, w], got {values.shape}")
    side = math.isqrt(values.shape[0])
    if side * side != values.shape[0]:
        raise ValueError(f"{values.shape[0]} patch values do not form a square grid; pass [h, w]")
    return values.reshape(side, side)


def heatmap_over_image(
    ax: Axes,
    image: Image.Image | np.ndarray,
    values: torch.Tensor | np.ndarray,
    title: str | None = None,
    alpha: float = 0.5,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
) -> AxesImage:
    """Draw ``image`` with patch ``values`` ([M] or [h, w]) over it: one flat cell per patch (no
    smoothing, so the grid the model sees stays visible), coloured in the values' own units between
    ``vmin`` and ``vmax`` (default: their range), with a colour bar that reads them off."""
    picture = np.asarray(image)
    grid = patch_grid(values)
    height, width = picture.shape[:2]
    ax.imshow(picture)
    heat = ax.imshow(grid, cmap=cmap, alpha=alpha, interpolation="nearest", extent=(0, width, height, 0),
                     vmin=float(grid.min()) if vmin is None else vmin,
                     vmax=float(grid.max()) if vmax is None else vmax)
    ax.set_axis_off()
    if colorbar:
        ax.figure.colorbar(heat, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return heat


def attention_examples(targets: torch.Tensor | np.ndarray, n_images: int = 2,
                       n_labels: int = 3) -> list[tuple[int, list[int]]]:
    """Which images and labels an attention figure shows (notebook 07 §6, Fig. 7), chosen from the
    data alone: the first ``n_images`` images with the most present labels (up to ``n_labels``),
    each with its ``n_labels`` present labels that are most frequent in ``targets`` ([N, C]; a value
    above 0 is present, so masked entries never count); ties by index. ``[(image, [labels])]``; an
    image with no present label is never drawn."""
    present = as_numpy(targets) > 0
    if present.ndim != 2:
        raise ValueError(f"targets must have shape [N, C], got {present.shape}")
    frequency = present.mean(0)
    shown = np.minimum(present.sum(1), n_labels)
    images = [int(i) for i in np.argsort(-shown, kind="stable") if shown[i] > 0][:n_images]
    return [(i, [int(j) for j in sorted(np.flatnonzero(present[i]), key=lambda j: -frequency[j])[:n_labels]])
            for i in images]


def cosine_similarity_matrix(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of the rows of ``features`` [C, d] -> [C, C]."""
    feats = as_numpy(features)
    if feats.ndim != 2:
        raise ValueError(f"features must have shape [C, d], got {feats.shape}")
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T


def similarity_heatmap(
    ax: Axes,
    features: torch.Tensor | np.ndarray,
    labels: Sequence[str],
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Heatmap of the label–label cosine similarity of ``features`` [C, d]; returns the matrix."""
    import seaborn as sns

    matrix = cosine_similarity_matrix(features)
    if len(labels) != matrix.shape[0]:
        raise ValueError(f"{len(labels)} labels for {matrix.shape[0]} feature rows")
    sns.heatmap(matrix, ax=ax, xticklabels=labels, yticklabels=labels, vmin=vmin, vmax=vmax,
                cmap="viridis", square=True, cbar_kws={"shrink": 0.7})
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return matrix


def prediction_figure(
    images: Sequence[Image.Image],
    scores: torch.Tensor | np.ndarray,
    label_names: Sequence[str],
    patch_weights: torch.Tensor | np.ndarray | None = None,
    visual_gates: torch.Tensor | np.ndarray | None = None,
    top_k: int = 3,
    title: str | None = None,
    objects: Sequence[Sequence[Any]] | None = None,
):
    """One row per image: the image titled with its ``top_k`` labels, the patch-importance map
    ``w_{·j}`` (eq. 15, ``patch_weights`` [N, M, C]) of each of those labels, and the mean
    semantic-to-visual gate ``G`` (eq. 11, ``visual_gates`` [N, M, d]) per patch. ``title`` goes
    above the whole figure (say which model made the maps, e.g. a barely trained one);
    ``objects[i]``, the true objects of image ``i`` (:func:`sspa_core.localization.scene_objects`),
    are drawn on the image and each label's on its map."""
    import matplotlib.pyplot as plt

    scores = as_numpy(scores)
    top_k = min(top_k, scores.shape[1])
    columns = 1 + (top_k if patch_weights is not None else 0) + (visual_gates is not None)
    fig, axes = plt.subplots(len(images), columns, figsize=(2.6 * columns, 3.1 * len(images)), squeeze=False)
    for row, image in enumerate(images):
        order = np.argsort(-scores[row])[:top_k]
        axes[row, 0].imshow(image)
        axes[row, 0].set_axis_off()
        axes[row, 0].set_title("\n".join(f"{label_names[j]} {scores[row, j]:.2f}" for j in order), fontsize=8)
        found = objects[row] if objects is not None else []
        size = image.size if isinstance(image, Image.Image) else tuple(np.asarray(image).shape[1::-1])
        draw_objects(axes[row, 0], found, size)
        col = 1
        if patch_weights is not None:
            weights = as_numpy(patch_weights[row])
            for j in order:
                heatmap_over_image(axes[row, col], image, weights[:, j], f"w: {label_names[j]}")
                draw_objects(axes[row, col], found, size, only=[label_names[j]])
                col += 1
        if visual_gates is not None:
            heatmap_over_image(axes[row, col], image, as_numpy(visual_gates[row]).mean(-1), "gate G (mean)")
            draw_objects(axes[row, col], found, size)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def image_grid(images: Sequence[Image.Image], titles: Sequence[str], columns: int = 4,
               width: float = 3.0, wrap: int = 34):
    """The images in a grid, each titled (wrapped at ``wrap`` characters): scene tours."""
    import textwrap

    import matplotlib.pyplot as plt

    if len(images) != len(titles):
        raise ValueError(f"{len(images)} images for {len(titles)} titles")
    rows = max(1, math.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, (width + 0.9) * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image)
        ax.set_title(textwrap.fill(title, wrap), fontsize=8)
    fig.tight_layout()
    return fig


def draw_objects(ax: Axes, objects, image_size: int | tuple[int, int], only: Sequence[str] | None = None,
                 color: str = "white", fontsize: float = 6.5, linewidth: float = 1.2) -> int:
    """Draw the true objects of a scene on an image axis: one outlined box per object, named by its
    labels. ``objects`` is a :class:`~sspa_core.data.synthetic.canvas.Layout` or ``(box, labels)``
    pairs with ``box`` = (x0, y0, x1, y1) as fractions of the image side (:func:`sspa_core.localization.scene_objects`);
    ``image_size`` the drawn image's side in pixels (or (width, height)); ``only`` keeps the objects
    that show one of these labels. Returns the number of boxes drawn (0 for no objects)."""
    from matplotlib.patches import Rectangle

    if hasattr(objects, "elements"):
        objects = layout_objects(objects)
    width, height = (image_size, image_size) if isinstance(image_size, int) else image_size
    drawn = 0
    for box, names in objects:
        names = tuple(names)
        if not names or (only is not None and not set(names) & set(only)):
            continue
        x0, y0, x1, y1 = (float(v) for v in box)
        ax.add_patch(Rectangle((x0 * width, y0 * height), (x1 - x0) * width, (y1 - y0) * height,
                               fill=False, edgecolor=color, linewidth=linewidth, linestyle="--"))
        ax.text(x0 * width + 1, y0 * height + 1, ", ".join(names), color="black", fontsize=fontsize,
                va="top", ha="left", bbox={"facecolor": color, "alpha": 0.75, "pad": 0.8, "edgecolor": "none"})
        drawn += 1
    return drawn
