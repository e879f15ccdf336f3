"""Synthetic multi-label scenes of the offline world (docs/method.md §Offline world), rendered from the sprite atlas.

Three domains, each with scene types that set which labels co-occur and how the background
looks:

* ``natural`` — COCO-80 label names wherever a sprite exists (a VOC-20 view with
  ``label_set="voc"``), 1–5 labelled objects per scene (+15% chance of one object from outside
  the scene type), distractor shapes and non-label sprites, overlaps limited so that every
  labelled object stays mostly visible;
* ``pedestrian`` — upright pedestrian crops whose attributes (PA100K/PETA-like names: hat,
  glasses, long sleeves, shorts, skirt, boots, backpack, …) are worn or carried items drawn at
  the matching body positions;
* ``remote_sensing`` — aerial tiles in the style of MultiScene/AID: procedural land cover
  (water, sand, farmland, grass, roads, runways) and small objects seen from above.

Every image is described by a :class:`Layout` drawn at dataset construction from its own random
stream ``(seed, domain, label_set, split, i)``; pixels are rendered on demand from the layout, so
index ``i`` gives the same image in any process and at any ``image_size`` (geometry is stored in
coordinates normalised to [0, 1]). Each image has a caption that names every label verbatim and,
in about half of the captions, the scene type (dropping it in half of them keeps a
tiny CLIP from learning scene names instead of objects).
"""

from __future__ import annotations

from sspa_core.data.synthetic.atlas import load_atlas, sprite_aspect, sprite_image
from sspa_core.data.synthetic.canvas import Element, Layout, render_layout
from sspa_core.data.synthetic.captions import SCENE_PHRASES, make_caption, with_article
from sspa_core.data.synthetic.dataset import (
    DOMAINS,
    LABEL_SETS,
    SPLIT_SIZES,
    SyntheticScenes,
    domain_labels,
    domain_scene_types,
    make_layout,
)
from sspa_core.data.synthetic.natural import NATURAL_SCENES, VOC_TO_COCO

__all__ = [
    "DOMAINS", "LABEL_SETS", "NATURAL_SCENES", "SCENE_PHRASES", "SPLIT_SIZES", "VOC_TO_COCO",
    "Element", "Layout", "SyntheticScenes", "domain_labels", "domain_scene_types", "load_atlas",
    "make_caption", "make_layout", "render_layout", "sprite_aspect", "sprite_image",
    "with_article"]
