"""The ``sspa`` command line: one parser module, consistent flags, no abbreviations or former
spellings, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sspa_core.cli import COMMANDS, build_parser, main


def parse(argv: list[str]):
    return build_parser(argv[0]).parse_args(argv)


@pytest.mark.parametrize("argv", [
    ["pretrain", "--model", "sspa-tiny-rn"],
    ["pretrain", "--out", "x.pt"],
    ["describe", "--labels", "voc", "--model", "my/llm"],
    ["describe", "--labels", "voc", "--out", "voc.json"],
    ["eval", "--checkpoint", "c.pt", "--output", "m.json"],
    ["predict", "a.png", "--checkpoint", "c.pt", "--figure", "maps.png"],
    ["notebooks", "--param", "seed=1"],
])
def test_former_spellings_are_refused(argv, capsys):  # --out and --output are no abbreviation of --output-dir
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and f"unrecognized arguments: {argv[-2]}" in capsys.readouterr().err


def test_new_flags_and_their_defaults(capsys):
    args = parse(["pretrain", "--backbone", "sspa-tiny-rn", "--output-dir", "out"])
    assert (args.backbone, args.output_dir) == ("sspa-tiny-rn", "out")
    assert parse(["pretrain"]).backbone == "sspa-tiny-vit"
    args = parse(["describe", "--labels", "voc", "--llm", "my/llm", "--output-dir", "out"])
    assert (args.llm, args.output_dir) == ("my/llm", "out")
    args = parse(["predict", "a.png", "b.png", "--checkpoint", "c.pt", "--set", "dataset.root=/d", "--output-dir", "o"])
    assert args.images == ["a.png", "b.png"] and args.overrides == ["dataset.root=/d"] and args.output_dir == "o"
    assert parse(["eval", "--checkpoint", "c.pt", "--set", "train.amp=false"]).overrides == ["train.amp=false"]
    assert capsys.readouterr().err == ""  # no note for the current spellings


def test_notebook_overrides_take_set_and_p_in_order():
    args = parse(["notebooks", "--set", "a=1", "-p", "b=2", "--set", "c=3", "--timeout-s", "60"])
    assert args.overrides == ["a=1", "b=2", "c=3"] and args.timeout_s == 60.0


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_only_the_current_spellings(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.startswith(f"usage: sspa {command}")
    for old in ("--out ", "--output ", "--figure", "--param", "--model"):
        assert old not in out, old


def test_describe_without_an_output_gives_a_one_line_error(capsys):
    assert main(["describe", "--labels", "voc"]) == 2
    assert capsys.readouterr().err.strip() == "sspa describe: error: the argument --output-dir is required"


def test_the_module_runs_as_the_command():  # what torchrun runs: python -m sspa_core.cli
    result = subprocess.run([sys.executable, "-m", "sspa_core.cli", "eval", "--checkpoint", "/missing.pt"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == "sspa eval: error: checkpoint /missing.pt does not exist"


def test_library_modules_hold_no_argument_parsing():
    from pathlib import Path

    import sspa_core

    package = Path(sspa_core.__file__).parent
    users = sorted({p.relative_to(package).parts[0] for p in package.rglob("*.py") if "argparse" in p.read_text()})
    assert users == ["cli"]


def test_debug_is_a_global_flag_and_a_flag_of_each_command():
    assert build_parser("eval").parse_args(["--debug", "eval", "--checkpoint", "c.pt"]).debug is True
    assert build_parser("eval").parse_args(["eval", "--checkpoint", "c.pt", "--debug"]).debug is True
    assert parse(["eval", "--checkpoint", "c.pt"]).debug is False


def test_config_show_prints_each_value_with_its_source(capsys):
    assert main(["config", "show", "--config", "coco", "--set", "train.lr=1e-3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split("#")[0].split()[1:] for line in lines}
    assert rows["train.grad_clip"] == ["1.0", "default"]
    assert rows["dataset.image_size"] == ["448", "sspa_core/configs/coco.yaml"]
    assert rows["train.lr"] == ["0.001", "--set"]
    meaning = {line.split()[0]: line.split("# ", 1)[1] for line in lines}  # from sspa_core.config.SCHEMA
    assert meaning["train.grad_clip"] == "max gradient norm; 0 = off"


def test_config_show_prints_a_pretraining_recipe_and_checks_its_overrides(capsys):
    assert main(["config", "show", "--pretrain", "sspa-tiny-rn", "--set", "lr=3e-4"]) == 0
    rows = {line.split()[0]: line.split("#")[0].split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["steps"] == ["500", "sspa_core/tiny_clip.py"]  # what the ResNet's recipe changes
    assert rows["batch_size"] == ["64", "default"] and rows["lr"] == ["0.0003", "--set"]
    assert main(["config", "show", "--pretrain", "sspa-tiny-vit", "--set", "batch_size=1"]) == 2
    assert "batch_size must be >= 2, got 1" in capsys.readouterr().err
    assert main(["config", "show", "--pretrain", "sspa-tiny-vit", "--set", "epochs=3"]) == 2
    assert "unknown pretraining setting 'epochs'" in capsys.readouterr().err
