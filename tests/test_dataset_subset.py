"""``max_images``: one seeded, deterministic subset option that every dataset honours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sspa_core.config import load_config
from sspa_core.data import check_dataset_kwargs, get_dataset, protocol_splits
from sspa_core.engine.runs import build_dataset, check_run_config

REAL = ["coco", "voc", "nuswide", "pa100k", "rap", "peta", "multiscene", "mlrsnet", "aid"]


@pytest.mark.parametrize("name", REAL)
def test_every_loader_honours_max_images_deterministically(dataset_roots, name):
    split = protocol_splits(name)[0]
    full = get_dataset(name, dataset_roots[name], split, image_size=32)
    first = get_dataset(name, dataset_roots[name], split, image_size=32, max_images=2)
    again = get_dataset(name, dataset_roots[name], split, image_size=32, max_images=2)
    assert len(first) == min(2, len(full)) < len(full)
    assert first.indices.tolist() == again.indices.tolist() == sorted(set(first.indices.tolist()))
    assert np.array_equal(first.targets, full.targets[first.indices])
    masks = np.ones_like(full.targets) if full.masks is None else full.masks
    assert np.array_equal(np.ones_like(first.targets) if first.masks is None else first.masks,
                          masks[first.indices])
    item = first[1]
    assert torch.equal(item["image"], full[int(first.indices[1])]["image"])
    assert torch.equal(item["target"], full[int(first.indices[1])]["target"]) and item["index"] == 1
    assert first.label_names == full.label_names and first.split == split
    assert first.fingerprint() == again.fingerprint() != full.fingerprint()
    everything = get_dataset(name, dataset_roots[name], split, image_size=32, max_images=len(full) + 5)
    assert np.array_equal(everything.targets, full.targets)


def test_subset_seed_chooses_another_subset(dataset_roots):
    chosen = {seed: get_dataset("mlrsnet", dataset_roots["mlrsnet"], "train", max_images=3,
                                subset_seed=seed).indices.tolist() for seed in range(4)}
    assert len({tuple(v) for v in chosen.values()}) > 1


def test_synthetic_scenes_render_only_their_first_max_images():
    capped = get_dataset("synthetic_natural", None, "train", image_size=32, num_images=50, max_images=5)
    drawn = get_dataset("synthetic_natural", None, "train", image_size=32, num_images=50)
    assert len(capped) == 5 and np.array_equal(capped.targets, drawn.targets[:5])
    assert len(get_dataset("synthetic_natural", None, "val", image_size=32, num_images=3, max_images=5)) == 3
    with pytest.raises(ValueError, match="own seed"):
        get_dataset("synthetic_natural", None, "train", max_images=5, subset_seed=1)


@pytest.mark.parametrize("bad, message", [
    (0, "max_images must be >= 1"), (-2, "max_images must be >= 1"), (True, "expects int"), ("3", "expects int")])
def test_bad_max_images_is_refused(bad, message, dataset_roots):
    with pytest.raises(ValueError, match=message):
        check_dataset_kwargs("coco", {"max_images": bad})
    with pytest.raises(ValueError, match="max_images must be an int >= 1"):
        get_dataset("coco", dataset_roots["coco"], "train", max_images=bad)


def test_config_validation_accepts_max_images_for_every_dataset(dataset_roots):
    for name in [*REAL, "synthetic_natural"]:
        check_dataset_kwargs(name, {"max_images": 3})
        check_dataset_kwargs(name, {"max_images": None})
    check_dataset_kwargs("voc", {"max_images": 3, "subset_seed": 1})
    with pytest.raises(ValueError, match="takes no argument 'subset_seed'"):
        check_dataset_kwargs("synthetic_natural", {"subset_seed": 1})
    config = load_config("coco", [f"dataset.root={dataset_roots['coco']}", "dataset.kwargs.max_images=2",
                                  "dataset.eval_kwargs.max_images=1", "model.backbone=sspa-tiny-vit",
                                  "model.pretrained=", "dataset.image_size=32"])
    check_run_config(config)
    assert len(build_dataset(config, "train", augment=False)) == 2
    with pytest.raises(ValueError, match="dataset.eval_kwargs.max_images must be >= 1"):
        check_run_config(load_config("coco", ["dataset.eval_kwargs.max_images=0"]))
