"""PASCAL VOC 2007 (20 labels): ``VOCdevkit/VOC2007/ImageSets/Main/{cls}_{split}.txt`` (docs/method.md §Datasets).

Each class file holds lines ``000005 -1|0|1``; 1 = present, -1 = absent, 0 = "difficult":
target 0 and mask 0, so the entry is ignored by the loss and the metrics (docs/method.md §Metrics). Splits
trainval (5,011 images) and test (4,952), plus train and val. Images: ``JPEGImages/{id}.jpg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sspa_core.data.base import Transform, resolve_inside
from sspa_core.data.image_files import ImageFileDataset, check_split, read_text, require_file, require_root
from sspa_core.data.labels import load_label_names


class VOC2007(ImageFileDataset):
    dataset_name = "VOC 2007"
    SPLITS = ("trainval", "test", "train", "val")

    def __init__(self, root: str | Path, split: str = "trainval", transform: Transform | None = None,
                 image_size: int = 224, skip_corrupt: bool = False):
        check_split(split, self.SPLITS, self.dataset_name)
        root = require_root(root, self.dataset_name)
        base = "VOCdevkit/VOC2007/" if (root / "VOCdevkit").is_dir() else ""
        label_names = load_label_names("voc")
        ids: list[str] | None = None
        values, files = [], []
        for name in label_names:
            path = require_file(root, f"{base}ImageSets/Main/{name}_{split}.txt", self.dataset_name)
            files.append(path)
            rows = [line.split() for line in read_text(path).splitlines() if line.strip()]
            if any(len(r) != 2 or r[1] not in ("-1", "0", "1") for r in rows):
                raise ValueError(f"{path}: every line must be '<image id> -1|0|1'")
            file_ids = [r[0] for r in rows]
            if ids is None:
                ids = file_ids
            elif file_ids != ids:
                raise ValueError(
                    f"{path} lists {len(file_ids)} images, {label_names[0]}_{split}.txt lists "
                    f"{len(ids)}: the class files of a split must list the same images"
                )
            values.append([int(r[1]) for r in rows])
        table = np.array(values, dtype=np.int8).T.reshape(len(ids), len(label_names))
        paths = [resolve_inside(root, f"{i}.jpg", f"{base}JPEGImages") for i in ids]
        super().__init__(split, paths, (table == 1), (table != 0), label_names, transform,
                         image_size, skip_corrupt, image_ids=ids, annotation_files=files)
