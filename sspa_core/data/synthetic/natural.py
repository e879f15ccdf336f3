"""The natural domain: COCO-80 labels (VOC-20 view) as emoji sprites in scene types with
realistic co-occurrence, clutter and limited occlusion.

66 of the 80 COCO labels have a sprite: 64 emoji plus a drawn dining table and bench (no emoji
exists; the VOC view needs the table). Sky labels fly above the horizon, boats float on water,
other outdoor objects stand on the ground and shrink towards the horizon; indoors, furniture
stands on the floor.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.labels import load_label_names
from sspa_core.data.synthetic.atlas import load_atlas, sprite_aspect
from sspa_core.data.synthetic.canvas import (
    BACKGROUNDS,
    Box,
    Element,
    box_area,
    clouds,
    clutter_shape,
    finish,
    gradient,
    jitter,
    overlap,
    pick,
    sky,
    stripes,
)

# VOC-20 name -> the COCO label whose sprite it uses.
VOC_TO_COCO: dict[str, str] = {
    "aeroplane": "airplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat",
    "bottle": "bottle", "bus": "bus", "car": "car", "cat": "cat", "chair": "chair", "cow": "cow",
    "diningtable": "dining table", "dog": "dog", "horse": "horse", "motorbike": "motorcycle",
    "person": "person", "pottedplant": "potted plant", "sheep": "sheep", "sofa": "couch",
    "train": "train", "tvmonitor": "tv"}

# style -> horizon (fraction of the height where the ground, or indoors the floor, starts)
NATURAL_STYLES: dict[str, float] = {
    "office": 0.55, "kitchen": 0.5, "living room": 0.55, "bedroom": 0.55, "bathroom": 0.5,
    "dining room": 0.55, "street": 0.45, "farm": 0.45, "beach": 0.4, "park": 0.42,
    "sky": 0.88, "savanna": 0.45, "station": 0.42, "snow": 0.42, "harbour": 0.4,
    "picnic": 0.38, "forest": 0.5}

NATURAL_WATER: dict[str, tuple[float, float]] = {"beach": (0.4, 0.55), "harbour": (0.4, 0.75)}

# scene type -> (background style, {label: weight}): the weights set co-occurrence.
NATURAL_SCENES: dict[str, tuple[str, dict[str, float]]] = {
    "office": ("office", {
        "laptop": 3, "keyboard": 3, "mouse": 3, "cup": 2, "cell phone": 2, "book": 2,
        "chair": 1.5, "tv": 1, "potted plant": 1, "clock": 1, "scissors": 1, "bottle": 1,
        "backpack": 0.7, "person": 1}),
    "street": ("street", {
        "car": 3, "bus": 2, "truck": 1.5, "person": 3, "traffic light": 2, "stop sign": 1.5,
        "bicycle": 1.5, "motorcycle": 1.5, "handbag": 0.7, "umbrella": 0.7, "bench": 0.7,
        "backpack": 0.7, "dog": 0.5}),
    "kitchen": ("kitchen", {
        "knife": 2, "fork": 1.5, "spoon": 1.5, "bowl": 2, "cup": 2, "bottle": 2, "banana": 1.5,
        "apple": 1.5, "orange": 1.5, "carrot": 1.5, "broccoli": 1.5, "wine glass": 1,
        "cake": 0.7, "sandwich": 0.7, "scissors": 0.5, "potted plant": 0.5}),
    "living room": ("living room", {
        "couch": 3, "tv": 3, "chair": 2, "potted plant": 2, "book": 2, "clock": 1.5,
        "vase": 1.5, "teddy bear": 1, "cup": 1, "cat": 1.5, "dog": 1.5, "laptop": 1,
        "person": 1}),
    "bedroom": ("bedroom", {
        "bed": 4, "teddy bear": 2, "clock": 2, "book": 2, "cell phone": 1.5, "laptop": 1,
        "cat": 1, "chair": 1, "tie": 0.7, "suitcase": 1, "potted plant": 0.7, "tv": 0.7}),
    "bathroom": ("bathroom", {
        "toilet": 4, "toothbrush": 3, "bottle": 2, "cup": 1.5, "scissors": 1, "vase": 0.7,
        "potted plant": 1, "cell phone": 0.5}),
    "dining room": ("dining room", {
        "dining table": 4, "chair": 3, "pizza": 1.5, "wine glass": 2, "cup": 1.5, "fork": 1.5,
        "knife": 1.5, "spoon": 1, "bowl": 1.5, "cake": 1, "bottle": 1.5, "person": 1.5,
        "vase": 1, "sandwich": 0.7}),
    "farm": ("farm", {
        "cow": 3, "sheep": 3, "horse": 3, "dog": 1.5, "person": 1.5, "truck": 1.5, "bird": 1,
        "cat": 0.7}),
    "beach": ("beach", {
        "umbrella": 3, "person": 3, "boat": 2, "bird": 1.5, "frisbee": 1, "kite": 1,
        "sports ball": 1.5, "bottle": 1, "dog": 1, "cup": 0.7, "handbag": 0.5}),
    "park": ("park", {
        "person": 3, "dog": 2.5, "bench": 2.5, "bicycle": 1.5, "frisbee": 1.5, "kite": 1.5,
        "sports ball": 1.5, "bird": 1.5, "skateboard": 1, "umbrella": 0.7, "backpack": 1}),
    "sky": ("sky", {"airplane": 3, "bird": 3, "kite": 2.5}),
    "savanna": ("savanna", {
        "elephant": 3, "zebra": 3, "giraffe": 3, "bird": 1.5, "car": 0.7, "person": 0.5}),
    "train station": ("station", {
        "train": 4, "person": 3, "suitcase": 2, "backpack": 1.5, "handbag": 1.5, "clock": 1.5,
        "bench": 1.5, "cell phone": 1}),
    "ski slope": ("snow", {"skis": 4, "person": 3, "backpack": 1, "dog": 0.5, "bird": 0.5}),
    "harbour": ("harbour", {
        "boat": 4, "bird": 2.5, "person": 2, "car": 1, "truck": 0.7, "dog": 0.7, "bench": 0.7}),
    "picnic": ("picnic", {
        "sandwich": 2, "hot dog": 2, "pizza": 1.5, "donut": 2, "cake": 1.5, "apple": 1.5,
        "orange": 1.5, "banana": 1.5, "bottle": 1.5, "cup": 1.5, "wine glass": 1, "person": 1.5,
        "dog": 1, "sports ball": 0.7, "frisbee": 0.7}),
    "forest": ("forest", {"bear": 3, "bird": 2.5, "person": 1.5, "dog": 1.5, "backpack": 1}),
}
NATURAL_PHRASES: dict[str, str] = {"sky": "the sky"}  # scene phrases other than "a/an <scene>"

_INDOOR = {"office", "kitchen", "living room", "bedroom", "bathroom", "dining room"}

_SKY_LABELS = {"airplane", "bird", "kite"}

_FLOOR_LABELS = {"chair", "couch", "bed", "dining table", "toilet", "potted plant", "dog", "cat",
                 "suitcase", "person"}  # indoors these stand on the floor

_LARGE = {"bus", "train", "truck", "airplane", "elephant", "bed", "couch", "dining table",
          "giraffe", "horse", "cow", "boat"}

_SMALL = {"cup", "fork", "knife", "spoon", "mouse", "cell phone", "toothbrush", "apple",
          "orange", "banana", "donut", "bird", "frisbee", "sports ball", "book", "scissors",
          "bottle", "wine glass", "tie", "handbag", "sandwich", "hot dog", "broccoli", "carrot",
          "skateboard", "kite", "clock", "vase", "stop sign"}

_SIZE_RANGE = {"large": (0.36, 0.55), "medium": (0.25, 0.4), "small": (0.16, 0.27)}

# normalised sprite sizes are snapped to this geometric grid so that few resized copies exist
_SCALES = 0.06 * 1.07 ** np.arange(40)

_INDOOR_CLUTTER = ("framed picture", "light bulb", "candle", "gift", "package", "blossom")

_OUTDOOR_CLUTTER = ("rock", "blossom", "sunflower", "mushroom", "cactus", "balloon", "tent",
                    "hut", "house", "construction barrier", "fallen leaf")

_MAX_COVERED = 0.35  # at most this share of a labelled object may be hidden by later ones


def natural_labels(label_set: str | None = None) -> list[str]:
    """COCO-80 labels that have a sprite (COCO order), or the VOC-20 names (VOC order)."""
    if label_set == "voc":
        return load_label_names("voc")
    atlas = load_atlas()
    return [name for name in load_label_names("coco") if name in atlas]


@cache
def natural_context(label_set: str | None) -> tuple[list[str], dict[str, str], list[str]]:
    """Labels, label -> sprite, and the scene types that can show at least one label."""
    labels = natural_labels(label_set)
    sprite_of = dict(VOC_TO_COCO) if label_set == "voc" else {label: label for label in labels}
    sprites = set(sprite_of.values())
    scenes = [scene for scene, (_, weights) in NATURAL_SCENES.items() if sprites & set(weights)]
    return labels, sprite_of, scenes


def _snap(scale: float) -> float:
    """The nearest size of the :data:`_SCALES` grid."""
    return float(_SCALES[np.abs(_SCALES - scale).argmin()])


def _sprite_box(rng: np.random.Generator, sprite: str, label: str, style: str,
                shrink: float) -> Box:
    """Sample a box for ``sprite``: sky labels above the horizon, boats on water, the rest on
    the ground (smaller near the horizon); indoors furniture on the floor, the rest anywhere."""
    kind = "large" if label in _LARGE else "small" if label in _SMALL else "medium"
    lo, hi = _SIZE_RANGE[kind]
    scale = rng.uniform(lo, hi) * shrink
    horizon = NATURAL_STYLES[style]
    aspect = sprite_aspect(sprite)
    if style in _INDOOR and label not in _FLOOR_LABELS:
        bottom = None
    elif style in _INDOOR:
        bottom = rng.uniform(horizon + 0.12, 1.0)
    elif label in _SKY_LABELS:
        scale *= 0.8
        bottom = rng.uniform(0.1, horizon)
    elif label == "boat" and style in NATURAL_WATER:
        w0, w1 = NATURAL_WATER[style]
        bottom = rng.uniform(w0 + 0.05, w1 + 0.02)
        scale *= 0.6 + 0.4 * (bottom - w0) / (1 - w0)
    else:
        ground = max(horizon, NATURAL_WATER.get(style, (0, 0))[1])
        bottom = rng.uniform(min(0.98, ground + 0.08), 1.0)
        scale *= 0.6 + 0.4 * (bottom - horizon) / (1 - horizon)
    scale = _snap(scale)
    w, h = (scale, scale / aspect) if aspect >= 1 else (scale * aspect, scale)
    x0 = rng.uniform(0, max(1e-6, 1 - w))
    y0 = rng.uniform(0, max(1e-6, 1 - h)) if bottom is None else min(max(0.0, bottom - h), 1 - h)
    return (x0, y0, x0 + w, y0 + h)


def _place(rng: np.random.Generator, sprite: str, label: str, style: str,
           placed: list[tuple[Box, list[float]]]) -> Box | None:
    """A box for a new top-most object that hides at most :data:`_MAX_COVERED` of any
    object already placed (``placed`` holds (box, [covered area]) and is updated)."""
    for attempt in range(24):
        box = _sprite_box(rng, sprite, label, style, 0.93 ** (attempt // 3))
        covers = [overlap(box, other) for other, _ in placed]
        if all(cov[0] + c <= _MAX_COVERED * box_area(other)
               for (other, cov), c in zip(placed, covers)):
            for (_, cov), c in zip(placed, covers):
                cov[0] += c
            placed.append((box, [0.0]))
            return box
    return None


def _sprite_element(rng: np.random.Generator, sprite: str, label: str | None, style: str,
                    placed: list[tuple[Box, list[float]]]) -> Element | None:
    """A sprite element, randomly mirrored; a labelled one goes through :func:`_place` (and is
    dropped, with its label, if no place keeps the others visible)."""
    flip = bool(rng.random() < 0.5)
    if label is None:
        box = _sprite_box(rng, sprite, sprite, style, 0.8)
    else:
        box = _place(rng, sprite, label, style, placed)
        if box is None:
            return None
    return Element("sprite", box, (label,) if label else (), {"sprite": sprite, "flip": flip})


def natural_layout(rng: np.random.Generator, labels: list[str], sprite_of: dict[str, str],
                   scenes: list[str]) -> tuple[str, str, list[Element]]:
    """Scene type, background style and elements of one natural image."""
    scene = scenes[rng.integers(len(scenes))]
    style, weights = NATURAL_SCENES[scene]
    pool = [label for label in labels if sprite_of[label] in weights]
    p = np.array([weights[sprite_of[label]] for label in pool])
    count = min(len(pool), 1 + pick(rng, (0.2, 0.3, 0.25, 0.15, 0.1)))
    keys = np.log(p) - np.log(-np.log(rng.random(len(pool))))  # Gumbel top-k: weighted,
    chosen = [pool[k] for k in np.argsort(-keys)[:count]]      # without replacement
    if rng.random() < 0.15:
        outside = [label for label in labels if label not in pool]
        if outside:
            chosen.append(outside[rng.integers(len(outside))])
    if rng.random() < 0.15:
        chosen.append(chosen[rng.integers(len(chosen))])  # a second instance
    indoor = style in _INDOOR
    elements = [clutter_shape(rng, 0.04, 0.18) for _ in range(rng.integers(0, 4))]
    clutter_pool = _INDOOR_CLUTTER if indoor else _OUTDOOR_CLUTTER
    # in a label subset (VOC), the scene's other objects appear unlabelled, as in real photos
    labelled = {sprite_of[label] for label in labels}
    extras = [sprite for sprite in weights if sprite not in labelled]
    for _ in range(pick(rng, (0.5, 0.35, 0.15))):
        name = clutter_pool[rng.integers(len(clutter_pool))]
        elements.append(_sprite_element(rng, name, None, style, []))
    for _ in range(pick(rng, (0.4, 0.4, 0.2)) if extras else 0):
        name = extras[rng.integers(len(extras))]
        elements.append(_sprite_element(rng, name, None, style, []))
    placed: list[tuple[Box, list[float]]] = []
    for label in chosen:
        el = _sprite_element(rng, sprite_of[label], label, style, placed)
        if el is not None:
            elements.append(el)
    if rng.random() < 0.3:
        el = clutter_shape(rng, 0.03, 0.07)
        if all(overlap(el.box, b) + cov[0] <= _MAX_COVERED * box_area(b) for b, cov in placed):
            elements.append(el)
    return scene, style, elements


def _natural_background(style: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One variant of a natural-domain background style (see :data:`NATURAL_STYLES`)."""
    horizon = NATURAL_STYLES[style]
    c = np.zeros((size, size, 3), np.float32)
    S = size
    if style in ("office", "kitchen", "living room", "bedroom", "dining room", "bathroom"):
        wall = {"office": (225, 220, 205), "kitchen": (235, 230, 215),
                "living room": (200, 180, 150),
                "bedroom": (205, 190, 220), "dining room": (215, 175, 140),
                "bathroom": (215, 232, 240)}[style]
        floor = {"office": (150, 110, 70), "kitchen": (190, 190, 195), "living room": (140, 95, 60),
                 "bedroom": (170, 150, 140), "dining room": (120, 80, 50),
                 "bathroom": (180, 200, 210)}[style]
        split = horizon + rng.uniform(-0.04, 0.04)
        gradient(S, jitter(rng, wall, 25), jitter(rng, wall, 25), 0, split, c)
        gradient(S, jitter(rng, floor, 20), jitter(rng, floor, 20), split, 1, c)
        im = finish(c, rng, 3)
        d = ImageDraw.Draw(im)
        if style in ("kitchen", "bathroom"):
            step = rng.uniform(0.06, 0.11)
            tile = tuple(int(v * 0.85) for v in wall)
            stripes(d, S, 0, split if style == "kitchen" else 1, step, tile)
            stripes(d, S, 0, split if style == "kitchen" else 1, step, tile, vertical=False)
        elif style == "living room":
            stripes(d, S, 0, split, rng.uniform(0.08, 0.14), jitter(rng, (185, 160, 130)),
                    width=max(1, S // 60))
            stripes(d, S, split, 1, 0.09, (110, 70, 40), vertical=False)
        elif style == "bedroom":
            d.rectangle([0, split * S, S, S], fill=jitter(rng, (150, 120, 160), 25))
        elif style == "office" and rng.random() < 0.7:
            x0 = rng.uniform(0.05, 0.55) * S
            d.rectangle([x0, 0.08 * S, x0 + 0.35 * S, (split - 0.1) * S], fill=(170, 205, 235),
                        outline=(245, 245, 245), width=max(1, S // 45))
        d.line([0, split * S, S, split * S], fill=tuple(int(v * 0.7) for v in floor),
               width=max(1, S // 70))
        return im
    sky(S, rng, horizon, c)
    ground = {"street": (95, 95, 100), "farm": (110, 170, 80), "beach": (225, 205, 160),
              "park": (95, 165, 75), "sky": (120, 160, 90), "savanna": (205, 180, 100),
              "station": (150, 150, 150), "snow": (240, 245, 250), "harbour": (50, 110, 170),
              "picnic": (90, 160, 70), "forest": (70, 120, 60)}[style]
    gradient(S, jitter(rng, ground), jitter(rng, tuple(int(v * 0.85) for v in ground)),
             horizon, 1, c)
    im = finish(c, rng, 4)
    d = ImageDraw.Draw(im)
    h = horizon * S
    if style in ("sky", "beach", "farm", "park", "savanna", "picnic", "harbour"):
        clouds(d, S, rng, horizon, int(rng.integers(1, 4)))
    if style == "street":
        x = 0.0
        while x < S:  # facades
            w = rng.uniform(0.12, 0.3) * S
            top = h - rng.uniform(0.1, 0.3) * S
            d.rectangle([x, top, x + w, h], fill=jitter(rng, (170, 140, 120), 50))
            for wy in np.arange(top + 0.03 * S, h - 0.03 * S, 0.06 * S):
                for wx in np.arange(x + 0.02 * S, x + w - 0.04 * S, 0.06 * S):
                    d.rectangle([wx, wy, wx + 0.025 * S, wy + 0.03 * S], fill=(80, 100, 130))
            x += w
        d.rectangle([0, h, S, h + 0.07 * S], fill=(175, 170, 165))
        for x in np.arange(rng.uniform(0, 0.2) * S, S, 0.22 * S):
            d.rectangle([x, 0.78 * S, x + 0.1 * S, 0.8 * S], fill=(235, 235, 235))
    elif style == "farm":
        d.polygon([(0, h), (0.3 * S, h - 0.08 * S), (0.7 * S, h - 0.02 * S), (S, h - 0.1 * S),
                   (S, h)], fill=jitter(rng, (90, 140, 90)))
        for y in (0.6, 0.66):
            d.line([0, y * S, S, y * S], fill=(130, 95, 60), width=max(1, S // 80))
        for x in np.arange(0, S, 0.12 * S):
            d.line([x, 0.57 * S, x, 0.7 * S], fill=(130, 95, 60), width=max(1, S // 80))
    elif style in ("beach", "harbour"):
        w0, w1 = NATURAL_WATER[style]
        d.rectangle([0, w0 * S, S, w1 * S], fill=jitter(rng, (50, 120, 185)))
        for _ in range(12):
            x, y = rng.uniform(0, S), rng.uniform(w0, w1) * S
            d.line([x, y, x + 0.06 * S, y], fill=(200, 225, 245), width=1)
        if style == "harbour":
            d.rectangle([0, w1 * S, S, S], fill=jitter(rng, (140, 110, 80)))
            stripes(d, S, w1, 1, 0.08, (110, 85, 60))
    elif style in ("park", "savanna", "forest"):
        color = {"park": (50, 110, 50), "savanna": (120, 120, 60), "forest": (35, 80, 40)}[style]
        for _ in range(int(rng.integers(3, 9)) * (3 if style == "forest" else 1)):
            x, r = rng.uniform(0, S), rng.uniform(0.04, 0.09) * S
            d.ellipse([x - r, h - 1.6 * r, x + r, h + 0.3 * r], fill=jitter(rng, color, 15))
        if style == "park":
            d.polygon([(0.4 * S, S), (0.6 * S, S), (0.52 * S, h), (0.48 * S, h)],
                      fill=(200, 185, 150))
    elif style == "station":
        d.rectangle([0, 0, S, 0.12 * S], fill=(90, 90, 100))
        d.rectangle([0, h, S, h + 0.2 * S], fill=(120, 110, 100))
        for y in (h + 0.06 * S, h + 0.14 * S):
            d.line([0, y, S, y], fill=(60, 60, 60), width=max(1, S // 60))
        d.rectangle([0, h + 0.2 * S, S, h + 0.22 * S], fill=(230, 200, 40))
    elif style == "snow":
        for _ in range(3):
            x, w = rng.uniform(0, S), rng.uniform(0.25, 0.5) * S
            d.polygon([(x - w, h), (x, h - rng.uniform(0.15, 0.3) * S), (x + w, h)],
                      fill=jitter(rng, (150, 160, 185)))
    elif style == "picnic":
        x0, y0 = rng.uniform(0.05, 0.3) * S, rng.uniform(0.5, 0.6) * S
        w, sq = rng.uniform(0.55, 0.8) * S, 0.06 * S
        d.rectangle([x0, y0, x0 + w, min(S, y0 + 0.45 * S)], fill=(235, 235, 235))
        for i, x in enumerate(np.arange(x0, x0 + w, sq)):
            for j, y in enumerate(np.arange(y0, min(S, y0 + 0.45 * S), sq)):
                if (i + j) % 2 == 0:
                    d.rectangle([x, y, x + sq, y + sq], fill=(200, 50, 50))
    return im


BACKGROUNDS["natural"] = _natural_background
