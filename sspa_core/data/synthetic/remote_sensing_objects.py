"""Objects on the remote-sensing tiles, placed on the land cover's occupancy grid: parking lots,
courts, pools and buildings on free land, tree crowns, cars on roads and parking lots, ships on
water and airplanes (the one sprite, rotated) on runways and aprons.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.synthetic.atlas import sprite_aspect
from sspa_core.data.synthetic.canvas import (
    DRAWERS,
    Color,
    Element,
    Points,
    bounds,
    jitter,
    polygon_element,
    rect_points,
)
from sspa_core.data.synthetic.remote_sensing_cover import GRID, LAND, AerialCanvas, rotated_rect

_CAR_COLORS = ((30, 30, 35), (240, 240, 240), (40, 60, 120), (150, 30, 40), (60, 110, 60),
               (200, 170, 120), (120, 120, 125), (230, 190, 60))
_ROOFS = ((170, 80, 60), (150, 150, 155), (110, 90, 80), (200, 195, 185))
_HULLS = ((235, 235, 235), (180, 60, 50), (60, 70, 90))


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

DRAWERS["crowns"] = _draw_crowns


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


def add_structures(cv: AerialCanvas, label: str, scene: str) -> None:
    """Parking lots, courts, pools or buildings on free land."""
    rng = cv.rng
    built_up = scene in ("residential area", "industrial area")
    count = {"buildings": int(rng.integers(3, 12) if built_up else rng.integers(1, 5)),
             "court": int(rng.integers(1, 4)) if scene == "sports complex" else 1,
             "swimming pool": int(rng.integers(1, 3))}.get(label, 1)
    allowed = LAND + (("parking lot",) if label == "buildings" else ())
    big = 0.15 if scene == "industrial area" else 0.1
    polys: list[tuple[Color, Points]] = []
    cover: list[Points] = []
    for x, y in cv.spots(LAND, count * 6):
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


def add_trees(cv: AerialCanvas, scene: str) -> None:
    """Crowns scattered around a few clusters (over the whole tile in a forest), on land."""
    rng = cv.rng
    forest = scene == "forest"
    n = int(rng.integers(60, 120)) if forest else int(rng.integers(4, 30))
    centres = [c for c in (cv.spot(LAND) for _ in range(rng.integers(1, 4))) if c is not None]
    if not centres:
        return
    around = np.asarray(centres)[rng.integers(len(centres), size=n)]
    xy = np.clip(around + rng.normal(0, 0.4 if forest else 0.12, (n, 2)), 0.02, 0.98)
    r = rng.uniform(0.012, 0.028, n)
    ok = cv.lut(LAND + ("trees",))
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (0, 0)):  # corners and centre on land
        cx = np.clip(((xy[:, 0] + dx * r) * GRID).astype(int), 0, GRID - 1)
        cy = np.clip(((xy[:, 1] + dy * r) * GRID).astype(int), 0, GRID - 1)
        keep = ok[cv.cls[cy, cx]]
        xy, r = xy[keep], r[keep]
    if len(r) == 0:
        return
    colors = (rng.integers(-15, 16, (len(r), 3)) + np.array([50, 100, 45])).astype(np.uint8)
    xyr = np.column_stack([xy, r]).astype(np.float32)
    cover = [rect_points(x - rr, y - rr, x + rr, y + rr) for x, y, rr in xyr.tolist()]
    params = {"xyr": xyr, "colors": colors}
    cv.add(Element("crowns", bounds(cover, pad=0.02), ("trees",), params), cover, "trees")


def _airplane(cv: AerialCanvas, x: float, y: float) -> bool:
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


def _car(cv: AerialCanvas, x: float, y: float) -> tuple[list[tuple[Color, Points]], Points]:
    """Polygons of a car seen from above (body and windscreen) and its outline."""
    rng = cv.rng
    angle = float(rng.uniform(0, math.pi))
    c, s = math.cos(angle), math.sin(angle)
    hull = rotated_rect(x, y, 0.045, 0.022, angle)
    body = jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 20)
    screen = rotated_rect(x + c * 0.008, y + s * 0.008, 0.01, 0.018, angle)
    return [(body, hull), ((40, 50, 60), screen)], hull


def _ship(cv: AerialCanvas, x: float, y: float) -> tuple[list[tuple[Color, Points]], Points]:
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
    house = rotated_rect(*at(-length * 0.1, 0), length * 0.3, width * 0.6, angle)
    return [((150, 185, 205), wake), (paint, hull), ((200, 200, 200), house)], hull + wake


def add_vehicles(cv: AerialCanvas, label: str) -> None:
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
