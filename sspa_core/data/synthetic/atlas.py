"""The sprite atlas (``data/sprites``): decoded once per process, resized copies cached."""

from __future__ import annotations

import json
from collections import OrderedDict
from functools import lru_cache

from PIL import Image

from sspa_core.paths import DATA_DIR

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
