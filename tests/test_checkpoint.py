"""Checkpoints: exact resume after an interruption, atomic writes, refusal of foreign checkpoints."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from helpers import NoisyImages, PatchModel, file_size_limit

from sspa_core.config import DEFAULTS, merge
from sspa_core.engine import (
    Trainer,
    atomic_save,
    check_compatible,
    load_checkpoint,
    load_trainable_state,
    rng_state,
    set_rng_state,
)
from sspa_core.errors import CheckpointError
from sspa_core.losses import SSPALoss
from sspa_core.training import atomic_link

CONFIG = merge(DEFAULTS, {"train": {"epochs": 3, "batch_size": 8, "lr": 1e-2, "encoder_lr": 1e-3,
                                    "ema_decay": 0.9, "checkpoint_every": 1, "eval_batch_size": 5,
                                    "progress": False, "warmup_epochs": 1.0}})


def make_trainer(output_dir, model_name: str = "patch", label_names=NoisyImages.label_names) -> Trainer:
    torch.manual_seed(0)
    return Trainer(PatchModel(), SSPALoss(), list(label_names), model_name, CONFIG, output_dir, torch.device("cpu"))


def interrupt_after(trainer: Trainer, steps: int) -> None:
    """Make ``trainer`` raise KeyboardInterrupt (a killed run) on its ``steps + 1``-th step."""
    original, done = trainer.train_step, [0]

    def step(batch):
        if done[0] == steps:
            raise KeyboardInterrupt
        done[0] += 1
        return original(batch)

    trainer.train_step = step


def fit(trainer: Trainer, resume=None) -> list[dict]:
    return trainer.fit(NoisyImages(22, seed=0), NoisyImages(10, seed=1), resume=resume)


@pytest.mark.parametrize("killed_after", [4, 6])  # inside epoch 2; at the end of epoch 2
def test_resume_after_interruption_reproduces_the_uninterrupted_run(tmp_path, killed_after):
    reference = make_trainer(tmp_path / "reference")
    fit(reference)

    interrupted = make_trainer(tmp_path / "run")
    interrupt_after(interrupted, killed_after)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted)
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert (saved["epoch"], saved["step_in_epoch"]) == divmod(killed_after, 3)

    # a fresh process would rebuild everything from scratch: another seed proves the state is restored
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    resumed = make_trainer(tmp_path / "run")
    fit(resumed, resume=tmp_path / "run" / "checkpoints" / "last.pt")

    metric_keys = [k for k in reference.history[0] if k != "epoch_time_s"]
    assert [[h[k] for k in metric_keys] for h in resumed.history] == \
        [[h[k] for k in metric_keys] for h in reference.history]
    for module_a, module_b in ((reference.model, resumed.model), (reference.ema.module, resumed.ema.module)):
        for (name, a), b in zip(module_a.state_dict().items(), module_b.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_checkpoint_holds_everything_and_loads_weights_only(tmp_path):
    trainer = make_trainer(tmp_path)
    fit(trainer)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "ema", "rng", "epoch", "step_in_epoch", "config",
                "label_names", "model_name", "history"):
        assert key in ckpt
    assert ckpt["epoch"] == 3 and ckpt["label_names"] == NoisyImages.label_names
    assert int(ckpt["ema"]["n_averaged"]) == 9  # the EMA's update count: its warm-up resumes where it was
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["history"][-1]["mAP"] == max(h["mAP"] for h in trainer.history)
    assert best["weights"] == best["best"]["weights"] == best["history"][-1]["weights"] in ("ema", "raw")
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "metrics.csv").is_file()
    assert (tmp_path / "config.yaml").is_file()


def test_atomic_save_gives_the_permissions_of_a_plain_write(tmp_path):
    import os
    import stat

    atomic_save({"format": 1}, tmp_path / "a.pt")
    (tmp_path / "b.txt").write_text("x")
    mode = lambda name: stat.S_IMODE(os.stat(tmp_path / name).st_mode)  # noqa: E731
    assert mode("a.pt") == mode("b.txt")


def test_interrupted_atomic_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"format": 1, "value": torch.arange(3)}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")  # the process dies mid-write
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"format": 1, "value": torch.arange(5)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def saved_value(path):
    return torch.load(path, weights_only=True)["value"]


FULL_DISK = """
import sys
import torch
from sspa_core.errors import OutputError
from sspa_core.training import atomic_save
path = sys.argv[1]
atomic_save({"format": 1, "value": torch.arange(3)}, path)  # under the limit
try:  # 4 MB: over it
    atomic_save({"format": 1, "value": torch.zeros(1_000_000)}, path)
except OutputError as err:
    print(err)
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs POSIX file-size limits")
def test_a_write_that_runs_out_of_space_says_so_and_keeps_the_previous_checkpoint(tmp_path):
    """A real short write (a file-size limit stands in for a full disk: torch's zip writer fails
    the same way, with "unexpected pos"): one clear error with the space needed and free."""
    import subprocess
    import sys

    path = tmp_path / "last.pt"
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(path)], capture_output=True, text=True, check=True,
                         preexec_fn=file_size_limit(100_000))
    assert out.stdout.startswith(f"could not write {path} (")
    assert "the file needs about 3.8 MiB and " in out.stdout and "last.pt was not changed" in out.stdout
    assert torch.equal(saved_value(path), torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_atomic_link_gives_best_the_state_of_last_and_keeps_it(tmp_path, monkeypatch):
    import os

    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_save({"value": torch.arange(3)}, last)
    atomic_link(last, best)
    assert os.path.samefile(last, best)  # one file on disk, two names
    atomic_save({"value": torch.arange(5)}, last)  # the next epoch replaces last.pt by a new file
    assert torch.equal(saved_value(best), torch.arange(3))
    assert torch.equal(saved_value(last), torch.arange(5))

    def no_links(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # a file system without hard links gets a copy
    atomic_link(last, best)
    assert not os.path.samefile(last, best)
    assert torch.equal(saved_value(best), torch.arange(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_best_keeps_its_epoch_when_later_epochs_are_worse(tmp_path, monkeypatch):
    import os

    trainer = make_trainer(tmp_path)
    scores = iter([0.5, 0.7, 0.6])  # the validation mAP of epochs 1-3: epoch 2 is the best
    monkeypatch.setattr(trainer, "evaluate_both", lambda data: ("ema", {"ema": {"mAP": next(scores)}}))
    trainer.fit(NoisyImages(24, seed=0), NoisyImages(10, seed=1))
    last, best = tmp_path / "checkpoints" / "last.pt", tmp_path / "checkpoints" / "best.pt"
    assert load_checkpoint(best)["epoch"] == 2 and load_checkpoint(best)["best"]["value"] == 0.7
    assert load_checkpoint(last)["epoch"] == 3
    assert not os.path.samefile(last, best)
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]


def test_checkpoint_for_another_label_set_or_model_is_refused(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.save("last.pt")
    path = tmp_path / "checkpoints" / "last.pt"
    other_labels = make_trainer(tmp_path / "b", label_names=[f"other{i}" for i in range(5)])
    with pytest.raises(ValueError, match="another label set"):
        other_labels.load_state_dict(load_checkpoint(path))
    other_model = make_trainer(tmp_path / "c", model_name="dualcoop")
    with pytest.raises(ValueError, match="model 'patch', not 'dualcoop'"):
        other_model.load_state_dict(load_checkpoint(path))
    ckpt = load_checkpoint(path)
    with pytest.raises(ValueError, match="another order"):
        check_compatible(ckpt, "patch", list(reversed(NoisyImages.label_names)))


def test_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an sspa training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_random_state_round_trip():
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    np.random.standard_normal()  # fills NumPy's cached Gaussian
    state = rng_state()
    expected = (torch.rand(3), np.random.standard_normal(3), random.random())
    torch.manual_seed(2)
    np.random.seed(2)
    random.seed(2)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.standard_normal(3), expected[1])
    assert random.random() == expected[2]


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "is truncated or not a checkpoint"),
    (lambda data: b"", "is truncated or not a checkpoint"),
])
def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path, damage, message):
    trainer = make_trainer(tmp_path)
    path = trainer.save("last.pt")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=f"checkpoint {path} {message}"):
        load_checkpoint(path)


def test_checkpoint_of_another_shape_is_refused_before_loading(tmp_path):
    trainer = make_trainer(tmp_path)
    state = {k: v[:2] if k == "global_head.bias" else v for k, v in trainer.state_dict()["model"].items()}
    before = trainer.model.global_head.weight.clone()
    with pytest.raises(CheckpointError, match=r"1 tensors differ in shape, e\.g\. global_head\.bias \[2\] in the "
                                              r"checkpoint, \[5\] here"):
        load_trainable_state(trainer.model, {**state, "global_head.weight": torch.zeros_like(before)}, "ckpt")
    assert torch.equal(trainer.model.global_head.weight, before)  # nothing was loaded


def test_unknown_monitor_is_refused_when_the_trainer_is_built(tmp_path):
    config = merge(CONFIG, {"train": {"monitor": "accuracy"}})
    with pytest.raises(ValueError, match="train.monitor='accuracy' is not a metric of the natural domain"):
        Trainer(PatchModel(), SSPALoss(), NoisyImages.label_names, "patch", config, tmp_path, torch.device("cpu"))
    Trainer(PatchModel(), SSPALoss(), NoisyImages.label_names, "patch", config, tmp_path, torch.device("cpu"),
            domain="pedestrian")  # the pedestrian metric set has an accuracy


def test_bench_checkpoints_prints_each_models_checkpoint_as_weights_ema_and_two_moments(capsys):
    """``benchmarks/bench_checkpoints.py`` at the tiny CLIP's size: a trained model's checkpoint is its
    trained parameters four times (weights, EMA, AdamW's two moments) and nothing frozen."""
    import re
    from pathlib import Path

    from helpers import load_script

    bench = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_checkpoints.py")
    bench.main(["--config", "voc", "--backbone", "sspa-tiny-vit", "--image-size", "112",
                "--models", "zeroshot", "sspa", "clip_ft"])
    out = capsys.readouterr().out
    rows = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(r"^(\w+) +([\d.]+) M +([\d.]+) MB", out, re.M)}
    assert list(rows) == ["zeroshot", "sspa", "clip_ft"]
    assert rows["zeroshot"] == (0.0, 0.0)
    for name in ("sspa", "clip_ft"):
        trained, megabytes = rows[name]
        assert megabytes == pytest.approx(16 * trained, rel=0.02)  # 4 float32 copies of each trained parameter
    assert rows["clip_ft"][0] > rows["sspa"][0] > 0
    assert re.search(r"^all 3 last\.pt files: [\d.]+ GB; with a separate best\.pt beside each: ", out, re.M)
