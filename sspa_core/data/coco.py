"""MS-COCO 2014 (80 labels): ``annotations/instances_{train,val}2014.json`` (docs/method.md §Datasets).

Categories sorted by id give labels 0..79; an image's target is 1 for every category with at
least one annotation on it; images without any annotation are left out (82,081 train /
40,137 val images remain). Images are read from ``{train,val}2014/<file_name>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sspa_core.data.base import Transform, resolve_inside
from sspa_core.data.image_files import ImageFileDataset, check_split, require_file, require_root
from sspa_core.data.labels import load_label_names


class COCO2014(ImageFileDataset):
    dataset_name = "COCO 2014"
    SPLITS = ("train", "val")

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 image_size: int = 224, skip_corrupt: bool = False):
        check_split(split, self.SPLITS, self.dataset_name)
        root = require_root(root, self.dataset_name)
        annotation_file = require_file(root, f"annotations/instances_{split}2014.json", self.dataset_name)
        with open(annotation_file, encoding="utf-8") as f:
            data = json.load(f)
        try:
            categories = sorted(data["categories"], key=lambda c: c["id"])
            images = sorted(data["images"], key=lambda im: im["id"])
            annotations = data["annotations"]
        except (KeyError, TypeError) as err:
            raise ValueError(f"{annotation_file} is not a COCO instances file (missing {err})") from err

        label_names = load_label_names("coco")
        names = [c["name"] for c in categories]
        if names != label_names:
            raise ValueError(
                f"{annotation_file}: {len(names)} categories that do not match the 80 COCO labels "
                f"of data/labels/coco.txt (first difference: "
                f"{next((a, b) for a, b in zip(names + [None], label_names + [None]) if a != b)})"
            )
        column = {c["id"]: j for j, c in enumerate(categories)}
        row = {im["id"]: i for i, im in enumerate(images)}
        targets = np.zeros((len(images), len(label_names)), np.float32)
        for ann in annotations:
            if ann["image_id"] not in row or ann["category_id"] not in column:
                raise ValueError(
                    f"{annotation_file}: annotation {ann.get('id')} refers to an unknown image "
                    f"{ann['image_id']} or category {ann['category_id']}"
                )
            targets[row[ann["image_id"]], column[ann["category_id"]]] = 1.0

        annotated = targets.any(1)
        paths = [resolve_inside(root, f"{split}2014/{im['file_name']}") for im in images]
        super().__init__(split, [p for p, keep in zip(paths, annotated) if keep], targets[annotated],
                         None, label_names, transform, image_size, skip_corrupt,
                         image_ids=[im["id"] for im, keep in zip(images, annotated) if keep])
