"""Course text rendered from the run (sspa_core/narration.py): orders, ties and leaders at the
printed precision."""

from __future__ import annotations

import pytest

from sspa_core.narration import (
    count,
    data_phrase,
    leader,
    ranking,
    run_summary,
    say,
    verdict_summary,
    versus,
    weights_phrase,
)


def test_ranking_orders_and_marks_ties_at_the_printed_precision():
    assert ranking({"mean": 55.61, "soft": 57.0, "max": 55.64}) == "soft 57.0 > max 55.6 = mean 55.6"
    assert ranking({"a": 1.0, "b": 1.04}, unit="%") == "b 1.0% = a 1.0%"
    assert ranking({"a": 1.0, "b": 1.04}, decimals=2) == "b 1.04 > a 1.00"
    with pytest.raises(ValueError):
        ranking({})


def test_versus_is_level_at_the_printed_precision():
    assert versus(69.41, 69.44) == "level with"
    assert versus(69.41, 69.44, decimals=2) == "below"
    assert versus(70.0, 69.0) == "above"


def test_leader_names_the_margin_or_the_tie():
    assert leader({"SSPA": 62.92, "DualCoOp": 60.76, "CLIP": 40.0}) == "SSPA leads with 62.9 (2.2 above DualCoOp)"
    assert leader({"SSPA": 69.41, "CLIP-FT": 69.38, "x": 1}) == "SSPA and CLIP-FT tie at 69.4"
    assert leader({"only": 3.0}) == "only scores 3.0"


def test_say_prints_outside_a_notebook(capsys):
    assert say("**5** steps") is None  # nothing for a cell to show a second time as its value
    assert capsys.readouterr().out == "**5** steps\n"


def test_data_phrase_says_synthetic_or_names_the_real_dataset():
    assert "synthetic natural scenes" in data_phrase("synthetic_natural")
    assert "VOC's labels" in data_phrase("synthetic_voc")
    assert data_phrase("coco") == "COCO 2014 (`coco`)"
    assert "synthetic" not in data_phrase("peta")
    with pytest.raises(ValueError):
        data_phrase("imagenet")


def test_weights_phrase():
    assert weights_phrase("sspa-tiny-vit", "") == "the shipped tiny CLIP `sspa-tiny-vit`"
    assert weights_phrase("ViT-B-16", "openai") == "`ViT-B-16` with open_clip's `openai` weights"
    assert weights_phrase("RN50", "/w/rn50.pt") == "`RN50` with weights from `rn50.pt`"


def test_run_summary_speaks_of_the_run():
    class Data:
        split, has_boxes = "val", True

        def __len__(self):
            return 64

    line = run_summary("coco", Data(), "ViT-B-16", "openai", 448, 784)
    assert line.startswith("**This run:** COCO 2014 (`coco`), val split, 64 images;")
    assert "448 px, 28 × 28 = 784 patches" in line and "scored against the objects" in line
    Data.has_boxes = False
    assert "no boxes in this dataset" in run_summary("peta", Data(), "RN50", "", 64, 5)


def test_verdict_summary_groups_the_variants_by_verdict():
    rows = [{"variant": "SSPA (full)", "Δ vs full [95% CI]": "", "verdict": "reference"},
            {"variant": "w/o KAP", "Δ vs full [95% CI]": "-0.74 [-1.32, -0.15]", "verdict": "reproduced"},
            {"variant": "w/o CAP", "Δ vs full [95% CI]": "+0.22 [-0.45, 0.90]", "verdict": "within noise"},
            {"variant": "no DSF", "Δ vs full [95% CI]": "+0.42 [-0.44, 1.28]", "verdict": "within noise"}]
    assert verdict_summary(rows) == ("the paper's sign, outside the noise: w/o KAP (-0.74); "
                                     "within noise: no measurable effect: w/o CAP (+0.22), no DSF (+0.42).")
    assert verdict_summary(rows[:1]) == "no variant was recorded beside the full model."


def test_count_says_one_or_many():
    assert (count(1, "image"), count(0, "image"), count(64, "step")) == ("1 image", "0 images", "64 steps")
