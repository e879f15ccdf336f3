"""Datasets whose images are files on disk: clear errors for a missing root, a missing
annotation file or an unreadable image, and an opt-in mode that skips corrupt images."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from sspa_core.data.base import MultiLabelDataset, Transform, resolve_inside


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


def check_split(split: str, splits: tuple[str, ...], dataset: str) -> None:
    if split not in splits:
        raise ValueError(f"{dataset}: unknown split {split!r}; valid: {', '.join(splits)}")


def image_problem(path: Path) -> str | None:
    """Why the image at ``path`` cannot be used (missing, truncated, not an image), or None.

    The whole file is decoded (JPEGs at a reduced DCT scale, which still reads every byte), so
    truncation is caught, not only a bad header."""
    if not path.is_file():
        return "missing"
    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))
            image.load()
    except (OSError, SyntaxError, ValueError) as err:  # PIL reports bad files with these
        return f"unreadable ({err})"
    return None


class ImageFileDataset(MultiLabelDataset):
    """A :class:`MultiLabelDataset` over image files.

    ``skip_corrupt=True`` decodes every image once at construction, drops the missing or
    unreadable ones (listed in ``skipped`` as ``(path, reason)``) and warns with their count;
    by default nothing is checked up front and :meth:`load_image` raises naming the file.
    ``image_ids`` are the images' identifiers in the annotation files (default: file names).
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
    ):
        super().__init__(split, transform, image_size)
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

    def load_image(self, i: int) -> Image.Image:
        path = self.image_paths[i]
        if not path.is_file():
            raise FileNotFoundError(f"{self.dataset_name}: image file {path} is missing")
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as err:
            raise ValueError(
                f"{self.dataset_name}: cannot decode image {path} ({err}); pass skip_corrupt=True "
                "to leave such images out"
            ) from err
