"""The aerial domain: remote-sensing tiles (MultiScene/AID style) with procedural land cover and
small objects seen from above, placed with a coarse occupancy grid."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.synthetic.atlas import sprite_aspect
from sspa_core.data.synthetic.canvas import (
    BACKGROUNDS, DRAWERS, Color, Element, Points, bounds, clutter_shape, finish, jitter,
    pixel_box, rect_points)

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
AERIAL_PHRASES: dict[str, str] = {"agricultural land": "agricultural land", "desert": "a desert"}
_GRID = 64  # occupancy grid of the aerial layouts (cells per side)


_CELL = {"ground": 0, "water": 1, "sand": 2, "farmland": 3, "grass": 4, "road": 5,
         "runway": 6, "parking lot": 7, "buildings": 8, "court": 9, "swimming pool": 10,
         "trees": 11, "cars": 12, "airplane": 13, "ship": 14}


_LAND = ("ground", "sand", "farmland", "grass")


_TEXTURES = {"water": (45, 95, 140), "sand": (222, 205, 160), "grass": (105, 150, 70)}


_TEXTURE_CACHE: dict[tuple[str, int], Image.Image] = {}
_CAR_COLORS = ((30, 30, 35), (240, 240, 240), (40, 60, 120), (150, 30, 40), (60, 110, 60),
               (200, 170, 120), (120, 120, 125), (230, 190, 60))


def _mottled(size: int, color: Color, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A colour with low-frequency blotches (``low``) and grain (``high``), H×W×3 float."""
    coarse = rng.normal(0.0, low, (size // 16 + 2, size // 16 + 2)).astype(np.float32)
    blot = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))
    grain = rng.normal(0.0, high, (size, size)).astype(np.float32)
    return np.asarray(color, np.float32) + (blot + grain)[..., None]


def _aerial_background(style: str, size: int, rng: np.random.Generator) -> Image.Image:
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


DRAWERS.update({"texture": _draw_texture, "crowns": _draw_crowns})


def _rotated_rect(cx: float, cy: float, length: float, width: float, angle: float) -> Points:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + c * dx - s * dy, cy + s * dx + c * dy)
            for dx, dy in ((-length / 2, -width / 2), (length / 2, -width / 2),
                           (length / 2, width / 2), (-length / 2, width / 2))]


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 14) -> Points:
    return [(cx + rx * rng.uniform(0.75, 1.15) * math.cos(a), cy + ry * rng.uniform(0.75, 1.15) * math.sin(a))
            for a in np.linspace(0, 2 * math.pi, n, endpoint=False)]


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
        x0, y0, x1, y1 = (min(max(int(v * _GRID), 0), _GRID) for v in bounds(polys))
        under = self.cls[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
        return under.size > 0 and float(self._lut(allowed)[under].mean()) >= share

    def mark(self, polys: list[Points], cover: str) -> None:
        """Claim the bounding box of ``polys`` for ``cover`` (keeps later spots off it)."""
        x0, y0, x1, y1 = (min(max(int(v * _GRID), 0), _GRID) for v in bounds(polys))
        self.cls[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = _CELL[cover]

    def spots(self, allowed: tuple[str, ...], k: int) -> list[tuple[float, float]]:
        """``k`` random points on cells of an allowed class (none if there is no such cell)."""
        ys, xs = np.nonzero(self._lut(allowed)[self.cls])
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
                color = jitter(rng, ((120, 150, 60), (170, 160, 80), (95, 125, 55), (150, 120, 80))[rng.integers(4)], 12)
                field_pts = rect_points(a + 0.006, c + 0.006, b - 0.006, d - 0.006)
                polys.append((color, field_pts))
                line = tuple(int(v * 0.85) for v in color)
                step = rng.uniform(0.015, 0.03)
                if rng.random() < 0.5:
                    polys += [(line, rect_points(x, c + 0.006, x + step / 3, d - 0.006)) for x in np.arange(a + 0.01, b - 0.01, step)]
                else:
                    polys += [(line, rect_points(a + 0.006, y, b - 0.006, y + step / 3)) for y in np.arange(c + 0.01, d - 0.01, step)]
                all_pts.append(field_pts)
        if all_pts:
            el = Element("polygon", bounds(all_pts), ("farmland",), {"polys": polys})
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
                cv.add(Element("texture", bounds([sand]), ("sand",), {"texture": "sand", "polys": [sand]}),
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
        cv.add(Element("texture", bounds([pts]), ("water",), {"texture": "water", "polys": [pts]}), [pts], "water")
        return
    if label == "sand":
        pts = _blob(rng, *rng.uniform(0.35, 0.65, 2), *rng.uniform(0.3, 0.5, 2))
        cv.add(Element("texture", bounds([pts]), ("sand",), {"texture": "sand", "polys": [pts]}), [pts], "sand")
        return
    # grass: one to three patches
    polys = [_blob(rng, *rng.uniform(0.2, 0.8, 2), *rng.uniform(0.12, 0.3, 2)) for _ in range(rng.integers(1, 4))]
    cv.add(Element("texture", bounds(polys), ("grass",), {"texture": "grass", "polys": polys}), polys, "grass")


def _aerial_band(cv: _AerialCanvas, label: str) -> Points:
    """A road or a runway crossing the tile, with its markings."""
    rng = cv.rng
    runway = label == "runway"
    angle = (0.0, math.pi / 2, float(rng.uniform(0, math.pi)))[int(rng.integers(3))]
    cx, cy = rng.uniform(0.3, 0.7, 2)
    width = rng.uniform(0.1, 0.14) if runway else rng.uniform(0.035, 0.06)
    length = 1.3 if not runway else rng.uniform(0.8, 1.3)
    band = _rotated_rect(cx, cy, length, width, angle)
    color = (70, 70, 72) if runway else jitter(rng, (95, 95, 100), 12)
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
    el = Element("polygon", bounds([band]), (label,), {"polys": polys})
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
        rect = rect_points(spot[0] - w / 2, spot[1] - h / 2, spot[0] + w / 2, spot[1] + h / 2)
        if not cv.free([rect], allowed):
            continue
        x0, y0, x1, y1 = rect[0][0], rect[0][1], rect[2][0], rect[2][1]
        if label == "parking lot":
            polys_all.append(((120, 120, 122), rect))
            for x in np.arange(x0 + 0.02, x1 - 0.01, 0.025):
                for yy in (y0 + 0.01, (y0 + y1) / 2 + 0.01):
                    polys_all.append(((235, 235, 235), rect_points(x, yy, x + 0.003, yy + 0.04)))
        elif label == "court":
            base = ((70, 140, 80), (60, 110, 170), (185, 95, 60))[rng.integers(3)]
            polys_all.append((base, rect))
            line = (240, 240, 240)
            t = 0.004
            polys_all += [(line, rect_points(x0 + 0.01, y0 + 0.01, x1 - 0.01, y0 + 0.01 + t)),
                          (line, rect_points(x0 + 0.01, y1 - 0.01 - t, x1 - 0.01, y1 - 0.01)),
                          (line, rect_points(x0 + 0.01, y0 + 0.01, x0 + 0.01 + t, y1 - 0.01)),
                          (line, rect_points(x1 - 0.01 - t, y0 + 0.01, x1 - 0.01, y1 - 0.01))]
            if w > h:
                polys_all.append((line, rect_points((x0 + x1) / 2 - t / 2, y0 + 0.01, (x0 + x1) / 2 + t / 2, y1 - 0.01)))
            else:
                polys_all.append((line, rect_points(x0 + 0.01, (y0 + y1) / 2 - t / 2, x1 - 0.01, (y0 + y1) / 2 + t / 2)))
        elif label == "swimming pool":
            polys_all += [((235, 235, 230), rect),
                          (jitter(rng, (80, 190, 220), 15), rect_points(x0 + 0.006, y0 + 0.006, x1 - 0.006, y1 - 0.006))]
        else:
            roof = jitter(rng, ((170, 80, 60), (150, 150, 155), (110, 90, 80), (200, 195, 185))[rng.integers(4)], 15)
            d = 0.012
            polys_all += [((60, 60, 60), rect_points(x0 + d, y0 + d, x1 + d, y1 + d)), (roof, rect)]
            if rng.random() < 0.6:  # ridge of a pitched roof
                dark = tuple(int(v * 0.8) for v in roof)
                if w > h:
                    polys_all.append((dark, rect_points(x0, (y0 + y1) / 2, x1, y1)))
                else:
                    polys_all.append((dark, rect_points((x0 + x1) / 2, y0, x1, y1)))
            rect = rect_points(x0, y0, x1 + d, y1 + d)
        cover.append(rect)
        cv.mark([rect], label)
    if cover:
        cv.add(Element("polygon", bounds(cover), (label,), {"polys": polys_all}), cover, label)


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
    cover = [rect_points(x - rr, y - rr, x + rr, y + rr) for x, y, rr, _ in crowns]
    cv.add(Element("crowns", bounds(cover, pad=0.02), ("trees",), {"crowns": crowns}), cover, "trees")


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
            rect = rect_points(spot[0] - bw / 2, spot[1] - bh / 2, spot[0] + bw / 2, spot[1] + bh / 2)
            if not cv.free([rect], allowed):
                continue
            cv.add(Element("sprite", bounds([rect]), ("airplane",), {"sprite": name, "wh": (w, h), "angle": deg}), [rect], "airplane")
            cover.append(rect)
            continue
        if label == "cars":
            length, width = 0.045, 0.022
            hull = _rotated_rect(*spot, length, width, angle)
            if not cv.free([hull], allowed, 0.5):
                continue
            c = math.cos(angle)
            s = math.sin(angle)
            polys += [(jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 20), hull),
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
            polys += [((150, 185, 205), wake), (jitter(rng, ((235, 235, 235), (180, 60, 50), (60, 70, 90))[rng.integers(3)], 10), hull),
                      ((200, 200, 200), _rotated_rect(spot[0] - c * length * 0.1, spot[1] - s * length * 0.1, length * 0.3, width * 0.6, angle))]
            hull = hull + wake
        cover.append(hull)
        cv.mark([hull], label)
    if cover and label != "airplane":
        cv.add(Element("polygon", bounds(cover), (label,), {"polys": polys}), cover, label)


def aerial_layout(rng: np.random.Generator) -> tuple[str, str, list[Element]]:
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
    clutter = [clutter_shape(rng, 0.015, 0.04) for _ in range(rng.integers(0, 4))]
    visible = cv.visible_elements({label: 40 for label in regions} | {"road": 12, "runway": 30})
    return scene, style, clutter + visible  # clutter lies on the ground, under everything


BACKGROUNDS["aerial"] = _aerial_background
