"""The nine real-dataset loaders on their fixtures, the registry, and every bad-input case."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_fixtures as fx

from sspa_core.data import available_datasets, dataset_class, get_dataset
from sspa_core.data.labels import label_list, load_label_names
from sspa_core.data.transforms import build_transform

REAL = ["coco", "voc", "nuswide", "pa100k", "rap", "peta", "multiscene", "mlrsnet", "aid"]
N_LABELS = {"coco": 80, "voc": 20, "nuswide": 81, "pa100k": 26, "rap": 51, "peta": 35, "multiscene": 36,
            "mlrsnet": 60, "aid": 17}
# (dataset, split) -> number of images in the fixture
COUNTS = {
    ("coco", "train"): 3, ("coco", "val"): 1,
    ("voc", "trainval"): 3, ("voc", "test"): 2, ("voc", "train"): 2, ("voc", "val"): 1,
    ("nuswide", "train"): 3, ("nuswide", "test"): 2,
    ("pa100k", "train"): 4, ("pa100k", "val"): 2, ("pa100k", "test"): 2, ("pa100k", "trainval"): 6,
    ("rap", "trainval"): 4, ("rap", "test"): 2,
    ("peta", "train"): 4, ("peta", "val"): 1, ("peta", "trainval"): 5, ("peta", "test"): 3,
    ("multiscene", "train"): 3, ("multiscene", "test"): 2,
    ("mlrsnet", "train"): 8, ("mlrsnet", "test"): 2,
    ("aid", "train"): 3, ("aid", "test"): 2,
}


def positives(dataset, i: int) -> set[str]:
    return {dataset.label_names[j] for j in np.flatnonzero(dataset.targets[i])}


def row_of(dataset, suffix: str) -> int:
    return next(i for i, p in enumerate(dataset.image_paths) if str(p).endswith(suffix))


@pytest.mark.parametrize("name, split", list(COUNTS))
def test_counts_label_order_and_items(dataset_roots, name, split):
    dataset = get_dataset(name, dataset_roots[name], split, image_size=32)
    assert len(dataset) == COUNTS[name, split]
    assert dataset.label_names == load_label_names(name)
    assert dataset.num_classes == N_LABELS[name]
    item = dataset[0]
    assert item["image"].shape == (3, 32, 32)
    assert item["target"].shape == item["mask"].shape == (N_LABELS[name],)
    assert dataset.split == split


def test_label_lists_have_official_sizes_and_no_duplicates():
    for name, n in N_LABELS.items():
        names = load_label_names(name)
        assert len(names) == len(set(names)) == n
    assert load_label_names("voc")[:2] == ["aeroplane", "bicycle"] and load_label_names("voc")[-1] == "tvmonitor"
    assert load_label_names("pa100k")[0] == "Female" and load_label_names("pa100k")[-1] == "boots"
    assert load_label_names("rap")[:2] == ["hs-BaldHead", "hs-LongHair"]
    assert load_label_names("peta")[-1] == "personalMale"


def test_a_label_file_is_read_as_the_shipped_lists_are(tmp_path):
    path = tmp_path / "mini.txt"
    path.write_bytes("\ufeffcat\n  sports ball \r\n\n".encode())  # a byte-order mark, CRLF, a blank line
    assert label_list(str(path)) == (["cat", "sports ball"], "mini")
    assert label_list("voc") == (load_label_names("voc"), "voc")
    with pytest.raises(FileNotFoundError, match="label file not found"):
        label_list(str(tmp_path / "none.txt"))
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        label_list(str(path))


def test_coco_targets_follow_sorted_category_ids(dataset_roots):
    train = get_dataset("coco", dataset_roots["coco"], "train")
    assert train.image_ids == [9, 25, 42]  # image 30 has no annotation
    assert positives(train, 0) == {"person", "dog"}
    assert positives(train, 1) == {"toothbrush"}  # id 90, the last label
    assert positives(train, 2) == {"car", "bus"}
    assert train.targets[1, 79] == 1
    assert train.masks is None


def test_voc_difficult_entries_are_masked(dataset_roots):
    trainval = get_dataset("voc", dataset_roots["voc"], "trainval")
    assert trainval.image_ids == ["000005", "000007", "000009"]
    assert positives(trainval, 0) == {"chair"}
    table = trainval.label_names.index("diningtable")
    assert trainval.targets[0, table] == 0 and trainval.masks[0, table] == 0
    assert trainval.masks.sum() == 3 * 20 - 1
    item = trainval[0]
    assert item["mask"][table] == 0 and item["target"][table] == 0
    test = get_dataset("voc", dataset_roots["voc"], "test")
    person = test.label_names.index("person")
    assert test.targets[:, person].tolist() == [1, 0] and test.masks[:, person].tolist() == [1, 0]


def test_nuswide_windows_paths_and_unlabelled_images_dropped(dataset_roots):
    train = get_dataset("nuswide", dataset_roots["nuswide"], "train")
    assert train.image_ids == [r"actor\0001_2124494179.jpg", r"airport\0002_10001.jpg", r"zebra\0004_10003.jpg"]
    assert train.image_paths[0] == dataset_roots["nuswide"].resolve() / "Flickr" / "actor" / "0001_2124494179.jpg"
    assert positives(train, 2) == {"zebra", "grass", "animal"}


def test_pa100k_splits_and_named_targets(dataset_roots):
    trainval = get_dataset("pa100k", dataset_roots["pa100k"], "trainval")
    assert positives(trainval, row_of(trainval, "000001.jpg")) == {"Female", "Age18-60", "Back", "Backpack"}
    test = get_dataset("pa100k", dataset_roots["pa100k"], "test")
    assert [p.name for p in test.image_paths] == ["000007.jpg", "000008.jpg"]
    assert positives(test, 0) == {"AgeOver60", "Hat", "boots"}


def test_rap_selects_51_attributes_in_rethinking_order(dataset_roots):
    trainval = get_dataset("rap", dataset_roots["rap"], "trainval")
    # partition 0: images 1-4; "ub-Jacket" is 2 (uncertain) for the first and reads as 0
    assert positives(trainval, row_of(trainval, "CAM01_img0001.png")) == {"Female", "hs-LongHair", "action-Calling"}
    assert trainval.label_names.index("Female") == 37
    test = get_dataset("rap", dataset_roots["rap"], "test")
    assert [p.name for p in test.image_paths] == ["CAM02_img0005.png", "CAM02_img0006.png"]
    assert positives(test, 0) == {"AgeLess16", "shoes-Sport"}
    other = get_dataset("rap", dataset_roots["rap"], "test", partition=1)
    assert [p.name for p in other.image_paths] == ["CAM02_img0006.png", "CAM01_img0001.png"]


def test_peta_mat_and_rethinking_pickle_agree(dataset_roots):
    from_mat = get_dataset("peta", dataset_roots["peta"], "trainval")
    from_pickle = get_dataset("peta", dataset_roots["peta_pkl"], "trainval")
    assert [p.name for p in from_mat.image_paths] == ["00001.png", "00002.png", "00003.png", "00004.png", "00005.png"]
    assert [p.name for p in from_pickle.image_paths] == [p.name for p in from_mat.image_paths]
    np.testing.assert_array_equal(from_mat.targets, from_pickle.targets)
    assert positives(from_mat, 1) == {"personalMale", "personalLess30", "carryingBackpack"}
    test = get_dataset("peta", dataset_roots["peta"], "test")
    assert positives(test, row_of(test, "00006.png")) == {"accessoryHat", "footwearSneaker"}


def test_multiscene_targets(dataset_roots):
    test = get_dataset("multiscene", dataset_roots["multiscene"], "test")
    assert test.image_ids == ["0004", "0005"]
    assert positives(test, 0) == {"port", "pier", "sea"}


def test_mlrsnet_reads_column_order_from_each_header(dataset_roots):
    train = get_dataset("mlrsnet", dataset_roots["mlrsnet"], "train")
    test = get_dataset("mlrsnet", dataset_roots["mlrsnet"], "test")
    assert len({*train.image_paths} & {*test.image_paths}) == 0
    both = train.image_paths + test.image_paths
    targets = np.concatenate([train.targets, test.targets])
    by_name = {p.name: {train.label_names[j] for j in np.flatnonzero(t)} for p, t in zip(both, targets)}
    assert by_name["harbor&port_00002.jpg"] == {"harbor", "ships", "water"}  # header reversed, "habor"
    assert by_name["airplane_00003.jpg"] == {"airplane", "grass"}
    assert by_name["airplane_00001.jpg"] == {"airplane", "runway", "pavement"}
    again = get_dataset("mlrsnet", dataset_roots["mlrsnet"], "train")
    assert again.image_paths == train.image_paths  # deterministic split
    assert get_dataset("mlrsnet", dataset_roots["mlrsnet"], "train", seed=3).image_paths != train.image_paths


def test_aid_split_by_folder(dataset_roots):
    test = get_dataset("aid", dataset_roots["aid"], "test")
    assert test.image_ids == ["airport_2", "port_9"]
    assert positives(test, 1) == {"dock", "ship", "water"}
    train = get_dataset("aid", dataset_roots["aid"], "train")
    assert positives(train, train.image_ids.index("beach_3")) == {"sand", "sea"}


def test_registry():
    names = available_datasets()
    assert names[:4] == ["synthetic_natural", "synthetic_voc", "synthetic_pedestrian", "synthetic_remote_sensing"]
    assert names[4:] == REAL
    with pytest.raises(ValueError, match="valid: synthetic_natural.*coco.*aid"):
        get_dataset("imagenet", "", "train")
    with pytest.raises(ValueError, match="unknown split 'val'.*trainval, test"):
        get_dataset("rap", "/", "val")


def test_every_shipped_config_names_its_dataset_domain():
    import warnings

    from sspa_core.config import available_configs, load_config
    from sspa_core.data import SYNTHETIC_DATASETS

    expected = {"coco": "natural", "voc": "natural", "nuswide": "natural", "pa100k": "pedestrian",
                "rap": "pedestrian", "peta": "pedestrian", "multiscene": "remote_sensing",
                "mlrsnet": "remote_sensing", "aid": "remote_sensing"}
    expected |= {name: kwargs["domain"] for name, kwargs in SYNTHETIC_DATASETS.items()}
    assert expected["synthetic_remote_sensing"] == "remote_sensing"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no former domain name is shipped
        for name in available_configs():
            dataset = load_config(name)["dataset"]
            assert dataset["domain"] == expected[dataset["name"]], name


def test_synthetic_domains_delegate_to_synthetic_scenes():
    voc = get_dataset("synthetic_voc", None, "test", num_images=2, image_size=32)
    assert voc.label_names == load_label_names("voc")
    assert voc[0]["image"].shape == (3, 32, 32)


def test_custom_transform_is_used(dataset_roots):
    dataset = get_dataset("aid", dataset_roots["aid"], "train", transform=build_transform(48, train=True))
    assert dataset[0]["image"].shape == (3, 48, 48)


# ----------------------------------------------------------------------------- bad input
def copy_of(dataset_roots, name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(dataset_roots[name], root)
    return root


@pytest.mark.parametrize("name", REAL)
def test_missing_root(name, tmp_path):
    with pytest.raises(FileNotFoundError, match="root .*does not exist"):
        get_dataset(name, tmp_path / "absent", dataset_class(name).SPLITS[-1])
    with pytest.raises(FileNotFoundError, match="no dataset root"):
        get_dataset(name, "", dataset_class(name).SPLITS[-1])


@pytest.mark.parametrize("name", REAL)
def test_missing_annotation_file(name, tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation file|no annotation files"):
        get_dataset(name, tmp_path, dataset_class(name).SPLITS[-1])


def test_missing_annotation_file_is_named(dataset_roots, tmp_path):
    root = copy_of(dataset_roots, "voc", tmp_path)
    (root / "VOCdevkit/VOC2007/ImageSets/Main/cow_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="cow_test.txt"):
        get_dataset("voc", root, "test")


def test_corrupt_image_raises_naming_the_file_or_is_skipped(dataset_roots, tmp_path):
    root = copy_of(dataset_roots, "coco", tmp_path)
    broken = root / "train2014" / "COCO_train2014_000000000025.jpg"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated JPEG
    dataset = get_dataset("coco", root, "train")
    assert dataset[0]["image"].shape[0] == 3
    with pytest.raises(ValueError, match="COCO_train2014_000000000025.jpg"):
        dataset[1]
    (root / "train2014" / "COCO_train2014_000000000042.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="COCO_train2014_000000000042.jpg"):
        dataset[2]
    with pytest.warns(UserWarning, match="skipped 2 of 3"):
        kept = get_dataset("coco", root, "train", skip_corrupt=True)
    assert len(kept) == 1 and kept.image_ids == [9]
    assert [p.name for p, _ in kept.skipped] == ["COCO_train2014_000000000025.jpg",
                                                "COCO_train2014_000000000042.jpg"]
    assert positives(kept, 0) == {"person", "dog"}


def test_not_an_image_is_reported(dataset_roots, tmp_path):
    root = copy_of(dataset_roots, "multiscene", tmp_path)
    (root / "images" / "0005.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="0005.jpg"):
        get_dataset("multiscene", root, "test")[1]


def test_annotation_path_outside_root_is_refused(dataset_roots, tmp_path):
    root = copy_of(dataset_roots, "coco", tmp_path)
    path = root / "annotations" / "instances_val2014.json"
    path.write_text(path.read_text().replace("COCO_val2014_000000000001.jpg", "../../../etc/passwd"))
    with pytest.raises(ValueError, match="outside the dataset root"):
        get_dataset("coco", root, "val")
    root = copy_of(dataset_roots, "nuswide", tmp_path)
    image_list = root / "ImageList" / "TestImagelist.txt"
    image_list.write_text(image_list.read_text().replace(r"dog\0006_10005.jpg", r"..\..\dog.jpg"))
    with pytest.raises(ValueError, match="outside the dataset root"):
        get_dataset("nuswide", root, "test")


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_untrusted_pickle_is_refused_and_never_runs(tmp_path):
    root = tmp_path / "peta"
    root.mkdir()
    marker = tmp_path / "ran"
    (root / "dataset_all.pkl").write_bytes(pickle.dumps({"image_name": [_RunsCode(marker)]}))
    with pytest.raises(ValueError, match="untrusted pickle .*dataset_all.pkl.*refused to load (posix|nt).system"):
        get_dataset("peta", root, "test")
    assert not marker.exists()


def test_pickle_that_is_not_a_dataset_file(tmp_path):
    root = tmp_path / "pa100k"
    root.mkdir()
    (root / "dataset_all.pkl").write_bytes(pickle.dumps({"label": np.zeros((2, 26))}))
    with pytest.raises(ValueError, match="not a Rethinking_of_PAR dataset file"):
        get_dataset("pa100k", root, "test")


def test_label_and_annotation_count_mismatch(dataset_roots, tmp_path):
    root = copy_of(dataset_roots, "nuswide", tmp_path)
    labels = root / "TrainTestLabels" / "Labels_sky_Train.txt"
    labels.write_text("1\n0\n0\n")  # 3 lines for 4 images
    with pytest.raises(ValueError, match="Labels_sky_Train.txt has 3 labels but .*lists 4 images"):
        get_dataset("nuswide", root, "train")

    root = copy_of(dataset_roots, "pa100k", tmp_path)
    fx.scipy.io.savemat(root / "annotation.mat", {
        **{f"{s}_images_name": fx.cell(["a.jpg"]) for s in ("train", "val", "test")},
        **{f"{s}_label": np.zeros((1, 25)) for s in ("train", "val", "test")},
        "attributes": fx.cell(load_label_names("pa100k")[:25])})
    with pytest.raises(ValueError, match="PA100K has 26 attributes"):
        get_dataset("pa100k", root, "test")

    root = copy_of(dataset_roots, "voc", tmp_path)
    cow = root / "VOCdevkit/VOC2007/ImageSets/Main/cow_test.txt"
    cow.write_text(cow.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="cow_test.txt lists 1 images, aeroplane_test.txt lists 2"):
        get_dataset("voc", root, "test")

    root = copy_of(dataset_roots, "aid", tmp_path)
    text = (root / "multilabels.txt").read_text().splitlines()
    (root / "multilabels.txt").write_text("\n".join([text[0], text[1] + "\t1", *text[2:]]) + "\n")
    with pytest.raises(ValueError, match="multilabels.txt line 2: 18 label values, expected 17"):
        get_dataset("aid", root, "train")

    root = copy_of(dataset_roots, "coco", tmp_path)
    path = root / "annotations" / "instances_val2014.json"
    path.write_text(path.read_text().replace('"name": "toothbrush"', '"name": "comb"'))
    with pytest.raises(ValueError, match="do not match the 80 COCO labels"):
        get_dataset("coco", root, "val")


def test_differently_spelled_attribute_names_warn(dataset_roots, tmp_path):
    root = copy_of(dataset_roots, "rap", tmp_path)
    path = root / "RAP_annotation" / "RAP_annotation.mat"
    mat = fx.scipy.io.loadmat(path)["RAP_annotation"][0][0]
    names = [n if n != "Female" else "Femal" for n in fx.rap_raw_names()]
    fx.scipy.io.savemat(path, {"RAP_annotation": {
        "partion": mat[0], "label": mat[1], "attribute_chinese": fx.cell(names), "attribute_eng": fx.cell(names),
        "position": mat[4], "imagesname": mat[5]}})
    with pytest.warns(UserWarning, match="attribute names differ from data/labels/rap.txt"):
        dataset = get_dataset("rap", root, "test")
    assert dataset.label_names == load_label_names("rap")


def test_pa100k_from_a_rethinking_pickle_matches_the_mat_file(dataset_roots, tmp_path):
    from_mat = get_dataset("pa100k", dataset_roots["pa100k"], "test")
    root = tmp_path / "pa100k"
    shutil.copytree(dataset_roots["pa100k"] / "data", root / "data")
    names = [f"{i + 1:06d}.jpg" for i in range(8)]
    label = np.zeros((8, 26), np.uint8)
    label[6, [1, 7, 25]] = 1  # 000007.jpg: AgeOver60, Hat, boots
    with fx.fake_easydict() as EasyDict:
        dataset = EasyDict(image_name=names, label=label, attr_name=load_label_names("pa100k"),
                           partition=EasyDict(train=np.arange(4), val=np.arange(4, 6), test=np.arange(6, 8),
                                              trainval=np.arange(6)))
        (root / "dataset_all.pkl").write_bytes(pickle.dumps(dataset, protocol=2))
    from_pickle = get_dataset("pa100k", root, "test")
    assert [p.name for p in from_pickle.image_paths] == [p.name for p in from_mat.image_paths]
    np.testing.assert_array_equal(from_pickle.targets, from_mat.targets)



def test_protocol_splits_exist_and_agree_with_the_run_configs():
    from sspa_core.config import available_configs, load_config
    from sspa_core.data import PROTOCOL_SPLITS, REAL_DATASETS, protocol_splits

    assert set(available_datasets()) == set(PROTOCOL_SPLITS)
    for name in REAL_DATASETS:
        assert set(protocol_splits(name)) <= set(dataset_class(name).SPLITS)
    for name in set(available_configs()) & set(REAL_DATASETS):  # synthetic runs select on val
        dataset = load_config(name)["dataset"]
        assert protocol_splits(dataset["name"]) == (dataset["train_split"], dataset["eval_split"])
    with pytest.raises(ValueError, match="unknown dataset"):
        protocol_splits("imagenet")
