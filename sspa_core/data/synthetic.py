"""Synthetic multi-label scenes of the offline world (SPEC §4), rendered from the sprite atlas.

Three domains, each with scene types that set which labels co-occur and how the background
looks:

* ``natural`` — COCO-80 label names wherever a sprite exists (a VOC-20 view with
  ``label_set="voc"``), 1–5 labelled objects per scene (+15% chance of one object from outside
  the scene type), distractor shapes and non-label sprites, overlaps limited so that every
  labelled object stays mostly visible;
* ``pedestrian`` — upright pedestrian crops whose attributes (PA100K/PETA-like names: hat,
  glasses, long sleeves, shorts, skirt, boots, backpack, …) are worn or carried items drawn at
  the matching body positions;
* ``aerial`` — remote-sensing tiles in the style of MultiScene/AID: procedural land cover
  (water, sand, farmland, grass, roads, runways) and small objects seen from above.

Every image is described by a :class:`Layout` drawn at dataset construction from its own random
stream ``(seed, domain, label_set, split, i)``; pixels are rendered on demand from the layout, so
index ``i`` gives the same image in any process and at any ``image_size`` (geometry is stored in
coordinates normalised to [0, 1]). Each image has a caption that names every label verbatim and,
in about half of the captions, the scene type (SPEC §4: dropping it in half of them keeps a
tiny CLIP from learning scene names instead of objects).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.base import MultiLabelDataset, Transform
from sspa_core.paths import DATA_DIR

DOMAINS: tuple[str, ...] = ("natural",)
LABEL_SETS: dict[str, tuple[str | None, ...]] = {"natural": (None, "coco", "voc")}
SPLIT_SIZES: dict[str, int] = {"train": 4000, "val": 500, "test": 1000}
SCENE_NAME_PROBABILITY = 0.5  # share of captions that name the scene type (SPEC §4)

COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")

# VOC-20 name -> the COCO label whose sprite it uses (VOC order).
VOC_TO_COCO: dict[str, str] = {
    "aeroplane": "airplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat",
    "bottle": "bottle", "bus": "bus", "car": "car", "cat": "cat", "chair": "chair", "cow": "cow",
    "diningtable": "dining table", "dog": "dog", "horse": "horse", "motorbike": "motorcycle",
    "person": "person", "pottedplant": "potted plant", "sheep": "sheep", "sofa": "couch",
    "train": "train", "tvmonitor": "tv"}

# ----------------------------------------------------------------------------- sprite atlas

SPRITE_DIR = DATA_DIR / "sprites"
_SPRITE_CACHE: OrderedDict[tuple, Image.Image] = OrderedDict()
_SPRITE_CACHE_SIZE = 6000


@lru_cache(maxsize=1)
def load_atlas() -> dict[str, Image.Image]:
    """Decode the committed sprite atlas once per process: sprite name -> RGBA image."""
    index_path, sheet_path = SPRITE_DIR / "atlas.json", SPRITE_DIR / "atlas.png"
    if not index_path.is_file() or not sheet_path.is_file():
        raise FileNotFoundError(
            f"sprite atlas not found in {SPRITE_DIR}: rebuild it with "
            "`python data/sprites/build_atlas.py` (needs fonts-noto-color-emoji)")
    index = json.loads(index_path.read_text())["sprites"]
    sheet = Image.open(sheet_path).convert("RGBA")
    sheet.load()
    return {name: sheet.crop((x, y, x + w, y + h)) for name, entry in index.items()
            for x, y, w, h in [entry["box"]]}


def sprite_aspect(name: str) -> float:
    """Width / height of a sprite."""
    im = load_atlas()[name]
    return im.width / im.height


def sprite_image(name: str, width: int, height: int, flip: bool = False,
                 angle: int = 0) -> Image.Image:
    """A sprite resized to ``width``×``height`` px (then mirrored / rotated by ``angle``
    degrees, expanding the canvas), from a bounded per-process cache."""
    key = (name, width, height, flip, angle)
    im = _SPRITE_CACHE.get(key)
    if im is not None:
        _SPRITE_CACHE.move_to_end(key)
        return im
    im = load_atlas()[name].resize((max(1, width), max(1, height)), Image.Resampling.BILINEAR)
    if flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if angle:
        im = im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    _SPRITE_CACHE[key] = im
    if len(_SPRITE_CACHE) > _SPRITE_CACHE_SIZE:
        _SPRITE_CACHE.popitem(last=False)
    return im


# ----------------------------------------------------------------------------- layouts

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Element:
    """One drawn thing: ``kind`` names its drawer, ``box`` (x0, y0, x1, y1 in [0, 1]) bounds
    every pixel it touches, ``labels`` are the labels it shows (empty for clutter)."""

    kind: str
    box: Box
    labels: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """Everything needed to render one image: background and elements in drawing order."""

    domain: str
    scene: str
    background: str
    variant: int
    tint: tuple[float, float, float]
    flip: bool
    elements: tuple[Element, ...]
    labels: tuple[str, ...]
    caption: str

    def without(self, label: str) -> "Layout":
        """The same layout with every element that shows ``label`` removed."""
        return replace(self, elements=tuple(e for e in self.elements if label not in e.labels))


def _box_area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _overlap(a: Box, b: Box) -> float:
    return _box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def _pixel_box(box: Box, size: int) -> tuple[int, int, int, int]:
    return (int(math.floor(box[0] * size)), int(math.floor(box[1] * size)),
            int(math.ceil(box[2] * size)), int(math.ceil(box[3] * size)))


# ----------------------------------------------------------------------------- captions

_NO_ARTICLE = {"skis", "scissors", "broccoli", "glasses", "long hair", "short sleeves",
               "long sleeves", "trousers", "shorts", "boots", "holding objects", "water",
               "trees", "grass", "buildings", "cars", "farmland", "sand"}

_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (templates naming the scene, templates without it); {s} = scene phrase, {o} = objects
    "natural": (
        ("a photo of {s} with {o}.", "{o} in {s}.", "a picture of {s} showing {o}.",
         "{s} with {o}.", "an image of {o} in {s}."),
        ("a photo of {o}.", "a picture showing {o}.", "{o}.", "there is {o}.",
         "an image with {o}.")),
    "pedestrian": (
        ("a pedestrian on {s} with {o}.", "a photo of a person on {s} with {o}.",
         "a person walking on {s}, with {o}."),
        ("a pedestrian with {o}.", "a photo of a person with {o}.",
         "a person walking, with {o}.", "someone with {o}.")),
    "aerial": (
        ("an aerial image of {s} with {o}.", "a satellite view of {s} showing {o}.",
         "{s} seen from above, with {o}.", "a remote sensing image of {s}: {o}."),
        ("an aerial image with {o}.", "a satellite view showing {o}.",
         "seen from above: {o}.", "a remote sensing image of {o}.")),
}


def with_article(label: str) -> str:
    """``"a cup"``, ``"an apple"``; plural and mass nouns stay bare (``"skis"``, ``"water"``)."""
    if label in _NO_ARTICLE:
        return label
    return ("an " if label[0] in "aeiou" else "a ") + label


def join_phrases(phrases: list[str]) -> str:
    """``a, b and c``."""
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def make_caption(labels: list[str], scene: str | None = None, domain: str = "natural",
                 rng: np.random.Generator | None = None) -> str:
    """A caption naming every label verbatim (in random order) and, if given, the scene type
    (e.g. ``"a photo of an office with a laptop, a keyboard and a cup."``)."""
    if domain not in _TEMPLATES:
        raise ValueError(f"unknown domain {domain!r}; valid: {', '.join(DOMAINS)}")
    if not labels:
        raise ValueError("a caption needs at least one label")
    rng = rng if rng is not None else np.random.default_rng(0)
    order = rng.permutation(len(labels))
    objects = join_phrases([with_article(labels[k]) for k in order])
    with_scene, without_scene = _TEMPLATES[domain]
    if scene is None:
        return without_scene[rng.integers(len(without_scene))].format(o=objects)
    template = with_scene[rng.integers(len(with_scene))]
    return template.format(s=SCENE_PHRASES.get(scene, with_article(scene)), o=objects)


# ----------------------------------------------------------------------------- backgrounds

NUM_BACKGROUND_VARIANTS = 6
_BACKGROUND_CACHE: dict[tuple[str, int, int], Image.Image] = {}
Color = tuple[int, int, int]


def _jitter(rng: np.random.Generator, color: Color, amount: int = 18) -> Color:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _gradient(size: int, top: Color, bottom: Color, y0: float = 0.0, y1: float = 1.0,
              canvas: np.ndarray | None = None) -> np.ndarray:
    """Fill rows ``y0..y1`` (fractions) of ``canvas`` (H×W×3 float) with a vertical gradient."""
    canvas = np.zeros((size, size, 3), np.float32) if canvas is None else canvas
    r0, r1 = int(round(y0 * size)), int(round(y1 * size))
    t = np.linspace(0.0, 1.0, max(1, r1 - r0), dtype=np.float32)[:, None, None]
    canvas[r0:r1] = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
    return canvas


def _finish(canvas: np.ndarray, rng: np.random.Generator, noise: float = 5.0) -> Image.Image:
    canvas = canvas + rng.normal(0.0, noise, canvas.shape[:2])[..., None].astype(np.float32)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")


def _sky(size: int, rng: np.random.Generator, horizon: float, canvas: np.ndarray) -> None:
    _gradient(size, _jitter(rng, (110, 165, 230)), _jitter(rng, (205, 225, 245)), 0, horizon,
              canvas)


def _clouds(draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator, horizon: float,
            count: int) -> None:
    for _ in range(count):
        cx, cy = rng.uniform(0, 1) * size, rng.uniform(0.05, max(0.06, horizon - 0.1)) * size
        for _ in range(4):
            r = rng.uniform(0.03, 0.07) * size
            dx, dy = rng.uniform(-2, 2) * r, rng.uniform(-0.4, 0.4) * r
            draw.ellipse([cx + dx - r * 1.6, cy + dy - r, cx + dx + r * 1.6, cy + dy + r],
                         fill=(250, 250, 252))


def _stripes(draw: ImageDraw.ImageDraw, size: int, y0: float, y1: float, step: float,
             color: Color, vertical: bool = True, width: int = 1) -> None:
    n = int(1 / step) + 1
    for k in range(n):
        p = k * step * size
        if vertical:
            draw.line([p, y0 * size, p, y1 * size], fill=color, width=width)
        else:
            yy = y0 * size + p
            if yy <= y1 * size:
                draw.line([0, yy, size, yy], fill=color, width=width)


def _natural_background(style: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One variant of a natural-domain background style (see :data:`NATURAL_STYLES`)."""
    horizon = NATURAL_STYLES[style]
    c = np.zeros((size, size, 3), np.float32)
    S = size
    if style in ("office", "kitchen", "living room", "bedroom", "dining room", "bathroom"):
        wall = {"office": (225, 220, 205), "kitchen": (235, 230, 215), "living room": (200, 180, 150),
                "bedroom": (205, 190, 220), "dining room": (215, 175, 140),
                "bathroom": (215, 232, 240)}[style]
        floor = {"office": (150, 110, 70), "kitchen": (190, 190, 195), "living room": (140, 95, 60),
                 "bedroom": (170, 150, 140), "dining room": (120, 80, 50),
                 "bathroom": (180, 200, 210)}[style]
        split = rng.uniform(0.45, 0.65)
        _gradient(S, _jitter(rng, wall, 25), _jitter(rng, wall, 25), 0, split, c)
        _gradient(S, _jitter(rng, floor, 20), _jitter(rng, floor, 20), split, 1, c)
        im = _finish(c, rng, 3)
        d = ImageDraw.Draw(im)
        if style in ("kitchen", "bathroom"):
            step = rng.uniform(0.06, 0.11)
            tile = tuple(int(v * 0.85) for v in wall)
            _stripes(d, S, 0, split if style == "kitchen" else 1, step, tile)
            _stripes(d, S, 0, split if style == "kitchen" else 1, step, tile, vertical=False)
        elif style == "living room":
            _stripes(d, S, 0, split, rng.uniform(0.08, 0.14), _jitter(rng, (185, 160, 130)),
                     width=max(1, S // 60))
            _stripes(d, S, split, 1, 0.09, (110, 70, 40), vertical=False)
        elif style == "bedroom":
            d.rectangle([0, split * S, S, S], fill=_jitter(rng, (150, 120, 160), 25))
        elif style == "office" and rng.random() < 0.7:
            x0 = rng.uniform(0.05, 0.55) * S
            d.rectangle([x0, 0.08 * S, x0 + 0.35 * S, (split - 0.1) * S], fill=(170, 205, 235),
                        outline=(245, 245, 245), width=max(1, S // 45))
        d.line([0, split * S, S, split * S], fill=tuple(int(v * 0.7) for v in floor),
               width=max(1, S // 70))
        return im
    _sky(S, rng, horizon, c)
    ground = {"street": (95, 95, 100), "farm": (110, 170, 80), "beach": (225, 205, 160),
              "park": (95, 165, 75), "sky": (120, 160, 90), "savanna": (205, 180, 100),
              "station": (150, 150, 150), "snow": (240, 245, 250), "harbour": (50, 110, 170),
              "picnic": (90, 160, 70), "forest": (70, 120, 60)}[style]
    _gradient(S, _jitter(rng, ground), _jitter(rng, tuple(int(v * 0.85) for v in ground)),
              horizon, 1, c)
    im = _finish(c, rng, 4)
    d = ImageDraw.Draw(im)
    h = horizon * S
    if style in ("sky", "beach", "farm", "park", "savanna", "picnic", "harbour"):
        _clouds(d, S, rng, horizon, int(rng.integers(1, 4)))
    if style == "street":
        x = 0.0
        while x < S:  # facades
            w = rng.uniform(0.12, 0.3) * S
            top = h - rng.uniform(0.1, 0.3) * S
            d.rectangle([x, top, x + w, h], fill=_jitter(rng, (170, 140, 120), 50))
            for wy in np.arange(top + 0.03 * S, h - 0.03 * S, 0.06 * S):
                for wx in np.arange(x + 0.02 * S, x + w - 0.04 * S, 0.06 * S):
                    d.rectangle([wx, wy, wx + 0.025 * S, wy + 0.03 * S], fill=(80, 100, 130))
            x += w
        d.rectangle([0, h, S, h + 0.07 * S], fill=(175, 170, 165))
        for x in np.arange(rng.uniform(0, 0.2) * S, S, 0.22 * S):
            d.rectangle([x, 0.78 * S, x + 0.1 * S, 0.8 * S], fill=(235, 235, 235))
    elif style == "farm":
        d.polygon([(0, h), (0.3 * S, h - 0.08 * S), (0.7 * S, h - 0.02 * S), (S, h - 0.1 * S),
                   (S, h)], fill=_jitter(rng, (90, 140, 90)))
        for y in (0.6, 0.66):
            d.line([0, y * S, S, y * S], fill=(130, 95, 60), width=max(1, S // 80))
        for x in np.arange(0, S, 0.12 * S):
            d.line([x, 0.57 * S, x, 0.7 * S], fill=(130, 95, 60), width=max(1, S // 80))
    elif style in ("beach", "harbour"):
        w0, w1 = NATURAL_WATER[style]
        d.rectangle([0, w0 * S, S, w1 * S], fill=_jitter(rng, (50, 120, 185)))
        for _ in range(12):
            x, y = rng.uniform(0, S), rng.uniform(w0, w1) * S
            d.line([x, y, x + 0.06 * S, y], fill=(200, 225, 245), width=1)
        if style == "harbour":
            d.rectangle([0, w1 * S, S, S], fill=_jitter(rng, (140, 110, 80)))
            _stripes(d, S, w1, 1, 0.08, (110, 85, 60))
    elif style in ("park", "savanna", "forest"):
        color = {"park": (50, 110, 50), "savanna": (120, 120, 60), "forest": (35, 80, 40)}[style]
        for _ in range(int(rng.integers(3, 9)) * (3 if style == "forest" else 1)):
            x, r = rng.uniform(0, S), rng.uniform(0.04, 0.09) * S
            d.ellipse([x - r, h - 1.6 * r, x + r, h + 0.3 * r], fill=_jitter(rng, color, 15))
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
                      fill=_jitter(rng, (150, 160, 185)))
    elif style == "picnic":
        x0, y0 = rng.uniform(0.05, 0.3) * S, rng.uniform(0.5, 0.6) * S
        w, sq = rng.uniform(0.55, 0.8) * S, 0.06 * S
        d.rectangle([x0, y0, x0 + w, min(S, y0 + 0.45 * S)], fill=(235, 235, 235))
        for i, x in enumerate(np.arange(x0, x0 + w, sq)):
            for j, y in enumerate(np.arange(y0, min(S, y0 + 0.45 * S), sq)):
                if (i + j) % 2 == 0:
                    d.rectangle([x, y, x + sq, y + sq], fill=(200, 50, 50))
    return im


def background(domain: str, style: str, variant: int, size: int) -> Image.Image:
    """Background ``variant`` of ``style`` at ``size``² px (cached; never mutate it)."""
    key = (style, variant, size)
    im = _BACKGROUND_CACHE.get(key)
    if im is None:
        draw_fn = _BACKGROUND_FNS[domain]
        style_id = sum(ord(ch) * (k + 1) for k, ch in enumerate(style))
        im = draw_fn(style, size, np.random.default_rng([style_id, variant, 7]))
        _BACKGROUND_CACHE[key] = im
    return im


# ----------------------------------------------------------------------------- natural domain

# style -> horizon (fraction of the height where the ground starts; None indoors)
NATURAL_STYLES: dict[str, float | None] = {
    "office": None, "kitchen": None, "living room": None, "bedroom": None, "bathroom": None,
    "dining room": None, "street": 0.45, "farm": 0.45, "beach": 0.4, "park": 0.42,
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
SCENE_PHRASES: dict[str, str] = {
    "sky": "the sky", "ski slope": "a ski slope", "train station": "a train station"}

_SKY_LABELS = {"airplane", "bird", "kite"}
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
_CLUTTER_SHAPES = ("ellipse", "rectangle", "triangle", "line", "star")
_MAX_COVERED = 0.35  # at most this share of a labelled object may be hidden by later ones


def natural_labels(label_set: str | None = None) -> list[str]:
    """COCO-80 labels that have a sprite (COCO order), or the VOC-20 names (VOC order)."""
    if label_set == "voc":
        return list(VOC_TO_COCO)
    atlas = load_atlas()
    return [name for name in COCO80 if name in atlas]


def _snap(scale: float) -> float:
    return float(_SCALES[np.abs(_SCALES - scale).argmin()])


def _sprite_box(rng: np.random.Generator, sprite: str, label: str, style: str,
                shrink: float) -> Box:
    """Sample a box for ``sprite``: sky labels above the horizon, boats on water, the rest on
    the ground (smaller near the horizon); anywhere indoors."""
    kind = "large" if label in _LARGE else "small" if label in _SMALL else "medium"
    lo, hi = _SIZE_RANGE[kind]
    scale = rng.uniform(lo, hi) * shrink
    horizon = NATURAL_STYLES[style]
    aspect = sprite_aspect(sprite)
    if horizon is None:
        bottom = None
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
        covers = [_overlap(box, other) for other, _ in placed]
        if all(cov[0] + c <= _MAX_COVERED * _box_area(other)
               for (other, cov), c in zip(placed, covers)):
            for (_, cov), c in zip(placed, covers):
                cov[0] += c
            placed.append((box, [0.0]))
            return box
    return None


def _clutter_shape(rng: np.random.Generator, lo: float, hi: float) -> Element:
    kind = _CLUTTER_SHAPES[rng.integers(len(_CLUTTER_SHAPES))]
    s = rng.uniform(lo, hi)
    x0, y0 = rng.uniform(0, 1 - s), rng.uniform(0, 1 - s)
    color = tuple(int(v) for v in rng.integers(20, 236, 3))
    return Element("shape", (x0, y0, x0 + s, y0 + s), (), {"shape": kind, "color": color})


def _natural_layout(rng: np.random.Generator, labels: list[str], sprite_of: dict[str, str],
                    scenes: list[str]) -> tuple[str, str, list[Element]]:
    """Scene type, background style and elements of one natural image."""
    scene = scenes[rng.integers(len(scenes))]
    style, weights = NATURAL_SCENES[scene]
    pool = [label for label in labels if sprite_of[label] in weights]
    p = np.array([weights[sprite_of[label]] for label in pool])
    count = min(len(pool), 1 + int(rng.choice(5, p=[0.2, 0.3, 0.25, 0.15, 0.1])))
    chosen = [pool[k] for k in rng.choice(len(pool), size=count, replace=False, p=p / p.sum())]
    if rng.random() < 0.15:
        outside = [label for label in labels if label not in pool]
        if outside:
            chosen.append(outside[rng.integers(len(outside))])
    if rng.random() < 0.15:
        chosen.append(chosen[rng.integers(len(chosen))])  # a second instance
    indoor = NATURAL_STYLES[style] is None
    elements = [_clutter_shape(rng, 0.04, 0.18) for _ in range(rng.integers(0, 4))]
    clutter_pool = list(_INDOOR_CLUTTER if indoor else _OUTDOOR_CLUTTER)
    # in a label subset (VOC), the scene's other objects appear unlabelled, as in real photos
    labelled = {sprite_of[label] for label in labels}
    extras = [sprite for sprite in weights if sprite not in labelled]
    for _ in range(rng.choice(3, p=[0.5, 0.35, 0.15])):
        name = clutter_pool[rng.integers(len(clutter_pool))]
        elements.append(_sprite_element(rng, name, None, style, []))
    for _ in range(rng.choice(3, p=[0.4, 0.4, 0.2]) if extras else 0):
        name = extras[rng.integers(len(extras))]
        elements.append(_sprite_element(rng, name, None, style, []))
    placed: list[tuple[Box, list[float]]] = []
    for label in chosen:
        el = _sprite_element(rng, sprite_of[label], label, style, placed)
        if el is not None:
            elements.append(el)
    if rng.random() < 0.3:
        el = _clutter_shape(rng, 0.03, 0.07)
        if all(_overlap(el.box, b) + cov[0] <= _MAX_COVERED * _box_area(b) for b, cov in placed):
            elements.append(el)
    return scene, style, elements


def _sprite_element(rng: np.random.Generator, sprite: str, label: str | None, style: str,
                    placed: list[tuple[Box, list[float]]]) -> Element | None:
    flip = bool(rng.random() < 0.5)
    if label is None:
        box = _sprite_box(rng, sprite, sprite, style, 0.8)
    else:
        box = _place(rng, sprite, label, style, placed)
        if box is None:
            return None
    return Element("sprite", box, (label,) if label else (), {"sprite": sprite, "flip": flip})


@lru_cache(maxsize=None)
def _natural_context(label_set: str | None) -> tuple[list[str], dict[str, str], list[str]]:
    """Labels, label -> sprite, and the scene types that can show at least one label."""
    labels = natural_labels(label_set)
    sprite_of = dict(VOC_TO_COCO) if label_set == "voc" else {label: label for label in labels}
    sprites = set(sprite_of.values())
    scenes = [scene for scene, (_, weights) in NATURAL_SCENES.items() if sprites & set(weights)]
    return labels, sprite_of, scenes


_BACKGROUND_FNS = {"natural": _natural_background}

# ----------------------------------------------------------------------------- drawing

def _draw_sprite(img: Image.Image, draw: ImageDraw.ImageDraw, el: Element, size: int) -> None:
    """Paste a sprite centred in its box; ``params["wh"]`` is its unrotated size when it is
    rotated by ``params["angle"]`` degrees."""
    w, h = el.params.get("wh", (el.box[2] - el.box[0], el.box[3] - el.box[1]))
    im = sprite_image(el.params["sprite"], max(1, round(w * size)), max(1, round(h * size)),
                      el.params.get("flip", False), el.params.get("angle", 0))
    cx, cy = (el.box[0] + el.box[2]) * size / 2, (el.box[1] + el.box[3]) * size / 2
    img.paste(im, (round(cx - im.width / 2), round(cy - im.height / 2)), im)


def _draw_shape(img: Image.Image, draw: ImageDraw.ImageDraw, el: Element, size: int) -> None:
    """A clutter shape filling its box."""
    x0, y0, x1, y1 = (v * size for v in el.box)
    color, kind = el.params["color"], el.params["shape"]
    if kind == "ellipse":
        draw.ellipse([x0, y0, x1, y1], fill=color)
    elif kind == "rectangle":
        draw.rectangle([x0, y0, x1, y1], fill=color)
    elif kind == "triangle":
        draw.polygon([(x0, y1), ((x0 + x1) / 2, y0), (x1, y1)], fill=color)
    elif kind == "line":
        draw.line([x0, y1, x1, y0], fill=color, width=max(1, round((x1 - x0) / 8)))
    else:  # star
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
        pts = [(cx + (r if k % 2 == 0 else r / 2.5) * math.sin(k * math.pi / 5),
                cy - (r if k % 2 == 0 else r / 2.5) * math.cos(k * math.pi / 5)) for k in range(10)]
        draw.polygon(pts, fill=color)


def _draw_polygon(img: Image.Image, draw: ImageDraw.ImageDraw, el: Element, size: int) -> None:
    """Polygons (normalised points) in solid colours: ``params["polys"]`` = [(colour, pts)]."""
    for color, pts in el.params["polys"]:
        draw.polygon([(x * size, y * size) for x, y in pts], fill=color)


_DRAWERS = {"sprite": _draw_sprite, "shape": _draw_shape, "polygon": _draw_polygon}


def render_layout(layout: Layout, size: int) -> Image.Image:
    """Render a layout at ``size``² px (RGB)."""
    bg = background(layout.domain, layout.background, layout.variant, size)
    lut = np.clip(np.arange(256)[None, :] * np.asarray(layout.tint)[:, None], 0, 255)
    img = bg.point(lut.astype(np.uint8).ravel().tolist())
    if layout.flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    draw = ImageDraw.Draw(img)
    for el in layout.elements:
        _DRAWERS[el.kind](img, draw, el, size)
    return img


# ----------------------------------------------------------------------------- dataset

_SPLIT_IDS = {split: k for k, split in enumerate(SPLIT_SIZES)}


def _check_domain(domain: str, label_set: str | None) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; valid: {', '.join(DOMAINS)}")
    if label_set not in LABEL_SETS[domain]:
        valid = ", ".join(repr(v) for v in LABEL_SETS[domain])
        raise ValueError(f"unknown label_set {label_set!r} for domain {domain!r}; valid: {valid}")


def domain_labels(domain: str, label_set: str | None = None) -> list[str]:
    """The label names of a domain (and label set), in their canonical order."""
    _check_domain(domain, label_set)
    if domain == "natural":
        return natural_labels(label_set)
    return list(PEDESTRIAN_ATTRIBUTES if domain == "pedestrian" else AERIAL_LABELS)


def domain_scene_types(domain: str) -> list[str]:
    """The scene types of a domain."""
    _check_domain(domain, None)
    return list(NATURAL_SCENES)


def make_layout(domain: str, index: int, split: str = "train", seed: int = 0,
                label_set: str | None = None) -> Layout:
    """The layout of image ``index``, drawn from its own stream (seed, domain, label_set,
    split, index): independent of how many images a dataset holds."""
    _check_domain(domain, label_set)
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLIT_SIZES)}")
    set_id = 1 if label_set == "voc" else 0
    rng = np.random.default_rng(
        [seed, DOMAINS.index(domain), set_id, _SPLIT_IDS[split], index])
    if domain == "natural":
        scene, style, elements = _natural_layout(rng, *_natural_context(label_set))
    elif domain == "pedestrian":
        scene, style, elements = _pedestrian_layout(rng)
    else:
        scene, style, elements = _aerial_layout(rng)
    present: list[str] = []
    for el in elements:
        present += [label for label in el.labels if label not in present]
    named = scene if rng.random() < SCENE_NAME_PROBABILITY else None
    caption = make_caption(present, named, domain, rng)
    tint = tuple(float(v) for v in rng.uniform(0.85, 1.1) * rng.uniform(0.92, 1.08, 3))
    return Layout(domain, scene, style, int(rng.integers(NUM_BACKGROUND_VARIANTS)), tint,
                  bool(rng.random() < 0.5), tuple(elements), tuple(present), caption)


class SyntheticScenes(MultiLabelDataset):
    """Synthetic multi-label scenes of one domain (``natural``, ``pedestrian``, ``aerial``).

    Default sizes per split: :data:`SPLIT_SIZES` (train 4000, val 500, test 1000). Each split
    draws from its own random streams, so splits share no image. Attributes: ``label_names``,
    ``targets`` (N×C float32 0/1), ``masks`` (None: every label counts), ``captions``,
    ``scene_types`` and ``layouts`` (geometry of every element, with the labels it shows).
    ``label_set="voc"`` gives the natural scenes with VOC-20 labels (COCO objects outside VOC
    then appear unlabelled).
    """

    def __init__(self, domain: str = "natural", split: str = "train",
                 num_images: int | None = None, image_size: int = 224,
                 transform: Transform | None = None, seed: int = 0,
                 label_set: str | None = None):
        _check_domain(domain, label_set)
        if split not in SPLIT_SIZES:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLIT_SIZES)}")
        if num_images is not None and num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 px, got {image_size}")
        super().__init__(split, transform, image_size)
        self.domain, self.label_set, self.seed, self.image_size = domain, label_set, seed, image_size
        self.label_names = domain_labels(domain, label_set)
        n = SPLIT_SIZES[split] if num_images is None else num_images
        self.layouts = [make_layout(domain, i, split, seed, label_set) for i in range(n)]
        column = {name: k for k, name in enumerate(self.label_names)}
        self.targets = np.zeros((n, len(self.label_names)), np.float32)
        for i, layout in enumerate(self.layouts):
            self.targets[i, [column[label] for label in layout.labels]] = 1.0
        self.masks = None
        self.captions = [layout.caption for layout in self.layouts]
        self.scene_types = [layout.scene for layout in self.layouts]

    def render(self, i: int) -> Image.Image:
        """Image ``i`` as an RGB PIL image of ``image_size``² px."""
        return render_layout(self.layouts[i], self.image_size)

    def load_image(self, i: int) -> Image.Image:
        return self.render(i)
