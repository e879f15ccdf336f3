"""Pedestrian-attribute datasets PA100K (26), RAPv1 (51 of 92) and PETA (35 of 105) (docs/method.md §Datasets).

Each is read from its official ``.mat`` file, or else from the ``dataset_all.pkl`` that
Rethinking_of_PAR's ``format_*.py`` scripts write, through a restricted unpickler (a pickle can
run code: see :mod:`sspa_core.data.safe_pickle`). Both hold the raw label matrix, the raw
attribute names and the partitions; the evaluated attributes are then selected:

* PA100K: all 26 in the order of ``annotation.mat``; splits train 80,000 / val 10,000 /
  test 10,000 / trainval 90,000; images in ``data/``.
* RAPv1: raw columns 0–50 in Rethinking_of_PAR's group order (head, upper, lower, shoes,
  attachments, age, gender, body, role, action); splits trainval 33,268 / test 8,317 of
  ``partition`` 0–4 (0 by default); images in ``RAP_dataset/``.
* PETA: raw columns 0–34 in Rethinking_of_PAR's group order; splits train 9,500 / val 1,900 /
  trainval 11,400 / test 7,600 of ``partition`` 0–4; images ``images/00001.png`` …

The ``.mat`` structs are read by field position, as Rethinking_of_PAR does. Label value 2
(RAP's "uncertain") counts as 0, also as there.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import scipy.io

from sspa_core.data.base import Transform, resolve_inside
from sspa_core.data.image_files import ImageFileDataset, check_split, require_root
from sspa_core.data.labels import load_label_names
from sspa_core.data.safe_pickle import load_restricted

PICKLE_NAME = "dataset_all.pkl"


def mat_strings(cell: np.ndarray) -> list[str]:
    """The strings of a MATLAB cell array of strings, as ``scipy.io.loadmat`` returns it."""

    def first_string(item) -> str:
        while isinstance(item, np.ndarray):
            if item.size == 0:
                return ""
            item = item.flat[0]
        return str(item)

    return [first_string(item) for item in np.asarray(cell, dtype=object).ravel()]


def load_mat(path: Path) -> dict:
    """``scipy.io.loadmat`` of an annotation file; a ValueError naming it if it is empty,
    truncated, not a .mat file, or a MATLAB v7.3 (HDF5) file, which scipy cannot read."""
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError as err:
        raise ValueError(f"{path} is a MATLAB v7.3 (HDF5) file, which cannot be read here: save it again in "
                         "MATLAB with save(file, '-v7'), or use Rethinking_of_PAR's dataset_all.pkl") from err
    except (scipy.io.matlab.MatReadError, OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .mat file ({err}): it is empty, truncated or of another "
                         "format; download it again") from err


def _indices(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).ravel().astype(np.int64)


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class PedestrianAttributes(ImageFileDataset):
    """Common reader: subclasses give the files, the evaluated raw columns and :meth:`read_mat`."""

    label_file: str
    mat_file: str
    image_dir: str
    n_raw: int
    eval_columns: list[int]
    SPLITS: tuple[str, ...]

    def __init__(self, root: str | Path, split: str = "trainval", transform: Transform | None = None,
                 image_size: int = 224, skip_corrupt: bool = False, partition: int = 0):
        check_split(split, self.SPLITS, self.dataset_name)
        root = require_root(root, self.dataset_name)
        mat_path = resolve_inside(root, self.mat_file)
        pickle_path = resolve_inside(root, PICKLE_NAME)
        if mat_path.is_file():
            source = mat_path
            names, labels, attributes, partitions = self.read_mat(mat_path)
        elif pickle_path.is_file():
            source = pickle_path
            names, labels, attributes, partitions = self.read_pickle(pickle_path)
        else:
            raise FileNotFoundError(
                f"{self.dataset_name}: annotation file {mat_path} is missing (nor is there a "
                f"Rethinking_of_PAR {pickle_path}); see data/README.md"
            )
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.shape[1] != len(attributes) or len(attributes) != self.n_raw:
            raise ValueError(
                f"{source}: label matrix {labels.shape} and {len(attributes)} attribute names; "
                f"{self.dataset_name} has {self.n_raw} attributes"
            )
        if labels.shape[0] != len(names):
            raise ValueError(f"{source}: {len(names)} image names but {labels.shape[0]} label rows")
        if not np.isin(labels, (0, 1, 2)).all():
            raise ValueError(f"{source}: labels must be 0, 1 (or 2 = uncertain)")

        label_names = load_label_names(self.label_file)
        raw_names = [attributes[j] for j in self.eval_columns]
        if [_normalise(n) for n in raw_names] != [_normalise(n) for n in label_names]:
            warnings.warn(
                f"{source}: attribute names differ from data/labels/{self.label_file}.txt "
                f"(file: {raw_names[:3]}…); the shipped names are used", stacklevel=2
            )
        if split not in partitions:
            raise ValueError(f"{source} has no partition {split!r}")
        index = partitions[split]
        if isinstance(index, list):
            if not 0 <= partition < len(index):
                raise ValueError(f"{self.dataset_name}: partition must be in 0..{len(index) - 1}")
            index = index[partition]
        index = _indices(index)
        if len(index) and (index.min() < 0 or index.max() >= len(names)):
            raise ValueError(f"{source}: partition {split!r} indexes images outside 0..{len(names) - 1}")
        targets = (labels[np.ix_(index, self.eval_columns)] == 1)
        chosen = [names[i] for i in index]
        paths = [resolve_inside(root, n, self.image_dir) for n in chosen]
        super().__init__(split, paths, targets, None, label_names, transform, image_size, skip_corrupt,
                         image_ids=chosen, annotation_files=[source])

    def read_mat(self, path: Path) -> tuple[list[str], np.ndarray, list[str], dict]:
        raise NotImplementedError

    def read_pickle(self, path: Path) -> tuple[list[str], np.ndarray, list[str], dict]:
        """Image names, raw labels, raw attribute names and partitions of a Rethinking_of_PAR
        ``dataset_all.pkl`` (its ``root`` and ``label_idx`` are not used)."""
        data = load_restricted(path)
        try:
            partitions = {k: (list(v) if isinstance(v, list) else v) for k, v in data["partition"].items()}
            return [str(n) for n in data["image_name"]], data["label"], list(data["attr_name"]), partitions
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a Rethinking_of_PAR dataset file (missing {err})") from err


class PA100K(PedestrianAttributes):
    dataset_name = "PA100K"
    label_file = "pa100k"
    mat_file = "annotation.mat"
    image_dir = "data"
    n_raw = 26
    eval_columns = list(range(26))
    SPLITS = ("train", "val", "test", "trainval")

    def read_mat(self, path):
        mat = load_mat(path)
        try:
            names = {s: mat_strings(mat[f"{s}_images_name"]) for s in ("train", "val", "test")}
            labels = [np.asarray(mat[f"{s}_label"]) for s in ("train", "val", "test")]
            attributes = mat_strings(mat["attributes"])
        except KeyError as err:
            raise ValueError(f"{path} is not a PA100K annotation file (no key {err})") from err
        for s, lab in zip(("train", "val", "test"), labels):
            if len(lab) != len(names[s]):
                raise ValueError(f"{path}: {len(names[s])} {s} image names but {len(lab)} {s} label rows")
        n_train, n_val, n_test = (len(names[s]) for s in ("train", "val", "test"))
        partitions = {
            "train": np.arange(n_train),
            "val": np.arange(n_train, n_train + n_val),
            "test": np.arange(n_train + n_val, n_train + n_val + n_test),
            "trainval": np.arange(n_train + n_val),
        }
        return names["train"] + names["val"] + names["test"], np.concatenate(labels), attributes, partitions


class RAPv1(PedestrianAttributes):
    dataset_name = "RAPv1"
    label_file = "rap"
    mat_file = "RAP_annotation/RAP_annotation.mat"
    image_dir = "RAP_dataset"
    n_raw = 92
    eval_columns = list(range(9, 43)) + [1, 2, 3, 0, 4, 5, 6, 7, 8] + list(range(43, 51))
    SPLITS = ("trainval", "test")

    def read_mat(self, path):
        try:
            ann = load_mat(path)["RAP_annotation"][0][0]
            runs = ann[0].ravel()
            partitions = {
                "trainval": [_indices(run[0][0][0]) - 1 for run in runs],
                "test": [_indices(run[0][0][1]) - 1 for run in runs],
            }
            return mat_strings(ann[5]), np.asarray(ann[1]), mat_strings(ann[3]), partitions
        except (KeyError, IndexError) as err:
            raise ValueError(f"{path} is not a RAPv1 annotation file ({err!r})") from err


class PETA(PedestrianAttributes):
    dataset_name = "PETA"
    label_file = "peta"
    mat_file = "PETA.mat"
    image_dir = "images"
    n_raw = 105
    eval_columns = [10, 18, 19, 30, 15, 7, 9, 11, 14, 21, 26, 29, 32, 33, 34, 6, 8, 12, 25, 27, 31,
                    13, 23, 24, 28, 4, 5, 17, 20, 22, 0, 1, 2, 3, 16]
    SPLITS = ("train", "val", "trainval", "test")

    def read_mat(self, path):
        try:
            peta = load_mat(path)["peta"][0][0]
            data = np.asarray(peta[0])
            runs = peta[3].ravel()
            train = [_indices(run[0][0][0]) - 1 for run in runs]
            val = [_indices(run[0][0][1]) - 1 for run in runs]
            test = [_indices(run[0][0][2]) - 1 for run in runs]
            partitions = {"train": train, "val": val, "test": test,
                          "trainval": [np.concatenate(tv) for tv in zip(train, val)]}
            names = [f"{i + 1:05d}.png" for i in range(len(data))]
            return names, data[:, 4:], mat_strings(peta[1]), partitions
        except (KeyError, IndexError) as err:
            raise ValueError(f"{path} is not a PETA annotation file ({err!r})") from err
