"""Captions: every label verbatim, the scene type in about half of them, and, as in web alt-text,
some of what a viewer sees about each object: its relative size, where it is and its colour
(docs/method.md §Offline world)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from functools import cache

import numpy as np

from sspa_core.data.synthetic.atlas import load_atlas
from sspa_core.data.synthetic.canvas import Element
from sspa_core.data.synthetic.natural import NATURAL_PHRASES
from sspa_core.data.synthetic.pedestrian import PEDESTRIAN_PHRASES
from sspa_core.data.synthetic.remote_sensing import REMOTE_SENSING_PHRASES
from sspa_core.domains import canonical_domain

HOLDING = "holding objects"

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
    "remote_sensing": (
        ("an aerial image of {s} with {o}.", "a satellite view of {s} showing {o}.",
         "{s} seen from above, with {o}.", "a remote sensing image of {s}: {o}."),
        ("an aerial image with {o}.", "a satellite view showing {o}.",
         "seen from above: {o}.", "a remote sensing image of {o}.")),
}
# scene type -> the phrase a caption uses (default: "a/an <scene>")
SCENE_PHRASES: dict[str, str] = {
    **NATURAL_PHRASES, **PEDESTRIAN_PHRASES, **REMOTE_SENSING_PHRASES}


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


ATTRIBUTE_PROBABILITY = 0.5  # chance that a caption mentions each attribute of an object


def colour_name(rgb: Sequence[float]) -> str:
    """A basic colour word for an RGB colour (0-255): black, white, grey, brown or a hue."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    hue = h * 360
    if v < 0.22:
        return "black"
    if s < 0.2:
        return "white" if v > 0.8 else "grey"
    if hue < 45 and (v < 0.7 or s < 0.45):
        return "brown"
    for name, upper in (("red", 18), ("orange", 38), ("yellow", 70), ("green", 165),
                        ("blue", 255), ("purple", 290), ("pink", 340)):
        if hue < upper:
            return name
    return "red"


@cache
def sprite_colour(sprite: str) -> str | None:
    """The colour that covers most of a sprite's opaque pixels, or None when no colour covers
    half of them (a many-coloured sprite is not called by one colour)."""
    rgba = np.asarray(load_atlas()[sprite].convert("RGBA").resize((24, 24)))
    pixels = rgba[rgba[..., 3] > 128, :3]
    if len(pixels) == 0:
        return None
    names, counts = np.unique([colour_name(p) for p in pixels], return_counts=True)
    return str(names[counts.argmax()]) if counts.max() >= 0.5 * len(pixels) else None


def element_colour(el: Element) -> str | None:
    """The colour a viewer would name: a sprite's main colour, or a polygon's largest part."""
    if el.kind == "sprite":
        return sprite_colour(el.params["sprite"])
    if el.kind == "polygon":
        def area(pts: np.ndarray) -> float:
            x, y = pts[:, 0], pts[:, 1]
            return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
        color, _ = max(el.params["polys"], key=lambda cp: area(cp[1]))
        return colour_name(color)
    return None


def _size_word(el: Element) -> str | None:
    side = max(el.box[2] - el.box[0], el.box[3] - el.box[1])
    return "small" if side < 0.2 else "large" if side > 0.4 else None


def _position(el: Element) -> str:
    cx, cy = (el.box[0] + el.box[2]) / 2, (el.box[1] + el.box[3]) / 2
    if cx < 1 / 3 or cx > 2 / 3:
        return "on the left" if cx < 1 / 3 else "on the right"
    return "at the top" if cy < 1 / 3 else "at the bottom" if cy > 2 / 3 else "in the middle"


def object_phrase(label: str, el: Element | None, domain: str, rng: np.random.Generator) -> str:
    """``label`` with its article and, each with :data:`ATTRIBUTE_PROBABILITY`, the size and
    colour of ``el`` and (outside the pedestrian domain, where labels are worn) its position:
    ``"a small red cup on the left"``. Mass nouns and land cover get no size, land cover no
    position, aerial objects no colour (the tiles' tint makes it unreliable)."""
    if el is None:
        return with_article(label)
    words = []
    countable = label not in _NO_ARTICLE and el.kind != "texture"
    size = _size_word(el) if countable and domain != "pedestrian" else None
    if size and rng.random() < ATTRIBUTE_PROBABILITY:
        words.append(size)
    colour = element_colour(el) if domain != "remote_sensing" else None
    if colour and rng.random() < ATTRIBUTE_PROBABILITY:
        words.append(colour)
    phrase = " ".join([*words, label])
    if label not in _NO_ARTICLE:
        phrase = ("an " if phrase[0] in "aeiou" else "a ") + phrase
    placed = el.kind != "texture" and domain != "pedestrian"
    if placed and rng.random() < ATTRIBUTE_PROBABILITY:
        phrase += " " + _position(el)
    return phrase


def object_templates(domain: str) -> tuple[str, ...]:
    """The caption templates of ``domain`` that name no scene type (``"a photo of {o}."``),
    ``{o}`` standing for the listed objects: the wordings the tiny CLIP pretrained on."""
    return _TEMPLATES[canonical_domain(domain)][1]


def make_caption(labels: list[str], scene: str | None = None, domain: str = "natural",
                 rng: np.random.Generator | None = None,
                 elements: Sequence[Element] = ()) -> str:
    """A caption naming every label verbatim (in random order) and, if given, the scene type
    (e.g. ``"a photo of an office with a laptop, a small keyboard and a white cup on the
    left."``); with ``elements``, each label's first element lends its attributes
    (:func:`object_phrase`)."""
    domain = canonical_domain(domain)
    if not labels:
        raise ValueError("a caption needs at least one label")
    rng = rng if rng is not None else np.random.default_rng(0)
    holding = HOLDING in labels and len(labels) > 1  # a verb phrase: "..., holding objects."
    listed = [label for label in labels if not (holding and label == HOLDING)]
    first = {}
    for el in elements:
        for label in el.labels:
            first.setdefault(label, el)
    order = rng.permutation(len(listed))
    objects = join_phrases([object_phrase(listed[k], first.get(listed[k]), domain, rng)
                            for k in order])
    with_scene, without_scene = _TEMPLATES[domain]
    if scene is None:
        caption = without_scene[rng.integers(len(without_scene))].format(o=objects)
    else:
        template = with_scene[rng.integers(len(with_scene))]
        caption = template.format(s=SCENE_PHRASES.get(scene, with_article(scene)), o=objects)
    return caption[:-1] + f", {HOLDING}." if holding else caption
