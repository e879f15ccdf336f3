"""sspa_core.explorers without a browser: every explorer draws for its default values and for
others, a control's change triggers a redraw, and without a front end show() draws a figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from sspa_core import explorers  # noqa: E402

LABELS = ["car", "person", "dog", "cat"]
RNG = np.random.default_rng(0)
PICTURES = [Image.fromarray((RNG.random((56, 56, 3)) * 255).astype("uint8")) for _ in range(3)]
BOX = [((0.1, 0.1, 0.5, 0.5), ("car",))]


def _all() -> dict[str, explorers.Explorer]:
    scores = RNG.random((3, 4))
    return {
        "hamilton": explorers.hamilton_explorer(),
        "similarity": explorers.similarity_explorer(LABELS, {"template": RNG.normal(size=(4, 8)),
                                                             "KAP": RNG.normal(size=(4, 8))}),
        "maps": explorers.map_explorer(PICTURES, LABELS, {"w": torch.rand(3, 49, 4)}, scores, [BOX] * 3),
        "temperature": explorers.temperature_explorer(torch.randn(49, 4), LABELS, PICTURES[0]),
        "threshold": explorers.threshold_explorer(RNG.random((20, 4)), (RNG.random((20, 4)) < 0.4).astype(float),
                                                  LABELS),
        "attributes": explorers.attribute_explorer(PICTURES, RNG.random((3, 4)),
                                                   (RNG.random((3, 4)) < 0.5).astype(float), LABELS, [BOX] * 3),
    }


@pytest.mark.parametrize("name", list(_all()))
def test_each_explorer_draws_its_defaults_and_other_values(name):
    explorer = _all()[name]
    figure = explorer.figure()
    assert figure.axes
    plt.close(figure)
    for control_name, control in explorer.controls.items():
        options = getattr(control, "options", None)
        other = options[-1] if options else control.max
        figure = explorer.figure(**{control_name: other})
        assert figure.axes
        plt.close(figure)


def test_the_hamilton_explorer_shows_both_orders():
    explorer = explorers.hamilton_explorer()
    figure = explorer.figure(p_r=0.0, p_x=1.0, p_y=0.0, p_z=0.0, q_r=0.0, q_x=0.0, q_y=1.0, q_z=0.0)  # i and j
    bars = figure.axes[0].patches
    heights = [b.get_height() for b in bars]
    assert heights[3] == pytest.approx(1.0) and heights[7] == pytest.approx(-1.0)  # ij = k, ji = -k
    plt.close(figure)


def test_a_control_change_redraws(monkeypatch):
    monkeypatch.delenv(explorers.HEADLESS_ENV, raising=False)
    explorer = explorers.threshold_explorer(RNG.random((20, 4)), (RNG.random((20, 4)) < 0.4).astype(float), LABELS)
    box = explorer.widget()
    assert explorer.redraws == 1 and len(box.children) == 3  # title, one row of controls, output
    assert len(explorers.hamilton_explorer().widget().children) == 4  # eight sliders: two rows of four
    explorer.controls["threshold"].value = 0.7
    assert explorer.redraws == 2
    assert explorer.values == {"threshold": 0.7}


def test_without_a_front_end_show_draws_a_static_figure(monkeypatch):
    shown = []
    monkeypatch.setenv(explorers.HEADLESS_ENV, "1")
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    explorers.hamilton_explorer().show()
    assert len(shown) == 1 and isinstance(shown[0], matplotlib.figure.Figure)


def test_the_temperature_curve_runs_from_the_most_present_patch_to_the_mean():
    torch.manual_seed(0)
    s = torch.randn(49, 6, dtype=torch.float64) * 2 + 10
    figure = explorers.temperature_explorer(s, [f"l{j}" for j in range(6)], PICTURES[0]).figure(label="l2")
    curve, mean, most_present = [ax for ax in figure.axes if ax.get_lines()][0].get_lines()[:3]
    assert curve.get_ydata()[0] == pytest.approx(most_present.get_ydata()[0], rel=1e-6)  # tau -> 0
    assert curve.get_ydata()[-1] == pytest.approx(mean.get_ydata()[0], abs=0.05)  # tau = 10: close to the mean
    assert mean.get_ydata()[0] == pytest.approx(s[:, 2].mean().item())
    plt.close(figure)
