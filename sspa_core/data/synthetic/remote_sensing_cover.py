"""Land cover of the remote-sensing tiles: the coarse occupancy grid that puts everything where it
belongs, the bare ground, textured regions (water, sand, grass), farmland, and roads and runways.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.synthetic.canvas import (
    BACKGROUNDS,
    DRAWERS,
    Color,
    Element,
    Points,
    bounds,
    finish,
    jitter,
    pixel_box,
    polygon_element,
    rect_points,
)

GRID = 64  # occupancy grid of the layouts (cells per side)

_CELL = {"ground": 0, "water": 1, "sand": 2, "farmland": 3, "grass": 4, "road": 5,
         "runway": 6, "parking lot": 7, "buildings": 8, "court": 9, "swimming pool": 10,
         "trees": 11, "cars": 12, "airplane": 13, "ship": 14}

LAND = ("ground", "sand", "farmland", "grass")

_TEXTURES = {"water": (45, 95, 140), "sand": (222, 205, 160), "grass": (105, 150, 70)}

_TEXTURE_CACHE: dict[tuple[str, int], Image.Image] = {}
_CROPS = ((120, 150, 60), (170, 160, 80), (95, 125, 55), (150, 120, 80))


def _mottled(size: int, color: Color, rng: np.random.Generator, low: float,
             high: float) -> np.ndarray:
    """A colour with low-frequency blotches (``low``) and grain (``high``), H×W×3 float."""
    coarse = rng.normal(0.0, low, (size // 16 + 2, size // 16 + 2)).astype(np.float32)
    blot = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))
    grain = rng.normal(0.0, high, (size, size)).astype(np.float32)
    return np.asarray(color, np.float32) + (blot + grain)[..., None]


def _remote_sensing_background(style: str, size: int, rng: np.random.Generator) -> Image.Image:
    """Bare ground seen from above: ``urban`` (concrete), ``soil`` or ``dry``."""
    color = {"urban": (175, 170, 160), "soil": (140, 120, 90), "dry": (165, 135, 110)}[style]
    return finish(_mottled(size, jitter(rng, color, 12), rng, 10, 4), rng, 2)


BACKGROUNDS["remote_sensing"] = _remote_sensing_background


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
    x0, y0, x1, y1 = pixel_box(el.box, size)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(size, x1), min(size, y1)
    if x1 <= x0 or y1 <= y0:
        return
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    mdraw = ImageDraw.Draw(mask)
    for pts in el.params["polys"]:
        mdraw.polygon((pts * size - (x0, y0)).ravel().tolist(), fill=255)
    img.paste(texture(el.params["texture"], size).crop((x0, y0, x1, y1)), (x0, y0), mask)


DRAWERS["texture"] = _draw_texture


def rotated_rect(cx: float, cy: float, length: float, width: float, angle: float) -> Points:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + c * dx - s * dy, cy + s * dx + c * dy)
            for dx, dy in ((-length / 2, -width / 2), (length / 2, -width / 2),
                           (length / 2, width / 2), (-length / 2, width / 2))]


def blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float,
         n: int = 14) -> Points:
    """An irregular closed outline around (cx, cy) with radii about (rx, ry)."""
    k = rng.uniform(0.75, 1.15, (n, 2))
    return [(cx + rx * kx * math.cos(a), cy + ry * ky * math.sin(a))
            for a, (kx, ky) in zip(np.linspace(0, 2 * math.pi, n, endpoint=False), k.tolist())]


class AerialCanvas:
    """Layout builder: elements plus a coarse occupancy grid of the top-most cover class, used
    to put things where they belong (ships on water, cars on roads) and to keep only labels
    that stay visible."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.cls = np.zeros((GRID, GRID), np.int8)
        self.owner = np.full((GRID, GRID), -1, np.int32)
        self.elements: list[Element] = []

    @staticmethod
    @cache
    def lut(allowed: tuple[str, ...]) -> np.ndarray:
        lut = np.zeros(len(_CELL), bool)
        lut[[_CELL[a] for a in allowed]] = True
        return lut

    def cells(self, polys: list[Points]) -> np.ndarray:
        mask = Image.new("L", (GRID, GRID), 0)
        d = ImageDraw.Draw(mask)
        for pts in polys:
            d.polygon([(x * GRID, y * GRID) for x, y in pts], fill=255)
        return np.asarray(mask) > 0

    def add(self, el: Element, polys: list[Points], cover: str) -> None:
        m = self.cells(polys)
        self.cls[m] = _CELL[cover]
        self.owner[m] = len(self.elements)
        self.elements.append(el)

    def free(self, polys: list[Points], allowed: tuple[str, ...], share: float = 1.0) -> bool:
        """Whether at least ``share`` of the cells under the bounding box of ``polys`` have an
        allowed cover class."""
        x0, y0, x1, y1 = (min(max(int(v * GRID), 0), GRID) for v in bounds(polys))
        under = self.cls[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
        return under.size > 0 and float(self.lut(allowed)[under].mean()) >= share

    def mark(self, polys: list[Points], cover: str) -> None:
        """Claim the bounding box of ``polys`` for ``cover`` (keeps later spots off it)."""
        x0, y0, x1, y1 = (min(max(int(v * GRID), 0), GRID) for v in bounds(polys))
        self.cls[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = _CELL[cover]

    def spots(self, allowed: tuple[str, ...], k: int) -> list[tuple[float, float]]:
        """``k`` random points on cells of an allowed class (none if there is no such cell)."""
        ys, xs = np.nonzero(self.lut(allowed)[self.cls])
        if len(xs) == 0:
            return []
        pick = self.rng.integers(len(xs), size=k)
        offset = self.rng.random((k, 2))
        return list(zip(((xs[pick] + offset[:, 0]) / GRID).tolist(),
                        ((ys[pick] + offset[:, 1]) / GRID).tolist()))

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


def add_texture_region(cv: AerialCanvas, label: str, polys: list[Points]) -> None:
    """Add a land-cover region (water, sand, grass) filled with its texture."""
    arrays = [np.asarray(pts, np.float32) for pts in polys]
    el = Element("texture", bounds(arrays), (label,), {"texture": label, "polys": arrays})
    cv.add(el, polys, label)


def add_farmland(cv: AerialCanvas) -> None:
    """A grid of fields, each with its own crop colour and furrows."""
    rng = cv.rng
    x0, y0 = rng.uniform(-0.1, 0.3, 2)
    x1, y1 = rng.uniform(0.7, 1.1, 2)
    xs = np.sort(np.r_[x0, rng.uniform(x0, x1, rng.integers(1, 4)), x1])
    ys = np.sort(np.r_[y0, rng.uniform(y0, y1, rng.integers(1, 4)), y1])
    polys: list[tuple[Color, Points]] = []
    fields: list[Points] = []
    for a, b in zip(xs[:-1], xs[1:]):
        for c, d in zip(ys[:-1], ys[1:]):
            if b - a < 0.04 or d - c < 0.04:
                continue
            color = jitter(rng, _CROPS[rng.integers(len(_CROPS))], 12)
            field_pts = rect_points(a + 0.006, c + 0.006, b - 0.006, d - 0.006)
            polys.append((color, field_pts))
            furrow = tuple(int(v * 0.85) for v in color)
            step = rng.uniform(0.015, 0.03)
            if rng.random() < 0.5:
                polys += [(furrow, rect_points(x, c + 0.006, x + step / 3, d - 0.006))
                          for x in np.arange(a + 0.01, b - 0.01, step)]
            else:
                polys += [(furrow, rect_points(a + 0.006, y, b - 0.006, y + step / 3))
                          for y in np.arange(c + 0.01, d - 0.01, step)]
            fields.append(field_pts)
    if fields:
        cv.add(polygon_element(polys, ("farmland",)), fields, "farmland")


def add_water(cv: AerialCanvas, scene: str) -> None:
    """A coast (with a sand strip on a beach), a river or a lake."""
    rng = cv.rng
    transpose = bool(rng.random() < 0.5)  # vertical coast / river

    def oriented(pts: Points) -> Points:
        return [(y, x) for x, y in pts] if transpose else pts

    kind = {"harbour": "coast", "beach": "coast", "river": "river"}.get(scene)
    kind = kind or ("lake", "river")[rng.integers(2)]
    if kind == "coast":
        xs = np.linspace(-0.05, 1.05, 9)
        ys = rng.uniform(0.4, 0.6) + np.cumsum(rng.normal(0, 0.025, 9))
        sea = [(1.05, 1.05), (-0.05, 1.05)]
        pts = list(zip(xs, ys)) + sea
        if scene == "beach":  # a sand strip along the shore, under the water
            width = rng.uniform(0.08, 0.16)
            add_texture_region(cv, "sand", [oriented([(x, y - width) for x, y in zip(xs, ys)] + sea)])
    elif kind == "river":
        xs = np.linspace(-0.05, 1.05, 10)
        mid = rng.uniform(0.3, 0.7) + np.cumsum(rng.normal(0, 0.03, 10))
        w = rng.uniform(0.06, 0.12)
        pts = ([(x, y - w) for x, y in zip(xs, mid)]
               + [(x, y + w) for x, y in zip(xs[::-1], mid[::-1])])
    else:
        pts = blob(rng, *rng.uniform(0.3, 0.7, 2), *rng.uniform(0.12, 0.25, 2))
    add_texture_region(cv, "water", [oriented(pts)])


def add_band(cv: AerialCanvas, label: str) -> None:
    """A road or a runway crossing the tile, with its markings."""
    rng = cv.rng
    runway = label == "runway"
    angle = (0.0, math.pi / 2, float(rng.uniform(0, math.pi)))[int(rng.integers(3))]
    cx, cy = rng.uniform(0.3, 0.7, 2)
    width = rng.uniform(0.1, 0.14) if runway else rng.uniform(0.035, 0.06)
    length = rng.uniform(0.8, 1.3) if runway else 1.3
    band = rotated_rect(cx, cy, length, width, angle)
    polys = [((70, 70, 72) if runway else jitter(rng, (95, 95, 100), 12), band)]
    mark = (240, 240, 240) if runway or rng.random() < 0.5 else (235, 200, 60)
    c, s = math.cos(angle), math.sin(angle)
    dash, thick, step = (0.035, 0.006, 0.08) if runway else (0.025, 0.004, 0.06)
    for t in np.arange(-length / 2 + 0.04, length / 2 - 0.04, step):  # centre line
        polys.append((mark, rotated_rect(cx + c * t, cy + s * t, dash, thick, angle)))
    if runway:  # threshold bars at both ends
        for t in (-(length / 2 - 0.03), length / 2 - 0.03):
            for k in (-2, -1, 1, 2):
                off = k * width / 6
                polys.append((mark, rotated_rect(cx + c * t - s * off, cy + s * t + c * off,
                                                 0.03, 0.008, angle)))
    cv.add(polygon_element(polys, (label,)), [band], label)
