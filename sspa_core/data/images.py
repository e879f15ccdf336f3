"""Reading one image file: the single function every loader, ``sspa data check`` and
``sspa predict`` use, with clear errors and a configurable pixel limit.

* A file that is not an image, is truncated or cannot be decoded raises :class:`ImageError`
  (a ValueError) naming the file; a missing file raises FileNotFoundError.
* The pixel limit (:func:`max_image_pixels`: ``SSPA_MAX_IMAGE_PIXELS`` in the environment, by
  default Pillow's own error threshold) replaces Pillow's ``DecompressionBombError``: a JPEG
  larger than the limit is decoded at a reduced DCT scale (``Image.draft``) small enough to fit;
  any other image over the limit is an :class:`ImageError` saying how to raise it.
* 16-bit and 32-bit grey images (modes ``I;16``, ``I``, ``F``) are scaled to 8 bits (÷257 for
  the 16-bit range) instead of being clipped to white by ``convert("RGB")``.
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np
from PIL import Image

PIXEL_LIMIT_VARIABLE = "SSPA_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970  # 2 × Pillow's MAX_IMAGE_PIXELS: where Pillow itself refuses
DRAFT_SCALES = (1, 2, 4, 8)  # the DCT scales a JPEG decoder can reduce by
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)
_PILLOW_LIMIT = threading.Lock()


class ImageError(ValueError):
    """An image file that cannot be used: not an image, truncated, or over the pixel limit."""


def max_image_pixels() -> int:
    """The largest number of pixels an image may be decoded at (``SSPA_MAX_IMAGE_PIXELS``)."""
    text = os.environ.get(PIXEL_LIMIT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{PIXEL_LIMIT_VARIABLE}={text!r}: expected a positive number of pixels")
    return value


def _open(path: Path) -> Image.Image:
    """``Image.open`` (the header only) with Pillow's bomb check lifted: :func:`read_image`
    applies :func:`max_image_pixels` itself, after a JPEG has had the chance to be drafted."""
    with _PILLOW_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _fit_limit(image: Image.Image, path: Path, limit: int, min_size: tuple[int, int] | None) -> None:
    """Draft a JPEG to the mildest DCT reduction within ``limit`` (given ``min_size``, the
    strongest that still covers it); ImageError if the image cannot be brought within the limit."""
    width, height = image.size
    if image.format in ("JPEG", "MPO"):  # MPO: a JPEG with extra frames (phone cameras)
        sizes = {s: (-(-width // s), -(-height // s)) for s in DRAFT_SCALES}  # decoded size at 1/s
        within = [s for s in DRAFT_SCALES if sizes[s][0] * sizes[s][1] <= limit]
        covering = [s for s in within if min_size is not None
                    and sizes[s][0] >= min_size[0] and sizes[s][1] >= min_size[1]]
        scale = covering[-1] if covering else within[0] if within else None
        if scale is not None:
            if scale > 1:
                image.draft(image.mode, sizes[scale])
            return
    if width * height > limit:
        raise ImageError(
            f"image {path} has {width}×{height} = {width * height:,} pixels, over the limit of "
            f"{limit:,}: resize it, or raise the limit with {PIXEL_LIMIT_VARIABLE}=<pixels>"
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of ``image``; high-depth grey images are scaled to 0..255 (÷257 for 16-bit
    values, by the maximum above that), not clipped."""
    if image.mode not in _HIGH_DEPTH_MODES:
        return image.convert("RGB")
    values = np.clip(np.asarray(image, dtype=np.float64), 0, None)
    peak = float(values.max(initial=0.0))
    if image.mode.startswith("I;16") or 255 < peak <= 65535:
        values = values / 257.0
    elif peak > 65535:
        values = values * (255.0 / peak)
    return Image.fromarray(np.rint(values).clip(0, 255).astype(np.uint8), "L").convert("RGB")


def read_image(path: str | Path, min_size: tuple[int, int] | None = None) -> Image.Image:
    """The image at ``path`` as an RGB PIL image, fully decoded.

    ``min_size`` (width, height): the caller needs no more pixels than this, so a JPEG may be
    decoded at the smallest DCT scale that still covers it (e.g. a quick check that every byte
    decodes). FileNotFoundError if the file is absent; :class:`ImageError` naming the file if it
    cannot be decoded or is over :func:`max_image_pixels`.
    """
    limit = max_image_pixels()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} is missing")
    try:
        with _open(path) as image:
            _fit_limit(image, path, limit, min_size)
            image.load()
            return to_rgb(image)
    except ImageError:
        raise
    except _DECODE_ERRORS as err:
        raise ImageError(f"cannot decode image {path} ({type(err).__name__}: {err})") from err
