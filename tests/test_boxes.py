"""Boxes from the annotations (MultiLabelDataset.objects, has_boxes): the COCO and VOC loaders
against boxes computed here from the fixtures' own files, the subset view, the datasets without
boxes, the errors of a bad box or annotation file, and benchmarks/bench_localization.py on the
fixtures."""

from __future__ import annotations

import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script
from PIL import Image

from sspa_core.data import get_dataset
from sspa_core.data.base import MultiLabelDataset
from sspa_core.data.synthetic import SyntheticScenes
from sspa_core.localization import layout_objects, patch_centres_inside, scene_objects

ROOT = Path(__file__).resolve().parents[1]
bench = load_script(ROOT / "benchmarks" / "bench_localization.py")
VOC_NOTES = Path("VOCdevkit/VOC2007/Annotations")


def clipped(box) -> tuple[float, ...]:
    return tuple(min(max(float(v), 0.0), 1.0) for v in box)


def coco_boxes(root: Path, split: str) -> dict[int, list]:
    """image id -> [(box, name)] from the instances file, computed here: [x, y, w, h] over the
    image's width and height, clipped, zero-area boxes left out."""
    data = json.loads((root / "annotations" / f"instances_{split}2014.json").read_text())
    size = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    names = {c["id"]: c["name"] for c in data["categories"]}
    out: dict[int, list] = {}
    for ann in data["annotations"]:
        if "bbox" in ann:
            (x, y, w, h), (width, height) = ann["bbox"], size[ann["image_id"]]
            box = clipped((x / width, y / height, (x + w) / width, (y + h) / height))
            if box[2] > box[0] and box[3] > box[1]:
                out.setdefault(ann["image_id"], []).append((box, names[ann["category_id"]]))
    return out


def voc_objects(root: Path, image_id: str) -> list[tuple[tuple[float, ...], str, bool]]:
    """(box, name, difficult) of each object of Annotations/<id>.xml, computed here."""
    tree = ET.parse(root / VOC_NOTES / f"{image_id}.xml")
    width, height = float(tree.findtext("size/width")), float(tree.findtext("size/height"))
    out = []
    for obj in tree.iterfind("object"):
        xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
        out.append((clipped(((xmin - 1) / width, (ymin - 1) / height, xmax / width, ymax / height)),
                    obj.findtext("name"), obj.findtext("difficult") == "1"))
    return out


def as_pairs(objects) -> list[tuple[tuple[float, ...], str]]:
    """``(box, labels)`` pairs of one label each as (box, name), checked to be one label each."""
    assert all(len(labels) == 1 for _, labels in objects)
    return [(tuple(box), labels[0]) for box, labels in objects]


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_boxes_are_the_instances_files_bboxes(dataset_roots, split):
    dataset = get_dataset("coco", dataset_roots["coco"], split)
    expected = coco_boxes(dataset_roots["coco"], split)
    assert dataset.has_boxes and set(expected) <= set(dataset.image_ids)
    for i, image_id in enumerate(dataset.image_ids):
        got, want = as_pairs(dataset.objects(i)), expected.get(image_id, [])
        assert [name for _, name in got] == [name for _, name in want]
        assert np.allclose([box for box, _ in got], [box for box, _ in want]) if want else got == []
        present = {dataset.label_names[j] for j in np.flatnonzero(dataset.targets[i])}
        assert {name for _, name in got} <= present
    if split == "train":  # the fixture holds a zero-area box, a box past the edge, a label without box
        assert sum(map(len, expected.values())) == 4
        car = dataset.objects(dataset.image_ids.index(42))
        assert car == [((0.5, 0.45, 1.0, 1.0), ("car",))]
        assert dataset.targets[dataset.image_ids.index(42), dataset.label_names.index("bus")] == 1


@pytest.mark.parametrize("split", ["trainval", "test"])
def test_voc_boxes_are_the_annotation_files_and_agree_with_the_class_files(dataset_roots, split):
    root = dataset_roots["voc"]
    dataset = get_dataset("voc", root, split)
    assert dataset.has_boxes
    for i, image_id in enumerate(dataset.image_ids):
        want = voc_objects(root, image_id)
        got = as_pairs(dataset.objects(i))
        assert [name for _, name in got] == [name for _, name, _ in want] and want
        assert np.allclose([box for box, _ in got], [box for box, _, _ in want])
        labels = dataset.label_names
        present = {labels[j] for j in np.flatnonzero(dataset.targets[i])}
        ignored = {labels[j] for j in np.flatnonzero(dataset.masks[i] == 0)}
        assert present == {name for _, name, difficult in want if not difficult}
        assert ignored == {name for _, name, _ in want} - present


def test_the_fixture_images_show_their_objects(dataset_roots):
    """Each box of the fixtures that no other box overlaps is filled with its name's colour."""
    def check(image_path: Path, objects) -> int:
        pixels = np.asarray(Image.open(image_path).convert("RGB"), dtype=float)
        height, width = pixels.shape[:2]
        checked = 0
        for k, (box, (name,)) in enumerate(objects):
            others = [b for j, (b, _) in enumerate(objects) if j != k]
            if any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in others):
                continue
            x0, y0, x1, y1 = (round(v * s) for v, s in zip(box, (width, height, width, height)))
            inner = pixels[y0 + 2:y1 - 2, x0 + 2:x1 - 2].reshape(-1, 3).mean(0)
            colour = np.frombuffer(name.encode().ljust(3, b"@")[:3], np.uint8)
            assert np.abs(inner - colour).max() < 12, (image_path.name, name)
            checked += 1
        return checked

    coco = get_dataset("coco", dataset_roots["coco"], "train")
    voc = get_dataset("voc", dataset_roots["voc"], "test")
    checked = sum(check(ds.image_paths[i], ds.objects(i)) for ds in (coco, voc) for i in range(len(ds)))
    assert checked >= 5


def test_a_subset_view_gives_the_boxes_of_its_images(dataset_roots):
    for name, split in (("voc", "trainval"), ("coco", "train")):
        full = get_dataset(name, dataset_roots[name], split)
        view = get_dataset(name, dataset_roots[name], split, max_images=2, subset_seed=3)
        assert view.has_boxes and len(view) == 2
        assert [view.objects(i) for i in range(2)] == [full.objects(int(j)) for j in view.indices]
        assert [scene_objects(view, i) for i in range(2)] == [view.objects(i) for i in range(2)]
    nuswide = get_dataset("nuswide", dataset_roots["nuswide"], "train", max_images=2)
    assert not nuswide.has_boxes and nuswide.objects(0) == [] and scene_objects(nuswide, 0) == []


def test_synthetic_scenes_give_their_layouts_objects():
    scenes = SyntheticScenes("natural", "val", num_images=3, image_size=32)
    assert scenes.has_boxes and MultiLabelDataset.has_boxes is False
    for i in range(3):
        assert scenes.objects(i) == layout_objects(scenes.layouts[i]) == scene_objects(scenes, i)
    assert any(scenes.objects(i) for i in range(3))


def test_datasets_without_boxes_say_so(dataset_roots, tmp_path):
    for name, split in (("nuswide", "train"), ("aid", "train"), ("pa100k", "train")):
        dataset = get_dataset(name, dataset_roots[name], split)
        assert not dataset.has_boxes and dataset.objects(0) == []
    voc = tmp_path / "voc"
    shutil.copytree(dataset_roots["voc"], voc)
    shutil.rmtree(voc / VOC_NOTES)  # the classification files alone: a valid layout without boxes
    bare, full = get_dataset("voc", voc, "test"), get_dataset("voc", dataset_roots["voc"], "test")
    assert not bare.has_boxes and bare.objects(0) == [] and np.array_equal(bare.targets, full.targets)
    coco = tmp_path / "coco"
    shutil.copytree(dataset_roots["coco"], coco)
    edit_coco(coco, lambda d: [a.pop("bbox", None) for a in d["annotations"]])
    unboxed = get_dataset("coco", coco, "train")
    assert not unboxed.has_boxes and unboxed.objects(0) == []
    assert np.array_equal(unboxed.targets, get_dataset("coco", dataset_roots["coco"], "train").targets)


def edit_coco(root: Path, change) -> None:
    path = root / "annotations" / "instances_train2014.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def image_entry(data: dict, image_id: int) -> dict:
    return next(im for im in data["images"] if im["id"] == image_id)


# id -> (change to the train instances file, pattern of the ValueError after the file's name)
COCO_CASES = {
    "three numbers": (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]),
                      r"annotations\[0\] \(id 1\): 'bbox' must be \[x, y, w, h\], 4 finite numbers, got \[1, 2, 3\]"),
    "a string": (lambda d: d["annotations"][2].update(bbox=["1", 2, 3, 4]),
                 r"annotations\[2\] \(id 3\): 'bbox' must be .*got \['1', 2, 3, 4\]"),
    "not a number": (lambda d: d["annotations"][0].update(bbox=[1, 2, math.nan, 4]), r"got \[1, 2, nan, 4\]"),
    "null": (lambda d: d["annotations"][0].update(bbox=None), r"got None"),
    "negative width": (lambda d: d["annotations"][3].update(bbox=[1, 2, -3, 4]),
                       r"annotations\[3\] \(id 4\): 'bbox' has a negative width or height: \[1, 2, -3, 4\]"),
    "no width": (lambda d: image_entry(d, 9).pop("width"),
                 r"images\[\d\] \(id 9\): has boxes but no positive integer 'width' and 'height' \(got None x 32\)"),
    "zero height": (lambda d: image_entry(d, 42).update(height=0), r"\(id 42\): has boxes .*\(got 48 x 0\)"),
    "every problem": (lambda d: (image_entry(d, 25).update(width=40.5), d["annotations"][0].update(bbox=[]),
                                 d["annotations"][1].update(bbox=[0, 0, 1, -1])),
                      r"3 problem\(s\):\n  annotations\[0\] .*\n  annotations\[1\] .*negative.*\n"
                      r"  images\[\d\] \(id 25\)"),
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_a_bad_coco_box_is_an_error_naming_the_file(dataset_roots, tmp_path, case):
    change, pattern = COCO_CASES[case]
    root = tmp_path / "coco"
    shutil.copytree(dataset_roots["coco"], root)
    edit_coco(root, change)
    with pytest.raises(ValueError, match=r"instances_train2014\.json: \d+ problem\(s\):") as error:
        get_dataset("coco", root, "train")
    assert len(re.findall(pattern, str(error.value))) == 1, str(error.value)


def test_an_image_without_size_but_without_boxes_is_fine(dataset_roots, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(dataset_roots["coco"], root)
    edit_coco(root, lambda d: (image_entry(d, 30).pop("width"), image_entry(d, 42).pop("height"),
                               [a.pop("bbox", None) for a in d["annotations"] if a["image_id"] == 42]))
    dataset = get_dataset("coco", root, "train")
    assert dataset.has_boxes and dataset.objects(dataset.image_ids.index(42)) == []


# id -> (change to the text of Annotations/000001.xml, pattern of the error after the file's name)
VOC_CASES = {
    "malformed": (lambda text: text[:-30], r"000001\.xml is not a well-formed XML file"),
    "unknown name": (lambda text: text.replace("<name>dog</name>", "<name>wolf</name>"),
                     r"000001\.xml: 1 problem\(s\):\n  object 1: name 'wolf' is not one of the 20 VOC labels"),
    "no size": (lambda text: text[:text.index("<size>")] + text[text.index("</size>") + 7:],
                r"000001\.xml: 1 problem\(s\):\n  no <size>"),
    "no height": (lambda text: text.replace("<height>40</height>", ""), r"<size>: no number <height> \(got None\)"),
    "zero width": (lambda text: text.replace("<width>36</width>", "<width>0</width>"),
                   r"width and height must be positive, got 0 x 40"),
    "a word for a number": (lambda text: text.replace("<xmin>4</xmin>", "<xmin>four</xmin>"),
                            r"object 1 \(dog\) <bndbox>: no number <xmin> \(got 'four'\)"),
    "max below min": (lambda text: text.replace("<xmax>20</xmax>", "<xmax>2</xmax>"),
                      r"object 1 \(dog\) <bndbox>: max below min \(4, 14, 2, 30\)"),
    "entity declaration": (lambda text: '<!DOCTYPE a [<!ENTITY x "xx">]>\n' + text.replace("dog", "&x;"),
                           r"000001\.xml: a DOCTYPE or ENTITY declaration is refused"),
    "not UTF-8": (lambda text: text.replace("VOC2007</folder>", "VOC2007\udcff</folder>"), r"000001\.xml is not UTF-8"),
}


@pytest.mark.parametrize("case", list(VOC_CASES))
def test_a_bad_voc_annotation_file_is_an_error_naming_it(dataset_roots, tmp_path, case):
    change, pattern = VOC_CASES[case]
    root = tmp_path / "voc"
    shutil.copytree(dataset_roots["voc"], root)
    path = root / VOC_NOTES / "000001.xml"
    path.write_bytes(change(path.read_text()).encode("utf-8", "surrogateescape"))
    dataset = get_dataset("voc", root, "test")  # read on first use, not when the split loads
    assert dataset.objects(dataset.image_ids.index("000002"))
    with pytest.raises(ValueError, match=pattern):
        dataset.objects(dataset.image_ids.index("000001"))


def test_a_missing_voc_annotation_file_is_named(dataset_roots, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(dataset_roots["voc"], root)
    (root / VOC_NOTES / "000002.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"annotation file .*000002\.xml is missing"):
        get_dataset("voc", root, "test").objects(1)


# ----------------------------------------------------------------------------- bench_localization
def test_bench_localization_scores_the_bare_clip_on_a_real_dataset(dataset_roots, tmp_path, capsys):
    out = tmp_path / "coco.json"
    bench.main(["--config", "coco", "--data-root", str(dataset_roots["coco"]), "--images", "4",
                "--json", str(out)])
    result = json.loads(out.read_text())["coco"]["bare_clip"]
    dataset = get_dataset("coco", dataset_roots["coco"], "val")
    inside = patch_centres_inside(dataset.objects(0), 7)  # the shipped tiny ViT: 7 x 7 patches
    assert result["chance"] == pytest.approx(inside.mean()) and 0 <= result["pointing"] <= 1
    out = capsys.readouterr().out
    assert "4 images of coco val" in out and "coco (bare CLIP shipped, tokens)" in out


def test_bench_localization_refuses_a_dataset_without_boxes_and_a_head_of_other_labels(dataset_roots):
    with pytest.raises(SystemExit, match=r"^bench_localization: nuswide at .* has no boxes [^\n]*$"):
        bench.main(["--config", "nuswide", "--data-root", str(dataset_roots["nuswide"]), "--images", "2"])
    head = str(ROOT / "data" / "heads" / "synthetic_natural.pt")
    with pytest.raises(SystemExit, match=r"trained on 66 labels of synthetic_natural, not on the 20 of voc"):
        bench.main(["--config", "voc", "--data-root", str(dataset_roots["voc"]), "--checkpoint", head])


def test_bench_localization_scores_a_head_trained_on_the_datasets_labels(dataset_roots, tiny_weights, tmp_path):
    from test_cli_train import tiny_overrides

    from sspa_core.cli import main

    run = tmp_path / "run"  # a head on the VOC-20 labels of the synthetic scenes, two epochs
    assert main(["train", "--config", "synthetic_natural", "--set", "dataset.name=synthetic_voc",
                 "--output-dir", str(run), *tiny_overrides(tiny_weights, tmp_path / "features")]) == 0
    out, checkpoint = tmp_path / "voc.json", str(run / "checkpoints" / "best.pt")
    bench.main(["--config", "voc", "--data-root", str(dataset_roots["voc"]), "--checkpoint", checkpoint,
                "--json", str(out)])
    result = json.loads(out.read_text())[checkpoint]
    assert {"weights", "text", "dsf", "gate", "bare_clip"} <= set(result)
    assert result["weights"]["pairs"] == 3  # dog and person, train (the difficult person is not present)
    assert 0 < result["weights"]["chance"] < 1 and 0 <= result["gate"]["auc"] <= 1
