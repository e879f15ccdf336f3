"""The remote-sensing domain: aerial tiles (MultiScene/AID style) with procedural land cover and
small objects seen from above, placed with a coarse occupancy grid.

Emoji are drawn from the side, so only airplanes are sprites (rotated); water, sand, grass,
farmland, roads, runways, parking lots, courts, pools, buildings, tree crowns, cars and ships
are drawn shapes. The grid keeps things where they belong (ships on water, cars on roads and
parking lots, buildings and trees on land) and drops any label left with too little of it
visible. This module holds the labels, the scene types and the order in which a tile is built;
:mod:`~sspa_core.data.synthetic.remote_sensing_cover` the grid and the land cover,
:mod:`~sspa_core.data.synthetic.remote_sensing_objects` the objects.
"""

from __future__ import annotations

import numpy as np

from sspa_core.data.synthetic.canvas import Element, clutter_shape
from sspa_core.data.synthetic.remote_sensing_cover import (
    AerialCanvas,
    add_band,
    add_farmland,
    add_texture_region,
    add_water,
    blob,
)
from sspa_core.data.synthetic.remote_sensing_objects import add_structures, add_trees, add_vehicles

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
    cv = AerialCanvas(rng)
    if "farmland" in on:
        add_farmland(cv)
    if "water" in on:
        add_water(cv, scene)
    if "sand" in on and scene != "beach":  # a beach's sand comes with its water
        add_texture_region(cv, "sand", [blob(rng, *rng.uniform(0.35, 0.65, 2),
                                             *rng.uniform(0.3, 0.5, 2))])
    if "grass" in on:
        patches = [blob(rng, *rng.uniform(0.2, 0.8, 2), *rng.uniform(0.12, 0.3, 2))
                   for _ in range(rng.integers(1, 4))]
        add_texture_region(cv, "grass", patches)
    for label in ("runway", "road"):
        if label in on:
            for _ in range(1 if label == "runway" or rng.random() < 0.6 else 2):
                add_band(cv, label)
    for label in ("parking lot", "court", "swimming pool", "buildings"):
        if label in on:
            add_structures(cv, label, scene)
    if "trees" in on:
        add_trees(cv, scene)
    for label in ("cars", "ship", "airplane"):
        if label in on:
            add_vehicles(cv, label)
    clutter = [clutter_shape(rng, 0.015, 0.04) for _ in range(rng.integers(0, 4))]
    regions = dict.fromkeys(("water", "sand", "grass", "farmland"), 40)
    visible = cv.visible_elements(regions | {"road": 12, "runway": 30})
    return scene, style, clutter + visible  # clutter lies on the ground, under everything
