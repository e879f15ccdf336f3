"""The pedestrian-attribute domain: an upright figure whose worn and carried items are the
attribute labels (PA100K/PETA-like names).

Deviation from a pure emoji composition: the person emoji is too small and fixed to dress, so
the body, clothes and hair are drawn as polygons (sleeves, trousers, shorts, skirt, long coat,
long hair), while the accessories are emoji sprites at their body positions (hat, glasses,
scarf, boots, backpack, handbag, shoulder bag, held objects). Exactly one sleeve length and one
lower garment per figure; a long coat implies long sleeves and trousers; glasses only show (and
count) in front views.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from sspa_core.data.synthetic.atlas import sprite_aspect
from sspa_core.data.synthetic.canvas import (
    BACKGROUNDS,
    Element,
    Points,
    clutter_shape,
    finish,
    gradient,
    jitter,
    pick,
    polygon_element,
    rect_points,
    stripes,
)

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
# caption phrases carry their preposition ("a pedestrian on a campus")
PEDESTRIAN_PHRASES: dict[str, str] = {
    scene: ("in an " if scene.startswith("office") else "on a ") + scene
    for scene in PEDESTRIAN_SCENES}
_HELD = {  # what "holding objects" shows, per scene type
    "summer street": ("takeout cup", "cell phone"),
    "winter street": ("takeout cup", "cell phone"),
    "rainy street": ("closed umbrella",),
    "office district": ("briefcase", "cell phone", "takeout cup"),
    "shopping street": ("shopping bags", "cell phone"),
    "campus": ("book", "cell phone", "takeout cup")}

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
    c = gradient(S, jitter(rng, wall, 25), jitter(rng, wall, 25), 0, split)
    gradient(S, jitter(rng, ground, 15), jitter(rng, ground, 15), split, 1, c)
    im = finish(c, rng, 4)
    d = ImageDraw.Draw(im)
    if style in ("office district", "shopping street"):
        step = rng.uniform(0.18, 0.28)
        for x in np.arange(rng.uniform(0, step), 1, step):
            color = ((120, 150, 175) if style == "office district"
                     else jitter(rng, (90, 140, 160), 60))
            d.rectangle([x * S, 0.08 * S, (x + step * 0.8) * S, (split - 0.1) * S], fill=color,
                        outline=(60, 60, 70), width=max(1, S // 100))
    elif style == "campus":
        stripes(d, S, 0, split, 0.05, (140, 70, 55), vertical=False)
    else:
        for x in np.arange(rng.uniform(0, 0.3), 1, 0.3):
            d.rectangle([x * S, 0.1 * S, (x + 0.12) * S, 0.3 * S], fill=(90, 110, 140))
    for x in np.arange(-0.5, 1.5, 0.15):  # paving joints in perspective
        d.line([(0.5 + (x - 0.5) * 0.6) * S, split * S, x * S, S],
               fill=tuple(int(v * 0.85) for v in ground))
    if style == "rainy street":
        for _ in range(3):
            x, y = rng.uniform(0, 0.8), rng.uniform(split + 0.05, 0.95)
            d.ellipse([x * S, y * S, (x + 0.2) * S, (y + 0.04) * S], fill=(110, 120, 135))
    return im


def _sprite_at(sprite: str, cx: float, cy: float, width: float, labels: tuple[str, ...],
               flip: bool = False) -> Element:
    """A sprite of a given normalised width centred at (cx, cy)."""
    w, h = width, width / sprite_aspect(sprite)
    return Element("sprite", (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), labels,
                   {"sprite": sprite, "flip": flip})


def pedestrian_layout(rng: np.random.Generator) -> tuple[str, str, list[Element]]:
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
        lower = ("shorts", "skirt", "trousers")[pick(rng, (p_sh, p_sk, 1 - p_sh - p_sk))]
    u = rng.uniform(0.8, 0.92)
    top = (1 - u) / 2 + rng.uniform(-0.02, 0.02)
    cx = 0.5 + rng.uniform(-0.06, 0.06)

    # positions in body units (the figure's height u), from its top centre
    def Y(f: float) -> float:
        return top + f * u

    def X(f: float) -> float:
        return cx + f * u

    def P(*points: tuple[float, float]) -> Points:  # body units -> image coordinates
        return [(X(a), Y(b)) for a, b in points]

    def R(a: float, b: float, c: float, d: float) -> Points:
        return rect_points(X(a), Y(b), X(c), Y(d))

    skin, hair = _SKIN[rng.integers(len(_SKIN))], _HAIR[rng.integers(len(_HAIR))]
    upper_c, lower_c, coat_c = (jitter(rng, _CLOTHES[k], 12)
                                for k in rng.permutation(len(_CLOTHES))[:3])
    elements: list[Element] = []
    for _ in range(rng.integers(0, 3)):  # clutter at the sides and on the wall
        el = clutter_shape(rng, 0.04, 0.12)
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
    hair_poly = (hair, P((-0.075, 0.04), (0.075, 0.04), (0.08, 0.27), (-0.08, 0.27)))
    if on["long hair"] and front:
        elements.append(polygon_element([hair_poly], ("long hair",)))
    # body: legs, arms, neck
    body = [(skin, R(-0.02, 0.11, 0.02, 0.17)),
            (skin, P((-0.125, 0.17), (-0.175, 0.17), (-0.17, 0.52), (-0.125, 0.52))),
            (skin, P((0.125, 0.17), (0.175, 0.17), (0.17, 0.52), (0.125, 0.52))),
            (skin, R(-0.09, 0.48, -0.015, 0.93)), (skin, R(0.015, 0.48, 0.09, 0.93))]
    elements.append(polygon_element(body))
    hem = {"trousers": 0.93, "shorts": 0.64, "skirt": 0.72}[lower]
    if lower == "skirt":
        lower_polys = [(lower_c, P((-0.1, 0.47), (0.1, 0.47), (0.14, hem), (-0.14, hem)))]
    else:
        lower_polys = [(lower_c, R(-0.1, 0.47, 0.1, 0.55)), (lower_c, R(-0.1, 0.5, -0.005, hem)),
                       (lower_c, R(0.005, 0.5, 0.1, hem))]
    elements.append(polygon_element(lower_polys, (lower,)))
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
    upper = [(color, P((-0.125, 0.16), (0.125, 0.16), (width, hem_u), (-width, hem_u))),
             (color, P((-0.125, 0.16), (-0.18, 0.17), (-0.18, sleeve_end), (-0.123, sleeve_end))),
             (color, P((0.125, 0.16), (0.18, 0.17), (0.18, sleeve_end), (0.123, sleeve_end)))]
    if rng.random() < 0.35:  # stripes or a logo, not labels
        accent = jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 10)
        if rng.random() < 0.5:
            upper += [(accent, R(-0.12, f, 0.12, f + 0.02)) for f in (0.24, 0.3, 0.36)]
        else:
            upper.append((accent, R(-0.04, 0.24, 0.04, 0.31)))
    elements.append(polygon_element(upper, labels))
    if on["backpack"] and not front:
        elements.append(_sprite_at("backpack", X(0), Y(0.3), 0.24 * u, ("backpack",)))
    elif on["backpack"]:
        strap = jitter(rng, (60, 60, 60), 10)
        elements.append(polygon_element(
            [(strap, R(-0.1, 0.16, -0.075, 0.36)), (strap, R(0.075, 0.16, 0.1, 0.36))],
            ("backpack",)))
    if on["long hair"] and not front:
        elements.append(polygon_element([hair_poly], ("long hair",)))
    head = [(skin, [(X(0.065 * math.cos(a)), Y(0.07 + 0.065 * math.sin(a)))
                    for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)])]
    if front:
        head.append((hair, [(X(0.067 * math.cos(a)), Y(0.062 + 0.06 * math.sin(a)))
                            for a in np.linspace(math.pi, 2 * math.pi, 9)]))
        head += [((40, 30, 30), R(d - 0.008, 0.075, d + 0.008, 0.09)) for d in (-0.025, 0.025)]
    else:
        head.append((hair, [(X(0.067 * math.cos(a)), Y(0.07 + 0.067 * math.sin(a)))
                            for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)]))
    elements.append(polygon_element(head, view="front" if front else "back"))
    if on["scarf"]:
        elements.append(_sprite_at("scarf", X(0), Y(0.24), 0.14 * u, ("scarf",)))
    if on["glasses"]:
        sunny = 0.7 if scene == "summer street" else 0.2
        name = "sunglasses" if rng.random() < sunny else "eyeglasses"
        elements.append(_sprite_at(name, X(0), Y(0.08), 0.13 * u, ("glasses",)))
    if on["hat"]:
        hats = _HATS.get(scene, ("billed cap", "top hat", "sun hat"))
        name = hats[rng.integers(len(hats))]
        width = (0.2 if name == "sun hat" else 0.15) * u
        h = width / sprite_aspect(name)
        elements.append(_sprite_at(name, X(0), Y(0.04) - h / 2 + 0.02 * u, width, ("hat",),
                                   bool(rng.random() < 0.5)))
    if on["shoulder bag"]:
        strap_c = jitter(rng, (70, 50, 40), 15)
        elements.append(polygon_element(
            [(strap_c, P((side * 0.11, 0.16), (side * 0.08, 0.16), (-side * 0.17, 0.46),
                         (-side * 0.2, 0.46)))], ("shoulder bag",)))
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
            sleeve = skin if on["short sleeves"] and not on["long coat"] else color
            forearm = (sleeve, P((-0.16, 0.34), (-0.16, 0.29), (0.0, 0.37), (0.0, 0.42)))
            hand = (skin, R(-0.01, 0.36, 0.04, 0.42))
            elements.append(polygon_element([forearm, hand], ("holding objects",)))
            elements.append(_sprite_at(held, X(0.03), Y(0.35), 0.1 * u, ("holding objects",)))
    return scene, scene, elements


BACKGROUNDS["pedestrian"] = _pedestrian_background
