"""MS-COCO 2014 (80 labels): ``annotations/instances_{train,val}2014.json`` (docs/method.md §Datasets).

Categories sorted by id give labels 0..79; an image's target is 1 for every category with at
least one annotation on it; images without any annotation are left out (82,081 train /
40,137 val images remain). Images are read from ``{train,val}2014/<file_name>``.

An empty ``images`` or ``annotations`` list, an image id given twice, a file listed under two
ids, an entry without ``id``/``file_name``/``image_id``/``category_id`` or with a non-integer
id, and a reference to an unknown image or category are errors that name the file and list
every such entry.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from sspa_core.data.base import Transform, resolve_inside
from sspa_core.data.image_files import ImageFileDataset, check_split, require_file, require_root
from sspa_core.data.labels import load_label_names

MAX_LISTED = 10  # problems of an annotation file named in its error message


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry_problems(images: list, annotations: list, column: dict) -> list[str]:
    """Every malformed entry, repeated image id or file, and dangling reference of a COCO
    instances file (one line each), so that a file with several problems is fixed in one go."""
    problems = []
    by_id: dict[int, list] = defaultdict(list)  # image id -> its file names
    by_file: dict[str, list[int]] = defaultdict(list)  # file name -> its image ids
    for k, im in enumerate(images):
        if not isinstance(im, dict):
            problems.append(f"images[{k}]: not an object with 'id' and 'file_name', got {im!r}")
            continue
        image_id = im.get("id")
        if not _is_id(image_id):
            problems.append(f"images[{k}]: 'id' must be an integer, got {image_id!r}")
            continue
        file_name = im.get("file_name")
        by_id[image_id].append(file_name)
        if not isinstance(file_name, str) or not file_name.strip():
            problems.append(f"images[{k}] (id {image_id}): no 'file_name'")
        else:
            by_file[file_name].append(image_id)
    problems += [f"image id {i} is given to {len(files)} images: {', '.join(map(str, files))}"
                 for i, files in by_id.items() if len(files) > 1]
    problems += [f"file {name} is listed under {len(ids)} image ids: {', '.join(map(str, ids))}"
                 for name, ids in by_file.items() if len(ids) > 1]
    for k, ann in enumerate(annotations):
        where = f"annotations[{k}] (id {ann.get('id')})" if isinstance(ann, dict) else f"annotations[{k}]"
        if not isinstance(ann, dict):
            problems.append(f"{where}: not an object")
            continue
        for key, known, kind in (("image_id", by_id, "image"), ("category_id", column, "category")):
            value = ann.get(key)
            if key not in ann:
                problems.append(f"{where}: no '{key}'")
            elif not _is_id(value):
                problems.append(f"{where}: '{key}' must be an integer, got {value!r}")
            elif value not in known:
                problems.append(f"{where}: unknown {kind} {value}")
    return problems


class COCO2014(ImageFileDataset):
    dataset_name = "COCO 2014"
    SPLITS = ("train", "val")

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 image_size: int = 224, skip_corrupt: bool = False):
        check_split(split, self.SPLITS, self.dataset_name)
        root = require_root(root, self.dataset_name)
        annotation_file = require_file(root, f"annotations/instances_{split}2014.json", self.dataset_name)
        try:
            with open(annotation_file, encoding="utf-8") as f:
                data = json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{annotation_file} is not a JSON file ({err})") from err
        try:
            categories = sorted(data["categories"], key=lambda c: c["id"])
            names = [c["name"] for c in categories]
            images, annotations = list(data["images"]), list(data["annotations"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"{annotation_file} is not a COCO instances file ({type(err).__name__}: {err})") from err
        for what, entries in (("images", images), ("annotations", annotations)):
            if not entries:
                raise ValueError(f"{annotation_file}: the '{what}' list is empty")

        label_names = load_label_names("coco")
        if names != label_names:
            raise ValueError(
                f"{annotation_file}: {len(names)} categories that do not match the 80 COCO labels "
                f"of data/labels/coco.txt (first difference: "
                f"{next((a, b) for a, b in zip(names + [None], label_names + [None]) if a != b)})"
            )
        column = {c["id"]: j for j, c in enumerate(categories)}
        problems = _entry_problems(images, annotations, column)
        if problems:
            listed = "\n  ".join(problems[:MAX_LISTED])
            more = f"\n  … and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
            raise ValueError(f"{annotation_file}: {len(problems)} problem(s):\n  {listed}{more}")
        images = sorted(images, key=lambda im: im["id"])
        row = {im["id"]: i for i, im in enumerate(images)}
        targets = np.zeros((len(images), len(label_names)), np.float32)
        for ann in annotations:
            targets[row[ann["image_id"]], column[ann["category_id"]]] = 1.0

        annotated = targets.any(1)
        paths = [resolve_inside(root, im["file_name"], f"{split}2014") for im in images]
        super().__init__(split, [p for p, keep in zip(paths, annotated) if keep], targets[annotated],
                         None, label_names, transform, image_size, skip_corrupt,
                         image_ids=[im["id"] for im, keep in zip(images, annotated) if keep],
                         annotation_files=[annotation_file])
