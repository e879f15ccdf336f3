"""The gpu-dataset workflow (.github/workflows/gpu-dataset.yml): its inputs reach its one command,
and that command, expanded by bash as the runner expands it, runs here on CPU: the `full` profile
on the VOC fixture with random RN50 weights, at the notebooks' small sizes, one notebook."""

import os
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from sspa_core import notebooks as runner
from sspa_core.cli import main

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "gpu-dataset.yml"
INPUTS = {"dataset": "DATASET", "data_root": "DATA_ROOT", "pretrained": "PRETRAINED", "hf_home": "HF_HOME",
          "backbone": "BACKBONE", "only": "ONLY"}  # workflow input -> the variable the command reads
ENTRY = ".venv/bin/sspa"
#: what a CPU run adds to the workflow's command: the CPU and the notebooks' small sizes (smoke.yaml's
#: `profile`, a small input for the real architecture)
ON_CPU = ["-p", "device=cpu", "-p", "profile=smoke", "-p", "image_size=64"]


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _run_step(workflow: dict) -> dict:
    [step] = [s for s in workflow["jobs"]["dataset"]["steps"] if ENTRY in s.get("run", "")]
    return step


def expand(command: str, env: dict[str, str]) -> list[str]:
    """The argv that bash gives the entry point of ``command`` with ``env``."""
    assert command.startswith(f"{ENTRY} ") and "\n" not in command
    printer = command.replace(ENTRY, "printf '%s\\0'", 1)
    out = subprocess.run(["bash", "-c", printer], env={"PATH": os.environ["PATH"], **env}, capture_output=True,
                         text=True, check=True).stdout
    return [ENTRY, *out.split("\0")[:-1]]


def test_inputs_reach_the_one_command():
    workflow = _workflow()
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # YAML reads the key `on` as True
    assert set(inputs) == set(INPUTS)
    assert sorted(inputs["dataset"]["options"]) == runner.dataset_parameter_files()
    assert inputs["pretrained"]["default"] == "openai" and inputs["only"]["default"] == ""
    job = workflow["jobs"]["dataset"]
    assert job["runs-on"] == ["self-hosted", "gpu"]
    step = _run_step(workflow)
    assert step["env"] == {var: f"${{{{ inputs.{name} }}}}" for name, var in INPUTS.items()}
    env = {"DATASET": "aid", "DATA_ROOT": "/data/my aid", "PRETRAINED": "/w/ViT.pt", "HF_HOME": "/c",
           "BACKBONE": "ViT-B-16", "ONLY": "03 06"}
    assert expand(step["run"], env) == [
        ENTRY, "notebooks", "--profile", "full", "--dataset", "aid", "--only", "03", "06",
        "-p", "data_root=/data/my aid", "-p", "backbone=ViT-B-16", "-p", "pretrained=/w/ViT.pt",
        "--output-dir", "outputs/aid", "--summary", "outputs/aid/summary.md"]
    assert "--only" not in expand(step["run"], {**env, "ONLY": ""})
    [upload] = [s for s in job["steps"] if "upload-artifact" in s.get("uses", "")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"].split() == ["outputs/${{", "inputs.dataset", "}}/",
                                              "!outputs/${{", "inputs.dataset", "}}/**/*.pt"]


@pytest.mark.slow  # about a minute: a kernel, RN50 at 64 px
def test_the_command_runs_a_dataset_on_cpu(dataset_roots, random_weights, tmp_path, monkeypatch):
    env = {"DATASET": "voc", "DATA_ROOT": str(dataset_roots["voc"]), "PRETRAINED": str(random_weights("RN50")),
           "HF_HOME": str(tmp_path / "hf"), "BACKBONE": "RN50", "ONLY": "03"}
    argv = expand(_run_step(_workflow())["run"], env)
    monkeypatch.chdir(tmp_path)  # the workflow's relative outputs/ land here
    assert main(argv[1:] + ON_CPU) == 0

    out = tmp_path / "outputs" / "voc"
    summary = (out / "summary.md").read_text()
    executed = out / "03_split_and_synthesize_prompting.ipynb"
    assert executed.is_file() and executed.with_suffix(".html").is_file()
    for text in ("--dataset voc", f"`{env['DATA_ROOT']}`", "`RN50`", f"`{env['PRETRAINED']}`", "| device | `cpu` |",
                 "| result | ok |", "| 03_split_and_synthesize_prompting | ok |",
                 "03_split_and_synthesize_prompting.html"):
        assert text in summary, text
    assert "| dataset | `voc` |" in summary
    outputs = " ".join(str(output.get("text", "")) + str(output.get("data", {}))
                       for cell in nbformat.read(executed, as_version=4).cells for output in cell.get("outputs", []))
    assert "`voc`" in outputs and "RN50" in outputs
