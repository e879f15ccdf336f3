"""Bad data given to the loaders, ``sspa data check``, the image reader and the feature cache:
each case fails with an error that names the file and the entry, or is handled (a new case is
one line of a table)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sspa_core.backbone import load_backbone
from sspa_core.cli import main
from sspa_core.data import get_dataset
from sspa_core.data.check import check_dataset, format_report
from sspa_core.data.images import ImageError, read_image
from sspa_core.data.synthetic import SyntheticScenes
from sspa_core.features import batch_loader, cached_features, module_fingerprint, sweep_stale_entries

COCO_TRAIN = "annotations/instances_train2014.json"
COCO_FILE = "COCO_train2014_000000000009.jpg"


def copy_of(dataset_roots, name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(dataset_roots[name], root)
    return root


# ----------------------------------------------------------------------------- files to write
def png_header(path: Path, width: int, height: int) -> None:
    """A PNG that declares ``width``×``height`` (no pixel data: only the header is ever read)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def grey16(path: Path, value: int = 32896) -> None:
    Image.fromarray(np.full((24, 32), value, np.uint16)).save(path, format="PNG")  # a 16-bit grey PNG (mode I;16)


def photo(path: Path, size: tuple[int, int] = (80, 64), fmt: str = "JPEG") -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)


def truncated(path: Path) -> None:
    photo(path)
    path.write_bytes(path.read_bytes()[:300])


def damaged_jpeg(path: Path, cut: bool) -> None:
    """A 500×375 JPEG cut in half with its end marker kept (``cut``), or with 2 KB zeroed mid-file."""
    photo(path, size=(500, 375))
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + b"\xff\xd9" if cut else data[:middle] + bytes(2048) + data[middle + 2048:])


def jpeg_claiming(path: Path, width: int, height: int) -> None:
    """A 16×16 JPEG whose frame header claims ``width``×``height``."""
    photo(path, size=(16, 16))
    data = bytearray(path.read_bytes())
    frame = data.find(b"\xff\xc0")
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))


def sideways(path: Path) -> None:
    """A 200×100 JPEG, white on its left fifth, stored with EXIF Orientation=6 (rotate 90° clockwise)."""
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, :40] = 255
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, format="JPEG", exif=exif)


# ----------------------------------------------------------------------------- annotation files
def edit_json(relative: str, change):
    """A mutation of a dataset root: ``change(data)`` applied to the JSON file ``relative``."""
    def mutate(root: Path) -> None:
        path = root / relative
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return mutate


def image_entry(data: dict, image_id: int) -> dict:
    return next(im for im in data["images"] if im["id"] == image_id)


def append_lines(pattern: str, pick=lambda lines: lines[:1]):
    """A mutation appending ``pick(lines)`` of each file matching ``pattern`` to that file."""
    def mutate(root: Path) -> None:
        for path in root.glob(pattern):
            lines = path.read_text().splitlines()
            path.write_text("\n".join(lines + pick(lines)) + "\n")
    return mutate


def keep_lines(pattern: str, n: int):
    def mutate(root: Path) -> None:
        for path in root.glob(pattern):
            path.write_text("\n".join(path.read_text().splitlines()[:n]) + "\n")
    return mutate


def run_all(*mutations):
    def mutate(root: Path) -> None:
        for m in mutations:
            m(root)
    return mutate


def reorder_csv_columns(pattern: str):
    """A mutation reversing the label columns (header and values) of each CSV matching ``pattern``."""
    def mutate(root: Path) -> None:
        for path in root.glob(pattern):
            rows = [line.split(",") for line in path.read_text().splitlines()]
            path.write_text("\n".join(",".join([row[0], *row[:0:-1]]) for row in rows) + "\n")
    return mutate


def recode(pattern: str, encoding: str):
    """A mutation re-encoding each file matching ``pattern`` (``utf-8-sig``: with a byte-order mark)."""
    def mutate(root: Path) -> None:
        for path in root.glob(pattern):
            path.write_bytes(path.read_text().encode(encoding))
    return mutate


def rename_header(pattern: str, old: str, new: str):
    def mutate(root: Path) -> None:
        for path in root.glob(pattern):
            path.write_text(path.read_text().replace(old, new, 1))
    return mutate


def copy_file(source: str, target: str):
    def mutate(root: Path) -> None:
        shutil.copy(root / source, root / target)
    return mutate


# id -> (dataset, split, mutation of a copy of its fixture, pattern of the ValueError's message)
ANNOTATION_CASES = {
    "coco duplicate image id": ("coco", "train", edit_json(COCO_TRAIN, lambda d: d["images"].append(
        {"id": 9, "file_name": "a.jpg"})), rf"instances_train2014.json: 1 problem.*image id 9 is given to 2 images: "
                                           rf"({COCO_FILE}, a.jpg|a.jpg, {COCO_FILE})$"),
    "coco one file, two ids": ("coco", "train", edit_json(COCO_TRAIN, lambda d: (
        d["images"].append({"id": 99, "file_name": COCO_FILE}),
        d["annotations"].append({"id": 99, "image_id": 99, "category_id": 1}))),
        rf"file {COCO_FILE} is listed under 2 image ids"),
    "coco no annotations": ("coco", "val", edit_json("annotations/instances_val2014.json",
                                                     lambda d: d.update(annotations=[])),
                            r"instances_val2014.json: the 'annotations' list is empty"),
    "coco no images": ("coco", "val", edit_json("annotations/instances_val2014.json", lambda d: d.update(images=[])),
                       r"the 'images' list is empty"),
    "coco annotation without image_id": ("coco", "train", edit_json(COCO_TRAIN, lambda d: d["annotations"][0].pop(
        "image_id")), r"instances_train2014.json: 1 problem.*annotations\[0\] \(id 1\): no 'image_id'"),
    "coco image without file_name": ("coco", "train", edit_json(COCO_TRAIN, lambda d: image_entry(d, 42).pop(
        "file_name")), r"images\[\d\] \(id 42\): no 'file_name'"),
    "coco category_id as a string": ("coco", "train", edit_json(COCO_TRAIN, lambda d: d["annotations"][0].update(
        category_id="1")), r"annotations\[0\] \(id 1\): 'category_id' must be an integer, got '1'"),
    "coco unknown category": ("coco", "train", edit_json(COCO_TRAIN, lambda d: d["annotations"][0].update(
        category_id=12)), r"annotations\[0\] \(id 1\): unknown category 12"),
    "coco every problem listed": ("coco", "train", edit_json(COCO_TRAIN, lambda d: [a.pop("image_id") for a in
                                                                                   d["annotations"]]),
                                  r"6 problem\(s\):(\n  annotations\[\d\] \(id \d\): no 'image_id'){6}$"),
    "coco not JSON": ("coco", "val", lambda root: (root / "annotations/instances_val2014.json").write_text("{"),
                      r"instances_val2014.json is not a JSON file"),
    "coco absolute path": ("coco", "val", edit_json("annotations/instances_val2014.json", lambda d: image_entry(
        d, 1).update(file_name="/etc/passwd")), r"'/etc/passwd' resolves outside the dataset root"),
    "coco parent folder": ("coco", "val", edit_json("annotations/instances_val2014.json", lambda d: image_entry(
        d, 1).update(file_name="../train2014/" + COCO_FILE)), r"resolves outside the dataset root"),
    "coco images as bare integers": ("coco", "train", edit_json(COCO_TRAIN, lambda d: d.update(
        images=[im["id"] for im in d["images"]])), r"images\[0\]: not an object with 'id' and 'file_name', got \d+"),
    "pa100k zero-byte .mat": ("pa100k", "train", lambda root: (root / "annotation.mat").write_bytes(b""),
                              r"annotation.mat is not a readable .mat file \(Mat file appears to be truncated\)"),
    "pa100k truncated .mat": ("pa100k", "train", lambda root: (root / "annotation.mat").write_bytes(
        (root / "annotation.mat").read_bytes()[:300]), r"annotation.mat is not a readable .mat file \(could not read "
                                                        r"bytes\): it is empty, truncated"),
    "pa100k MATLAB v7.3 .mat": ("pa100k", "train", lambda root: (root / "annotation.mat").write_bytes(
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(124) + b"\x00\x02IM"
        + b"\x89HDF\r\n\x1a\n" + bytes(200)), r"annotation.mat is a MATLAB v7.3 \(HDF5\) file, which cannot be read"),
    "voc image listed twice": ("voc", "test", append_lines("VOCdevkit/VOC2007/ImageSets/Main/*_test.txt"),
                               r"aeroplane_test.txt \(and 19 more files\) lists 1 image file\(s\) more than once"),
    "voc empty split": ("voc", "test", keep_lines("VOCdevkit/VOC2007/ImageSets/Main/*_test.txt", 0),
                        r"VOC 2007 test: .*aeroplane_test.txt \(and 19 more files\) lists no \(labelled\) image"),
    "nuswide image listed twice": ("nuswide", "test", run_all(
        append_lines("ImageList/TestImagelist.txt", lambda lines: lines[-1:]),
        append_lines("TrainTestLabels/*_Test.txt", lambda lines: lines[-1:])), r"more than once: .*0006_10005"),
    "multiscene row twice": ("multiscene", "test", append_lines("test.csv", lambda lines: lines[-1:]),
                             r"test.csv lists 1 image file\(s\) more than once"),
    "multiscene header only": ("multiscene", "test", keep_lines("test.csv", 1), r"test.csv lists no"),
    "multiscene unknown column": ("multiscene", "test", rename_header("test.csv", "Beach", "Beech"),
                                  r"test.csv: header has 36 label columns, expected the 36 labels of the shipped "
                                  r"list; unknown: \['beech'\]"),
    "multiscene latin-1 file": ("multiscene", "train", lambda root: (root / "train.csv").write_bytes(
        (root / "train.csv").read_bytes().replace(b"0001", "0001é".encode("latin-1"))),
        r"train.csv is not UTF-8 text \(byte \d+: b'\\xe9'\); save it as UTF-8"),
    "mlrsnet empty label file": ("mlrsnet", "train", keep_lines("labels/airplane.csv", 0), r"airplane.csv is empty"),
    "aid empty label file": ("aid", "train", keep_lines("multilabels.txt", 0), r"multilabels.txt is empty"),
    "aid image in both splits": ("aid", "train", copy_file("images_tr/airport/airport_1.jpg",
                                                           "images_test/airport/airport_1.jpg"),
                                 r"found more than once under images_tr/ and images_test/, first: airport_1"),
}


#: id -> (dataset, split, mutation of a copy of its fixture that must leave its labels as they are)
SAME_LABEL_CASES = {
    "multiscene columns in another order": ("multiscene", "train", reorder_csv_columns("train.csv")),
    "voc list files with a byte-order mark": ("voc", "test", recode("VOCdevkit/VOC2007/ImageSets/Main/*.txt",
                                                                    "utf-8-sig")),
    "nuswide files with a byte-order mark": ("nuswide", "test", recode("**/*.txt", "utf-8-sig")),
    "aid category folder as a link": ("aid", "train", lambda root: (
        shutil.move(root / "images_tr" / "airport", root.parent / "airport-elsewhere"),
        (root / "images_tr" / "airport").symlink_to(root.parent / "airport-elsewhere"))),
    "aid label file with a byte-order mark": ("aid", "train", recode("multilabels.txt", "utf-8-sig")),
}


@pytest.mark.parametrize("case", list(SAME_LABEL_CASES))
def test_annotation_files_written_otherwise_give_the_same_labels(dataset_roots, tmp_path, case):
    name, split, mutate = SAME_LABEL_CASES[case]
    expected = get_dataset(name, dataset_roots[name], split)
    root = copy_of(dataset_roots, name, tmp_path)
    mutate(root)
    dataset = get_dataset(name, root, split)
    assert dataset.image_ids == expected.image_ids
    np.testing.assert_array_equal(dataset.targets, expected.targets)


@pytest.mark.parametrize("case", list(ANNOTATION_CASES))
def test_bad_annotation_files_are_errors_naming_the_file_and_entry(dataset_roots, tmp_path, case):
    name, split, mutate, pattern = ANNOTATION_CASES[case]
    root = copy_of(dataset_roots, name, tmp_path)
    mutate(root)
    with pytest.raises(ValueError) as error:
        get_dataset(name, root, split)
    assert re.search(pattern, str(error.value), re.DOTALL), str(error.value)
    _, reports = check_dataset(name, root, workers=1)  # data check: that split fails, the others go on
    assert split in [r.split for r in reports if r.error]
    assert all(r.n_images > 0 for r in reports if r.error is None)


def test_data_check_lists_every_problem_of_a_split_and_checks_the_others(dataset_roots, tmp_path, capsys):
    root = copy_of(dataset_roots, "coco", tmp_path)
    edit_json(COCO_TRAIN, lambda d: (image_entry(d, 25).update(id=9), d["annotations"][1].pop("image_id")))(root)
    assert main(["data", "check", "coco", str(root)]) == 1
    out = capsys.readouterr().out
    assert "  train: cannot load: " in out and "instances_train2014.json: 3 problem(s):\n" in out
    listed = [line.strip() for line in out.splitlines() if line.startswith("        ")]
    assert listed[:2] == [f"image id 9 is given to 2 images: COCO_train2014_000000000025.jpg, {COCO_FILE}",
                          "annotations[1] (id 2): no 'image_id'"]
    assert "  val: 1 images, 0 missing, 0 unreadable" in out and out.rstrip().endswith("PROBLEMS FOUND")


def test_data_check_columns_line_up_whatever_the_percentage(dataset_roots):
    label_names, reports = check_dataset("coco", dataset_roots["coco"], workers=1)
    lines = format_report("coco", label_names, reports).splitlines()
    table = lines[lines.index("label frequencies (images with the label, % of the split):") + 1:][:81]
    assert any("(100.0%)" in line for line in table) and any("(33.3%)" in line for line in table)
    assert len({len(line) for line in table}) == 1  # header and every label row end at the same column
    assert table[0].endswith(" val") and table[1].endswith("(0.0%)")


# ----------------------------------------------------------------------------- images
# id -> (writer of a file at a path, environment, pattern of the ImageError, or expected (size, mean))
IMAGE_CASES = {
    "truncated JPEG": (truncated, {}, r"(?i)cannot decode image .*img \(OSError: .*truncated"),
    "zero bytes": (lambda p: p.write_bytes(b""), {}, r"cannot decode image .*img \(UnidentifiedImageError"),
    "not an image": (lambda p: p.write_text("not an image"), {}, r"cannot decode image .*img"),
    "14000 x 14000 PNG": (lambda p: png_header(p, 14000, 14000), {},
                          r"img has 14000×14000 = 196,000,000 pixels, over the limit of 178,956,970: .*"
                          r"SSPA_MAX_IMAGE_PIXELS"),
    "PNG over a lowered limit": (lambda p: photo(p, fmt="PNG"), {"SSPA_MAX_IMAGE_PIXELS": "2000"},
                                 r"80×64 = 5,120 pixels, over the limit of 2,000"),
    "JPEG over a lowered limit is drafted": (photo, {"SSPA_MAX_IMAGE_PIXELS": "2000"}, ((40, 32), None)),
    "JPEG within the limit is whole": (photo, {}, ((80, 64), None)),
    "16-bit grey PNG is scaled, not clipped": (grey16, {}, ((32, 24), 128.0)),
    "32-bit grey (mode I) is scaled": (lambda p: Image.fromarray(np.full((8, 8), 65535, np.int32), "I").save(
        p, format="TIFF"), {}, ((8, 8), 255.0)),
    "float TIFF in [0, 1] is scaled": (lambda p: Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(
        p, format="TIFF"), {}, ((8, 8), 127.5)),
    "JPEG cut in half, end marker kept": (lambda p: damaged_jpeg(p, cut=True), {},
                                          r"an\.img: its JPEG data end before its last rows"),
    "JPEG with 2 KB zeroed mid-file": (lambda p: damaged_jpeg(p, cut=False), {},
                                       r"an\.img: its JPEG data go on after its last rows .* damaged"),
    "16x16 JPEG claiming 60000x60000": (lambda p: jpeg_claiming(p, 60000, 60000), {},
                                        r"an\.img: its header claims 60000×60000 pixels, more than its \d+ bytes"),
    "grey JPEG is not damaged": (lambda p: Image.new("RGB", (40, 32), (128, 128, 128)).save(p, format="JPEG"), {},
                                 ((40, 32), 128.0)),
    "EXIF orientation is applied": (sideways, {}, ((100, 200), None)),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_read_image(tmp_path, monkeypatch, case):
    write, environment, expected = IMAGE_CASES[case]
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "an.img"
    write(path)
    if isinstance(expected, str):
        with pytest.raises(ImageError, match=expected):
            read_image(path)
        return
    image = read_image(path)
    size, mean = expected
    assert image.mode == "RGB" and image.size == size
    if mean is not None:
        assert np.asarray(image).mean() == pytest.approx(mean, abs=0.5)


def test_read_image_errors(tmp_path, monkeypatch):
    png_header(tmp_path / "huge.png", 14000, 14000)
    with pytest.raises(ImageError):
        read_image(tmp_path / "huge.png")
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's own limit is left as it was
    with pytest.raises(FileNotFoundError, match="absent.jpg"):
        read_image(tmp_path / "absent.jpg")
    monkeypatch.setenv("SSPA_MAX_IMAGE_PIXELS", "many")
    with pytest.raises(ValueError, match="SSPA_MAX_IMAGE_PIXELS='many': expected a positive number"):
        read_image(tmp_path / "absent.jpg")


def test_a_huge_image_is_reported_skipped_and_named_everywhere(dataset_roots, tmp_path, capsys):
    root = copy_of(dataset_roots, "coco", tmp_path)
    png_header(root / "train2014" / COCO_FILE, 14000, 14000)
    assert main(["data", "check", "coco", str(root), "--splits", "train"]) == 1
    assert f"{COCO_FILE}: unreadable (image " in capsys.readouterr().out
    with pytest.raises(ImageError, match=f"{COCO_FILE} has 14000×14000 .*pass skip_corrupt=True"):
        get_dataset("coco", root, "train")[0]
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        kept = get_dataset("coco", root, "train", skip_corrupt=True)
    assert kept.image_ids == [25, 42] and "over the limit" in kept.skipped[0][1]


@pytest.mark.parametrize("cut", [True, False], ids=["cut in half", "2 KB zeroed"])
def test_a_damaged_photo_fails_data_check_and_the_loader(dataset_roots, tmp_path, capsys, cut):
    root = copy_of(dataset_roots, "coco", tmp_path)
    damaged_jpeg(root / "train2014" / COCO_FILE, cut)
    assert main(["data", "check", "coco", str(root), "--splits", "train"]) == 1
    assert f"{COCO_FILE}: unreadable (image " in capsys.readouterr().out
    with pytest.raises(ImageError, match=f"{COCO_FILE}: its JPEG data .* damaged"):
        get_dataset("coco", root, "train")[0]


@pytest.mark.parametrize("fault", ["missing", "truncated"])
def test_an_image_error_in_a_worker_is_the_same_one_line_as_without_workers(dataset_roots, tmp_path, fault):
    root = copy_of(dataset_roots, "coco", tmp_path)
    image = root / "train2014" / COCO_FILE
    image.unlink() if fault == "missing" else truncated(image)
    dataset = get_dataset("coco", root, "train", image_size=32)
    errors = {}
    for workers in (0, 1):  # the configs of the real datasets ship 8 workers
        with pytest.raises((FileNotFoundError, ImageError)) as error:
            list(batch_loader(dataset, 2, num_workers=workers))
        errors[workers] = (type(error.value), str(error.value))
    assert errors[1] == errors[0] and "\n" not in errors[1][1] and COCO_FILE in errors[1][1]


# ----------------------------------------------------------------------------- paths
def test_a_symlinked_image_folder_is_followed(dataset_roots, tmp_path):
    root = copy_of(dataset_roots, "coco", tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(root / "val2014", elsewhere)
    (root / "val2014").symlink_to(elsewhere)
    val = get_dataset("coco", root, "val", image_size=32)
    assert val.image_paths == [root.resolve() / "val2014" / "COCO_val2014_000000000001.jpg"]
    assert val[0]["image"].shape == (3, 32, 32)
    link = tmp_path / "link-to-root"
    link.symlink_to(root)
    assert len(get_dataset("coco", link, "train")) == 3


# ----------------------------------------------------------------------------- feature cache
def coco_view(root: Path):
    return get_dataset("coco", root, "train", image_size=64)


def relabel(root: Path) -> None:  # same images, one label changed (car -> bicycle on image 42)
    edit_json(COCO_TRAIN, lambda d: next(a for a in d["annotations"] if a["category_id"] == 3).update(
        category_id=2))(root)


def replace_image(root: Path) -> None:
    photo(root / "train2014" / COCO_FILE, size=(48, 40))


# id -> (mutation of the dataset root, whether the dataset's fingerprint must change)
FINGERPRINT_CASES = {
    "unchanged": (lambda root: None, False),
    "annotation relabelled": (relabel, True),
    "annotation reformatted, same labels": (edit_json(COCO_TRAIN, lambda d: d.update(info={"v": 2})), True),
    "image replaced": (replace_image, True),
}


@pytest.mark.parametrize("case", list(FINGERPRINT_CASES))
def test_fingerprint_follows_annotations_and_images(dataset_roots, tmp_path, case):
    mutate, changes = FINGERPRINT_CASES[case]
    root = copy_of(dataset_roots, "coco", tmp_path)
    before = coco_view(root).fingerprint()
    mutate(root)
    assert (coco_view(root).fingerprint() != before) == changes


def test_fingerprint_follows_the_image_reader(dataset_roots, tmp_path, monkeypatch):
    """A reader that returns other pixels (EXIF orientation, float images) gives other cache keys."""
    import sspa_core.data.image_files as image_files

    before = coco_view(dataset_roots["coco"]).fingerprint()
    monkeypatch.setattr(image_files, "READER_VERSION", image_files.READER_VERSION + 1)
    assert coco_view(dataset_roots["coco"]).fingerprint() != before


def test_synthetic_fingerprint_follows_its_generation_parameters():
    base = SyntheticScenes("natural", "train", num_images=4, image_size=32).fingerprint()
    assert SyntheticScenes("natural", "train", num_images=4, image_size=32).fingerprint() == base
    for other in ({"seed": 1}, {"image_size": 48}, {"label_set": "voc"}, {"num_images": 5}):
        kwargs = {"num_images": 4, "image_size": 32, **other}
        assert SyntheticScenes("natural", "train", **kwargs).fingerprint() != base, other


def test_a_stale_feature_cache_is_never_reused(dataset_roots, tmp_path, tiny_weights):
    backbone = load_backbone("sspa-tiny-vit", pretrained=str(tiny_weights), image_size=64)
    root = copy_of(dataset_roots, "coco", tmp_path)
    kwargs = dict(backbone_name="sspa-tiny-vit", dataset_id="coco-x", split="train", cache_dir=tmp_path / "cache",
                  progress=False)
    first = cached_features(backbone, coco_view(root), **kwargs)
    relabel(root)
    dataset = coco_view(root)
    second = cached_features(backbone, dataset, **kwargs)
    assert second.folder != first.folder and not np.array_equal(second.targets, first.targets)
    np.testing.assert_array_equal(second.targets, dataset.targets)

    (second.folder / "targets.npy").unlink()  # an incomplete entry under the right key is rebuilt
    meta = json.loads((second.folder / "meta.json").read_text())
    assert cached_features(backbone, dataset, **kwargs).targets.sum() == dataset.targets.sum()
    meta["content"] = "stale"  # so is one whose stored content differs
    (second.folder / "meta.json").write_text(json.dumps(meta))
    np.save(second.folder / "targets.npy", np.zeros_like(dataset.targets))
    np.testing.assert_array_equal(cached_features(backbone, dataset, **kwargs).targets, dataset.targets)


def test_temporary_entries_of_killed_runs_are_swept(tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    names = {f".tmp-{dead.stdout.strip()}@{host}-ab12": True,  # this host, its process is gone
             f".tmp-{os.getpid()}@{host}-cd34": False,  # a live process (this one) is still writing
             ".tmp-1@other-host-ef56": False,  # another host's, recent
             ".tmp-old_style": True}  # unknown owner, older than a day
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "x0.npy").write_bytes(b"partial")
    day_old = time.time() - 2 * 24 * 3600
    os.utime(tmp_path / ".tmp-old_style", (day_old, day_old))
    (tmp_path / "0123abcd").mkdir()  # a finished entry
    removed = {p.name for p in sweep_stale_entries(tmp_path)}
    assert removed == {n for n, stale in names.items() if stale}
    assert {p.name for p in tmp_path.iterdir()} == {"0123abcd", *(n for n, stale in names.items() if not stale)}


@pytest.mark.parametrize("name", ["sspa-tiny-vit", "sspa-tiny-rn"])
def test_module_fingerprint_of_both_tiny_clips(name):
    visual = load_backbone(name, image_size=64).clip.visual
    first = module_fingerprint(visual)
    assert len(first) == 16 and module_fingerprint(visual) == first
    scalars = [t for t in visual.state_dict().values() if t.dim() == 0]
    if name == "sspa-tiny-rn":  # BatchNorm's num_batches_tracked: 0-dim buffers, hashed too
        assert scalars
        with torch.no_grad():
            scalars[0].add_(1)
        assert module_fingerprint(visual) != first


@pytest.mark.slow
def test_train_and_resume_on_cached_features_of_the_resnet_tiny_clip(tmp_path, capsys):
    # 64 px: the config's 112 is not a multiple of the ResNet's stride 32
    settings = {"model.backbone": "sspa-tiny-rn", "dataset.image_size": 64, "train.epochs": 1,
                "dataset.kwargs.num_images": 16, "dataset.eval_kwargs.num_images": 8, "train.batch_size": 8,
                "train.eval_batch_size": 8, "train.progress": False, "train.feature_cache_dir": tmp_path / "cache"}
    argv = ["train", "--config", "synthetic_natural", "--output-dir", str(tmp_path / "run")]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1]
    assert main([*argv, "--resume"]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == history
    assert not list((tmp_path / "cache").rglob(".tmp-*"))
