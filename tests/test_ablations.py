"""benchmarks/ablations.py (the paper's Tables VI–IX and Fig. 5–6 in miniature): the variants are
real switches, the interval and verdict arithmetic, and the script end to end at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import load_script

from sspa_core.config import load_config
from sspa_core.data.synthetic.dataset import domain_labels
from sspa_core.engine import build_model_from_config

ablations = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "ablations.py")

TINY = ("dataset.image_size=64", "model.sspa.n_ctx=4")
LABELS = domain_labels("natural")[:4]  # a few labels keep the text encoder cheap


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster, and far faster on a loaded machine (main() sets it too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(overrides: tuple[str, ...], weights: Path) -> torch.nn.Module:
    config = load_config("synthetic_natural", [f"model.pretrained={weights}", *TINY, *overrides])
    torch.manual_seed(0)  # the same initialisation wherever the architectures agree
    _, model, _ = build_model_from_config(config, LABELS, torch.device("cpu"))
    return model.eval()


def test_every_variant_is_a_valid_config_that_changes_the_model(tiny_weights):
    variants = list(dict.fromkeys(v for _, vs in ablations.TABLES.values() for v in vs))
    assert len({v.name for v in variants}) == len(variants)
    assert all(v.paper_sign in ("+", "-", None) and v.overrides for v in variants)
    full = _model((), tiny_weights)
    generator = torch.Generator().manual_seed(0)
    dim = full.backbone.embed_dim
    features = torch.randn(2, dim, generator=generator), torch.randn(2, 16, dim, generator=generator)
    with torch.no_grad():
        reference = full.forward_features(*features)["score"]
        assert reference.shape == (2, len(LABELS))
        for variant in variants:
            scores = _model(variant.overrides, tiny_weights).forward_features(*features)["score"]
            assert not torch.allclose(scores, reference), f"{variant.name}: {variant.overrides} changes nothing"


def test_quick_mode_runs_one_variant_per_table_unless_tables_are_named():
    quick = ablations.select_tables(None, quick=True)
    assert list(quick) == list(ablations.TABLES) and all(len(vs) == 1 for _, vs in quick.values())
    assert ablations.select_tables(["IX"], quick=True) == {"IX": ablations.TABLES["IX"]}
    assert ablations.parse_args(["--quick"]).seeds == 2 and ablations.parse_args([]).seeds == 3


def _tiny_argv(tmp_path: Path, weights: Path, *tables: str) -> list[str]:
    return ["--quick", "--tables", *tables, "--output-dir", str(tmp_path), "--threads", "1",
            *(arg for o in (*TINY, "dataset.kwargs.num_images=32", "dataset.eval_kwargs.num_images=16",
                            "train.batch_size=16", f"model.pretrained={weights}") for arg in ("--set", o))]


def test_the_script_end_to_end(tiny_weights, tmp_path, capsys):
    argv = _tiny_argv(tmp_path, tiny_weights, "IX")
    assert ablations.main(argv) == 0
    record = json.loads((tmp_path / "synthetic_natural.json").read_text())
    assert record["monitor"] == "mAP" and record["seeds"] == [0, 1] and record["torch"] == torch.__version__
    assert record["budget"]["train_images"] == 32 and record["budget"]["epochs"] == 2
    assert record["command"].startswith("python benchmarks/ablations.py --quick") and record["wall_clock_s"] > 0
    rows = record["tables"]["IX"]["rows"]
    assert [r["variant"] for r in rows] == ["SSPA (full)", "Bi-D w/o gate", "Uni-D (learned classifier)"]
    assert rows[2]["overrides"] == ["model.name=unid"] and rows[2]["paper_sign"] == "-"
    for r in rows:
        assert r["seeds"] == [0, 1] and len(r["values"]) == 2 and all(0 <= v <= 100 for v in r["values"])
        assert r["ci95"][0] <= r["mean"] <= r["ci95"][1]
        assert r["verdict"] in ("reference", "reproduced", "not reproduced", "within noise")
    assert rows[0]["verdict"] == "reference" and rows[0]["delta"] == 0
    assert record["summary"]["paper_signs"] == 2
    out = capsys.readouterr().out
    assert "Table IX" in out and "| Uni-D (learned classifier) |" in out and "paper signs reproduced" in out


def test_a_later_invocation_reuses_logged_runs_and_keeps_earlier_tables(tiny_weights, tmp_path, monkeypatch):
    assert ablations.main(_tiny_argv(tmp_path, tiny_weights, "IX")) == 0
    log = tmp_path / "synthetic_natural.runs.jsonl"
    assert len(log.read_text().splitlines()) == 6  # full, no gate, Uni-D x 2 seeds
    trained = []
    real = ablations.train_from_config
    monkeypatch.setattr(ablations, "train_from_config", lambda config: trained.append(config) or real(config))
    assert ablations.main(_tiny_argv(tmp_path, tiny_weights, "VIII")) == 0
    assert len(trained) == 2 * 3  # VIII's three variants; the full model's two runs come from the log
    record = json.loads((tmp_path / "synthetic_natural.json").read_text())
    assert list(record["tables"]) == ["VIII", "IX"]  # IX of the first invocation is kept
    full = [t["rows"][0]["values"] for t in record["tables"].values()]
    assert full[0] == full[1]
    assert record["train_seconds_all_tables"] > 0 and record["summary"]["paper_signs"] == 5
    trained.clear()
    assert ablations.main(_tiny_argv(tmp_path, tiny_weights, "IX")) == 0 and not trained
    other = _tiny_argv(tmp_path, tiny_weights, "IX") + ["--set", "train.lr=1e-3"]  # another budget: no reuse
    assert ablations.main(other) == 0 and len(trained) == 6
    assert list(json.loads((tmp_path / "synthetic_natural.json").read_text())["tables"]) == ["IX"]


def test_runs_made_on_other_clip_weights_are_trained_again(tiny_weights, tmp_path, monkeypatch):
    assert ablations.main(_tiny_argv(tmp_path, tiny_weights, "IX")) == 0
    log = tmp_path / "synthetic_natural.runs.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["backbone_sha256"] for e in entries} == {ablations.backbone_digest(
        ablations.load_config("synthetic_natural", [f"model.pretrained={tiny_weights}"]))}
    log.write_text("".join(json.dumps({**e, "backbone_sha256": "an earlier tiny CLIP"}) + "\n" for e in entries))
    trained = []
    real = ablations.train_from_config
    monkeypatch.setattr(ablations, "train_from_config", lambda config: trained.append(config) or real(config))
    assert ablations.main(_tiny_argv(tmp_path, tiny_weights, "IX")) == 0
    assert len(trained) == 6  # nothing reused from the runs on other weights


def test_from_end_trains_the_same_runs_in_the_opposite_order(tiny_weights, tmp_path, monkeypatch):
    order = []
    real = ablations.train_from_config
    monkeypatch.setattr(ablations, "train_from_config", lambda config: order.append(
        (config["model"]["name"], (config["model"].get("sspa") or {}).get("gate", True))) or real(config))
    assert ablations.main([*_tiny_argv(tmp_path, tiny_weights, "IX"), "--from-end", "--seeds", "1"]) == 0
    assert order == [("unid", True), ("sspa", False), ("sspa", True)]  # Uni-D, the gate off, the full model
