"""Captions: every label verbatim, the scene type in about half of them (docs/method.md §Offline world)."""

from __future__ import annotations

import numpy as np

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


def make_caption(labels: list[str], scene: str | None = None, domain: str = "natural",
                 rng: np.random.Generator | None = None) -> str:
    """A caption naming every label verbatim (in random order) and, if given, the scene type
    (e.g. ``"a photo of an office with a laptop, a keyboard and a cup."``)."""
    domain = canonical_domain(domain)
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
