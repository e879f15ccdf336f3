"""benchmarks/gpu_profile.py (the `gpu` profile's benchmark) and notebooks/params/gpu.yaml, on a CPU:
the same code path as on a GPU, at a tiny size."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sspa_core import notebooks as runner

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_profile.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_gpu_profile_runs_at_tiny_size_on_cpu(tmp_path):
    output = tmp_path / "summary.json"
    done = _run("--device", "cpu", "--tiny", "--seeds", "0", "--workers", "0", "--output", str(output))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(output.read_text())
    assert summary["device"] == "cpu" and summary["device_name"].startswith("CPU")
    assert summary["amp_dtype"] == "auto"
    assert [d["config"] for d in summary["comparison"]] == [
        "synthetic_natural", "synthetic_pedestrian", "synthetic_remote_sensing"]
    for domain in summary["comparison"]:
        assert set(domain["models"]) == {"zeroshot", "unid", "dualcoop", "clip_ft", "sspa"}
        assert ("mA" in domain["models"]["sspa"]) == (domain["config"] == "synthetic_pedestrian")
        assert all(0 <= row["mAP"]["mean"] <= 100 and row["seconds_per_run"] > 0 for row in domain["models"].values())
        assert domain["peak_memory_mib"] > 0
    throughput = summary["throughput"]
    assert throughput["train_images_per_s"] > 0 and throughput["peak_memory_mib"] > 0
    assert "SSPA training step" in done.stdout and "synthetic_remote_sensing" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_profile_refuses_cuda_without_a_gpu():
    done = _run("--device", "cuda")
    assert done.returncode == 2 and "CUDA is not available" in done.stderr


def test_gpu_notebook_profile_is_offline_on_cuda():
    plan = runner.resolve_parameters("gpu")
    assert len(plan) == len(runner.list_notebooks())
    for parameters in plan.values():
        assert parameters.get("device") == "cuda"
        assert parameters.get("pretrained", "") == ""  # the shipped tiny CLIP: nothing to download
        assert parameters.get("backbone", "sspa-tiny-vit").startswith("sspa-tiny")
    assert runner.resolve_timeout("gpu") > 0
