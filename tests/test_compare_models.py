"""benchmarks/compare_models.py end to end at a tiny size: the printed table and the JSON record
that ``sspa_core.results`` reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import load_script

script = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "compare_models.py")


def run_script(argv: list[str], monkeypatch) -> None:
    """Run the script's main() with ``argv`` on one torch thread."""
    monkeypatch.setattr(sys, "argv", argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        script.main()
    finally:
        torch.set_num_threads(threads)


def test_the_script_writes_one_value_per_seed(tiny_weights, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results" / "synthetic_pedestrian.json"
    argv = ["compare_models.py", "--config", "synthetic_pedestrian", "--images", "24", "--eval-images", "16",
            "--epochs", "1", "--batch", "8", "--seeds", "0", "1", "--models", "zeroshot", "unid",
            "--pretrained", str(tiny_weights), "--set", "dataset.image_size=64", "--thresholds", "--output", str(out)]
    run_script(argv, monkeypatch)
    printed = capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["config"] == "synthetic_pedestrian" and record["seeds"] == [0, 1]
    assert record["columns"] == ["mA", "F1", "mAP"] and record["budget"]["train_images"] == 24
    assert record["command"].startswith("python benchmarks/compare_models.py --config synthetic_pedestrian")
    for model in ("zeroshot", "unid"):
        entry = record["models"][model]
        assert len(entry["values"]["mA"]) == 2 and all(0 <= v <= 100 for v in entry["values"]["mA"])
        assert entry["mean"]["mA"] == sum(entry["values"]["mA"]) / 2
        assert f"{entry['mean']['mA']:6.2f}" in printed
    assert record["models"]["zeroshot"]["std"]["mA"] == 0  # nothing to train: the seed changes nothing
    study = record["thresholds"]["unid"]["mA"]  # --thresholds: per seed, at 0.5, held out and the oracle
    assert study["at 0.5"] == pytest.approx(record["models"]["unid"]["values"]["mA"])
    assert len(study["held out"]) == 2 and all(0.05 <= t <= 0.95 for t in study["threshold"])
    assert all(held <= 100 and best >= at for held, best, at in zip(study["held out"], study["best"], study["at 0.5"]))
    assert "mA held out (t)" in printed


def test_by_size_splits_the_labels_into_thirds_that_average_to_the_map(tiny_weights, tmp_path, monkeypatch, capsys):
    out = tmp_path / "natural.json"
    argv = ["compare_models.py", "--config", "synthetic_natural", "--images", "16", "--eval-images", "40",
            "--epochs", "1", "--batch", "8", "--seeds", "0", "--models", "zeroshot",
            "--pretrained", str(tiny_weights), "--set", "dataset.image_size=64", "--by-size", "--output", str(out)]
    run_script(argv, monkeypatch)
    record = json.loads(out.read_text())
    groups, values = record["by_size"]["groups"], record["by_size"]["models"]["zeroshot"]
    assert list(groups) == ["small", "medium", "large"]
    counts = [groups[name][2] for name in groups]
    assert max(counts) - min(counts) <= 1
    assert groups["small"][1] <= groups["medium"][0] and groups["medium"][1] <= groups["large"][0]
    # every label with a positive is in one third, so the thirds' means weighted by their sizes give the mAP
    weighted = sum(values[name][0] * groups[name][2] for name in groups) / sum(counts)
    assert weighted == pytest.approx(record["models"]["zeroshot"]["values"]["mAP"][0])
    assert "mean AP (%) by the labels' typical object size" in capsys.readouterr().out
