"""The remote-sensing domain: aerial tiles (MultiScene/AID style) with procedural land cover and
small objects seen from above, placed with a coarse occupancy grid.

Emoji are drawn from the side, so only airplanes are sprites (rotated); water, sand, grass,
farmland, roads, runways, parking lots, courts, pools, buildings, tree crowns, cars and ships
are drawn shapes. The grid keeps things where they belong (ships on water, cars on roads and
parking lots, buildings and trees on land) and drops any label left with too little of it
visible.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.synthetic.atlas import sprite_aspect
from sspa_core.data.synthetic.canvas import (
    BACKGROUNDS,
    DRAWERS,
    Color,
    Element,
    Points,
    bounds,
    clutter_shape,
    finish,
    jitter,
    pixel_box,
    polygon_element,
    rect_points,
)

REMOTE_SENSING_LABELS: tuple[str, ...] = (
    "water", "trees", "grass", "buildings", "road", "cars", "parking lot", "airplane", "runway",
    "ship", "farmland", "sand", "court", "swimming pool")

# scene type -> (ground style, {label: probability})
REMOTE_SENSING_SCENES: dict[str, tuple[str, dict[str, float]]] = {
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
REMOTE_SENSING_PHRASES: dict[str, str] = {"agricultural land": "agricultural land", "desert": "a desert"}
_GRID = 64  # occupancy grid of the layouts (cells per side)

_CELL = {"ground": 0, "water": 1, "sand": 2, "farmland": 3, "grass": 4, "road": 5,
         "runway": 6, "parking lot": 7, "buildings": 8, "court": 9, "swimming pool": 10,
         "trees": 11, "cars": 12, "airplane": 13, "ship": 14}

_LAND = ("ground", "sand", "farmland", "grass")

_TEXTURES = {"water": (45, 95, 140), "sand": (222, 205, 160), "grass": (105, 150, 70)}

_TEXTURE_CACHE: dict[tuple[str, int], Image.Image] = {}
_CAR_COLORS = ((30, 30, 35), (240, 240, 240), (40, 60, 120), (150, 30, 40), (60, 110, 60),
               (200, 170, 120), (120, 120, 125), (230, 190, 60))
_CROPS = ((120, 150, 60), (170, 160, 80), (95, 125, 55), (150, 120, 80))
_ROOFS = ((170, 80, 60), (150, 150, 155), (110, 90, 80), (200, 195, 185))
_HULLS = ((235, 235, 235), (180, 60, 50), (60, 70, 90))


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


def _draw_crowns(img: Image.Image, draw: ImageDraw.ImageDraw, el: Element, size: int) -> None:
    """Tree crowns seen from above: a shadow, the crown and a highlight; ``params["xyr"]`` holds
    centres and radii, ``params["colors"]`` their greens."""
    for (cx, cy, r), color in zip(el.params["xyr"].tolist(), el.params["colors"].tolist()):
        color = tuple(color)
        x, y, rr = cx * size, cy * size, max(1.0, r * size)
        draw.ellipse([x - rr * 0.7, y - rr * 0.5, x + rr * 1.2, y + rr * 1.2], fill=(45, 55, 35))
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=color)
        if rr > 2:
            light = tuple(min(255, v + 25) for v in color)
            draw.ellipse([x - rr * 0.6, y - rr * 0.6, x, y], fill=light)


DRAWERS.update({"texture": _draw_texture, "crowns": _draw_crowns})


def _rotated_rect(cx: float, cy: float, length: float, width: float, angle: float) -> Points:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + c * dx - s * dy, cy + s * dx + c * dy)
            for dx, dy in ((-length / 2, -width / 2), (length / 2, -width / 2),
                           (length / 2, width / 2), (-length / 2, width / 2))]


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float,
          n: int = 14) -> Points:
    """An irregular closed outline around (cx, cy) with radii about (rx, ry)."""
    k = rng.uniform(0.75, 1.15, (n, 2))
    return [(cx + rx * kx * math.cos(a), cy + ry * ky * math.sin(a))
            for a, (kx, ky) in zip(np.linspace(0, 2 * math.pi, n, endpoint=False), k.tolist())]


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
    @cache
    def lut(allowed: tuple[str, ...]) -> np.ndarray:
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
        x0, y0, x1, y1 = (min(max(int(v * _GRID), 0), _GRID) for v in bounds(polys))
        under = self.cls[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
        return under.size > 0 and float(self.lut(allowed)[under].mean()) >= share

    def mark(self, polys: list[Points], cover: str) -> None:
        """Claim the bounding box of ``polys`` for ``cover`` (keeps later spots off it)."""
        x0, y0, x1, y1 = (min(max(int(v * _GRID), 0), _GRID) for v in bounds(polys))
        self.cls[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = _CELL[cover]

    def spots(self, allowed: tuple[str, ...], k: int) -> list[tuple[float, float]]:
        """``k`` random points on cells of an allowed class (none if there is no such cell)."""
        ys, xs = np.nonzero(self.lut(allowed)[self.cls])
        if len(xs) == 0:
            return []
        pick = self.rng.integers(len(xs), size=k)
        offset = self.rng.random((k, 2))
        return list(zip(((xs[pick] + offset[:, 0]) / _GRID).tolist(),
                        ((ys[pick] + offset[:, 1]) / _GRID).tolist()))

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


def _texture_region(cv: _AerialCanvas, label: str, polys: list[Points]) -> None:
    """Add a land-cover region (water, sand, grass) filled with its texture."""
    arrays = [np.asarray(pts, np.float32) for pts in polys]
    el = Element("texture", bounds(arrays), (label,), {"texture": label, "polys": arrays})
    cv.add(el, polys, label)


def _farmland(cv: _AerialCanvas) -> None:
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


def _water(cv: _AerialCanvas, scene: str) -> None:
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
            _texture_region(cv, "sand", [oriented([(x, y - width) for x, y in zip(xs, ys)] + sea)])
    elif kind == "river":
        xs = np.linspace(-0.05, 1.05, 10)
        mid = rng.uniform(0.3, 0.7) + np.cumsum(rng.normal(0, 0.03, 10))
        w = rng.uniform(0.06, 0.12)
        pts = ([(x, y - w) for x, y in zip(xs, mid)]
               + [(x, y + w) for x, y in zip(xs[::-1], mid[::-1])])
    else:
        pts = _blob(rng, *rng.uniform(0.3, 0.7, 2), *rng.uniform(0.12, 0.25, 2))
    _texture_region(cv, "water", [oriented(pts)])


def _band(cv: _AerialCanvas, label: str) -> None:
    """A road or a runway crossing the tile, with its markings."""
    rng = cv.rng
    runway = label == "runway"
    angle = (0.0, math.pi / 2, float(rng.uniform(0, math.pi)))[int(rng.integers(3))]
    cx, cy = rng.uniform(0.3, 0.7, 2)
    width = rng.uniform(0.1, 0.14) if runway else rng.uniform(0.035, 0.06)
    length = rng.uniform(0.8, 1.3) if runway else 1.3
    band = _rotated_rect(cx, cy, length, width, angle)
    polys = [((70, 70, 72) if runway else jitter(rng, (95, 95, 100), 12), band)]
    mark = (240, 240, 240) if runway or rng.random() < 0.5 else (235, 200, 60)
    c, s = math.cos(angle), math.sin(angle)
    dash, thick, step = (0.035, 0.006, 0.08) if runway else (0.025, 0.004, 0.06)
    for t in np.arange(-length / 2 + 0.04, length / 2 - 0.04, step):  # centre line
        polys.append((mark, _rotated_rect(cx + c * t, cy + s * t, dash, thick, angle)))
    if runway:  # threshold bars at both ends
        for t in (-(length / 2 - 0.03), length / 2 - 0.03):
            for k in (-2, -1, 1, 2):
                off = k * width / 6
                polys.append((mark, _rotated_rect(cx + c * t - s * off, cy + s * t + c * off,
                                                  0.03, 0.008, angle)))
    cv.add(polygon_element(polys, (label,)), [band], label)


def _structure_polys(rng: np.random.Generator, label: str, x0: float, y0: float, x1: float,
                     y1: float) -> tuple[list[tuple[Color, Points]], Points]:
    """Polygons of one parking lot, court, pool or building, and the area it covers."""
    rect = rect_points(x0, y0, x1, y1)
    xm, ym, m, t = (x0 + x1) / 2, (y0 + y1) / 2, 0.01, 0.004
    if label == "parking lot":
        polys = [((120, 120, 122), rect)]
        for x in np.arange(x0 + 0.02, x1 - 0.01, 0.025):
            for y in (y0 + m, ym + m):
                polys.append(((235, 235, 235), rect_points(x, y, x + 0.003, y + 0.04)))
        return polys, rect
    if label == "court":
        base = ((70, 140, 80), (60, 110, 170), (185, 95, 60))[rng.integers(3)]
        white = (240, 240, 240)
        polys = [(base, rect),
                 (white, rect_points(x0 + m, y0 + m, x1 - m, y0 + m + t)),
                 (white, rect_points(x0 + m, y1 - m - t, x1 - m, y1 - m)),
                 (white, rect_points(x0 + m, y0 + m, x0 + m + t, y1 - m)),
                 (white, rect_points(x1 - m - t, y0 + m, x1 - m, y1 - m))]
        net = (rect_points(xm - t / 2, y0 + m, xm + t / 2, y1 - m) if x1 - x0 > y1 - y0
               else rect_points(x0 + m, ym - t / 2, x1 - m, ym + t / 2))
        return polys + [(white, net)], rect
    if label == "swimming pool":
        water = jitter(rng, (80, 190, 220), 15)
        inner = rect_points(x0 + 0.006, y0 + 0.006, x1 - 0.006, y1 - 0.006)
        return [((235, 235, 230), rect), (water, inner)], rect
    roof = jitter(rng, _ROOFS[rng.integers(len(_ROOFS))], 15)
    d = 0.012  # shadow offset
    polys = [((60, 60, 60), rect_points(x0 + d, y0 + d, x1 + d, y1 + d)), (roof, rect)]
    if rng.random() < 0.6:  # the darker half of a pitched roof
        dark = tuple(int(v * 0.8) for v in roof)
        half = rect_points(x0, ym, x1, y1) if x1 - x0 > y1 - y0 else rect_points(xm, y0, x1, y1)
        polys.append((dark, half))
    return polys, rect_points(x0, y0, x1 + d, y1 + d)


def _structures(cv: _AerialCanvas, label: str, scene: str) -> None:
    """Parking lots, courts, pools or buildings on free land."""
    rng = cv.rng
    built_up = scene in ("residential area", "industrial area")
    count = {"buildings": int(rng.integers(3, 12) if built_up else rng.integers(1, 5)),
             "court": int(rng.integers(1, 4)) if scene == "sports complex" else 1,
             "swimming pool": int(rng.integers(1, 3))}.get(label, 1)
    allowed = _LAND + (("parking lot",) if label == "buildings" else ())
    big = 0.15 if scene == "industrial area" else 0.1
    polys: list[tuple[Color, Points]] = []
    cover: list[Points] = []
    for x, y in cv.spots(_LAND, count * 6):
        if len(cover) == count:
            break
        w, h = {"parking lot": rng.uniform(0.2, 0.35, 2), "court": (0.14, 0.08),
                "swimming pool": rng.uniform(0.04, 0.08, 2),
                "buildings": rng.uniform(0.05, big, 2)}[label]
        if label == "court" and rng.random() < 0.5:
            w, h = h, w
        if not cv.free([rect_points(x - w / 2, y - h / 2, x + w / 2, y + h / 2)], allowed):
            continue
        shapes, covered = _structure_polys(rng, label, x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        polys += shapes
        cover.append(covered)
        cv.mark([covered], label)
    if cover:
        cv.add(polygon_element(polys, (label,)), cover, label)


def _trees(cv: _AerialCanvas, scene: str) -> None:
    """Crowns scattered around a few clusters (over the whole tile in a forest), on land."""
    rng = cv.rng
    forest = scene == "forest"
    n = int(rng.integers(60, 120)) if forest else int(rng.integers(4, 30))
    centres = [c for c in (cv.spot(_LAND) for _ in range(rng.integers(1, 4))) if c is not None]
    if not centres:
        return
    around = np.asarray(centres)[rng.integers(len(centres), size=n)]
    xy = np.clip(around + rng.normal(0, 0.4 if forest else 0.12, (n, 2)), 0.02, 0.98)
    r = rng.uniform(0.012, 0.028, n)
    ok = cv.lut(_LAND + ("trees",))
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (0, 0)):  # corners and centre on land
        cx = np.clip(((xy[:, 0] + dx * r) * _GRID).astype(int), 0, _GRID - 1)
        cy = np.clip(((xy[:, 1] + dy * r) * _GRID).astype(int), 0, _GRID - 1)
        keep = ok[cv.cls[cy, cx]]
        xy, r = xy[keep], r[keep]
    if len(r) == 0:
        return
    colors = (rng.integers(-15, 16, (len(r), 3)) + np.array([50, 100, 45])).astype(np.uint8)
    xyr = np.column_stack([xy, r]).astype(np.float32)
    cover = [rect_points(x - rr, y - rr, x + rr, y + rr) for x, y, rr in xyr.tolist()]
    params = {"xyr": xyr, "colors": colors}
    cv.add(Element("crowns", bounds(cover, pad=0.02), ("trees",), params), cover, "trees")


def _airplane(cv: _AerialCanvas, x: float, y: float) -> bool:
    """An airplane sprite rotated by a multiple of 30° at (x, y), if the spot is free."""
    rng = cv.rng
    size, deg = rng.uniform(0.12, 0.2), int(rng.integers(12)) * 30
    name = "airplane" if rng.random() < 0.7 else "small airplane"
    aspect = sprite_aspect(name)
    w, h = (size, size / aspect) if aspect >= 1 else (size * aspect, size)
    a = math.radians(deg)
    bw = abs(w * math.cos(a)) + abs(h * math.sin(a))
    bh = abs(w * math.sin(a)) + abs(h * math.cos(a))
    rect = rect_points(x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2)
    if not cv.free([rect], ("runway", "ground", "grass")):
        return False
    params = {"sprite": name, "wh": (w, h), "angle": deg}
    cv.add(Element("sprite", bounds([rect]), ("airplane",), params), [rect], "airplane")
    return True


def _car(cv: _AerialCanvas, x: float, y: float) -> tuple[list[tuple[Color, Points]], Points]:
    """Polygons of a car seen from above (body and windscreen) and its outline."""
    rng = cv.rng
    angle = float(rng.uniform(0, math.pi))
    c, s = math.cos(angle), math.sin(angle)
    hull = _rotated_rect(x, y, 0.045, 0.022, angle)
    body = jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 20)
    screen = _rotated_rect(x + c * 0.008, y + s * 0.008, 0.01, 0.018, angle)
    return [(body, hull), ((40, 50, 60), screen)], hull


def _ship(cv: _AerialCanvas, x: float, y: float) -> tuple[list[tuple[Color, Points]], Points]:
    """Polygons of a ship seen from above (wake, pointed hull, deckhouse) and its outline."""
    rng = cv.rng
    angle = float(rng.uniform(0, math.pi))
    c, s = math.cos(angle), math.sin(angle)
    length = rng.uniform(0.07, 0.15)
    width = length * 0.28

    def at(dx: float, dy: float) -> tuple[float, float]:  # ship frame -> tile
        return (x + c * dx - s * dy, y + s * dx + c * dy)

    hull = [at(-length / 2, -width / 2), at(length / 4, -width / 2), at(length / 2, 0),
            at(length / 4, width / 2), at(-length / 2, width / 2)]
    wake = [at(-length / 2, width / 2), at(-length / 2, -width / 2),
            at(-length * 1.1, -width), at(-length * 1.1, width)]
    paint = jitter(rng, _HULLS[rng.integers(len(_HULLS))], 10)
    house = _rotated_rect(*at(-length * 0.1, 0), length * 0.3, width * 0.6, angle)
    return [((150, 185, 205), wake), (paint, hull), ((200, 200, 200), house)], hull + wake


def _vehicles(cv: _AerialCanvas, label: str) -> None:
    """Cars on roads and parking lots, ships on water, airplanes on runways and aprons."""
    rng = cv.rng
    count = {"cars": int(rng.integers(2, 12)), "ship": int(rng.integers(1, 6)),
             "airplane": int(rng.integers(1, 4))}[label]
    allowed = {"cars": ("road", "parking lot"), "ship": ("water",),
               "airplane": ("runway", "ground", "grass")}[label]
    polys: list[tuple[Color, Points]] = []
    cover: list[Points] = []
    placed = 0
    for x, y in cv.spots(allowed, count * 5):
        if placed == count:
            break
        if label == "airplane":  # one sprite element per airplane
            placed += _airplane(cv, x, y)
            continue
        shapes, outline = (_car if label == "cars" else _ship)(cv, x, y)
        if not cv.free([outline], allowed, 0.5 if label == "cars" else 0.8):
            continue
        polys += shapes
        cover.append(outline)
        cv.mark([outline], label)
        placed += 1
    if cover:
        cv.add(polygon_element(polys, (label,)), cover, label)


def remote_sensing_layout(rng: np.random.Generator) -> tuple[str, str, list[Element]]:
    """A remote-sensing tile: land cover first, then roads, structures, trees and vehicles."""
    scenes = list(REMOTE_SENSING_SCENES)
    scene = scenes[rng.integers(len(scenes))]
    style, probs = REMOTE_SENSING_SCENES[scene]
    on = {label for label, p in probs.items() if rng.random() < p}
    if "cars" in on and not on & {"road", "parking lot"}:
        on.add("road")
    if "ship" in on:
        on.add("water")
    cv = _AerialCanvas(rng)
    if "farmland" in on:
        _farmland(cv)
    if "water" in on:
        _water(cv, scene)
    if "sand" in on and scene != "beach":  # a beach's sand comes with its water
        _texture_region(cv, "sand", [_blob(rng, *rng.uniform(0.35, 0.65, 2),
                                           *rng.uniform(0.3, 0.5, 2))])
    if "grass" in on:
        patches = [_blob(rng, *rng.uniform(0.2, 0.8, 2), *rng.uniform(0.12, 0.3, 2))
                   for _ in range(rng.integers(1, 4))]
        _texture_region(cv, "grass", patches)
    for label in ("runway", "road"):
        if label in on:
            for _ in range(1 if label == "runway" or rng.random() < 0.6 else 2):
                _band(cv, label)
    for label in ("parking lot", "court", "swimming pool", "buildings"):
        if label in on:
            _structures(cv, label, scene)
    if "trees" in on:
        _trees(cv, scene)
    for label in ("cars", "ship", "airplane"):
        if label in on:
            _vehicles(cv, label)
    clutter = [clutter_shape(rng, 0.015, 0.04) for _ in range(rng.integers(0, 4))]
    regions = dict.fromkeys(("water", "sand", "grass", "farmland"), 40)
    visible = cv.visible_elements(regions | {"road": 12, "runway": 30})
    return scene, style, clutter + visible  # clutter lies on the ground, under everything


BACKGROUNDS["remote_sensing"] = _remote_sensing_background
