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

import gc
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.base import MultiLabelDataset, Transform
from sspa_core.data.labels import load_label_names
from sspa_core.paths import DATA_DIR

DOMAINS: tuple[str, ...] = ("natural", "pedestrian", "aerial")
LABEL_SETS: dict[str, tuple[str | None, ...]] = {
    "natural": (None, "coco", "voc"), "pedestrian": (None,), "aerial": (None,)}
SPLIT_SIZES: dict[str, int] = {"train": 4000, "val": 500, "test": 1000}
SCENE_NAME_PROBABILITY = 0.5  # share of captions that name the scene type (SPEC §4)

# VOC-20 name -> the COCO label whose sprite it uses.
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
        ("a photo of {s} with {o}.", "a picture of {s} showing {o}.", "{s} with {o}.",
         "a scene of {s}: {o}.", "an image of {s} with {o}."),
        ("a photo of {o}.", "a picture showing {o}.", "{o}.", "there is {o}.",
         "an image with {o}.")),
    "pedestrian": (  # the scene phrase carries its preposition ("on a campus")
        ("a pedestrian {s} with {o}.", "a photo of a person {s} with {o}.",
         "a person walking {s}, with {o}."),
        ("a pedestrian with {o}.", "a photo of a person with {o}.",
         "a person walking, with {o}.", "someone with {o}.")),
    "aerial": (
        ("an aerial image of {s} with {o}.", "a satellite view of {s} showing {o}.",
         "{s} seen from above, with {o}.", "a remote sensing image of {s}: {o}."),
        ("an aerial image with {o}.", "a satellite view showing {o}.",
         "seen from above: {o}.", "a remote sensing image of {o}.")),
}


HOLDING = "holding objects"


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
    holding = HOLDING in labels and len(labels) > 1  # a verb phrase: "..., holding objects."
    listed = [label for label in labels if not (holding and label == HOLDING)]
    order = rng.permutation(len(listed))
    objects = join_phrases([with_article(listed[k]) for k in order])
    with_scene, without_scene = _TEMPLATES[domain]
    if scene is None:
        caption = without_scene[rng.integers(len(without_scene))].format(o=objects)
    else:
        template = with_scene[rng.integers(len(with_scene))]
        caption = template.format(s=SCENE_PHRASES.get(scene, with_article(scene)), o=objects)
    return caption[:-1] + f", {HOLDING}." if holding else caption


# ----------------------------------------------------------------------------- backgrounds

NUM_BACKGROUND_VARIANTS = 6
_BACKGROUND_CACHE: dict[tuple[str, int, int, bool], Image.Image] = {}
Color = tuple[int, int, int]


def _jitter(rng: np.random.Generator, color: Color, amount: int = 18) -> Color:
    delta = rng.integers(-amount, amount + 1, 3).tolist()
    return tuple(min(255, max(0, c + d)) for c, d in zip(color, delta))


def _draw(rng: np.random.Generator, probs: tuple[float, ...]) -> int:
    """Index drawn with the given probabilities (faster than ``rng.choice`` for one draw)."""
    u, acc = rng.random(), 0.0
    for k, pk in enumerate(probs):
        acc += pk
        if u < acc:
            return k
    return len(probs) - 1


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
        split = horizon + rng.uniform(-0.04, 0.04)
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


def background(domain: str, style: str, variant: int, size: int, flip: bool = False) -> Image.Image:
    """Background ``variant`` of ``style`` at ``size``² px, optionally mirrored (cached; never
    mutate it)."""
    key = (style, variant, size, flip)
    im = _BACKGROUND_CACHE.get(key)
    if im is None:
        if flip:
            im = background(domain, style, variant, size).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            style_id = sum(ord(ch) * (k + 1) for k, ch in enumerate(style))
            im = _BACKGROUND_FNS[domain](style, size, np.random.default_rng([style_id, variant, 7]))
        _BACKGROUND_CACHE[key] = im
    return im


# ----------------------------------------------------------------------------- natural domain

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
SCENE_PHRASES: dict[str, str] = {"sky": "the sky"}

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
_CLUTTER_SHAPES = ("ellipse", "rectangle", "triangle", "line", "star")
_MAX_COVERED = 0.35  # at most this share of a labelled object may be hidden by later ones


def natural_labels(label_set: str | None = None) -> list[str]:
    """COCO-80 labels that have a sprite (COCO order), or the VOC-20 names (VOC order)."""
    if label_set == "voc":
        return load_label_names("voc")
    atlas = load_atlas()
    return [name for name in load_label_names("coco") if name in atlas]


def _snap(scale: float) -> float:
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
    count = min(len(pool), 1 + _draw(rng, (0.2, 0.3, 0.25, 0.15, 0.1)))
    keys = np.log(p) - np.log(-np.log(rng.random(len(pool))))  # Gumbel top-k: weighted,
    chosen = [pool[k] for k in np.argsort(-keys)[:count]]      # without replacement
    if rng.random() < 0.15:
        outside = [label for label in labels if label not in pool]
        if outside:
            chosen.append(outside[rng.integers(len(outside))])
    if rng.random() < 0.15:
        chosen.append(chosen[rng.integers(len(chosen))])  # a second instance
    indoor = style in _INDOOR
    elements = [_clutter_shape(rng, 0.04, 0.18) for _ in range(rng.integers(0, 4))]
    clutter_pool = list(_INDOOR_CLUTTER if indoor else _OUTDOOR_CLUTTER)
    # in a label subset (VOC), the scene's other objects appear unlabelled, as in real photos
    labelled = {sprite_of[label] for label in labels}
    extras = [sprite for sprite in weights if sprite not in labelled]
    for _ in range(_draw(rng, (0.5, 0.35, 0.15))):
        name = clutter_pool[rng.integers(len(clutter_pool))]
        elements.append(_sprite_element(rng, name, None, style, []))
    for _ in range(_draw(rng, (0.4, 0.4, 0.2)) if extras else 0):
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
    bg = background(layout.domain, layout.background, layout.variant, size, layout.flip)
    lut = np.clip(np.arange(256)[None, :] * np.asarray(layout.tint)[:, None], 0, 255)
    img = bg.point(lut.astype(np.uint8).ravel().tolist())
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
    return list({"natural": NATURAL_SCENES, "pedestrian": PEDESTRIAN_SCENES,
                 "aerial": AERIAL_SCENES}[domain])


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

    def render(self, i: int) -> Image.Image:
        """Image ``i`` as an RGB PIL image of ``image_size``² px."""
        return render_layout(self.layouts[i], self.image_size)

    def load_image(self, i: int) -> Image.Image:
        return self.render(i)


# ----------------------------------------------------------------------------- pedestrian domain

PEDESTRIAN_ATTRIBUTES: tuple[str, ...] = (
    "hat", "glasses", "long hair", "scarf", "short sleeves", "long sleeves", "long coat",
    "trousers", "shorts", "skirt", "boots", "backpack", "handbag", "shoulder bag",
    "holding objects")

# scene type -> attribute probabilities (sleeves and lower garment: exactly one each)
PEDESTRIAN_SCENES: dict[str, dict[str, float]] = {
    "summer street": {"short sleeves": .85, "long coat": 0, "shorts": .4, "skirt": .25,
                      "hat": .35, "glasses": .45, "boots": .03, "scarf": 0, "backpack": .25,
                      "handbag": .25, "shoulder bag": .2, "holding objects": .3},
    "winter street": {"short sleeves": .03, "long coat": .55, "shorts": 0, "skirt": .1,
                      "hat": .5, "glasses": .2, "boots": .55, "scarf": .55, "backpack": .25,
                      "handbag": .2, "shoulder bag": .2, "holding objects": .2},
    "rainy street": {"short sleeves": .15, "long coat": .4, "shorts": .05, "skirt": .15,
                     "hat": .25, "glasses": .15, "boots": .5, "scarf": .2, "backpack": .25,
                     "handbag": .25, "shoulder bag": .2, "holding objects": .6},
    "office district": {"short sleeves": .3, "long coat": .25, "shorts": .02, "skirt": .25,
                        "hat": .1, "glasses": .45, "boots": .1, "scarf": .15, "backpack": .15,
                        "handbag": .3, "shoulder bag": .4, "holding objects": .4},
    "shopping street": {"short sleeves": .5, "long coat": .15, "shorts": .15, "skirt": .3,
                        "hat": .25, "glasses": .3, "boots": .15, "scarf": .1, "backpack": .15,
                        "handbag": .5, "shoulder bag": .3, "holding objects": .55},
    "campus": {"short sleeves": .55, "long coat": .1, "shorts": .25, "skirt": .15, "hat": .3,
               "glasses": .45, "boots": .1, "scarf": .1, "backpack": .7, "handbag": .1,
               "shoulder bag": .25, "holding objects": .35},
}
SCENE_PHRASES.update({scene: ("in an " if scene.startswith("office") else "on a ") + scene
                      for scene in PEDESTRIAN_SCENES})
_HELD = {"summer street": ("takeout cup", "cell phone"), "winter street": ("takeout cup", "cell phone"),
         "rainy street": ("closed umbrella",), "office district": ("briefcase", "cell phone", "takeout cup"),
         "shopping street": ("shopping bags", "cell phone"), "campus": ("book", "cell phone", "takeout cup")}
_HATS = {"summer street": ("sun hat", "billed cap"), "winter street": ("top hat", "billed cap")}
_SKIN = ((255, 220, 185), (235, 190, 150), (200, 150, 110), (150, 100, 70), (100, 65, 45))
_HAIR = ((30, 25, 20), (70, 45, 25), (130, 90, 50), (210, 180, 120), (150, 150, 150))
_CLOTHES = ((30, 30, 35), (240, 240, 240), (40, 60, 120), (150, 30, 40), (60, 110, 60),
            (200, 170, 120), (120, 120, 125), (230, 190, 60), (90, 60, 120), (70, 130, 180),
            (200, 100, 130), (100, 70, 50))
_PEDESTRIAN_CLUTTER = ("blossom", "rock", "package", "construction barrier", "fallen leaf",
                       "balloon", "light bulb")


def _pedestrian_background(style: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A street-side backdrop: facade above, pavement below."""
    S = size
    wall, ground = {
        "summer street": ((235, 215, 180), (200, 195, 185)),
        "winter street": ((190, 185, 185), (235, 238, 245)),
        "rainy street": ((120, 125, 135), (85, 90, 95)),
        "office district": ((150, 175, 195), (170, 170, 170)),
        "shopping street": ((210, 200, 195), (185, 180, 175)),
        "campus": ((170, 90, 70), (120, 170, 90))}[style]
    split = rng.uniform(0.6, 0.72)
    c = _gradient(S, _jitter(rng, wall, 25), _jitter(rng, wall, 25), 0, split)
    _gradient(S, _jitter(rng, ground, 15), _jitter(rng, ground, 15), split, 1, c)
    im = _finish(c, rng, 4)
    d = ImageDraw.Draw(im)
    if style in ("office district", "shopping street"):
        step = rng.uniform(0.18, 0.28)
        for x in np.arange(rng.uniform(0, step), 1, step):
            color = (120, 150, 175) if style == "office district" else _jitter(rng, (90, 140, 160), 60)
            d.rectangle([x * S, 0.08 * S, (x + step * 0.8) * S, (split - 0.1) * S], fill=color,
                        outline=(60, 60, 70), width=max(1, S // 100))
    elif style == "campus":
        _stripes(d, S, 0, split, 0.05, (140, 70, 55), vertical=False)
    else:
        for x in np.arange(rng.uniform(0, 0.3), 1, 0.3):
            d.rectangle([x * S, 0.1 * S, (x + 0.12) * S, 0.3 * S], fill=(90, 110, 140))
    for x in np.arange(-0.5, 1.5, 0.15):  # paving joints in perspective
        d.line([(0.5 + (x - 0.5) * 0.6) * S, split * S, x * S, S], fill=tuple(int(v * 0.85) for v in ground))
    if style == "rainy street":
        for _ in range(3):
            x, y = rng.uniform(0, 0.8), rng.uniform(split + 0.05, 0.95)
            d.ellipse([x * S, y * S, (x + 0.2) * S, (y + 0.04) * S], fill=(110, 120, 135))
    return im


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _poly_element(polys: list[tuple[Color, list[tuple[float, float]]]],
                  labels: tuple[str, ...] = ()) -> Element:
    xs = [x for _, pts in polys for x, _ in pts]
    ys = [y for _, pts in polys for _, y in pts]
    return Element("polygon", (min(xs), min(ys), max(xs), max(ys)), labels, {"polys": polys})


def _sprite_at(sprite: str, cx: float, cy: float, width: float, labels: tuple[str, ...],
               flip: bool = False) -> Element:
    """A sprite of a given normalised width centred at (cx, cy)."""
    w, h = width, width / sprite_aspect(sprite)
    return Element("sprite", (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), labels,
                   {"sprite": sprite, "flip": flip})


def _pedestrian_layout(rng: np.random.Generator) -> tuple[str, str, list[Element]]:
    """An upright pedestrian whose worn and carried items are the attribute labels."""
    scenes = list(PEDESTRIAN_SCENES)
    scene = scenes[rng.integers(len(scenes))]
    prior = PEDESTRIAN_SCENES[scene]
    on = {name: bool(rng.random() < p) for name, p in prior.items()}
    on["long hair"] = bool(rng.random() < 0.4)
    front = bool(rng.random() < 0.65)  # back view otherwise: no face, no glasses
    on["glasses"] &= front
    if on["long coat"]:
        lower = "trousers"  # a skirt or shorts would hide under the coat
    else:
        p_sh, p_sk = prior["shorts"], prior["skirt"]
        lower = ("shorts", "skirt", "trousers")[_draw(rng, (p_sh, p_sk, 1 - p_sh - p_sk))]
    u = rng.uniform(0.8, 0.92)
    top = (1 - u) / 2 + rng.uniform(-0.02, 0.02)
    cx = 0.5 + rng.uniform(-0.06, 0.06)

    def Y(f: float) -> float:
        return top + f * u

    def X(f: float) -> float:
        return cx + f * u

    skin, hair = _SKIN[rng.integers(len(_SKIN))], _HAIR[rng.integers(len(_HAIR))]
    upper_c, lower_c, coat_c = (_jitter(rng, _CLOTHES[k], 12)
                                for k in rng.permutation(len(_CLOTHES))[:3])
    elements: list[Element] = []
    for _ in range(rng.integers(0, 3)):  # clutter at the sides and on the wall
        el = _clutter_shape(rng, 0.04, 0.12)
        if el.box[2] < X(-0.2) or el.box[0] > X(0.2):
            elements.append(el)
    if rng.random() < 0.4:
        name = _PEDESTRIAN_CLUTTER[rng.integers(len(_PEDESTRIAN_CLUTTER))]
        side = -1 if rng.random() < 0.5 else 1
        elements.append(_sprite_at(name, X(side * rng.uniform(0.3, 0.4)), Y(rng.uniform(0.75, 0.9)),
                                   0.12, ()))
    side = -1 if rng.random() < 0.5 else 1  # the side of the backpack / handbag
    if on["backpack"] and front:
        elements.append(_sprite_at("backpack", X(side * 0.13), Y(0.3), 0.24 * u, ("backpack",)))
    hair_poly = (hair, [(X(-0.075), Y(0.04)), (X(0.075), Y(0.04)), (X(0.08), Y(0.27)),
                        (X(-0.08), Y(0.27))])
    if on["long hair"] and front:
        elements.append(_poly_element([hair_poly], ("long hair",)))
    # body: legs, arms, neck
    body = [(skin, _rect(X(-0.02), Y(0.11), X(0.02), Y(0.17))),
            (skin, [(X(-0.125), Y(0.17)), (X(-0.175), Y(0.17)), (X(-0.17), Y(0.52)), (X(-0.125), Y(0.52))]),
            (skin, [(X(0.125), Y(0.17)), (X(0.175), Y(0.17)), (X(0.17), Y(0.52)), (X(0.125), Y(0.52))]),
            (skin, _rect(X(-0.09), Y(0.48), X(-0.015), Y(0.93))),
            (skin, _rect(X(0.015), Y(0.48), X(0.09), Y(0.93)))]
    elements.append(_poly_element(body))
    hem = {"trousers": 0.93, "shorts": 0.64, "skirt": 0.72}[lower]
    if lower == "skirt":
        lower_polys = [(lower_c, [(X(-0.1), Y(0.47)), (X(0.1), Y(0.47)), (X(0.14), Y(hem)), (X(-0.14), Y(hem))])]
    else:
        lower_polys = [(lower_c, _rect(X(-0.1), Y(0.47), X(0.1), Y(0.55))),
                       (lower_c, _rect(X(-0.1), Y(0.5), X(-0.005), Y(hem))),
                       (lower_c, _rect(X(0.005), Y(0.5), X(0.1), Y(hem)))]
    elements.append(_poly_element(lower_polys, (lower,)))
    boots = on["boots"]
    shoe = (("womans boot", "hiking boot") if boots else ("sneaker", "flat shoe"))[rng.integers(2)]
    for f, flip in ((-0.06, True), (0.06, False)):
        width = 0.12 * u
        h = width / sprite_aspect(shoe)
        el = _sprite_at(shoe, X(f), Y(0.975) - h / 2, width, ("boots",) if boots else (), flip)
        elements.append(el)
    sleeve_end = 0.5 if not on["short sleeves"] else 0.29
    if on["long coat"]:
        labels, color, hem_u, sleeve_end = ("long coat", "long sleeves"), coat_c, 0.76, 0.5
    else:
        labels = ("short sleeves",) if on["short sleeves"] else ("long sleeves",)
        color, hem_u = upper_c, 0.52
    width = 0.15 if on["long coat"] else 0.125
    upper = [(color, [(X(-0.125), Y(0.16)), (X(0.125), Y(0.16)), (X(width), Y(hem_u)), (X(-width), Y(hem_u))]),
             (color, [(X(-0.125), Y(0.16)), (X(-0.18), Y(0.17)), (X(-0.18), Y(sleeve_end)), (X(-0.123), Y(sleeve_end))]),
             (color, [(X(0.125), Y(0.16)), (X(0.18), Y(0.17)), (X(0.18), Y(sleeve_end)), (X(0.123), Y(sleeve_end))])]
    if rng.random() < 0.35:  # stripes or a logo, not labels
        accent = _jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 10)
        if rng.random() < 0.5:
            upper += [(accent, _rect(X(-0.12), Y(f), X(0.12), Y(f + 0.02))) for f in (0.24, 0.3, 0.36)]
        else:
            upper.append((accent, _rect(X(-0.04), Y(0.24), X(0.04), Y(0.31))))
    elements.append(_poly_element(upper, labels))
    if on["backpack"] and not front:
        elements.append(_sprite_at("backpack", X(0), Y(0.3), 0.24 * u, ("backpack",)))
    elif on["backpack"]:
        strap = _jitter(rng, (60, 60, 60), 10)
        elements.append(_poly_element(
            [(strap, _rect(X(-0.1), Y(0.16), X(-0.075), Y(0.36))),
             (strap, _rect(X(0.075), Y(0.16), X(0.1), Y(0.36)))], ("backpack",)))
    if on["long hair"] and not front:
        elements.append(_poly_element([hair_poly], ("long hair",)))
    head = [(skin, [(X(0.065 * math.cos(a)), Y(0.07 + 0.065 * math.sin(a)))
                    for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)])]
    if front:
        head.append((hair, [(X(0.067 * math.cos(a)), Y(0.062 + 0.06 * math.sin(a)))
                            for a in np.linspace(math.pi, 2 * math.pi, 9)]))
        head += [((40, 30, 30), _rect(X(d - 0.008), Y(0.075), X(d + 0.008), Y(0.09))) for d in (-0.025, 0.025)]
    else:
        head.append((hair, [(X(0.067 * math.cos(a)), Y(0.07 + 0.067 * math.sin(a)))
                            for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)]))
    elements.append(_poly_element(head))
    if on["scarf"]:
        elements.append(_sprite_at("scarf", X(0), Y(0.24), 0.14 * u, ("scarf",)))
    if on["glasses"]:
        name = "sunglasses" if rng.random() < (0.7 if scene == "summer street" else 0.2) else "eyeglasses"
        elements.append(_sprite_at(name, X(0), Y(0.08), 0.13 * u, ("glasses",)))
    if on["hat"]:
        hats = _HATS.get(scene, ("billed cap", "top hat", "sun hat"))
        name = hats[rng.integers(len(hats))]
        width = (0.2 if name == "sun hat" else 0.15) * u
        h = width / sprite_aspect(name)
        elements.append(_sprite_at(name, X(0), Y(0.04) - h / 2 + 0.02 * u, width, ("hat",),
                                   bool(rng.random() < 0.5)))
    if on["shoulder bag"]:
        strap_c = _jitter(rng, (70, 50, 40), 15)
        elements.append(_poly_element(
            [(strap_c, [(X(side * 0.11), Y(0.16)), (X(side * 0.08), Y(0.16)),
                        (X(-side * 0.17), Y(0.46)), (X(-side * 0.2), Y(0.46))])], ("shoulder bag",)))
        name = ("pouch", "briefcase", "purse")[rng.integers(3)]
        elements.append(_sprite_at(name, X(-side * 0.2), Y(0.5), 0.15 * u, ("shoulder bag",)))
    if on["handbag"]:
        elements.append(_sprite_at("handbag", X(side * 0.21), Y(0.6), 0.16 * u, ("handbag",),
                                   bool(rng.random() < 0.5)))
    if on["holding objects"]:
        held = _HELD[scene][rng.integers(len(_HELD[scene]))]
        if held in ("closed umbrella", "shopping bags", "briefcase"):  # carried at the side
            width = {"closed umbrella": 0.22, "shopping bags": 0.18, "briefcase": 0.16}[held] * u
            elements.append(_sprite_at(held, X(-side * 0.2), Y(0.62), width, ("holding objects",)))
        else:  # held up in front of the chest
            forearm = (color, [(X(-0.16), Y(0.34)), (X(-0.16), Y(0.29)), (X(0.0), Y(0.37)),
                               (X(0.0), Y(0.42))])
            hand = (skin, _rect(X(-0.01), Y(0.36), X(0.04), Y(0.42)))
            elements.append(_poly_element([forearm, hand], ("holding objects",)))
            elements.append(_sprite_at(held, X(0.03), Y(0.35), 0.1 * u, ("holding objects",)))
    return scene, scene, elements



# ----------------------------------------------------------------------------- aerial domain

AERIAL_LABELS: tuple[str, ...] = (
    "water", "trees", "grass", "buildings", "road", "cars", "parking lot", "airplane", "runway",
    "ship", "farmland", "sand", "court", "swimming pool")

# scene type -> (ground style, {label: probability})
AERIAL_SCENES: dict[str, tuple[str, dict[str, float]]] = {
    "harbour": ("urban", {"water": 1, "ship": .95, "buildings": .7, "road": .6, "cars": .45,
                          "parking lot": .25, "trees": .3}),
    "airport": ("urban", {"runway": 1, "airplane": .85, "grass": .8, "buildings": .5,
                          "road": .5, "parking lot": .4, "cars": .45}),
    "residential area": ("urban", {"buildings": 1, "road": .9, "trees": .8, "cars": .6,
                                   "grass": .4, "swimming pool": .35, "court": .15}),
    "agricultural land": ("soil", {"farmland": 1, "road": .5, "trees": .5, "buildings": .3,
                                   "water": .25}),
    "beach": ("dry", {"sand": 1, "water": 1, "trees": .4, "buildings": .3, "road": .3,
                      "swimming pool": .2, "ship": .25, "cars": .2}),
    "forest": ("soil", {"trees": 1, "road": .3, "water": .3, "grass": .3}),
    "river": ("soil", {"water": 1, "trees": .6, "grass": .6, "farmland": .4, "road": .4,
                       "buildings": .3}),
    "park": ("soil", {"grass": 1, "trees": .9, "court": .5, "water": .4, "road": .4,
                      "swimming pool": .2}),
    "parking area": ("urban", {"parking lot": 1, "cars": .95, "buildings": .7, "road": .8,
                               "trees": .3}),
    "sports complex": ("urban", {"court": 1, "grass": .6, "parking lot": .4, "cars": .4,
                                 "buildings": .4, "trees": .4, "swimming pool": .3}),
    "industrial area": ("urban", {"buildings": 1, "road": .9, "parking lot": .5, "cars": .5,
                                  "water": .2}),
    "desert": ("dry", {"sand": 1, "road": .3, "buildings": .2, "cars": .2}),
}
SCENE_PHRASES.update({"agricultural land": "agricultural land", "desert": "a desert"})
_GRID = 64  # occupancy grid of the aerial layouts (cells per side)
_CELL = {"ground": 0, "water": 1, "sand": 2, "farmland": 3, "grass": 4, "road": 5,
         "runway": 6, "parking lot": 7, "buildings": 8, "court": 9, "swimming pool": 10,
         "trees": 11, "cars": 12, "airplane": 13, "ship": 14}
_LAND = ("ground", "sand", "farmland", "grass")
_TEXTURES = {"water": (45, 95, 140), "sand": (222, 205, 160), "grass": (105, 150, 70)}
_TEXTURE_CACHE: dict[tuple[str, int], Image.Image] = {}
Points = list[tuple[float, float]]


def _mottled(size: int, color: Color, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A colour with low-frequency blotches (``low``) and grain (``high``), H×W×3 float."""
    coarse = rng.normal(0.0, low, (size // 16 + 2, size // 16 + 2)).astype(np.float32)
    blot = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))
    grain = rng.normal(0.0, high, (size, size)).astype(np.float32)
    return np.asarray(color, np.float32) + (blot + grain)[..., None]


def _aerial_background(style: str, size: int, rng: np.random.Generator) -> Image.Image:
    """Bare ground seen from above: ``urban`` (concrete), ``soil`` or ``dry``."""
    color = {"urban": (175, 170, 160), "soil": (140, 120, 90), "dry": (165, 135, 110)}[style]
    return _finish(_mottled(size, _jitter(rng, color, 12), rng, 10, 4), rng, 2)


def texture(kind: str, size: int) -> Image.Image:
    """A full-size texture for a land-cover region (cached)."""
    key = (kind, size)
    if key not in _TEXTURE_CACHE:
        rng = np.random.default_rng([len(kind), size, 11])
        arr = _mottled(size, _TEXTURES[kind], rng, {"water": 6, "sand": 8, "grass": 12}[kind],
                       {"water": 2, "sand": 6, "grass": 7}[kind])
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        if kind == "water":
            d = ImageDraw.Draw(im)
            for _ in range(size // 3):
                x, y = rng.uniform(0, size, 2)
                d.line([x, y, x + size * 0.03, y], fill=(70, 125, 165))
        _TEXTURE_CACHE[key] = im
    return _TEXTURE_CACHE[key]


def _draw_texture(img: Image.Image, draw: ImageDraw.ImageDraw, el: Element, size: int) -> None:
    """Fill polygons with a land-cover texture through a mask cropped to the element's box."""
    x0, y0, x1, y1 = _pixel_box(el.box, size)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(size, x1), min(size, y1)
    if x1 <= x0 or y1 <= y0:
        return
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    mdraw = ImageDraw.Draw(mask)
    for pts in el.params["polys"]:
        mdraw.polygon([(x * size - x0, y * size - y0) for x, y in pts], fill=255)
    img.paste(texture(el.params["texture"], size).crop((x0, y0, x1, y1)), (x0, y0), mask)


def _draw_crowns(img: Image.Image, draw: ImageDraw.ImageDraw, el: Element, size: int) -> None:
    """Tree crowns seen from above: a shadow, the crown and a highlight."""
    for cx, cy, r, color in el.params["crowns"]:
        x, y, rr = cx * size, cy * size, max(1.0, r * size)
        draw.ellipse([x - rr * 0.7, y - rr * 0.5, x + rr * 1.2, y + rr * 1.2], fill=(45, 55, 35))
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=color)
        if rr > 2:
            draw.ellipse([x - rr * 0.6, y - rr * 0.6, x, y], fill=tuple(min(255, v + 25) for v in color))


_DRAWERS.update({"texture": _draw_texture, "crowns": _draw_crowns})


def _rotated_rect(cx: float, cy: float, length: float, width: float, angle: float) -> Points:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + c * dx - s * dy, cy + s * dx + c * dy)
            for dx, dy in ((-length / 2, -width / 2), (length / 2, -width / 2),
                           (length / 2, width / 2), (-length / 2, width / 2))]


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 14) -> Points:
    return [(cx + rx * rng.uniform(0.75, 1.15) * math.cos(a), cy + ry * rng.uniform(0.75, 1.15) * math.sin(a))
            for a in np.linspace(0, 2 * math.pi, n, endpoint=False)]


def _bounds(polys: list[Points], pad: float = 0.0) -> Box:
    xs = [x for pts in polys for x, _ in pts]
    ys = [y for pts in polys for _, y in pts]
    return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


class _AerialCanvas:
    """Layout builder: elements plus a coarse occupancy grid of the top-most cover class, used
    to put things where they belong (ships on water, cars on roads) and to keep only labels
    that stay visible."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.cls = np.zeros((_GRID, _GRID), np.int8)
        self.owner = np.full((_GRID, _GRID), -1, np.int32)
        self.elements: list[Element] = []

    @staticmethod
    @lru_cache(maxsize=None)
    def _lut(allowed: tuple[str, ...]) -> np.ndarray:
        lut = np.zeros(len(_CELL), bool)
        lut[[_CELL[a] for a in allowed]] = True
        return lut

    def cells(self, polys: list[Points]) -> np.ndarray:
        mask = Image.new("L", (_GRID, _GRID), 0)
        d = ImageDraw.Draw(mask)
        for pts in polys:
            d.polygon([(x * _GRID, y * _GRID) for x, y in pts], fill=255)
        return np.asarray(mask) > 0

    def add(self, el: Element, polys: list[Points], cover: str) -> None:
        m = self.cells(polys)
        self.cls[m] = _CELL[cover]
        self.owner[m] = len(self.elements)
        self.elements.append(el)

    def free(self, polys: list[Points], allowed: tuple[str, ...], share: float = 1.0) -> bool:
        """Whether at least ``share`` of the cells under the bounding box of ``polys`` have an
        allowed cover class."""
        x0, y0, x1, y1 = (min(max(int(v * _GRID), 0), _GRID) for v in _bounds(polys))
        under = self.cls[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
        return under.size > 0 and float(self._lut(allowed)[under].mean()) >= share

    def mark(self, polys: list[Points], cover: str) -> None:
        """Claim the bounding box of ``polys`` for ``cover`` (keeps later spots off it)."""
        x0, y0, x1, y1 = (min(max(int(v * _GRID), 0), _GRID) for v in _bounds(polys))
        self.cls[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = _CELL[cover]

    def spots(self, allowed: tuple[str, ...], k: int) -> list[tuple[float, float]]:
        """``k`` random points on cells of an allowed class (none if there is no such cell)."""
        ys, xs = np.nonzero(self._lut(allowed)[self.cls])
        if len(xs) == 0:
            return []
        pick = self.rng.integers(len(xs), size=k)
        jitter = self.rng.random((k, 2))
        return list(zip(((xs[pick] + jitter[:, 0]) / _GRID).tolist(),
                        ((ys[pick] + jitter[:, 1]) / _GRID).tolist()))

    def spot(self, allowed: tuple[str, ...]) -> tuple[float, float] | None:
        found = self.spots(allowed, 1)
        return found[0] if found else None

    def visible_elements(self, min_cells: dict[str, int]) -> list[Element]:
        """Drop every element no longer visible, and every label whose visible cells fall
        below ``min_cells`` (default 1)."""
        counts = np.bincount(self.owner[self.owner >= 0], minlength=len(self.elements))
        per_label: dict[str, int] = {}
        for el, n in zip(self.elements, counts):
            for label in el.labels:
                per_label[label] = per_label.get(label, 0) + int(n)
        weak = {label for label, n in per_label.items() if n < min_cells.get(label, 1)}
        return [el for el, n in zip(self.elements, counts)
                if (n > 0 or not el.labels) and not weak & set(el.labels)]


def _aerial_region(cv: _AerialCanvas, label: str, scene: str) -> None:
    """Water, sand, grass or farmland: a large region."""
    rng = cv.rng
    if label == "farmland":
        x0, y0 = rng.uniform(-0.1, 0.3, 2)
        x1, y1 = rng.uniform(0.7, 1.1, 2)
        xs = np.sort(np.r_[x0, rng.uniform(x0, x1, rng.integers(1, 4)), x1])
        ys = np.sort(np.r_[y0, rng.uniform(y0, y1, rng.integers(1, 4)), y1])
        polys, all_pts = [], []
        for a, b in zip(xs[:-1], xs[1:]):
            for c, d in zip(ys[:-1], ys[1:]):
                if b - a < 0.04 or d - c < 0.04:
                    continue
                color = _jitter(rng, ((120, 150, 60), (170, 160, 80), (95, 125, 55), (150, 120, 80))[rng.integers(4)], 12)
                field_pts = _rect(a + 0.006, c + 0.006, b - 0.006, d - 0.006)
                polys.append((color, field_pts))
                line = tuple(int(v * 0.85) for v in color)
                step = rng.uniform(0.015, 0.03)
                if rng.random() < 0.5:
                    polys += [(line, _rect(x, c + 0.006, x + step / 3, d - 0.006)) for x in np.arange(a + 0.01, b - 0.01, step)]
                else:
                    polys += [(line, _rect(a + 0.006, y, b - 0.006, y + step / 3)) for y in np.arange(c + 0.01, d - 0.01, step)]
                all_pts.append(field_pts)
        if all_pts:
            el = Element("polygon", _bounds(all_pts), ("farmland",), {"polys": polys})
            cv.add(el, all_pts, "farmland")
        return
    transpose = bool(rng.random() < 0.5)  # vertical coast / river
    if label == "water":
        kind = {"harbour": "coast", "beach": "coast", "river": "river"}.get(scene, ("lake", "river")[rng.integers(2)])
        if kind == "coast":
            edge = rng.uniform(0.4, 0.6)
            xs = np.linspace(-0.05, 1.05, 9)
            ys = edge + np.cumsum(rng.normal(0, 0.025, 9))
            pts = [(x, y) for x, y in zip(xs, ys)] + [(1.05, 1.05), (-0.05, 1.05)]
            if scene == "beach":  # a sand strip along the shore, under the water
                width = rng.uniform(0.08, 0.16)
                sand = [(x, y - width) for x, y in zip(xs, ys)] + [(1.05, 1.05), (-0.05, 1.05)]
                sand = [(y, x) for x, y in sand] if transpose else sand
                cv.add(Element("texture", _bounds([sand]), ("sand",), {"texture": "sand", "polys": [sand]}),
                       [sand], "sand")
        elif kind == "river":
            xs = np.linspace(-0.05, 1.05, 10)
            mid = rng.uniform(0.3, 0.7) + np.cumsum(rng.normal(0, 0.03, 10))
            w = rng.uniform(0.06, 0.12)
            pts = [(x, y - w) for x, y in zip(xs, mid)] + [(x, y + w) for x, y in zip(xs[::-1], mid[::-1])]
        else:
            pts = _blob(rng, *rng.uniform(0.3, 0.7, 2), *rng.uniform(0.12, 0.25, 2))
        if transpose:
            pts = [(y, x) for x, y in pts]
        cv.add(Element("texture", _bounds([pts]), ("water",), {"texture": "water", "polys": [pts]}), [pts], "water")
        return
    if label == "sand":
        pts = _blob(rng, *rng.uniform(0.35, 0.65, 2), *rng.uniform(0.3, 0.5, 2))
        cv.add(Element("texture", _bounds([pts]), ("sand",), {"texture": "sand", "polys": [pts]}), [pts], "sand")
        return
    # grass: one to three patches
    polys = [_blob(rng, *rng.uniform(0.2, 0.8, 2), *rng.uniform(0.12, 0.3, 2)) for _ in range(rng.integers(1, 4))]
    cv.add(Element("texture", _bounds(polys), ("grass",), {"texture": "grass", "polys": polys}), polys, "grass")


def _aerial_band(cv: _AerialCanvas, label: str) -> Points:
    """A road or a runway crossing the tile, with its markings."""
    rng = cv.rng
    runway = label == "runway"
    angle = (0.0, math.pi / 2, float(rng.uniform(0, math.pi)))[int(rng.integers(3))]
    cx, cy = rng.uniform(0.3, 0.7, 2)
    width = rng.uniform(0.1, 0.14) if runway else rng.uniform(0.035, 0.06)
    length = 1.3 if not runway else rng.uniform(0.8, 1.3)
    band = _rotated_rect(cx, cy, length, width, angle)
    color = (70, 70, 72) if runway else _jitter(rng, (95, 95, 100), 12)
    polys = [(color, band)]
    mark = (240, 240, 240) if runway or rng.random() < 0.5 else (235, 200, 60)
    c, s = math.cos(angle), math.sin(angle)
    for t in np.arange(-length / 2 + 0.04, length / 2 - 0.04, 0.08 if runway else 0.06):
        polys.append((mark, _rotated_rect(cx + c * t, cy + s * t, 0.035 if runway else 0.025,
                                          0.006 if runway else 0.004, angle)))
    if runway:
        for end in (-1, 1):
            t = end * (length / 2 - 0.03)
            for k in (-2, -1, 1, 2):
                off = k * width / 6
                polys.append((mark, _rotated_rect(cx + c * t - s * off, cy + s * t + c * off, 0.03, 0.008, angle)))
    el = Element("polygon", _bounds([band]), (label,), {"polys": polys})
    cv.add(el, [band], label)
    return band


def _aerial_structure(cv: _AerialCanvas, label: str, scene: str) -> None:
    """Parking lots, courts, pools and buildings on free land."""
    rng = cv.rng
    count = {"buildings": int(rng.integers(3, 12)) if scene in ("residential area", "industrial area") else int(rng.integers(1, 5)),
             "court": int(rng.integers(1, 4)) if scene == "sports complex" else 1,
             "swimming pool": int(rng.integers(1, 3))}.get(label, 1)
    allowed = _LAND + (("parking lot",) if label == "buildings" else ())
    polys_all: list[tuple[Color, Points]] = []
    cover: list[Points] = []
    for spot in cv.spots(_LAND, count * 6):
        if len(cover) == count:
            break
        w, h = {"parking lot": rng.uniform(0.2, 0.35, 2), "court": (0.14, 0.08),
                "swimming pool": rng.uniform(0.04, 0.08, 2),
                "buildings": rng.uniform(0.05, 0.15 if scene == "industrial area" else 0.1, 2)}[label]
        if label == "court" and rng.random() < 0.5:
            w, h = h, w
        rect = _rect(spot[0] - w / 2, spot[1] - h / 2, spot[0] + w / 2, spot[1] + h / 2)
        if not cv.free([rect], allowed):
            continue
        x0, y0, x1, y1 = rect[0][0], rect[0][1], rect[2][0], rect[2][1]
        if label == "parking lot":
            polys_all.append(((120, 120, 122), rect))
            for x in np.arange(x0 + 0.02, x1 - 0.01, 0.025):
                for yy in (y0 + 0.01, (y0 + y1) / 2 + 0.01):
                    polys_all.append(((235, 235, 235), _rect(x, yy, x + 0.003, yy + 0.04)))
        elif label == "court":
            base = ((70, 140, 80), (60, 110, 170), (185, 95, 60))[rng.integers(3)]
            polys_all.append((base, rect))
            line = (240, 240, 240)
            t = 0.004
            polys_all += [(line, _rect(x0 + 0.01, y0 + 0.01, x1 - 0.01, y0 + 0.01 + t)),
                          (line, _rect(x0 + 0.01, y1 - 0.01 - t, x1 - 0.01, y1 - 0.01)),
                          (line, _rect(x0 + 0.01, y0 + 0.01, x0 + 0.01 + t, y1 - 0.01)),
                          (line, _rect(x1 - 0.01 - t, y0 + 0.01, x1 - 0.01, y1 - 0.01))]
            if w > h:
                polys_all.append((line, _rect((x0 + x1) / 2 - t / 2, y0 + 0.01, (x0 + x1) / 2 + t / 2, y1 - 0.01)))
            else:
                polys_all.append((line, _rect(x0 + 0.01, (y0 + y1) / 2 - t / 2, x1 - 0.01, (y0 + y1) / 2 + t / 2)))
        elif label == "swimming pool":
            polys_all += [((235, 235, 230), rect),
                          (_jitter(rng, (80, 190, 220), 15), _rect(x0 + 0.006, y0 + 0.006, x1 - 0.006, y1 - 0.006))]
        else:
            roof = _jitter(rng, ((170, 80, 60), (150, 150, 155), (110, 90, 80), (200, 195, 185))[rng.integers(4)], 15)
            d = 0.012
            polys_all += [((60, 60, 60), _rect(x0 + d, y0 + d, x1 + d, y1 + d)), (roof, rect)]
            if rng.random() < 0.6:  # ridge of a pitched roof
                dark = tuple(int(v * 0.8) for v in roof)
                if w > h:
                    polys_all.append((dark, _rect(x0, (y0 + y1) / 2, x1, y1)))
                else:
                    polys_all.append((dark, _rect((x0 + x1) / 2, y0, x1, y1)))
            rect = _rect(x0, y0, x1 + d, y1 + d)
        cover.append(rect)
        cv.mark([rect], label)
    if cover:
        cv.add(Element("polygon", _bounds(cover), (label,), {"polys": polys_all}), cover, label)


def _aerial_trees(cv: _AerialCanvas, scene: str) -> None:
    """Crowns scattered around a few clusters (over the whole tile in a forest), on land."""
    rng = cv.rng
    forest = scene == "forest"
    n = int(rng.integers(60, 120)) if forest else int(rng.integers(4, 30))
    centres = [c for c in (cv.spot(_LAND) for _ in range(rng.integers(1, 4))) if c is not None]
    if not centres:
        return
    pick = np.asarray(centres)[rng.integers(len(centres), size=n)]
    xy = np.clip(pick + rng.normal(0, 0.4 if forest else 0.12, (n, 2)), 0.02, 0.98)
    r = rng.uniform(0.012, 0.028, n)
    ok = cv._lut(_LAND + ("trees",))
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (0, 0)):
        cx = np.clip(((xy[:, 0] + dx * r) * _GRID).astype(int), 0, _GRID - 1)
        cy = np.clip(((xy[:, 1] + dy * r) * _GRID).astype(int), 0, _GRID - 1)
        keep = ok[cv.cls[cy, cx]]
        xy, r = xy[keep], r[keep]
    if len(r) == 0:
        return
    colors = rng.integers(-15, 16, (len(r), 3)) + np.array([50, 100, 45])
    crowns = [(float(x), float(y), float(rr), tuple(c)) for (x, y), rr, c in zip(xy.tolist(), r.tolist(), colors.tolist())]
    cover = [_rect(x - rr, y - rr, x + rr, y + rr) for x, y, rr, _ in crowns]
    cv.add(Element("crowns", _bounds(cover, pad=0.02), ("trees",), {"crowns": crowns}), cover, "trees")


def _aerial_vehicles(cv: _AerialCanvas, label: str) -> None:
    """Cars on roads and parking lots, ships on water, airplanes on runways and aprons."""
    rng = cv.rng
    allowed = {"cars": ("road", "parking lot"), "ship": ("water",),
               "airplane": ("runway", "ground", "grass")}[label]
    count = {"cars": int(rng.integers(2, 12)), "ship": int(rng.integers(1, 6)), "airplane": int(rng.integers(1, 4))}[label]
    polys: list[tuple[Color, Points]] = []
    cover: list[Points] = []
    for spot in cv.spots(allowed, count * 5):
        if len(cover) == count:
            break
        angle = float(rng.uniform(0, math.pi))
        if label == "airplane":
            size = rng.uniform(0.12, 0.2)
            deg = int(rng.integers(12)) * 30
            name = "airplane" if rng.random() < 0.7 else "small airplane"
            w, h = (size, size / sprite_aspect(name)) if sprite_aspect(name) >= 1 else (size * sprite_aspect(name), size)
            a = math.radians(deg)
            bw, bh = abs(w * math.cos(a)) + abs(h * math.sin(a)), abs(w * math.sin(a)) + abs(h * math.cos(a))
            rect = _rect(spot[0] - bw / 2, spot[1] - bh / 2, spot[0] + bw / 2, spot[1] + bh / 2)
            if not cv.free([rect], allowed):
                continue
            cv.add(Element("sprite", _bounds([rect]), ("airplane",), {"sprite": name, "wh": (w, h), "angle": deg}), [rect], "airplane")
            cover.append(rect)
            continue
        if label == "cars":
            length, width = 0.045, 0.022
            hull = _rotated_rect(*spot, length, width, angle)
            if not cv.free([hull], allowed, 0.5):
                continue
            c = math.cos(angle)
            s = math.sin(angle)
            polys += [(_jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 20), hull),
                      ((40, 50, 60), _rotated_rect(spot[0] + c * 0.008, spot[1] + s * 0.008, 0.01, 0.018, angle))]
        else:
            length = rng.uniform(0.07, 0.15)
            width = length * 0.28
            c, s = math.cos(angle), math.sin(angle)
            hull = [(spot[0] + c * dx - s * dy, spot[1] + s * dx + c * dy)
                    for dx, dy in ((-length / 2, -width / 2), (length / 4, -width / 2), (length / 2, 0),
                                   (length / 4, width / 2), (-length / 2, width / 2))]
            if not cv.free([hull], allowed, 0.8):
                continue
            wake = [(spot[0] - c * length / 2 - s * width / 2, spot[1] - s * length / 2 + c * width / 2),
                    (spot[0] - c * length / 2 + s * width / 2, spot[1] - s * length / 2 - c * width / 2),
                    (spot[0] - c * length * 1.1 + s * width, spot[1] - s * length * 1.1 - c * width),
                    (spot[0] - c * length * 1.1 - s * width, spot[1] - s * length * 1.1 + c * width)]
            polys += [((150, 185, 205), wake), (_jitter(rng, ((235, 235, 235), (180, 60, 50), (60, 70, 90))[rng.integers(3)], 10), hull),
                      ((200, 200, 200), _rotated_rect(spot[0] - c * length * 0.1, spot[1] - s * length * 0.1, length * 0.3, width * 0.6, angle))]
            hull = hull + wake
        cover.append(hull)
        cv.mark([hull], label)
    if cover and label != "airplane":
        cv.add(Element("polygon", _bounds(cover), (label,), {"polys": polys}), cover, label)


def _aerial_layout(rng: np.random.Generator) -> tuple[str, str, list[Element]]:
    """A remote-sensing tile: land cover first, then roads, structures, trees and vehicles."""
    scenes = list(AERIAL_SCENES)
    scene = scenes[rng.integers(len(scenes))]
    style, probs = AERIAL_SCENES[scene]
    on = {label for label, p in probs.items() if rng.random() < p}
    if "cars" in on and not on & {"road", "parking lot"}:
        on.add("road")
    if "ship" in on:
        on.add("water")
    cv = _AerialCanvas(rng)
    for label in ("farmland", "water", "sand", "grass"):
        if label in on and not (label == "sand" and scene == "beach"):  # beach: with the water
            _aerial_region(cv, label, scene)
    for label in ("runway", "road"):
        if label in on:
            for _ in range(1 if label == "runway" or rng.random() < 0.6 else 2):
                _aerial_band(cv, label)
    for label in ("parking lot", "court", "swimming pool", "buildings"):
        if label in on:
            _aerial_structure(cv, label, scene)
    if "trees" in on:
        _aerial_trees(cv, scene)
    for label in ("cars", "ship", "airplane"):
        if label in on:
            _aerial_vehicles(cv, label)
    regions = {"water", "sand", "grass", "farmland"}
    clutter = [_clutter_shape(rng, 0.015, 0.04) for _ in range(rng.integers(0, 4))]
    visible = cv.visible_elements({label: 40 for label in regions} | {"road": 12, "runway": 30})
    return scene, style, clutter + visible  # clutter lies on the ground, under everything


_BACKGROUND_FNS = {"natural": _natural_background, "pedestrian": _pedestrian_background,
                   "aerial": _aerial_background}
