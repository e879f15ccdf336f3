"""Course text from the run: Markdown a notebook cell renders from its own variables, so that a
number, an order or a comparison in the prose is the one the cell computed, never typed by hand.

- :func:`say` shows Markdown (an f-string of the cell's values) in the notebook, and prints it
  outside one;
- :func:`ranking` writes an order such as ``soft 57.0 > max 55.6 = mean 55.6``: values equal at
  the printed precision are a tie, never an order;
- :func:`versus` writes one comparison (``above``, ``below`` or ``level with``) at that precision;
- :func:`leader` names who leads a table, or who ties for the lead;
- :func:`verdict_summary` says which parts of a recorded ablation table matter beyond the noise;
- :func:`run_summary` says what a run is made of (dataset, split, images, backbone and its
  weights, input size, patch grid, whether the images' boxes are known), so that a notebook on
  COCO speaks of COCO and one on the offline world says that its scenes are synthetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sspa_core.data import SYNTHETIC_DATASETS, dataset_class


def say(text: str) -> None:
    """Show ``text`` as Markdown (a notebook output, so it is kept in the executed notebook and its
    HTML); outside IPython it is printed. Returns nothing, so a ``say`` on a cell's last line is
    not shown a second time as the cell's value."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython ships with the notebooks' packages
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))


def count(n: int, noun: str) -> str:
    """``"1 image"``, ``"64 images"``: a count with its noun (plural with an s)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _rounded(value: float, decimals: int) -> float:
    return round(float(value), decimals)


def ranking(scores: Mapping[str, float], decimals: int = 1, unit: str = "") -> str:
    """``scores`` from the highest down, joined by ``>`` and by ``=`` where two values are equal
    at ``decimals`` places: ``"soft 57.0 > max 55.6 = mean 55.6"``."""
    if not scores:
        raise ValueError("ranking needs at least one score")
    ordered = sorted(scores.items(), key=lambda kv: -float(kv[1]))
    text = f"{ordered[0][0]} {float(ordered[0][1]):.{decimals}f}{unit}"
    for (_, previous), (name, value) in zip(ordered, ordered[1:]):
        sign = "=" if _rounded(previous, decimals) == _rounded(value, decimals) else ">"
        text += f" {sign} {name} {float(value):.{decimals}f}{unit}"
    return text


def versus(value: float, other: float, decimals: int = 1) -> str:
    """``"above"``, ``"below"`` or ``"level with"``: ``value`` against ``other`` at the printed
    precision."""
    a, b = _rounded(value, decimals), _rounded(other, decimals)
    return "level with" if a == b else ("above" if a > b else "below")


def leader(scores: Mapping[str, float], decimals: int = 1, unit: str = "") -> str:
    """Who leads ``scores``, with the margin over the next: ``"SSPA leads with 62.9 (2.2 above
    DualCoOp)"``; a shared top value gives ``"SSPA and DualCoOp tie at 62.9"``."""
    if not scores:
        raise ValueError("leader needs at least one score")
    ordered = sorted(scores.items(), key=lambda kv: -float(kv[1]))
    top = _rounded(ordered[0][1], decimals)
    tied = [name for name, value in ordered if _rounded(value, decimals) == top]
    if len(tied) > 1:
        names = ", ".join(tied[:-1]) + f" and {tied[-1]}"
        return f"{names} tie at {top:.{decimals}f}{unit}"
    name, value = ordered[0]
    if len(ordered) == 1:
        return f"{name} scores {float(value):.{decimals}f}{unit}"
    runner_up, second = ordered[1]
    margin = float(value) - float(second)
    return (f"{name} leads with {float(value):.{decimals}f}{unit} "
            f"({margin:.{decimals}f} above {runner_up})")


def data_phrase(name: str) -> str:
    """How prose names dataset ``name``: a real dataset by its own name (``"COCO 2014 (coco)"``),
    a synthetic one as the offline world's drawn scenes, never as photographs."""
    if name in SYNTHETIC_DATASETS:
        kwargs = SYNTHETIC_DATASETS[name]
        labels = f", with {kwargs['label_set'].upper()}'s labels" if "label_set" in kwargs else ""
        domain = kwargs["domain"].replace("_", " ")
        return f"the offline world's synthetic {domain} scenes (`{name}`: drawn, not photographed{labels})"
    return f"{dataset_class(name).dataset_name} (`{name}`)"


def weights_phrase(backbone: str, pretrained: str) -> str:
    """The CLIP of a run in words: the shipped tiny CLIP, or ``backbone`` with its weights (an
    open_clip tag or a local file)."""
    if not pretrained:
        return f"the shipped tiny CLIP `{backbone}`" if backbone.startswith("sspa-tiny") else f"`{backbone}`"
    local = Path(pretrained).suffix  # a file; an open_clip tag has no suffix
    source = f"weights from `{Path(pretrained).name}`" if local else f"open_clip's `{pretrained}` weights"
    return f"`{backbone}` with {source}"


def run_summary(name: str, data, backbone: str, pretrained: str, image_size: int, patches: int,
                heading: str = "This run") -> str:
    """One line on what a notebook run is made of: the dataset (``name``, its split and the
    ``len(data)`` images used), the CLIP, the input size, the ``patches`` per image as a grid, and
    whether the images' boxes are known (``data.has_boxes``): without them, the maps are shown but
    cannot be scored against the objects. ``heading`` opens the line (e.g. a reference dataset's)."""
    grid = round(patches ** 0.5)
    shape = f"{grid} × {grid} = {patches}" if grid * grid == patches else f"{patches}"
    boxes = ("the images' boxes are known, so the maps are scored against the objects"
             if getattr(data, "has_boxes", False)
             else "no boxes in this dataset, so the maps are shown but not scored against the objects")
    return (f"**{heading}:** {data_phrase(name)}, {data.split} split, {count(len(data), 'image')}; "
            f"{weights_phrase(backbone, pretrained)} at {image_size} px, {shape} patches per image; {boxes}.")


def verdict_summary(rows: list[dict]) -> str:
    """A recorded ablation table in one sentence (rows of :func:`sspa_core.results.ablation_rows`):
    its variants grouped by verdict, each with its difference to the full model, so that prose
    credits a part only where the record shows a difference outside the noise."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row["verdict"] != "reference":
            delta = row["Δ vs full [95% CI]"].split(" ")[0]
            groups.setdefault(row["verdict"], []).append(f"{row['variant']} ({delta})")
    if not groups:
        return "no variant was recorded beside the full model."
    words = {"reproduced": "the paper's sign, outside the noise", "not reproduced": "the opposite of the paper's sign",
             "within noise": "within noise: no measurable effect", "higher": "higher (no claim in the paper)",
             "lower": "lower (no claim in the paper)", "undetermined": "undetermined (one seed)"}
    return "; ".join(f"{words.get(verdict, verdict)}: {', '.join(names)}" for verdict, names in groups.items()) + "."
