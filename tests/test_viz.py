"""The patch map over an image: values in their own units, one cell per patch, a colour bar."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sspa_core.viz import heatmap_over_image, patch_grid  # noqa: E402


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
