"""The localization measures (sspa_core.localization) on hand-built cases with known answers."""

import numpy as np
import pytest

from sspa_core.localization import (
    label_masks,
    mass_ratios,
    patch_centres_inside,
    patch_coverage,
    pointing_game,
    roc_auc,
    target_mask,
)

DOG = ((0.0, 0.0, 0.5, 0.5), ("dog",))
CAR = ((0.5, 0.75, 1.0, 1.0), ("car",))


def test_patch_coverage_is_the_share_of_each_patch_under_the_boxes():
    cover = patch_coverage([DOG, CAR], 2).reshape(2, 2)
    assert cover == pytest.approx(np.array([[1.0, 0.0], [0.0, 0.5]]))
    assert patch_coverage([DOG, CAR], 2, only=["car"]).tolist() == [0.0, 0.0, 0.0, 0.5]
    assert patch_coverage([], 7).shape == (49,) and patch_coverage([], 7).sum() == 0
    assert patch_coverage([((0, 0, 1, 1), ())], 2).sum() == 0  # clutter shows no label


def test_patch_centres_and_label_masks():
    # 4 x 4 grid: patch centres at 1/8, 3/8, 5/8, 7/8; the car's box holds the centres of row 3, columns 2-3
    inside = patch_centres_inside([CAR], 4).reshape(4, 4)
    assert inside.sum() == 2 and inside[3, 2] and inside[3, 3]
    centres, cover = label_masks([DOG, CAR], ["car", "dog", "cat"], 4)
    assert centres.shape == cover.shape == (3, 16)
    assert centres[1].sum() == 4 and centres[2].sum() == 0 and cover[2].sum() == 0
    assert cover[0].sum() == pytest.approx(0.5 * 0.25 * 16)  # the car covers an eighth of the image


def test_target_mask_keeps_an_object_smaller_than_a_patch():
    tiny = ((0.30, 0.30, 0.40, 0.40), ("cup",))  # no patch centre of a 2 x 2 grid (0.25, 0.75)
    assert not patch_centres_inside([tiny], 2).any()
    assert target_mask([tiny], 2).tolist() == [True, False, False, False]
    assert target_mask([DOG, CAR], 2).tolist() == [True, False, False, True]
    assert target_mask([DOG, CAR], 2, only=["dog"]).tolist() == [True, False, False, False]


def test_pointing_game_hits_and_chance():
    inside = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], bool)  # last row: no box, skipped
    maps = np.array([[0.7, 0.1, 0.1, 0.1], [0.9, 0.05, 0.05, 0.0], [1, 0, 0, 0]])
    hit, chance = pointing_game(maps, inside)
    assert hit == pytest.approx(0.5) and chance == pytest.approx((0.25 + 0.5) / 2)
    with pytest.raises(ValueError, match="both be"):
        pointing_game(maps[:, :3], inside)


def test_mass_ratio_is_one_for_a_uniform_map_and_grows_on_the_box():
    cover = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    uniform = np.full((2, 4), 0.25)
    assert mass_ratios(uniform, cover) == pytest.approx([1.0, 1.0])
    on_box = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
    assert mass_ratios(on_box, cover) == pytest.approx([4.0, 0.0])
    assert len(mass_ratios(uniform, np.zeros((2, 4)))) == 0
    with pytest.raises(ValueError, match="non-negative"):
        mass_ratios(-uniform, cover)


def test_roc_auc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 60).astype(float)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[pos, neg])
    assert roc_auc(pos, neg) == pytest.approx(expected)
    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0 and roc_auc([0.0], [0.0]) == 0.5
    assert np.isnan(roc_auc([], [1.0]))


def test_captions_say_in_words_whether_a_map_finds_the_objects():
    from sspa_core.localization import gate_caption, localization_caption

    objects = [[DOG], [CAR]]  # image 0 shows a dog top-left, image 1 a car bottom-right; 2 x 2 patches
    targets = np.array([[1, 0], [0, 1]])  # labels: dog, car
    on_box = np.zeros((2, 2, 4))
    on_box[0, 0, 0] = on_box[1, 1, 3] = 1.0
    line = localization_caption("w", on_box, objects, ["dog", "car"], targets)
    assert "100% of 2 present labels" in line and line.endswith("it finds the objects.")
    off_box = np.zeros((2, 2, 4))
    off_box[0, 0, 3] = off_box[1, 1, 0] = 1.0
    assert localization_caption("w", off_box, objects, ["dog", "car"], targets).endswith(
        "it does not show where the objects are.")
    assert "cannot be checked" in localization_caption("w", on_box, [[], []], ["dog", "car"], targets)
    gates = np.zeros((2, 4, 3))
    gates[0, 0] = gates[1, 3] = 1.0  # open on the object patches only
    assert gate_caption("gate", gates, objects).endswith("it lets more in on the objects than on the background.")
    assert gate_caption("gate", np.ones((2, 4, 3)), objects).endswith("it barely tells objects from background.")
