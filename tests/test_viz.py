"""The patch map over an image: values in their own units, one cell per patch, a colour bar."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sspa_core.viz import attention_examples, heatmap_over_image, patch_grid  # noqa: E402


def test_heatmap_keeps_values_and_grid_and_adds_a_colour_bar():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    values = np.array([0.376, 0.380, 0.381, 0.384])  # a narrow range must not look like 0 … 1
    fig, ax = plt.subplots()
    heat = heatmap_over_image(ax, image, values, title="gate")
    assert heat.get_array().shape == (2, 2)  # one cell per patch, no resampling
    assert heat.get_clim() == pytest.approx((0.376, 0.384))
    assert len(fig.axes) == 2  # the image and its colour bar
    assert heat.get_extent() == [0, 64, 64, 0]
    plt.close(fig)


def test_heatmap_takes_a_shared_scale_and_can_leave_out_the_colour_bar():
    fig, ax = plt.subplots()
    heat = heatmap_over_image(ax, np.zeros((32, 32, 3), dtype=np.uint8), np.arange(16.0), vmin=0, vmax=1,
                              colorbar=False)
    assert heat.get_clim() == (0, 1)
    assert len(fig.axes) == 1
    plt.close(fig)


def test_patch_grid_refuses_a_non_square_count():
    with pytest.raises(ValueError, match="square grid"):
        patch_grid(np.arange(5.0))


def test_draw_objects_puts_one_labelled_box_per_object_in_pixels():
    from matplotlib.patches import Rectangle

    from sspa_core.data import get_dataset
    from sspa_core.localization import scene_objects
    from sspa_core.viz import draw_objects

    fig, ax = plt.subplots()
    ax.imshow(np.zeros((112, 112, 3), dtype=np.uint8))
    objects = [((0.1, 0.2, 0.5, 0.6), ("dog",)), ((0.5, 0.5, 1.0, 1.0), ("car", "truck")), ((0, 0, 1, 1), ())]
    assert draw_objects(ax, objects, 112) == 2  # the unlabelled one (clutter) is not drawn
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [b.get_xy() for b in boxes] == [pytest.approx((11.2, 22.4)), pytest.approx((56.0, 56.0))]
    assert boxes[0].get_width() == pytest.approx(44.8) and boxes[0].get_height() == pytest.approx(44.8)
    assert [t.get_text() for t in ax.texts] == ["dog", "car, truck"]
    assert draw_objects(ax, objects, 112, only=["truck"]) == 1
    assert draw_objects(ax, [], 112) == 0  # a real dataset: no boxes
    plt.close(fig)

    scenes = get_dataset("synthetic_natural", "", "val", image_size=64, max_images=2, seed=0)
    found = scene_objects(scenes, 0)
    assert found and all(labels for _, labels in found)
    assert {name for _, labels in found for name in labels} == set(scenes.layouts[0].labels)
    fig, ax = plt.subplots()
    assert draw_objects(ax, scenes.layouts[0], (64, 64)) == len(found)  # a Layout works too
    plt.close(fig)
    assert scene_objects(object(), 0) == []


def test_prediction_figure_says_whose_maps_it_shows():
    from PIL import Image

    from sspa_core.viz import prediction_figure

    images = [Image.new("RGB", (56, 56)) for _ in range(2)]
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]])
    rng = np.random.default_rng(0)
    objects = [[((0.1, 0.1, 0.4, 0.4), ("a",)), ((0.5, 0.5, 0.9, 0.9), ("c",))], []]
    fig = prediction_figure(images, scores, ["a", "b", "c"], rng.random((2, 49, 3)), rng.random((2, 49, 8)), top_k=2,
                            title="a barely trained head", objects=objects)
    assert fig._suptitle.get_text() == "a barely trained head"
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:4] == ["a 0.90\nc 0.50", "w: a", "w: c", "gate G (mean)"]
    boxes = [len(ax.patches) for ax in fig.axes[:8] if ax.get_title()]
    assert boxes[:4] == [2, 1, 1, 2] and boxes[4:] == [0, 0, 0, 0]  # all on the image and gate, the label's on its map
    plt.close(fig)


def test_attention_examples_show_the_most_frequent_labels_present_in_each_image():
    targets = np.array([[0, 0, 0, 1, 0],   # one label: drawn after the images with more
                        [1, 1, 0, 1, 1],
                        [0, 0, 0, 0, 0],   # nothing present: never drawn
                        [1, -1, 1, 1, 0],  # -1: masked, not present
                        [0, 1, 0, 1, 0]])
    # label frequencies (present = above 0): 2, 2, 1, 4, 1 -> label 3 first, then 0 and 1 (index order)
    assert attention_examples(targets, n_images=2, n_labels=3) == [(1, [3, 0, 1]), (3, [3, 0, 2])]
    assert attention_examples(targets, n_images=5, n_labels=2) == [
        (1, [3, 0]), (3, [3, 0]), (4, [3, 1]), (0, [3])]
    for image, labels in attention_examples(targets, n_images=5):
        assert all(targets[image, j] > 0 for j in labels)  # every panel shows a present label
    assert attention_examples(np.zeros((3, 4))) == []
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        attention_examples(np.zeros(4))
