"""Remote-sensing multi-label datasets: MultiScene-Clean (36), MLRSNet (60), AID multi-label (17).

* MultiScene-Clean: ``{train,test}.csv`` (header ``image,<36 scene names>``, CamelCase as in the
  official files; the column order is taken from the header), images ``images/<image>.jpg``;
  7,000 / 7,000 images.
* MLRSNet: ``labels/<category>.csv`` (header ``image,<60 label names>``; the column order is
  taken from each header), images ``Images/<category>/<image>``. MLRSNet ships no split file:
  each category's images are shuffled with ``seed`` and the first ``train_fraction`` (80%) form
  ``train``, the rest ``test``, which reproduces the usual 80/20 protocol deterministically.
* AID multi-label: tab-separated ``multilabels.txt`` (header ``IMAGE<TAB><17 label names>``,
  then ``<image><TAB><0/1 …>``); the split is the folder an image lies in:
  ``images_tr/`` (train, 2,400) or ``images_test/`` (test, 600), searched recursively for
  ``<image>.<ext>``.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sspa_core.data.base import Transform, resolve_inside
from sspa_core.data.image_files import ImageFileDataset, check_split, read_text, require_file, require_root
from sspa_core.data.labels import load_label_names

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
# Header spellings of the official files -> the names of data/labels/*.txt, both compared by
# :func:`_header_key` (MLRSNet's "habor", MultiScene's CamelCase names and their typos)
HEADER_ALIASES = {"habor": "harbor", "lakepond": "lake or pond", "oilfiled": "oil field",
                  "solarpannel": "solar panel", "windtrubine": "wind turbine"}


def _header_key(name: str) -> str:
    """A header or label name without case, spaces and punctuation (``BaseballField`` =
    ``baseball field``), after :data:`HEADER_ALIASES`."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return re.sub(r"[^a-z0-9]", "", HEADER_ALIASES.get(key, key).lower())


def _files_under(directory: Path) -> Iterator[Path]:
    """Every file below ``directory``, following links to folders (each real folder once)."""
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(directory, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree, or a second link to a folder already read
            subfolders.clear()
            continue
        seen.add(real)
        yield from (Path(folder) / name for name in files)


def _csv_rows(path: Path) -> list[list[str]]:
    """The non-empty rows of a CSV annotation file."""
    return [row for row in csv.reader(read_text(path).splitlines()) if row]


def _binary_rows(rows: list[list[str]], width: int, source: Path) -> np.ndarray:
    """The 0/1 values of ``rows`` (name first, then ``width`` values) as a bool matrix."""
    for line, row in enumerate(rows, start=2):
        if len(row) != width + 1:
            raise ValueError(f"{source} line {line}: {len(row) - 1} label values, expected {width}")
    values = np.array([row[1:] for row in rows], dtype=object).reshape(len(rows), width)
    values = np.char.strip(values.astype(str))
    if not np.isin(values, ("0", "1")).all():
        raise ValueError(f"{source}: label values must be 0 or 1")
    return values == "1"


def _columns_from_header(header: list[str], label_names: list[str], source: Path) -> list[int]:
    """Position in ``label_names`` of each label column of ``header`` (after the image column)."""
    position = {_header_key(name): j for j, name in enumerate(label_names)}
    names = [_header_key(h) for h in header[1:]]
    unknown = [n for n in names if n not in position]
    if unknown or len(names) != len(label_names) or len(set(names)) != len(names):
        raise ValueError(
            f"{source}: header has {len(names)} label columns, expected the {len(label_names)} "
            f"labels of the shipped list" + (f"; unknown: {unknown[:5]}" if unknown else "")
        )
    return [position[n] for n in names]


class MultiSceneClean(ImageFileDataset):
    dataset_name = "MultiScene-Clean"
    SPLITS = ("train", "test")

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 image_size: int = 224, skip_corrupt: bool = False):
        check_split(split, self.SPLITS, self.dataset_name)
        root = require_root(root, self.dataset_name)
        source = require_file(root, f"{split}.csv", self.dataset_name)
        label_names = load_label_names("multiscene")
        rows = _csv_rows(source)
        if not rows:
            raise ValueError(f"{source} is empty (expected a header image,<36 scene names>)")
        targets = np.zeros((len(rows) - 1, len(label_names)), bool)
        targets[:, _columns_from_header(rows[0], label_names, source)] = _binary_rows(
            rows[1:], len(label_names), source)
        names = [row[0].strip() for row in rows[1:]]
        paths = [resolve_inside(root, f"{name}.jpg", "images") for name in names]
        super().__init__(split, paths, targets, None, label_names, transform, image_size, skip_corrupt,
                         image_ids=names, annotation_files=[source])


class MLRSNet(ImageFileDataset):
    dataset_name = "MLRSNet"
    SPLITS = ("train", "test")

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 image_size: int = 224, skip_corrupt: bool = False, seed: int = 0,
                 train_fraction: float = 0.8):
        check_split(split, self.SPLITS, self.dataset_name)
        if not 0 < train_fraction < 1:
            raise ValueError(f"{self.dataset_name}: train_fraction must be in (0, 1), got {train_fraction}")
        root = require_root(root, self.dataset_name)
        label_dir = resolve_inside(root, "labels")
        label_files = sorted(label_dir.glob("*.csv")) if label_dir.is_dir() else []
        if not label_files:
            raise FileNotFoundError(f"{self.dataset_name}: no annotation files {label_dir}/*.csv")
        label_names = load_label_names("mlrsnet")
        paths, blocks = [], []
        for source in label_files:
            rows = _csv_rows(source)
            if not rows:
                raise ValueError(f"{source} is empty (expected a header image,<60 label names>)")
            columns = _columns_from_header(rows[0], label_names, source)
            block = np.zeros((len(rows) - 1, len(label_names)), bool)
            block[:, columns] = _binary_rows(rows[1:], len(label_names), source)
            rng = np.random.default_rng([seed, len(blocks)])
            order = rng.permutation(len(block))
            n_train = int(round(train_fraction * len(block)))
            chosen = np.sort(order[:n_train] if split == "train" else order[n_train:])
            blocks.append(block[chosen])
            paths += [resolve_inside(root, rows[1 + i][0].strip(), f"Images/{source.stem}") for i in chosen]
        super().__init__(split, paths, np.concatenate(blocks), None, label_names, transform,
                         image_size, skip_corrupt, annotation_files=label_files)


class AIDMultiLabel(ImageFileDataset):
    dataset_name = "AID multi-label"
    SPLITS = ("train", "test")
    SPLIT_DIRS = {"train": "images_tr", "test": "images_test"}

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 image_size: int = 224, skip_corrupt: bool = False):
        check_split(split, self.SPLITS, self.dataset_name)
        root = require_root(root, self.dataset_name)
        source = require_file(root, "multilabels.txt", self.dataset_name)
        label_names = load_label_names("aid")
        rows = [line.split("\t") for line in read_text(source).splitlines() if line.strip()]
        if not rows:
            raise ValueError(f"{source} is empty (expected a header IMAGE<TAB><17 label names>)")
        columns = _columns_from_header(rows[0], label_names, source)
        table = np.zeros((len(rows) - 1, len(label_names)), bool)
        table[:, columns] = _binary_rows(rows[1:], len(label_names), source)
        names = [row[0].strip() for row in rows[1:]]

        found: dict[str, tuple[str, Path]] = {}
        twice: list[str] = []
        for name, folder in self.SPLIT_DIRS.items():
            directory = resolve_inside(root, folder)
            if not directory.is_dir():
                raise FileNotFoundError(f"{self.dataset_name}: image folder {directory} is missing")
            for path in _files_under(directory):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    twice += [path.stem] if path.stem in found else []
                    found[path.stem] = (name, resolve_inside(root, str(path.relative_to(root))))
        listed = set(names)
        twice = [n for n in twice if n in listed]
        if twice:
            raise ValueError(f"{self.dataset_name}: {len(twice)} images of {source.name} are found more than "
                             f"once under images_tr/ and images_test/, first: {twice[0]}")
        missing = [n for n in names if n not in found]
        if missing:
            raise FileNotFoundError(
                f"{self.dataset_name}: {len(missing)} images of {source.name} are in neither "
                f"images_tr/ nor images_test/, first: {missing[0]}"
            )
        keep = np.array([found[n][0] == split for n in names], dtype=bool)
        chosen = [n for n, k in zip(names, keep) if k]
        super().__init__(split, [found[n][1] for n in chosen], table[keep], None, label_names, transform,
                         image_size, skip_corrupt, image_ids=chosen, annotation_files=[source])
