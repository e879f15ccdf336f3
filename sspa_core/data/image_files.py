"""Datasets whose images are files on disk: clear errors for a missing root, a missing
annotation file, an empty or repeated image list or an unreadable image, and an opt-in mode
that skips corrupt images. Images are read by :func:`sspa_core.data.images.read_image`."""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from sspa_core.data.base import MultiLabelDataset, Transform, resolve_inside
from sspa_core.data.images import READER_VERSION, ImageError, read_image


def require_root(root: str | Path, dataset: str) -> Path:
    """The dataset root as a resolved path; FileNotFoundError naming the dataset if absent."""
    if not str(root):
        raise FileNotFoundError(f"{dataset}: no dataset root given (see data/README.md for the layout)")
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: dataset root {path} does not exist or is not a folder")
    return path


def require_file(root: Path, relative: str, dataset: str) -> Path:
    """An annotation file inside ``root``; FileNotFoundError naming it if it is absent."""
    path = resolve_inside(root, relative)
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: annotation file {path} is missing (see data/README.md)")
    return path


def read_text(path: Path) -> str:
    """An annotation file's text: UTF-8, with a byte-order mark dropped; a ValueError naming the
    file (and where) if it is in another encoding."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.object[err.start:err.start + 1]!r}); "
                         "save it as UTF-8, e.g. iconv -f latin1 -t utf-8") from None


def check_split(split: str, splits: tuple[str, ...], dataset: str) -> None:
    if split not in splits:
        raise ValueError(f"{dataset}: unknown split {split!r}; valid: {', '.join(splits)}")


def image_problem(path: Path) -> str | None:
    """Why the image at ``path`` cannot be used (missing, truncated, not an image, over the
    pixel limit), or None. The whole file is decoded (JPEGs at a reduced DCT scale, which still
    reads every byte), so truncation is caught, not only a bad header."""
    try:
        read_image(path, min_size=(64, 64))
    except FileNotFoundError:
        return "missing"
    except ImageError as err:
        return f"unreadable ({err})"
    return None


def repeated(values: list) -> list:
    """The values that occur more than once in ``values``, in order of first occurrence."""
    return [v for v, n in Counter(values).items() if n > 1]


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ImageFileDataset(MultiLabelDataset):
    """A :class:`MultiLabelDataset` over image files.

    ``skip_corrupt=True`` decodes every image once at construction, drops the missing or
    unreadable ones (listed in ``skipped`` as ``(path, reason)``) and warns with their count;
    by default nothing is checked up front and :meth:`load_image` raises naming the file.
    ``image_ids`` are the images' identifiers in the annotation files (default: file names);
    ``annotation_files`` the files the labels were read from. An empty image list, or a file or
    identifier listed twice, is a ValueError naming them.
    """

    dataset_name = "dataset"

    def __init__(
        self,
        split: str,
        image_paths: list[Path],
        targets: np.ndarray,
        masks: np.ndarray | None,
        label_names: list[str],
        transform: Transform | None = None,
        image_size: int = 224,
        skip_corrupt: bool = False,
        image_ids: list | None = None,
        annotation_files: list[Path] = (),
    ):
        super().__init__(split, transform, image_size)
        self.annotation_files = [Path(p) for p in annotation_files]
        files = self.annotation_files
        source = (f"{files[0]}" + (f" (and {len(files) - 1} more files)" if len(files) > 1 else "")
                  if files else self.dataset_name)
        if not image_paths:
            raise ValueError(f"{self.dataset_name} {split}: {source} lists no (labelled) image")
        if len(image_paths) != len(targets):
            raise ValueError(
                f"{self.dataset_name}: {len(image_paths)} images but {len(targets)} label rows"
            )
        if targets.ndim != 2 or targets.shape[1] != len(label_names):
            raise ValueError(
                f"{self.dataset_name}: annotations have {targets.shape[-1]} labels, the label list "
                f"has {len(label_names)}"
            )
        self.label_names = list(label_names)
        self.image_paths = list(image_paths)
        self.image_ids = [p.name for p in self.image_paths] if image_ids is None else list(image_ids)
        for what, values in (("image file", self.image_paths), ("image id", image_ids or [])):
            twice = repeated(values)
            if twice:
                raise ValueError(f"{self.dataset_name} {split}: {source} lists {len(twice)} "
                                 f"{what}(s) more than once: {', '.join(map(str, twice[:5]))}")
        self.targets = targets.astype(np.float32)
        self.masks = None if masks is None else masks.astype(np.float32)
        self.skipped: list[tuple[Path, str]] = []
        if skip_corrupt:
            self._drop_unreadable()

    def _drop_unreadable(self) -> None:
        problems = [image_problem(path) for path in self.image_paths]
        keep = np.array([problem is None for problem in problems], dtype=bool)
        self.skipped = [(p, why) for p, why in zip(self.image_paths, problems) if why is not None]
        if self.skipped:
            warnings.warn(
                f"{self.dataset_name} {self.split}: skipped {len(self.skipped)} of "
                f"{len(self.image_paths)} images that are missing or unreadable, first: "
                f"{self.skipped[0][0]} ({self.skipped[0][1]})",
                stacklevel=3,
            )
        self.image_paths = [p for p, ok in zip(self.image_paths, keep) if ok]
        self.image_ids = [i for i, ok in zip(self.image_ids, keep) if ok]
        self.targets = self.targets[keep]
        if self.masks is not None:
            self.masks = self.masks[keep]

    def source_state(self) -> list:
        """The image reader's version (:data:`~sspa_core.data.images.READER_VERSION`), the annotation
        files' SHA-256 and each image's path, size and modification time."""
        def stat(path: Path) -> list:
            try:
                info = path.stat()
            except OSError:
                return [str(path), None, None]
            return [str(path), info.st_size, info.st_mtime_ns]

        return ([["read_image", READER_VERSION]] + [[str(p), file_digest(p)] for p in self.annotation_files]
                + [stat(p) for p in self.image_paths])

    def load_image(self, i: int) -> Image.Image:
        path = self.image_paths[i]
        if not path.is_file():
            raise FileNotFoundError(f"{self.dataset_name}: image file {path} is missing")
        try:
            return read_image(path)
        except ImageError as err:
            raise ImageError(f"{self.dataset_name}: {err}; pass skip_corrupt=True to leave such "
                             "images out") from err
