"""Bad inputs given to the ``sspa`` command: each is one line of :data:`CASES` (the command, the
files it needs, the exit code and what the single line on stderr must say), and none prints a
traceback. Exit code 2 is bad input, 1 a run that cannot go on; ``sspa --debug`` re-raises."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import file_size_limit
from PIL import Image

from sspa_core import backbone  # noqa: F401  (registers the tiny-CLIP model configs)
from sspa_core.cli import main
from sspa_core.data.synthetic import SyntheticScenes
from sspa_core.errors import CheckpointError


class Evil:
    """Unpickling it would run a shell command."""

    def __reduce__(self):
        return os.system, ("echo pwned",)


@pytest.fixture(scope="module")
def files(tiny_weights, tmp_path_factory) -> dict[str, str]:
    """A trained checkpoint, damaged and crafted files next to it, and the tiny run's overrides."""
    root = tmp_path_factory.mktemp("bad_inputs")
    tiny = ["--set", f"model.pretrained={tiny_weights}", "--set", "model.descriptions=",
            "--set", "model.sspa.kap_source=template", "--set", "model.sspa.n_ctx=4",
            "--set", "dataset.image_size=64", "--set", "dataset.kwargs.num_images=8",
            "--set", "dataset.eval_kwargs.num_images=4", "--set", "train.epochs=1", "--set", "train.batch_size=8",
            "--set", "train.progress=false", "--set", f"train.feature_cache_dir={root / 'features'}"]
    assert main(["train", "--config", "synthetic_natural", "--output-dir", str(root / "run"), *tiny]) == 0
    good = root / "run" / "checkpoints" / "last.pt"
    data = good.read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    (root / "empty.pt").write_bytes(b"")
    (root / "text.pt").write_text("not a checkpoint\n")
    torch.save({"format": 1, "model": Evil()}, root / "malicious.pt")
    with open(root / "malicious.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    torch.save({"weights": torch.zeros(2)}, root / "foreign.pt")
    torch.save({**torch.load(good, weights_only=True), "label_names": 5}, root / "bad_labels.pt")
    photo = root / "photo.png"
    SyntheticScenes("natural", "test", num_images=1, image_size=64).render(0).save(photo)
    (root / "truncated.png").write_bytes(photo.read_bytes()[:200])
    (root / "notes.jpg").write_text("not an image")
    Image.open(photo).convert("RGB").save(root / "photo.jpg", quality=95)
    cut = (root / "photo.jpg").read_bytes()
    (root / "cut.jpg").write_bytes(cut[:len(cut) // 2] + b"\xff\xd9")  # cut in half, end marker kept
    (root / "bad.yaml").write_text("train:\n  lr: [1, 2\n")
    (root / "a_file").write_text("")
    return {"root": str(root), "ckpt": str(good), "photo": str(photo), "tiny": tiny}


def train(f, *sets: str, resume: str | None = None, out: str = "") -> list[str]:
    """``sspa train`` of the tiny run (into a fresh folder) with extra ``--set`` overrides."""
    extra = [a for s in sets for a in ("--set", s)]
    return ["train", "--config", "synthetic_natural", "--output-dir", out or f"{f['root']}/out", *f["tiny"],
            *extra, *(["--resume", resume] if resume else [])]


def predict(f, *images: str, extra: tuple[str, ...] = ()) -> list[str]:
    return ["predict", *images, "--checkpoint", f["ckpt"], "--device", "cpu", *extra]


Argv = Callable[[dict], list[str]]
#: id -> (argv from the fixture's files, exit code, pattern of the single stderr line)
CASES: dict[str, tuple[Argv, int, str]] = {
    # checkpoints
    "truncated checkpoint": (lambda f: ["eval", "--checkpoint", f"{f['root']}/truncated.pt"], 2,
                             r"checkpoint \S+truncated\.pt is truncated or not a checkpoint .*written by sspa train"),
    "zero-byte checkpoint": (lambda f: ["eval", "--checkpoint", f"{f['root']}/empty.pt"], 2,
                             r"checkpoint \S+empty\.pt is truncated or not a checkpoint"),
    "text as checkpoint": (lambda f: ["predict", f["photo"], "--checkpoint", f"{f['root']}/text.pt"], 2,
                           r"checkpoint \S+text\.pt is truncated or not a checkpoint"),
    "malicious checkpoint": (lambda f: ["eval", "--checkpoint", f"{f['root']}/malicious.pt"], 2,
                             r"^(?!.*weights_only).*malicious\.pt was refused: it would load posix\.system, "
                             r"which could run code"),
    "malicious pickle": (lambda f: ["eval", "--checkpoint", f"{f['root']}/malicious.pkl"], 2,
                         r"^(?!.*weights_only).*malicious\.pkl is truncated or not a checkpoint: .*could run code"),
    "foreign checkpoint": (lambda f: ["eval", "--checkpoint", f"{f['root']}/foreign.pt"], 2,
                           r"foreign\.pt is not an sspa training checkpoint"),
    "checkpoint whose label_names is not a list": (
        lambda f: ["eval", "--checkpoint", f"{f['root']}/bad_labels.pt"], 2,
        r"checkpoint \S+bad_labels\.pt is damaged: its 'label_names' is int '5', not what sspa train writes"),
    "malicious pretrained weights": (lambda f: train(f, f"model.pretrained={f['root']}/malicious.pt"), 2,
                                     r"^(?!.*weights_only).*malicious\.pt could not be loaded into sspa-tiny-vit \(it "
                                     r"would load posix\.system, which could run code\)"),
    "checkpoint of another backbone": (
        lambda f: ["eval", "--checkpoint", f["ckpt"], "--set", "model.backbone=sspa-tiny-rn"], 2,
        r"last\.pt was trained with backbone 'sspa-tiny-vit', not 'sspa-tiny-rn' \(set model\.backbone=sspa-tiny-vit"),
    "resume with another backbone": (
        lambda f: train(f, "model.backbone=sspa-tiny-rn", resume=f["ckpt"]), 2,
        r"last\.pt was trained with backbone 'sspa-tiny-vit', not 'sspa-tiny-rn'"),
    "resume with another label set": (
        lambda f: train(f, "dataset.name=synthetic_voc", resume=f["ckpt"]), 2,
        r"last\.pt was trained for another label set \(66 labels in the checkpoint, 20 here\)"),
    "resume with other head settings": (
        lambda f: train(f, "model.sspa.n_ctx=6", resume=f["ckpt"]), 2,
        r"does not fit this model: \d+ tensors differ in shape, e\.g\. \S+ \[4, \d+\] in the checkpoint, \[6"),
    "resume with nothing to resume": (lambda f: [*train(f, out=f"{f['root']}/never_trained"), "--resume"], 2,
                                      r"--resume: nothing to resume in \S+never_trained \(no checkpoints/last\.pt.*"
                                      r"leave out --resume$"),
    "train over a finished run": (lambda f: train(f, out=str(Path(f["ckpt"]).parents[1])), 2,
                                  r"\S+/run holds a run \(checkpoints/last\.pt, checkpoints/best\.pt, metrics\.json, "
                                  r"config\.yaml\); continue it with --resume, replace it with --overwrite"),
    "damaged pretrained weights": (lambda f: train(f, f"model.pretrained={f['root']}/truncated.pt"), 2,
                                   r"pretrained weights \S+truncated\.pt could not be loaded into sspa-tiny-vit"),
    # predict
    "truncated image": (lambda f: predict(f, f["photo"], f"{f['root']}/truncated.png"), 2,
                        r"cannot decode image \S+truncated\.png"),
    "not an image": (lambda f: predict(f, f"{f['root']}/notes.jpg"), 2, r"cannot decode image \S+notes\.jpg"),
    "photo cut in half": (lambda f: predict(f, f"{f['root']}/cut.jpg"), 2,
                          r"image \S+cut\.jpg: its JPEG data end before its last rows"),
    "missing image": (lambda f: predict(f, f"{f['root']}/absent.png"), 2, r"image file \S+absent\.png is missing"),
    "threshold out of range": (lambda f: predict(f, f["photo"], extra=("--threshold", "2")), 2,
                               r"--threshold must be between 0 and 1, got 2\.0"),
    # validation before any data is built
    "monitor of another metric set": (lambda f: train(f, "train.monitor=accuracy"), 2,
                                      r"train\.monitor='accuracy' is not a metric of the natural domain; valid: mAP"),
    "dataset kwarg of the wrong type": (lambda f: train(f, "dataset.kwargs.num_images=abc"), 2,
                                        r"dataset\.kwargs\.num_images expects int, got 'abc'"),
    "unknown dataset kwarg": (lambda f: train(f, "dataset.eval_kwargs.size=3"), 2,
                              r"dataset\.eval_kwargs\.size: dataset 'synthetic_natural' takes no argument 'size'; "
                              r"valid: num_images, seed, label_set"),
    "negative learning rate": (lambda f: train(f, "train.lr=-1"), 2, r"train\.lr must be >= 0, got -1"),
    "learning rate nan": (lambda f: train(f, "train.lr=nan"), 2, r"train\.lr must be a finite number, got nan$"),
    "learning rate inf": (lambda f: train(f, "train.encoder_lr=.inf"), 2,
                          r"train\.encoder_lr must be a finite number, got inf$"),
    "ema decay nan": (lambda f: train(f, "train.ema_decay=nan"), 2, r"train\.ema_decay must be a finite number"),
    "seed too large": (lambda f: train(f, "train.seed=100000000000000000000000"), 2,
                       r"train\.seed must be between 0 and 1000000, got 100000000000000000000000$"),
    "unknown device in the config": (lambda f: train(f, "train.device=tpu"), 2,
                                     r"unknown device 'tpu' \(--device or train\.device\); valid: auto, cpu, cuda"),
    "unknown device of predict": (lambda f: [*predict(f, f["photo"])[:-1], "tpu"], 2, r"unknown device 'tpu'"),
    "unknown feature dtype": (lambda f: train(f, "train.feature_dtype=float8"), 2,
                              r"unknown train\.feature_dtype 'float8'"),
    "override that is not YAML": (lambda f: train(f, "train.lr=[1"), 2,
                                  r"override 'train\.lr=\[1': the value is not valid YAML"),
    "config file that is not YAML": (lambda f: ["train", "--config", f"{f['root']}/bad.yaml"], 2,
                                     r"config file \S+bad\.yaml is not valid YAML \(.* at line 3"),
    "notebook boolean that is not one": (lambda f: ["notebooks", "--only", "01", "--set", "solutions=maybe", "--list"],
                                         2, r"01_\w+: parameter .solutions. expects a bool, got .maybe.$"),
    "notebook input size out of range": (lambda f: ["notebooks", "--only", "03", "--set", "image_size=0", "--list"],
                                         2, r"03_\w+: parameter image_size must be >= 1, got 0$"),
    "unknown notebook profile value": (lambda f: ["notebooks", "--only", "01", "--set", "profile=medium", "--list"],
                                       2, r"01_\w+: parameter profile must be one of smoke, full; got 'medium'$"),
    "negative notebook time limit": (lambda f: ["notebooks", "--only", "01", "--timeout-s", "-5", "--list"], 2,
                                     r"--timeout-s must be a number of seconds >= 0 \(0 = no limit\), got -5\.0$"),
    "output folder not permitted": (lambda f: train(f, out="/sys/sspa-out"), 2,
                                    r"cannot write to /sys/sspa-out \(Operation not permitted\): choose a writable "
                                    r"folder with --output-dir"),
    "output folder under a file": (lambda f: ["eval", "--checkpoint", f["ckpt"], "--output-dir",
                                              f"{f['root']}/a_file/out"], 2, r"cannot write to \S+a_file/out"),
    "feature cache not writable": (lambda f: train(f, f"train.feature_cache_dir={f['root']}/a_file/x"), 2,
                                   r"with train\.feature_cache_dir$"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_an_exit_code(case, files, capsys):
    argv, code, pattern = CASES[case]
    assert main(argv(files)) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"sspa {argv(files)[0]}: error: ")
    assert re.search(pattern, lines[0].split(": error: ", 1)[1]), lines[0]
    assert not Path(files["root"], "out", "checkpoints").exists()  # nothing was trained


def test_weights_that_cannot_be_downloaded_say_how_to_pass_a_file(files, monkeypatch, capsys):
    import open_clip
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):  # what the hub raises without a connection
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub. "
                                      "Please check your connection")

    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", offline)
    argv = train(files, "model.backbone=ViT-B-32", "model.pretrained=openai")
    assert main(argv) == 1
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("sspa train: error: could not download the pretrained weights "
                                                "'openai' of ViT-B-32 from timm/")
    assert line.endswith("pass the file with --set model.pretrained=/path/to/file.pt (load_backbone(pretrained=...))")


def test_weights_download_fails_fast_offline(files, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = train(files, "model.backbone=ViT-B-32", "model.pretrained=openai")
    result = subprocess.run([sys.executable, "-m", "sspa_core.cli", *argv], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "could not download the pretrained weights 'openai' of ViT-B-32" in result.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs POSIX file-size limits")
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_previous_one(files, tmp_path):
    """A file-size limit below the tiny run's 5 MB checkpoint stands in for a full disk: torch's
    writer fails as it does on one. The run ends with one line and exit code 1, and the
    checkpoint of the run before is unchanged, with no temporary file beside it."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(Path(files["ckpt"]).parent, out / "checkpoints")
    before = (out / "checkpoints" / "last.pt").read_bytes()
    argv = [*train(files, out=str(out)), "--overwrite"]
    result = subprocess.run([sys.executable, "-m", "sspa_core.cli", *argv], capture_output=True, text=True,
                            timeout=300, preexec_fn=file_size_limit(2_000_000))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert re.fullmatch(rf"sspa train: error: could not write {re.escape(str(out))}/checkpoints/last\.pt \(.*\): "
                        r"the file needs about 4\.\d MiB and [\d.]+ [GM]iB are free on its file system .*"
                        r"last\.pt was not changed\.", line), line
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_a_second_training_into_a_locked_folder_fails_at_once(files, tmp_path, capsys):
    import fcntl

    from sspa_core.engine.run_folder import LOCK_NAME

    out = tmp_path / "busy"
    out.mkdir()
    with open(out / LOCK_NAME, "a+") as lock:  # what a training holds while it runs
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(f"pid 4242 on {os.uname().nodename}\n")
        lock.flush()
        assert main(train(files, out=str(out))) == 2
    line = capsys.readouterr().err.strip()
    assert line == (f"sspa train: error: {out} is in use by another training (pid 4242 on {os.uname().nodename}); "
                    "wait for it to end or choose another --output-dir")
    assert not (out / "checkpoints").exists()


def test_resume_removes_what_a_killed_checkpoint_write_left(files, tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(Path(files["ckpt"]).parents[1], out)
    stale = out / "checkpoints" / ".last.pt.k9x2ab.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main([*train(files, out=str(out)), "--resume"]) == 0  # the run is finished: nothing left to train
    assert not stale.exists()


@pytest.mark.parametrize("checkpoint", [True, False], ids=["after a checkpoint", "before the first"])
def test_ctrl_c_during_training_is_one_line_with_the_command_to_go_on(files, tmp_path, monkeypatch, capsys,
                                                                      checkpoint):
    import shutil

    import sspa_core.engine

    out = tmp_path / "run"
    if checkpoint:
        shutil.copytree(Path(files["ckpt"]).parents[1], out)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sspa_core.engine, "train_from_config", interrupt)
    assert main(train(files, out=str(out))) == 130
    [line] = capsys.readouterr().err.strip().splitlines()
    if checkpoint:
        assert line.startswith(f"sspa train: interrupted; the last checkpoint is {out}/checkpoints/last.pt, and "
                               "resuming replays the run exactly: sspa train --config synthetic_natural --set ")
        assert line.endswith(f"--output-dir {out} --resume")
    else:
        assert line.startswith("sspa train: interrupted before the first checkpoint; start again with: sspa train ")
        assert line.endswith(f"--output-dir {out} --overwrite")


def test_debug_shows_the_traceback(files):
    truncated = f"{files['root']}/truncated.pt"
    with pytest.raises(CheckpointError, match="is truncated or not a checkpoint") as info:
        main(["--debug", "eval", "--checkpoint", truncated])
    assert isinstance(info.value.__cause__, RuntimeError)  # torch's own error, chained
    with pytest.raises(CheckpointError):
        main(["eval", "--checkpoint", truncated, "--debug"])  # also after the command
    result = subprocess.run([sys.executable, "-m", "sspa_core.cli", "--debug", "eval", "--checkpoint", truncated],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" in result.stderr and "PytorchStreamReader" in result.stderr


@pytest.mark.parametrize("error, code, message", [
    (OSError(28, "No space left on device", "/data/out/last.pt"), 1, "No space left on device: /data/out/last.pt"),
    (PermissionError(13, "Permission denied", "/data/out"), 1,
     "Permission denied: /data/out; check its permissions or choose another --output-dir"),
    (KeyError("image_id"), 2, "missing key 'image_id' (sspa --debug ... shows where)"),
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), 1,
     "out of GPU memory; lower train.batch_size or train.eval_batch_size, or set train.amp=true"),
])
def test_known_failures_during_a_run_are_one_line(error, code, message, monkeypatch, capsys):
    import sspa_core.engine

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(sspa_core.engine, "evaluate_checkpoint", fail)
    assert main(["eval", "--checkpoint", "c.pt"]) == code
    assert capsys.readouterr().err == f"sspa eval: error: {message}\n"


def test_a_bug_is_not_hidden(monkeypatch):
    import sspa_core.engine

    def bug(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(sspa_core.engine, "evaluate_checkpoint", bug)
    with pytest.raises(TypeError):
        main(["eval", "--checkpoint", "c.pt"])


def test_predict_names_the_threshold_and_what_the_model_was_trained_on(files, capsys):
    assert main(predict(files, files["photo"], extra=("--threshold", "0.3", "--top-k", "2"))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("model sspa (sspa-tiny-vit) trained on synthetic_natural (natural domain, 66 labels) "
                        "at 64x64 px; synthetic scenes: real photos are out of its domain")
    assert re.fullmatch(re.escape(files["photo"]) + r": (no label|[\w ,]+) at score >= 0\.3", lines[1])
    scores = [float(line.split()[0]) for line in lines[2:4]]
    above = [line.split(maxsplit=1)[1] for line in lines[2:4] if float(line.split()[0]) >= 0.3]
    assert scores == sorted(scores, reverse=True) and lines[1].split(": ")[1].startswith(", ".join(above) or "no")
