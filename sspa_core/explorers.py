"""Interactive explorers for the notebooks (ipywidgets): a reader moves a slider or picks an image
and label, and the figure redraws.

Each explorer is a drawing function of plain values plus the controls that set them. In JupyterLab
:meth:`Explorer.show` displays the controls above the figure; without a front end (``sspa
notebooks`` runs the kernel with ``SSPA_HEADLESS=1``, and HTML exports cannot run callbacks) it
shows the figure for the controls' current values instead, so every executed notebook still holds
a picture. :meth:`Explorer.figure` draws for any values, which is what the tests call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from sspa_core.metrics import THRESHOLDS, average_precision_per_class, pedestrian_metrics, precision_recall_f1
from sspa_core.notebooks import HEADLESS_ENV
from sspa_core.quaternion import hamilton_product, left_matrix
from sspa_core.viz import cosine_similarity_matrix, draw_objects, heatmap_over_image


class Explorer:
    """A figure ``draw(**values)`` and the ipywidgets ``controls`` (name → widget) that set the values."""

    def __init__(self, draw: Callable[..., Figure], controls: dict[str, Any], title: str = ""):
        self.draw, self.controls, self.title = draw, controls, title
        self.redraws = 0
        self._output = None

    @property
    def values(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def figure(self, **values: Any) -> Figure:
        """The figure for the controls' current values, with ``values`` overriding some of them."""
        return self.draw(**{**self.values, **values})

    def _redraw(self, _change: Any = None) -> None:
        from IPython.display import display

        self.redraws += 1
        if self._output is None:
            return
        with self._output:
            self._output.clear_output(wait=True)
            figure = self.figure()
            display(figure)
            plt.close(figure)

    def widget(self):
        """The controls above an output area that redraws whenever one of them changes."""
        import ipywidgets as widgets

        self._output = widgets.Output()
        for control in self.controls.values():
            control.observe(self._redraw, names="value")
        header = [widgets.HTML(f"<b>{self.title}</b>")] if self.title else []
        controls = list(self.controls.values())
        rows = [widgets.HBox(controls[i:i + 4]) for i in range(0, len(controls), 4)]  # at most four a row
        box = widgets.VBox([*header, *rows, self._output])
        self._redraw()
        return box

    def show(self) -> None:
        """The widget in a live front end; the static figure of the current values without one."""
        from IPython.display import display

        if os.environ.get(HEADLESS_ENV):
            figure = self.figure()
            display(figure)
            plt.close(figure)
        else:
            display(self.widget())


def _slider(value: float, low: float, high: float, step: float, description: str, **kwargs: Any):
    import ipywidgets as widgets

    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                               continuous_update=False, readout_format=".2f", **kwargs)


def _dropdown(options: Sequence[Any], value: Any, description: str):
    import ipywidgets as widgets

    return widgets.Dropdown(options=options, value=value, description=description)


# --- 01: the Hamilton product ----------------------------------------------------------------

def hamilton_explorer() -> Explorer:
    """Sliders for two quaternions p and q: p ⊗ q against q ⊗ p (eq. 2), and p's real 4 × 4
    matrix (the left-multiplication form that ``QuaternionLinear`` uses)."""
    names = ("r", "x", "y", "z")

    def draw(**v: float) -> Figure:
        p = torch.tensor([v[f"p_{n}"] for n in names], dtype=torch.float64)
        q = torch.tensor([v[f"q_{n}"] for n in names], dtype=torch.float64)
        pq, qp = hamilton_product(p, q).numpy(), hamilton_product(q, p).numpy()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1.4, 1]})
        positions = np.arange(4)
        axes[0].bar(positions - 0.2, pq, width=0.4, label="p ⊗ q")
        axes[0].bar(positions + 0.2, qp, width=0.4, label="q ⊗ p")
        axes[0].set_xticks(positions, ["1 (r)", "i (x)", "j (y)", "k (z)"])
        axes[0].axhline(0, color="black", linewidth=0.6)
        axes[0].set(title="the two products differ where the order matters", ylabel="component")
        axes[0].legend(fontsize=8)
        matrix = left_matrix(p).numpy()
        limit = max(1e-9, float(np.abs(matrix).max()))
        image = axes[1].imshow(matrix, cmap="coolwarm", vmin=-limit, vmax=limit)
        for (i, j), value in np.ndenumerate(matrix):
            axes[1].text(j, i, f"{value + 0.0:.2f}", ha="center", va="center", fontsize=8)  # + 0.0: no "-0.00"
        axes[1].set_xticks(range(4), names)
        axes[1].set_yticks(range(4), names)
        axes[1].set_title("p as a real 4 × 4 matrix: p ⊗ q = L(p) q")
        fig.colorbar(image, ax=axes[1], fraction=0.046)
        fig.tight_layout()
        return fig

    defaults = {"p": (0.5, 1.0, 0.0, 0.0), "q": (0.0, 0.0, 1.0, 0.5)}
    controls = {f"{which}_{n}": _slider(defaults[which][k], -1.0, 1.0, 0.05, f"{which}.{n}")
                for which in ("p", "q") for k, n in enumerate(names)}
    return Explorer(draw, controls, "Hamilton product explorer")


# --- 03: label similarity --------------------------------------------------------------------

def similarity_explorer(label_names: Sequence[str], features: dict[str, torch.Tensor | np.ndarray],
                        top_k: int = 10) -> Explorer:
    """Pick a label: its ``top_k`` most similar labels (cosine) under each kind of text feature
    (e.g. the template against KAP), side by side."""
    similarities = {kind: cosine_similarity_matrix(f) for kind, f in features.items()}

    def draw(label: str) -> Figure:
        j = list(label_names).index(label)
        fig, axes = plt.subplots(1, len(similarities), figsize=(5.2 * len(similarities), 3.6), squeeze=False)
        for ax, (kind, matrix) in zip(axes[0], similarities.items()):
            similarity = matrix[j]
            order = [k for k in np.argsort(-similarity) if k != j][:top_k]
            ax.barh([label_names[k] for k in order][::-1], similarity[order][::-1])
            ax.set(xlabel="cosine similarity", title=f"{kind}: nearest to “{label}”",
                   xlim=(min(0.0, similarity[order].min()), 1))
            ax.tick_params(axis="y", labelsize=8)
        fig.tight_layout()
        return fig

    return Explorer(draw, {"label": _dropdown(list(label_names), label_names[0], "label")}, "Label similarity explorer")


# --- 04/06: maps of one image and one label --------------------------------------------------

def map_explorer(pictures: Sequence[Any], label_names: Sequence[str], maps: dict[str, torch.Tensor | np.ndarray],
                 scores: torch.Tensor | np.ndarray, objects: Sequence[Sequence[Any]] | None = None) -> Explorer:
    """Pick an image and a label: each per-label patch map of ``maps`` (name → [N, M, C], e.g. the
    patch weights or the V→S attention) over the image in its own units, with the label's true
    boxes (``objects[i]`` as :func:`sspa_core.localization.scene_objects` gives them) and the score."""
    arrays = {name: (m.detach().float().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m))
              for name, m in maps.items()}
    scores = scores.detach().float().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)

    def draw(image: int, label: str) -> Figure:
        j = list(label_names).index(label)
        picture = pictures[image]
        side = picture.size[0] if hasattr(picture, "size") and not isinstance(picture, np.ndarray) else picture.shape[1]
        fig, axes = plt.subplots(1, len(arrays) + 1, figsize=(4.2 * (len(arrays) + 1), 3.8))
        axes[0].imshow(picture)
        axes[0].set_axis_off()
        axes[0].set_title(f"image {image}: score of “{label}” {scores[image, j]:.2f}", fontsize=9)
        for ax, (name, values) in zip(axes[1:], arrays.items()):
            m = values[image, :, j]
            heatmap_over_image(ax, picture, m, title=f"{name} (uniform {1 / len(m):.3f})")
        if objects is not None:
            for ax in axes:
                draw_objects(ax, objects[image], side, only=[label])
        fig.tight_layout()
        return fig

    controls = {"image": _dropdown(list(range(len(pictures))), 0, "image"),
                "label": _dropdown(list(label_names), label_names[int(np.argmax(scores[0]))], "label")}
    return Explorer(draw, controls, "Map explorer: pick an image and a label")


# --- 05: the temperature of the soft aggregator ----------------------------------------------

def temperature_explorer(patch_scores: torch.Tensor | np.ndarray, label_names: Sequence[str], picture: Any) -> Explorer:
    """A τ slider (log scale) and a label picker for one image's patch scores ``s [M, C]``: the
    patch weights ``w = softmax_i(p_ij / τ)`` (eq. 15) over the image, and ``s^R`` (eq. 16) as τ
    moves between the max (τ → 0) and the mean (τ → ∞)."""
    import ipywidgets as widgets

    s = torch.as_tensor(patch_scores, dtype=torch.float64)
    presence = s.softmax(dim=-1)
    grid_taus = np.logspace(-6, 1, 80)

    def aggregate(tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        weights = (presence / tau).softmax(dim=0)
        return (weights * s).sum(dim=0), weights

    def draw(log10_tau: float, label: str) -> Figure:
        j, tau = list(label_names).index(label), 10.0 ** log10_tau
        regional, weights = aggregate(tau)
        curve = [aggregate(t)[0][j].item() for t in grid_taus]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        heatmap_over_image(axes[0], picture, weights[:, j].numpy(), title=f"w for “{label}” at τ = {tau:.3g}")
        axes[1].semilogx(grid_taus, curve, label="soft aggregator $s^R_j$")
        axes[1].axhline(s[:, j].mean().item(), ls="--", color="gray", label="mean over patches (τ → ∞)")
        axes[1].axhline(s[presence[:, j].argmax(), j].item(), ls=":", color="black",
                        label="the most-present patch (τ → 0)")
        axes[1].axvline(tau, color="red", linewidth=0.8, label=f"τ = {tau:.3g}: $s^R_j$ = {regional[j].item():.2f}")
        axes[1].set(xlabel="τ", ylabel="regional logit", title="eq. 16 as τ moves")
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        return fig

    controls = {"log10_tau": widgets.FloatSlider(value=np.log10(0.05), min=-6, max=1, step=0.1, description="log10 τ",
                                                 continuous_update=False),
                "label": _dropdown(list(label_names), label_names[int(s.mean(0).argmax())], "label")}
    return Explorer(draw, controls, "Temperature explorer")


# --- 06: the threshold -----------------------------------------------------------------------

def threshold_explorer(scores: np.ndarray, targets: np.ndarray, label_names: Sequence[str],
                       masks: np.ndarray | None = None) -> Explorer:
    """A threshold slider: CP, CR, CF1 and OP, OR, OF1 at that threshold against the whole sweep,
    and the per-class AP (threshold-free) for comparison."""
    curves = [precision_recall_f1(scores, targets, threshold=t, mask=masks) for t in THRESHOLDS]
    ap = average_precision_per_class(scores, targets, masks)

    def draw(threshold: float) -> Figure:
        now = precision_recall_f1(scores, targets, threshold=threshold, mask=masks)
        fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 1.5]})
        for key in ("CP", "CR", "CF1", "OF1"):
            axes[0].plot(THRESHOLDS, [100 * c[key] for c in curves], marker=".",
                         label=f"{key} ({100 * now[key]:.1f}% now)")
        axes[0].axvline(threshold, color="red", linewidth=0.8, label=f"threshold {threshold:.2f}")
        axes[0].set(xlabel="threshold", ylabel="%", title="precision, recall and F1 against the threshold")
        axes[0].legend(fontsize=7)
        order = np.argsort(-np.nan_to_num(ap, nan=-1))
        kept = [k for k in order if not np.isnan(ap[k])]
        axes[1].bar(range(len(kept)), 100 * ap[kept])
        axes[1].set_xticks(range(len(kept)), [label_names[k] for k in kept], rotation=90, fontsize=6)
        axes[1].set(ylabel="AP (%)", title=f"per-class AP: no threshold (mAP {100 * np.nanmean(ap):.1f}%)")
        fig.tight_layout()
        return fig

    slider = _slider(0.5, float(THRESHOLDS[0]), float(THRESHOLDS[-1]), 0.05, "threshold")
    return Explorer(draw, {"threshold": slider}, "Threshold explorer")


# --- 07: pedestrian attributes ---------------------------------------------------------------

def attribute_explorer(pictures: Sequence[Any], probabilities: np.ndarray, targets: np.ndarray,
                       label_names: Sequence[str], objects: Sequence[Sequence[Any]] | None = None) -> Explorer:
    """Pick a pedestrian and a threshold: the crop with its true attributes drawn, every
    attribute's probability against the threshold (true ones marked), and the image's instance
    precision and recall."""

    def draw(image: int, threshold: float) -> Figure:
        p, t = probabilities[image], targets[image].astype(bool)
        m = pedestrian_metrics(p[None], t[None].astype(float), threshold=threshold)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2.2]})
        picture = pictures[image]
        axes[0].imshow(picture)
        axes[0].set_axis_off()
        if objects is not None:
            draw_objects(axes[0], objects[image], picture.size[0] if hasattr(picture, "size") else picture.shape[1])
        axes[0].set_title(f"pedestrian {image}: precision {100 * m['precision']:.0f}%, recall {100 * m['recall']:.0f}%",
                          fontsize=9)
        colours = np.where(t, "tab:green", "tab:gray")
        axes[1].bar(range(len(p)), p, color=colours)
        axes[1].axhline(threshold, color="red", linewidth=0.8, label=f"threshold {threshold:.2f}")
        axes[1].set_xticks(range(len(p)), label_names, rotation=60, fontsize=7, ha="right")
        axes[1].set(ylim=(0, 1), ylabel="probability",
                    title="green: attributes the person has; above the line: predicted")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        return fig

    controls = {"image": _dropdown(list(range(len(pictures))), 0, "pedestrian"),
                "threshold": _slider(0.5, 0.05, 0.95, 0.05, "threshold")}
    return Explorer(draw, controls, "Attribute explorer")
