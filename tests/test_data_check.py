"""``sspa data check``: counts, label frequencies, missing or unreadable files, exit codes."""

from __future__ import annotations

import shutil

import pytest

from sspa_core.cli import main
from sspa_core.data.check import check_dataset


def test_a_good_download_passes(dataset_roots, capsys):
    assert main(["data", "check", "voc", str(dataset_roots["voc"])]) == 0
    out = capsys.readouterr().out
    assert "VOC 2007: 20 labels" in out
    assert "trainval: 3 images, 0 missing, 0 unreadable" in out and "test: 2 images" in out
    # person: positive in 000009 (trainval) and 000001 (test); difficult in 000002 is not counted
    person = next(line for line in out.splitlines() if line.strip().startswith("person"))
    assert person.split()[1:3] == ["1", "(33.3%)"] and person.split()[3:5] == ["1", "(50.0%)"]
    assert out.rstrip().endswith("OK")


@pytest.mark.parametrize("name", ["coco", "nuswide", "pa100k", "rap", "peta", "multiscene", "mlrsnet", "aid"])
def test_every_fixture_passes(dataset_roots, name):
    _, reports = check_dataset(name, dataset_roots[name], workers=1)
    assert all(r.ok for r in reports) and sum(r.n_images for r in reports) > 0


def test_missing_and_unreadable_images_fail(dataset_roots, tmp_path, capsys):
    root = tmp_path / "aid"
    shutil.copytree(dataset_roots["aid"], root)
    (root / "images_test" / "airport" / "airport_2.jpg").unlink()
    assert main(["data", "check", "aid", str(root)]) == 1
    assert "in neither images_tr/ nor images_test/, first: airport_2" in capsys.readouterr().out

    root = tmp_path / "coco"
    shutil.copytree(dataset_roots["coco"], root)
    (root / "train2014" / "COCO_train2014_000000000009.jpg").unlink()
    broken = root / "val2014" / "COCO_val2014_000000000001.jpg"
    broken.write_bytes(broken.read_bytes()[:300])
    assert main(["data", "check", "coco", str(root)]) == 1
    out = capsys.readouterr().out
    assert "train: 3 images, 1 missing, 0 unreadable" in out and "val: 1 images, 0 missing, 1 unreadable" in out
    assert "COCO_train2014_000000000009.jpg: missing" in out and "COCO_val2014_000000000001.jpg: unreadable" in out
    assert out.rstrip().endswith("PROBLEMS FOUND")
    assert main(["data", "check", "coco", str(root), "--no-decode", "--splits", "val"]) == 0


def test_a_split_that_cannot_load_is_a_problem(dataset_roots, tmp_path, capsys):
    root = tmp_path / "voc"
    shutil.copytree(dataset_roots["voc"], root)
    (root / "VOCdevkit/VOC2007/ImageSets/Main/dog_val.txt").unlink()
    assert main(["data", "check", "voc", str(root)]) == 1
    assert "val: cannot load: VOC 2007: annotation file" in capsys.readouterr().out


def test_bad_arguments(tmp_path, capsys):
    assert main(["data", "check", "voc", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "check", "voc", str(tmp_path), "--splits", "bogus"]) == 2
    assert "unknown split 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "check", "imagenet", str(tmp_path)])
