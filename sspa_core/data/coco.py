"""MS-COCO 2014 (80 labels): ``annotations/instances_{train,val}2014.json`` (docs/method.md §Datasets).

Categories sorted by id give labels 0..79; an image's target is 1 for every category with at
least one annotation on it; images without any annotation are left out (82,081 train /
40,137 val images remain). Images are read from ``{train,val}2014/<file_name>``.

An annotation's ``bbox`` ([x, y, w, h] in pixels of its image's ``width`` × ``height``) is kept
as a box of :meth:`COCO2014.objects`, (x0, y0, x1, y1) as fractions of the image side clipped to
[0, 1] (a box of zero area left out); an annotation without ``bbox`` gives only its label.
``has_boxes`` is True when some annotation has a ``bbox``.

An empty ``images`` or ``annotations`` list, an image id given twice, a file listed under two
ids, an entry without ``id``/``file_name``/``image_id``/``category_id`` or with a non-integer
id, a reference to an unknown image or category, a ``bbox`` that is not 4 finite numbers with
w, h >= 0 and an image with boxes but without positive integer ``width`` and ``height`` are
errors that name the file and list every such entry.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from sspa_core.data.base import Transform, resolve_inside
from sspa_core.data.image_files import ImageFileDataset, check_split, require_file, require_root
from sspa_core.data.labels import load_label_names
from sspa_core.localization import Box

MAX_LISTED = 10  # problems of an annotation file named in its error message


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bbox_problem(bbox) -> str | None:
    """Why ``bbox`` is no COCO box ([x, y, w, h]: 4 finite numbers, w and h >= 0), or None."""
    numbers = isinstance(bbox, list) and len(bbox) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    if not numbers:
        return f"'bbox' must be [x, y, w, h], 4 finite numbers, got {bbox!r}"
    return None if bbox[2] >= 0 and bbox[3] >= 0 else f"'bbox' has a negative width or height: {bbox!r}"


def _entry_problems(images: list, annotations: list, column: dict) -> list[str]:
    """Every malformed entry, repeated image id or file, and dangling reference of a COCO
    instances file (one line each), so that a file with several problems is fixed in one go."""
    problems = []
    by_id: dict[int, list] = defaultdict(list)  # image id -> its file names
    by_file: dict[str, list[int]] = defaultdict(list)  # file name -> its image ids
    unsized: dict[int, str] = {}  # image id -> where it lacks a positive integer width or height
    for k, im in enumerate(images):
        if not isinstance(im, dict):
            problems.append(f"images[{k}]: not an object with 'id' and 'file_name', got {im!r}")
            continue
        image_id = im.get("id")
        if not _is_id(image_id):
            problems.append(f"images[{k}]: 'id' must be an integer, got {image_id!r}")
            continue
        sized = all(_is_id(im.get(key)) and im[key] > 0 for key in ("width", "height"))
        if not sized and image_id not in by_id:  # a repeated id is a problem of its own
            unsized[image_id] = (f"images[{k}] (id {image_id}): has boxes but no positive integer "
                                 f"'width' and 'height' (got {im.get('width')!r} x {im.get('height')!r})")
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
        if "bbox" in ann:
            why = _bbox_problem(ann["bbox"])
            if why:
                problems.append(f"{where}: {why}")
            elif _is_id(ann.get("image_id")) and ann["image_id"] in unsized:
                problems.append(unsized.pop(ann["image_id"]))
    return problems


def _box_table(images: list, annotations: list, column: dict) -> tuple[np.ndarray, np.ndarray, dict[int, slice]]:
    """The boxes of the (checked) annotations that have a ``bbox``, as (x0, y0, x1, y1) fractions of
    their image's side clipped to [0, 1], zero-area ones left out: ``(boxes [A, 4], label columns
    [A], image id -> its slice of both)``."""
    boxed = [ann for ann in annotations if "bbox" in ann]
    size = {im["id"]: (im.get("width"), im.get("height")) for im in images}
    ids = np.array([ann["image_id"] for ann in boxed], dtype=np.int64)
    columns = np.array([column[ann["category_id"]] for ann in boxed], dtype=np.int64)
    xywh = np.array([ann["bbox"] for ann in boxed], dtype=np.float64).reshape(-1, 4)
    sides = np.array([size[i] for i in ids.tolist()], dtype=np.float64).reshape(-1, 2)
    boxes = np.clip(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1) / np.tile(sides, 2), 0, 1)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    order = np.argsort(ids[keep], kind="stable")  # each image's boxes together, in file order
    ids, columns, boxes = ids[keep][order], columns[keep][order], boxes[keep][order]
    firsts, starts, counts = np.unique(ids, return_index=True, return_counts=True)
    spans = {int(i): slice(int(a), int(a + n)) for i, a, n in zip(firsts, starts, counts)}
    return boxes, columns, spans


class COCO2014(ImageFileDataset):
    """The COCO 2014 instances annotations of ``split``, with their boxes (module docstring)."""

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
        self.has_boxes = any("bbox" in ann for ann in annotations)
        self._boxes, self._box_columns, self._box_spans = _box_table(images, annotations, column)

    def objects(self, i: int) -> list[tuple[Box, tuple[str, ...]]]:
        """The boxes of image ``i`` with their label (module docstring), in file order."""
        span = self._box_spans.get(self.image_ids[i], slice(0))
        return [(tuple(box), (self.label_names[c],))
                for box, c in zip(self._boxes[span].tolist(), self._box_columns[span].tolist())]
