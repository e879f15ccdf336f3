"""The ``sspa`` command line: one parser module, consistent flags, the previous release's
spellings as hidden aliases, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sspa_core.cli import COMMANDS, build_parser, main


def parse(argv: list[str]):
    return build_parser(argv[0]).parse_args(argv)


@pytest.mark.parametrize("argv, dest, value, new", [
    (["pretrain", "--model", "sspa-tiny-rn"], "backbone", "sspa-tiny-rn", "--backbone"),
    (["pretrain", "--out", "x.pt"], "output_file", "x.pt", "--output-dir"),
    (["describe", "--labels", "voc", "--model", "my/llm"], "llm", "my/llm", "--llm"),
    (["describe", "--labels", "voc", "--out", "voc.json"], "output_file", "voc.json", "--output-dir"),
    (["eval", "--checkpoint", "c.pt", "--output", "m.json"], "output_file", "m.json", "--output-dir"),
    (["predict", "a.png", "--checkpoint", "c.pt", "--figure", "maps.png"], "figure_file", "maps.png", "--output-dir"),
])
def test_old_spellings_still_work_and_say_what_replaces_them(argv, dest, value, new, capsys):
    assert getattr(parse(argv), dest) == value
    assert f"{argv[-2]} is deprecated and will be removed; use {new}" in capsys.readouterr().err


def test_new_flags_and_their_defaults(capsys):
    args = parse(["pretrain", "--backbone", "sspa-tiny-rn", "--output-dir", "out"])
    assert (args.backbone, args.output_dir, args.output_file) == ("sspa-tiny-rn", "out", None)
    assert parse(["pretrain"]).backbone == "sspa-tiny-vit"
    args = parse(["describe", "--labels", "voc", "--llm", "my/llm", "--output-dir", "out"])
    assert (args.llm, args.output_dir) == ("my/llm", "out")
    args = parse(["predict", "a.png", "b.png", "--checkpoint", "c.pt", "--set", "dataset.root=/d", "--output-dir", "o"])
    assert args.images == ["a.png", "b.png"] and args.overrides == ["dataset.root=/d"] and args.output_dir == "o"
    assert parse(["eval", "--checkpoint", "c.pt", "--set", "train.amp=false"]).overrides == ["train.amp=false"]
    assert capsys.readouterr().err == ""  # no note for the current spellings


def test_notebook_overrides_take_set_and_p_and_the_old_param_in_order():
    args = parse(["notebooks", "--set", "a=1", "-p", "b=2", "--param", "c=3", "--timeout-s", "60"])
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
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if "argparse" in p.read_text())
    assert users == ["cli.py"]


def test_debug_is_a_global_flag_and_a_flag_of_each_command():
    assert build_parser("eval").parse_args(["--debug", "eval", "--checkpoint", "c.pt"]).debug is True
    assert build_parser("eval").parse_args(["eval", "--checkpoint", "c.pt", "--debug"]).debug is True
    assert parse(["eval", "--checkpoint", "c.pt"]).debug is False
