"""PASCAL VOC 2007 (20 labels): ``VOCdevkit/VOC2007/ImageSets/Main/{cls}_{split}.txt`` (docs/method.md §Datasets).

Each class file holds lines ``000005 -1|0|1``; 1 = present, -1 = absent, 0 = "difficult":
target 0 and mask 0, so the entry is ignored by the loss and the metrics (docs/method.md §Metrics). Splits
trainval (5,011 images) and test (4,952), plus train and val. Images: ``JPEGImages/{id}.jpg``.

Boxes: where ``Annotations/`` is present (``has_boxes``; the class files alone are a valid layout
too), :meth:`VOC2007.objects` reads ``Annotations/{id}.xml`` on first use: each ``<object>``'s
``<name>`` and ``<bndbox>`` (1-based pixels, inclusive) as (x0, y0, x1, y1) fractions of the
``<size>`` clipped to [0, 1], x0 = (xmin - 1) / width, x1 = xmax / width; "difficult" objects
included. A file that cannot be read or parsed, or that lacks the size, a box or a VOC label, is
a ValueError naming it.
"""

from __future__ import annotations

import math

# ElementTree parses with expat, which expands no nested entities from version 2.4.1 on (the
# "billion laughs"; here pyexpat.EXPAT_VERSION is 2.5.0); a DOCTYPE or ENTITY declaration, which
# no VOC file holds, is refused before parsing all the same.
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from sspa_core.data.base import Transform, resolve_inside
from sspa_core.data.image_files import ImageFileDataset, check_split, read_text, require_file, require_root
from sspa_core.data.labels import load_label_names
from sspa_core.localization import Box


def read_objects(path: Path, label_names: list[str]) -> list[tuple[Box, tuple[str, ...]]]:
    """The ``(box, (name,))`` pairs of a VOC annotation file (module docstring); a ValueError
    naming the file and listing its problems if it has any."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{VOC2007.dataset_name}: annotation file {path} is missing "
                                "(see data/README.md)") from None
    except OSError as err:
        raise ValueError(f"{path} cannot be read ({err})") from None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ValueError(f"{path}: a DOCTYPE or ENTITY declaration is refused (VOC annotations have none)")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise ValueError(f"{path} is not a well-formed XML file ({err})") from None
    problems: list[str] = []

    def number(node: ET.Element | None, key: str, where: str) -> float:
        value = None if node is None else node.findtext(key)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            problems.append(f"{where}: no number <{key}> (got {value!r})")
        return number

    size = root.find("size")
    if size is None:
        problems.append("no <size> (the image's width and height)")
        width = height = math.nan
    else:
        width, height = number(size, "width", "<size>"), number(size, "height", "<size>")
        if width <= 0 or height <= 0:
            problems.append(f"<size>: width and height must be positive, got {width:g} x {height:g}")
    objects = []
    for k, obj in enumerate(root.findall("object"), 1):
        name = (obj.findtext("name") or "").strip()
        if name not in label_names:
            problems.append(f"object {k}: name {name!r} is not one of the {len(label_names)} VOC labels")
        where = f"object {k} ({name}) <bndbox>"
        xmin, ymin, xmax, ymax = (number(obj.find("bndbox"), key, where) for key in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            problems.append(f"{where}: max below min ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})")
        if width > 0 and height > 0:
            box = ((xmin - 1) / width, (ymin - 1) / height, xmax / width, ymax / height)
            objects.append((tuple(min(max(v, 0.0), 1.0) for v in box), (name,)))
    if problems:
        raise ValueError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return objects


class VOC2007(ImageFileDataset):
    """The class files of ``split``, with the boxes of ``Annotations/`` when present (module docstring)."""

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
        self._root, self._annotations = root, f"{base}Annotations"
        self.has_boxes = (root / self._annotations).is_dir()
        self._objects: dict[str, list[tuple[Box, tuple[str, ...]]]] = {}  # image id -> its objects, once read

    def objects(self, i: int) -> list[tuple[Box, tuple[str, ...]]]:
        """The objects of ``Annotations/{id}.xml`` (:func:`read_objects`, read once); ``[]``
        without ``Annotations/``."""
        if not self.has_boxes:
            return []
        image_id = self.image_ids[i]
        if image_id not in self._objects:
            path = resolve_inside(self._root, f"{image_id}.xml", self._annotations)
            self._objects[image_id] = read_objects(path, self.label_names)
        return list(self._objects[image_id])
