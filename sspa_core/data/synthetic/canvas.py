"""Layouts and their rendering: an image is a background plus elements with normalised boxes,
drawn in order; the drawing helpers and background cache the three domains share."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.synthetic.atlas import sprite_image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the image side
Color = tuple[int, int, int]
Points = list[tuple[float, float]]  # a polygon in normalised coordinates


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

    def without(self, label: str) -> Layout:
        """The same layout with every element that shows ``label`` removed."""
        return replace(self, elements=tuple(e for e in self.elements if label not in e.labels))


def box_area(b: Box) -> float:
    """Area of a box (0 when empty)."""
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def overlap(a: Box, b: Box) -> float:
    """Area of the intersection of two boxes."""
    return box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def pixel_box(box: Box, size: int) -> tuple[int, int, int, int]:
    """The pixel rectangle that covers a box at ``size``² px."""
    return (int(math.floor(box[0] * size)), int(math.floor(box[1] * size)),
            int(math.ceil(box[2] * size)), int(math.ceil(box[3] * size)))


def bounds(polys: list[Points] | list[np.ndarray], pad: float = 0.0) -> Box:
    """Bounding box of polygons (point lists or N×2 arrays), grown by ``pad``."""
    pts = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in polys])
    (x0, y0), (x1, y1) = pts.min(0).tolist(), pts.max(0).tolist()
    return (x0 - pad, y0 - pad, x1 + pad, y1 + pad)


def rect_points(x0: float, y0: float, x1: float, y1: float) -> Points:
    """An axis-aligned rectangle as a polygon."""
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def jitter(rng: np.random.Generator, color: Color, amount: int = 18) -> Color:
    """A colour with each channel moved by up to ``amount``."""
    delta = rng.integers(-amount, amount + 1, 3).tolist()
    return tuple(min(255, max(0, c + d)) for c, d in zip(color, delta))


def pick(rng: np.random.Generator, probs: tuple[float, ...]) -> int:
    """Index drawn with the given probabilities (faster than ``rng.choice`` for one draw)."""
    u, acc = rng.random(), 0.0
    for k, pk in enumerate(probs):
        acc += pk
        if u < acc:
            return k
    return len(probs) - 1


def gradient(size: int, top: Color, bottom: Color, y0: float = 0.0, y1: float = 1.0,
             canvas: np.ndarray | None = None) -> np.ndarray:
    """Fill rows ``y0..y1`` (fractions) of ``canvas`` (H×W×3 float) with a vertical gradient."""
    canvas = np.zeros((size, size, 3), np.float32) if canvas is None else canvas
    r0, r1 = int(round(y0 * size)), int(round(y1 * size))
    t = np.linspace(0.0, 1.0, max(1, r1 - r0), dtype=np.float32)[:, None, None]
    canvas[r0:r1] = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
    return canvas


def finish(canvas: np.ndarray, rng: np.random.Generator, noise: float = 5.0) -> Image.Image:
    """Add grey grain to a float canvas and make it an RGB image."""
    canvas = canvas + rng.normal(0.0, noise, canvas.shape[:2])[..., None].astype(np.float32)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")


def sky(size: int, rng: np.random.Generator, horizon: float, canvas: np.ndarray) -> None:
    """A blue sky gradient above ``horizon``."""
    gradient(size, jitter(rng, (110, 165, 230)), jitter(rng, (205, 225, 245)), 0, horizon,
             canvas)


def clouds(draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator, horizon: float,
           count: int) -> None:
    """``count`` white clouds, each a few overlapping ellipses above the horizon."""
    for _ in range(count):
        cx, cy = rng.uniform(0, 1) * size, rng.uniform(0.05, max(0.06, horizon - 0.1)) * size
        for _ in range(4):
            r = rng.uniform(0.03, 0.07) * size
            dx, dy = rng.uniform(-2, 2) * r, rng.uniform(-0.4, 0.4) * r
            draw.ellipse([cx + dx - r * 1.6, cy + dy - r, cx + dx + r * 1.6, cy + dy + r],
                         fill=(250, 250, 252))


def stripes(draw: ImageDraw.ImageDraw, size: int, y0: float, y1: float, step: float,
            color: Color, vertical: bool = True, width: int = 1) -> None:
    """Evenly spaced lines, vertical or horizontal, between rows ``y0`` and ``y1``."""
    for k in range(int(1 / step) + 1):
        p = k * step * size
        if vertical:
            draw.line([p, y0 * size, p, y1 * size], fill=color, width=width)
        else:
            yy = y0 * size + p
            if yy <= y1 * size:
                draw.line([0, yy, size, yy], fill=color, width=width)


_CLUTTER_SHAPES = ("ellipse", "rectangle", "triangle", "line", "star")


def clutter_shape(rng: np.random.Generator, lo: float, hi: float) -> Element:
    """A distractor shape (never a label) of side ``lo..hi`` at a random place."""
    kind = _CLUTTER_SHAPES[rng.integers(len(_CLUTTER_SHAPES))]
    s = rng.uniform(lo, hi)
    x0, y0 = rng.uniform(0, 1 - s), rng.uniform(0, 1 - s)
    color = tuple(int(v) for v in rng.integers(20, 236, 3))
    return Element("shape", (x0, y0, x0 + s, y0 + s), (), {"shape": kind, "color": color})


NUM_BACKGROUND_VARIANTS = 6
_BACKGROUND_CACHE: dict[tuple[str, str, int, int, bool], Image.Image] = {}
# domain -> background painter (style, size, rng) -> image; each domain module registers its own
BACKGROUNDS: dict[str, Callable[[str, int, np.random.Generator], Image.Image]] = {}


def background(domain: str, style: str, variant: int, size: int,
               flip: bool = False) -> Image.Image:
    """Background ``variant`` (0..NUM_BACKGROUND_VARIANTS-1) of a domain's ``style`` at
    ``size``² px, optionally mirrored; cached per process (never mutate it)."""
    key = (domain, style, variant, size, flip)
    im = _BACKGROUND_CACHE.get(key)
    if im is None:
        if flip:
            im = background(domain, style, variant, size)
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            style_id = sum(ord(ch) * (k + 1) for k, ch in enumerate(style))
            im = BACKGROUNDS[domain](style, size, np.random.default_rng([style_id, variant, 7]))
        _BACKGROUND_CACHE[key] = im
    return im


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


def polygon_element(polys: list[tuple[Color, Points]], labels: tuple[str, ...] = (),
                    **extra) -> Element:
    """Coloured polygons as one ``polygon`` element; the points are kept as float32 arrays
    (thousands of layouts stay small) and ``extra`` goes into its params."""
    arrays = [(color, np.asarray(pts, np.float32)) for color, pts in polys]
    return Element("polygon", bounds([a for _, a in arrays]), labels,
                   {"polys": arrays, **extra})


def _draw_polygon(img: Image.Image, draw: ImageDraw.ImageDraw, el: Element, size: int) -> None:
    """Polygons in solid colours: ``params["polys"]`` = [(colour, N×2 normalised points)]."""
    for color, pts in el.params["polys"]:
        draw.polygon((pts * size).ravel().tolist(), fill=color)


DRAWERS = {"sprite": _draw_sprite, "shape": _draw_shape, "polygon": _draw_polygon}


def render_layout(layout: Layout, size: int) -> Image.Image:
    """Render a layout at ``size``² px (RGB): its background, tinted per channel by
    ``layout.tint``, then its elements in order."""
    bg = background(layout.domain, layout.background, layout.variant, size, layout.flip)
    lut = np.clip(np.arange(256)[None, :] * np.asarray(layout.tint)[:, None], 0, 255)
    img = bg.point(lut.astype(np.uint8).ravel().tolist())
    draw = ImageDraw.Draw(img)
    for el in layout.elements:
        DRAWERS[el.kind](img, draw, el, size)
    return img
