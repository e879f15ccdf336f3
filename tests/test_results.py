"""sspa_core.results: the statistics the benchmarks report with, and the recorded results the
notebooks read."""

from __future__ import annotations

import json

import pytest

from sspa_core import results


def test_t_interval_on_hand_made_numbers():
    assert results.t_quantile(1) == 12.706 and results.t_quantile(10) == 2.228
    assert results.t_quantile(11) == pytest.approx(2.201, abs=1e-3)  # beyond the table
    assert results.t_quantile(30) == pytest.approx(2.042, abs=1e-3)
    mean, (low, high) = results.mean_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half-width 4.303 / sqrt(3)
    assert mean == 2.0 and high - mean == pytest.approx(4.303 / 3**0.5) and low == pytest.approx(4 - high)
    assert results.mean_interval([5.0]) == (5.0, None)
    assert results.overlaps((0, 1), (1, 2)) and not results.overlaps((0, 1), (1.5, 2))
    assert results.overlaps(None, (0, 1))


@pytest.mark.parametrize(("deltas", "sign", "expected"), [
    ([-1.0, -1.2, -0.8], "-", "reproduced"),
    ([1.0, 1.2, 0.8], "-", "not reproduced"),
    ([-1.0, 1.0, 0.1], "-", "within noise"),
    ([1.0, 1.2, 0.8], "+", "reproduced"),
    ([1.0, 1.2, 0.8], None, "higher"),
    ([-1.0], "-", "undetermined"),
])
def test_verdicts(deltas, sign, expected):
    assert results.verdict(results.mean_interval(deltas)[1], sign) == expected


def test_recorded_results_are_found_by_name_and_bad_names_refused(tmp_path):
    assert results.load_result("ablations", "synthetic_natural", tmp_path) is None
    path = results.result_path("ablations", "synthetic_natural", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"config": "synthetic_natural"}))
    assert results.load_result("ablations", "synthetic_natural", tmp_path) == {"config": "synthetic_natural",
                                                                                "backbone_note": ""}
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        results.load_result("ablations", "synthetic_natural", tmp_path)
    with pytest.raises(ValueError, match="unknown benchmark"):
        results.result_path("ablation", "synthetic_natural")
    with pytest.raises(ValueError, match="plain name"):
        results.result_path("ablations", "../../etc/passwd")



def _row(name, values, seeds, verdict="reference", sign=None):
    return {"variant": name, "values": values, "seeds": seeds, "mean": sum(values) / len(values),
            "ci95": results.mean_interval(values)[1], "delta": 0.0, "delta_ci95": None, "paper_sign": sign,
            "verdict": verdict}


def _record():
    row = _row
    return {"config": "synthetic_natural", "monitor": "mAP", "tables": {"VI": {"title": "Table VI", "rows": [
        row("SSPA (full)", [50.0, 51.0, 52.0], [0, 1, 2]),
        row("w/o KAP", [49.0, 50.5, 50.0], [0, 1, 2], "within noise", "-"),
        row("w/o CAP", [47.0, 48.0], [0, 2], "undetermined", "-")]}}}


def test_paired_difference_uses_the_common_seeds():
    rows = {r["variant"]: r for r in _record()["tables"]["VI"]["rows"]}
    mean, interval, n = results.paired_difference(rows["w/o KAP"], rows["w/o CAP"])
    assert n == 2 and mean == pytest.approx(((49 - 47) + (50 - 48)) / 2) and interval is not None
    assert interval[0] == pytest.approx(2.0) and interval[1] == pytest.approx(2.0)  # equal differences: no spread
    with pytest.raises(ValueError, match="share no seed"):
        results.paired_difference(rows["w/o KAP"], {**rows["w/o CAP"], "seeds": [7, 8]})


def test_ablation_rows_for_display():
    rows = results.ablation_rows(_record(), "VI")
    assert [r["variant"] for r in rows] == ["SSPA (full)", "w/o KAP", "w/o CAP"]
    assert rows[0]["Δ vs full [95% CI]"] == "" and rows[0]["mAP % [95% CI]"].startswith("51.00 [")
    assert rows[1]["paper's sign"] == "-" and rows[2]["seeds"] == 2
    with pytest.raises(KeyError, match="not recorded"):
        results.ablation_rows(_record(), "VII")


def test_threshold_rows_average_the_seeds():
    record = {"thresholds": {"sspa": {"mA": {"at 0.5": [56.0, 57.0], "held out": [60.0, 61.0],
                                             "threshold": [0.6, 0.7], "best": [62.0, 64.0]}}}}
    assert results.threshold_rows(record) == [{"model": "sspa", "mA at 0.5": "56.50", "mA held out (t)": "60.50 (0.65)",
                                               "mA best": "63.00"}]
    assert results.threshold_rows({"models": {}}) == [] and results.threshold_rows({"thresholds": {}}) == []


def test_recorded_ablations_fall_back_and_say_how_to_record(tmp_path):
    record = {**_record(), "command": "python benchmarks/ablations.py --tables VI",
              "budget": {"backbone": "sspa-tiny-vit", "image_size": 112, "train_images": 2000, "epochs": 12}}
    (tmp_path / "ablations").mkdir()
    (tmp_path / "ablations" / "synthetic_natural.json").write_text(json.dumps(record))
    (heading, rows, source), (missing, none, nothing) = results.recorded_ablations("coco", ["VI", "VII"],
                                                                                    results_dir=tmp_path)
    assert "recorded on synthetic_natural, not coco" in heading and len(rows) == 3
    assert source == record["config"]  # the config a notebook names beside its reading of the table
    assert "not recorded yet" in missing and "--tables VII" in missing and none == [] and nothing is None


SHIPPED_ABLATIONS = sorted((results.RESULTS_DIR / "ablations").glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED_ABLATIONS, ids=[p.stem for p in SHIPPED_ABLATIONS])
def test_shipped_ablation_tables_follow_from_their_run_logs(path):
    """Every score of a shipped record is a run of its log (on the same CLIP weights), and every
    mean, interval, difference, verdict and count is recomputed from them; where three seeds overlap
    the full model's, five ran."""
    record = json.loads(path.read_text())
    log = {}
    for line in path.with_suffix(".runs.jsonl").read_text().splitlines():
        run = json.loads(line)
        same_weights = run.get("backbone_sha256") == record["budget"].get("backbone_sha256")
        if run["shared"] == record["overrides"] and same_weights:
            log[(tuple(run["overrides"]), run["seed"])] = run["value"]
    rows = [r for table in record["tables"].values() for r in table["rows"]]
    [full] = {r["variant"]: r for r in rows if r["verdict"] == "reference"}.values()
    first = len(record["seeds"])
    full_interval = results.mean_interval(full["values"][:first])[1]
    for r in rows:
        assert r["values"] == [log[(tuple(r["overrides"]), s)] for s in r["seeds"]], r["variant"]
        mean, interval = results.mean_interval(r["values"])
        assert r["mean"] == pytest.approx(mean) and r["ci95"] == pytest.approx(interval)
        if r is full or r["verdict"] == "reference":
            continue
        delta, delta_ci, _ = results.paired_difference(r, full)
        assert r["delta"] == pytest.approx(delta) and r["delta_ci95"] == pytest.approx(delta_ci)
        if r["paper_sign"]:
            assert r["verdict"] == results.verdict(r["delta_ci95"], r["paper_sign"]), r["variant"]
        if record["extra_seeds_on_overlap"]:
            overlapping = results.overlaps(results.mean_interval(r["values"][:first])[1], full_interval)
            assert len(r["seeds"]) == (first + 2 if overlapping else first), r["variant"]
    signed = {r["variant"]: r["verdict"] for r in rows if r["paper_sign"]}
    assert record["summary"]["paper_signs"] == len(signed)
    assert record["summary"]["reproduced"] == sum(v == "reproduced" for v in signed.values())


def test_a_record_says_when_it_was_made_with_other_backbone_weights(tmp_path):
    from sspa_core.engine.heads import backbone_digest
    from sspa_core.results import backbone_note, load_result

    now = backbone_digest({"model": {"backbone": "sspa-tiny-vit", "pretrained": ""}})
    assert backbone_note({"budget": {"backbone": "sspa-tiny-vit", "backbone_sha256": now}}) == ""
    stale = backbone_note({"budget": {"backbone": "sspa-tiny-vit", "backbone_sha256": "0" * 16}})
    assert "0000000000000000" in stale and now in stale and "rerun" in stale
    assert "not recorded" in backbone_note({"budget": {"backbone": "sspa-tiny-vit"}})
    assert backbone_note({"budget": {"backbone": "ViT-B-16", "pretrained": "openai"}}) == ""  # a tag: no file to hash
    folder = tmp_path / "compare_models"
    folder.mkdir()
    (folder / "synthetic_natural.json").write_text('{"budget": {"backbone": "sspa-tiny-vit"}}')
    assert "not recorded" in load_result("compare_models", "synthetic_natural", tmp_path)["backbone_note"]
