"""Two CPU processes (``torchrun``, gloo) train and evaluate like one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import open_clip
import pytest
import torch

from sspa_core import backbone  # noqa: F401  (registers the tiny-CLIP model configs)
from sspa_core.cli import main
from sspa_core.engine import load_checkpoint


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "tiny-vit.pt"
    torch.save(open_clip.create_model("sspa-tiny-vit").state_dict(), weights)
    settings = {
        "model.pretrained": weights, "model.descriptions": "", "model.sspa.kap_source": "template",
        "model.sspa.n_ctx": 4, "dataset.image_size": 64, "dataset.kwargs.num_images": 16,
        # 9 evaluation images: the sampler pads them to 10, and the duplicate must be dropped
        "dataset.eval_kwargs.num_images": 9, "train.epochs": 2, "train.batch_size": 8,
        "train.eval_batch_size": 4, "train.progress": False, "train.ema": True, "train.ema_decay": 0.5,
        "train.device": "cpu", "train.feature_cache_dir": tmp_path / "features",
    }
    overrides = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    args = ["train", "--config", "synthetic_natural", *overrides]

    assert main([*args, "--output-dir", str(tmp_path / "single")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "sspa_core.cli", *args, "--output-dir", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert len(single) == len(ddp) == 2
    for a, b in zip(single, ddp):
        for key in ("mAP", "CF1", "OF1", "train_loss"):
            assert a[key] == pytest.approx(b[key], abs=1e-4), key
    a = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    for part in ("model",):
        for name, tensor in a[part].items():
            torch.testing.assert_close(tensor, b[part][name], rtol=1e-4, atol=1e-5, msg=name)
    for name, tensor in a["ema"]["model"].items():
        torch.testing.assert_close(tensor, b["ema"]["model"][name], rtol=1e-4, atol=1e-5, msg=name)
