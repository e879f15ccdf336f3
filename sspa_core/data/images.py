"""Reading one image file: the single function every loader, ``sspa data check`` and
``sspa predict`` use, with clear errors and a configurable pixel limit.

* A file that is not an image, is truncated or cannot be decoded raises :class:`ImageError`
  (a ValueError) naming the file; a missing file raises FileNotFoundError.
* The pixel limit (:func:`max_image_pixels`: ``SSPA_MAX_IMAGE_PIXELS`` in the environment, by
  default Pillow's own error threshold) replaces Pillow's ``DecompressionBombError``: a JPEG
  larger than the limit is decoded at a reduced DCT scale (``Image.draft``) small enough to fit;
  any other image over the limit is an :class:`ImageError` saying how to raise it.
* 16-bit and 32-bit grey images (modes ``I;16``, ``I``, ``F``) are scaled to 8 bits (÷257 for
  the 16-bit range; float images with values in [0, 1] ×255) instead of being clipped to white or
  rounded to black by ``convert("RGB")``.
* The EXIF orientation is applied (a phone photo stored sideways is read upright).
* Damage that Pillow decodes without a word is an :class:`ImageError` where it can be told
  reliably: a Huffman-coded JPEG whose header claims more pixels than its bytes could encode (at
  least one bit per 8×8 block), and a JPEG whose scan data end before its last rows (libjpeg fills
  them with grey, which a second decode with extra data after the scan tells apart from a grey
  photo). What cannot be told is listed in data/README.md (§Damaged images).
"""

from __future__ import annotations

import io
import os
import re
import struct
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

PIXEL_LIMIT_VARIABLE = "SSPA_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970  # 2 × Pillow's MAX_IMAGE_PIXELS: where Pillow itself refuses
DRAFT_SCALES = (1, 2, 4, 8)  # the DCT scales a JPEG decoder can reduce by
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)
_PILLOW_LIMIT = threading.Lock()
#: bumped whenever :func:`read_image` returns other pixels for the same file (2: EXIF orientation,
#: float images in [0, 1]); part of a dataset's fingerprint, so older feature caches are rebuilt
READER_VERSION = 2
_JPEG_FORMATS = ("JPEG", "MPO")  # MPO: a JPEG with extra frames (phone cameras)
_JPEG_FILL = (128, (128, 128, 128))  # what libjpeg decodes where the scan data ran out, in L and RGB
_SCAN_PROBE = bytes(range(1, 255))  # Huffman data (no 0xFF) appended to a scan that may end early
_SCAN_SLACK = 16  # bytes at the end of a scan that its last rows need (at most 7 bits are padding)
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # the first marker after a scan's data: not a stuffed byte or RSTn


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


def _open(source: Path | io.BytesIO) -> Image.Image:
    """``Image.open`` (the header only) with Pillow's bomb check lifted: :func:`read_image`
    applies :func:`max_image_pixels` itself, after a JPEG has had the chance to be drafted."""
    with _PILLOW_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _jpeg_layout(data: bytes) -> tuple[int | None, int | None]:
    """The start-of-frame marker of a JPEG (0xC0-0xCF) and the offset of its first scan's data,
    read from its header segments (None where the header ends first)."""
    frame, pos = None, 2  # after SOI
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        code = data[pos + 1]
        if code == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            frame = code
        elif code == 0xDA:
            return frame, pos + 2 + length
        pos += 2 + length
    return frame, None


def _check_jpeg_size(image: Image.Image, path: Path) -> None:
    """ImageError if a Huffman-coded JPEG claims more pixels than its bytes can encode: every 8×8
    block costs at least one bit, and no component is subsampled more than 4× per axis."""
    if image.format not in _JPEG_FORMATS:
        return
    width, height = image.size
    size = path.stat().st_size
    if -(-width // 32) * -(-height // 32) > 8 * size:
        frame, _ = _jpeg_layout(path.read_bytes())
        if frame is None or frame < 0xC9:  # not arithmetic-coded (SOF9-SOF15), which can do with less
            raise ImageError(f"image {path}: its header claims {width}×{height} pixels, more than its "
                             f"{size:,} bytes can hold; the file is damaged (re-download or re-export it)")


def _last_row_decoded(data: bytes) -> bool:
    """Whether libjpeg outputs the last row of a JPEG from ``data`` (a scan without its end):
    decoded at the smallest DCT scale (every bit is still parsed) into a zeroed buffer, which the
    rows it could not decode keep."""
    with _open(io.BytesIO(data)) as probe:
        probe.draft(probe.mode, (1, 1))
        try:
            probe.load()
        except OSError:  # "image file is truncated": the buffer holds the rows decoded so far
            pass
        row = probe.height - 1
        return any(probe.im.getpixel((x, row)) not in (0, (0, 0, 0)) for x in range(probe.width))


def _check_scan(image: Image.Image, path: Path) -> None:
    """ImageError if a decoded baseline JPEG's scan data did not match its size, which libjpeg
    only warns about: data that end before the last rows (libjpeg decodes the missing blocks as
    grey; an image whose last pixel is that grey is decoded again with :data:`_SCAN_PROBE` at the
    end of its scan: a complete scan ignores it, a short one decodes it into its last rows), or
    a scan whose last :data:`_SCAN_SLACK` bytes are not needed (bytes were lost or damaged
    inside it). An image whose last row is black is not checked for the latter."""
    if image.format not in _JPEG_FORMATS or image.info.get("progressive") or image.mode not in ("L", "RGB"):
        return
    data = path.read_bytes()
    _, start = _jpeg_layout(data)
    found = None if start is None else _SCAN_END.search(data, start)
    if found is None:
        return
    end = found.start()
    damaged = None
    if image.getpixel((image.width - 1, image.height - 1)) in _JPEG_FILL:
        with _open(io.BytesIO(data[:end] + _SCAN_PROBE + data[end:])) as probe:
            probe.draft(image.mode, image.size)
            probe.load()
            if probe.size != image.size or not np.array_equal(np.asarray(probe), np.asarray(image)):
                damaged = "its JPEG data end before its last rows, which decode as grey"
    if damaged is None and end - start > _SCAN_SLACK and _last_row_decoded(data[:end - _SCAN_SLACK]):
        damaged = "its JPEG data go on after its last rows (libjpeg would warn of extraneous bytes)"
    if damaged is not None:
        raise ImageError(f"image {path}: {damaged}; the file is cut short or damaged (re-download or "
                         "re-export it)")


def _fit_limit(image: Image.Image, path: Path, limit: int, min_size: tuple[int, int] | None) -> None:
    """Draft a JPEG to the mildest DCT reduction within ``limit`` (given ``min_size``, the
    strongest that still covers it); ImageError if the image cannot be brought within the limit."""
    width, height = image.size
    if image.format in _JPEG_FORMATS:
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
    """An RGB copy of ``image``; high-depth grey images are scaled to 0..255 (float values in
    [0, 1] ×255, 16-bit values ÷257, by the maximum above that), not clipped or rounded."""
    if image.mode not in _HIGH_DEPTH_MODES:
        return image.convert("RGB")
    values = np.clip(np.asarray(image, dtype=np.float64), 0, None)
    peak = float(values.max(initial=0.0))
    if image.mode == "F" and peak <= 1.0:
        values = values * 255.0
    elif image.mode.startswith("I;16") or 255 < peak <= 65535:
        values = values / 257.0
    elif peak > 65535:
        values = values * (255.0 / peak)
    return Image.fromarray(np.rint(values).clip(0, 255).astype(np.uint8), "L").convert("RGB")


def read_image(path: str | Path, min_size: tuple[int, int] | None = None) -> Image.Image:
    """The image at ``path`` as an RGB PIL image, fully decoded.

    ``min_size`` (width, height): the caller needs no more pixels than this, so a JPEG may be
    decoded at the smallest DCT scale that still covers it (e.g. a quick check that every byte
    decodes). The EXIF orientation is applied. FileNotFoundError if the file is absent;
    :class:`ImageError` naming the file if it cannot be decoded, is damaged (see the module
    docstring) or is over :func:`max_image_pixels`.
    """
    limit = max_image_pixels()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} is missing")
    try:
        with _open(path) as image:
            _check_jpeg_size(image, path)
            _fit_limit(image, path, limit, min_size)
            image.load()
            _check_scan(image, path)
            ImageOps.exif_transpose(image, in_place=True)
            return to_rgb(image)
    except ImageError:
        raise
    except _DECODE_ERRORS as err:
        raise ImageError(f"cannot decode image {path} ({type(err).__name__}: {err})") from err
