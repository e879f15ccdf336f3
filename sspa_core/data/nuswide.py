"""NUS-WIDE (81 concepts) in its official layout (docs/method.md §Datasets).

``Concepts81.txt`` (the label order), ``ImageList/{Train,Test}Imagelist.txt`` (one relative
image path a line, with Windows ``\\`` separators) and ``TrainTestLabels/Labels_{c}_{Train,Test}.txt``
(one 0/1 a line, aligned with the image list). Images without any of the 81 labels are left out.
Image paths are relative to ``image_dir`` (``Flickr`` by default) inside the root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sspa_core.data.base import Transform, resolve_inside
from sspa_core.data.image_files import ImageFileDataset, check_split, read_text, require_file, require_root
from sspa_core.data.labels import load_label_names


class NUSWIDE(ImageFileDataset):
    dataset_name = "NUS-WIDE"
    SPLITS = ("train", "test")

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 image_size: int = 224, skip_corrupt: bool = False, image_dir: str = "Flickr"):
        check_split(split, self.SPLITS, self.dataset_name)
        root = require_root(root, self.dataset_name)
        part = split.capitalize()
        concepts_file = require_file(root, "Concepts81.txt", self.dataset_name)
        concepts = [c.strip() for c in read_text(concepts_file).splitlines() if c.strip()]
        label_names = load_label_names("nuswide")
        if concepts != label_names:
            raise ValueError(f"{concepts_file}: {len(concepts)} concepts that differ from the 81 of "
                             "data/labels/nuswide.txt")
        list_file = require_file(root, f"ImageList/{part}Imagelist.txt", self.dataset_name)
        names = [line.strip() for line in read_text(list_file).splitlines() if line.strip()]
        columns, label_files = [], []
        for concept in concepts:
            path = require_file(root, f"TrainTestLabels/Labels_{concept}_{part}.txt", self.dataset_name)
            label_files.append(path)
            column = [line.strip() for line in read_text(path).splitlines() if line.strip()]
            if len(column) != len(names):
                raise ValueError(f"{path} has {len(column)} labels but {list_file} lists "
                                 f"{len(names)} images")
            if not set(column) <= {"0", "1"}:
                raise ValueError(f"{path}: every line must be 0 or 1")
            columns.append(np.array(column) == "1")
        targets = np.stack(columns, axis=1) if names else np.zeros((0, len(concepts)), bool)
        labelled = targets.any(1)
        kept = [n for n, keep in zip(names, labelled) if keep]
        paths = [resolve_inside(root, name, image_dir) for name in kept]
        super().__init__(split, paths, targets[labelled], None, label_names, transform, image_size,
                         skip_corrupt, image_ids=kept,
                         annotation_files=[concepts_file, list_file, *label_files])
