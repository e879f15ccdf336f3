"""``SyntheticScenes``: one domain's dataset; layouts drawn at construction, pixels on demand."""

from __future__ import annotations

import gc

import numpy as np
from PIL import Image

from sspa_core.data.base import MultiLabelDataset, Transform
from sspa_core.data.synthetic.canvas import NUM_BACKGROUND_VARIANTS, Layout, render_layout
from sspa_core.data.synthetic.captions import make_caption
from sspa_core.data.synthetic.natural import NATURAL_SCENES, natural_context, natural_labels, natural_layout
from sspa_core.data.synthetic.pedestrian import PEDESTRIAN_ATTRIBUTES, PEDESTRIAN_SCENES, pedestrian_layout
from sspa_core.data.synthetic.remote_sensing import REMOTE_SENSING_LABELS, REMOTE_SENSING_SCENES, remote_sensing_layout
from sspa_core.domains import DOMAINS, canonical_domain
from sspa_core.localization import Box, layout_objects

LABEL_SETS: dict[str, tuple[str | None, ...]] = {
    "natural": (None, "coco", "voc"), "pedestrian": (None,), "remote_sensing": (None,)}

SPLIT_SIZES: dict[str, int] = {"train": 4000, "val": 500, "test": 1000}

SCENE_NAME_PROBABILITY = 0.5  # share of captions that name the scene type (docs/method.md §Offline world)

_SPLIT_IDS = {split: k for k, split in enumerate(SPLIT_SIZES)}


def _check_split(split: str) -> None:
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLIT_SIZES)}")


def _check_domain(domain: str, label_set: str | None) -> str:
    """The domain's current name (see :func:`sspa_core.domains.canonical_domain`)."""
    domain = canonical_domain(domain)
    if label_set not in LABEL_SETS[domain]:
        valid = ", ".join(repr(v) for v in LABEL_SETS[domain])
        raise ValueError(f"unknown label_set {label_set!r} for domain {domain!r}; valid: {valid}")
    return domain


def domain_labels(domain: str, label_set: str | None = None) -> list[str]:
    """The label names of a domain (and label set), in their canonical order."""
    domain = _check_domain(domain, label_set)
    if domain == "natural":
        return natural_labels(label_set)
    return list(PEDESTRIAN_ATTRIBUTES if domain == "pedestrian" else REMOTE_SENSING_LABELS)


def domain_scene_types(domain: str) -> list[str]:
    """The scene types of a domain."""
    return list({"natural": NATURAL_SCENES, "pedestrian": PEDESTRIAN_SCENES,
                 "remote_sensing": REMOTE_SENSING_SCENES}[_check_domain(domain, None)])


def make_layout(domain: str, index: int, split: str = "train", seed: int = 0,
                label_set: str | None = None) -> Layout:
    """The layout of image ``index``, drawn from its own stream (seed, domain, label_set,
    split, index): independent of how many images a dataset holds."""
    domain = _check_domain(domain, label_set)
    _check_split(split)
    set_id = 1 if label_set == "voc" else 0
    rng = np.random.default_rng(
        [seed, DOMAINS.index(domain), set_id, _SPLIT_IDS[split], index])
    if domain == "natural":
        scene, style, elements = natural_layout(rng, *natural_context(label_set))
    elif domain == "pedestrian":
        scene, style, elements = pedestrian_layout(rng)
    else:
        scene, style, elements = remote_sensing_layout(rng)
    present: list[str] = []
    for el in elements:
        present += [label for label in el.labels if label not in present]
    named = scene if rng.random() < SCENE_NAME_PROBABILITY else None
    # the caption's own stream: its wording can change without moving a pixel
    words = np.random.default_rng([seed, DOMAINS.index(domain), set_id, _SPLIT_IDS[split], index, 1])
    caption = make_caption(present, named, domain, words, elements)
    tint = tuple(float(v) for v in rng.uniform(0.85, 1.1) * rng.uniform(0.92, 1.08, 3))
    return Layout(domain, scene, style, int(rng.integers(NUM_BACKGROUND_VARIANTS)), tint,
                  bool(rng.random() < 0.5), tuple(elements), tuple(present), caption)


class SyntheticScenes(MultiLabelDataset):
    """Synthetic multi-label scenes of one domain (``natural``, ``pedestrian``,
    ``remote_sensing``; the former name ``aerial`` is read with a DeprecationWarning).

    Default sizes per split: :data:`SPLIT_SIZES` (train 4000, val 500, test 1000). Each split
    draws from its own random streams, so splits share no image. Attributes: ``label_names``,
    ``targets`` (N×C float32 0/1), ``masks`` (None: every label counts), ``captions``,
    ``scene_types`` and ``layouts`` (geometry of every element, with the labels it shows), whose
    labelled elements are :meth:`objects`.
    ``label_set="voc"`` gives the natural scenes with VOC-20 labels (COCO objects outside VOC
    then appear unlabelled).
    """

    has_boxes = True

    def __init__(self, domain: str = "natural", split: str = "train",
                 num_images: int | None = None, image_size: int = 224,
                 transform: Transform | None = None, seed: int = 0,
                 label_set: str | None = None):
        domain = _check_domain(domain, label_set)
        _check_split(split)
        if num_images is not None and num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 px, got {image_size}")
        super().__init__(split, transform, image_size)
        self.domain, self.label_set, self.seed = domain, label_set, seed
        self.image_size = image_size
        self.label_names = domain_labels(domain, label_set)
        n = SPLIT_SIZES[split] if num_images is None else num_images
        collecting = gc.isenabled()
        gc.disable()  # thousands of small tuples: the cyclic collector would dominate
        try:
            self.layouts = [make_layout(domain, i, split, seed, label_set) for i in range(n)]
        finally:
            if collecting:
                gc.enable()
        column = {name: k for k, name in enumerate(self.label_names)}
        self.targets = np.zeros((n, len(self.label_names)), np.float32)
        for i, layout in enumerate(self.layouts):
            self.targets[i, [column[label] for label in layout.labels]] = 1.0
        self.masks = None
        self.captions = [layout.caption for layout in self.layouts]
        self.scene_types = [layout.scene for layout in self.layouts]

    def objects(self, i: int) -> list[tuple[Box, tuple[str, ...]]]:
        """The labelled elements of scene ``i`` (:func:`sspa_core.localization.layout_objects`)."""
        return layout_objects(self.layouts[i])

    def source_state(self) -> list:
        """The generation parameters (the layouts and pixels follow from them)."""
        return [self.domain, self.label_set, self.seed, len(self), self.image_size]

    def label_sizes(self) -> np.ndarray:
        """Per label (C,), its typical object size: the median over the scenes that show it of
        the longest side (fraction of the image side; above 1 for land cover that runs past the
        tile's edge) of its first element; NaN for a label that no scene shows."""
        sides: list[list[float]] = [[] for _ in self.label_names]
        column = {name: k for k, name in enumerate(self.label_names)}
        for layout in self.layouts:
            seen: set[str] = set()
            for el in layout.elements:
                for label in el.labels:
                    if label not in seen:
                        seen.add(label)
                        sides[column[label]].append(max(el.box[2] - el.box[0], el.box[3] - el.box[1]))
        return np.array([np.median(s) if s else np.nan for s in sides])

    def labels_by_size(self, parts: int) -> list[np.ndarray]:
        """The indices of the labels that some scene shows, ranked by :meth:`label_sizes` and
        split into ``parts`` groups of near-equal count, smallest first."""
        sizes = self.label_sizes()
        shown = np.flatnonzero(~np.isnan(sizes))
        return np.array_split(shown[np.argsort(sizes[shown], kind="stable")], parts)

    def render(self, i: int) -> Image.Image:
        """Image ``i`` as an RGB PIL image of ``image_size``² px."""
        return render_layout(self.layouts[i], self.image_size)

    def load_image(self, i: int) -> Image.Image:
        return self.render(i)
