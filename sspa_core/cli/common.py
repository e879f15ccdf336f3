"""What the commands share: the ``--set KEY=VALUE`` overrides and the file under ``--output-dir``."""

from __future__ import annotations

import argparse
from pathlib import Path

OVERRIDE_HELP = "override a value (read as YAML), e.g. --set {example} (repeatable)"


def add_overrides(parser: argparse.ArgumentParser, example: str, *short: str) -> None:
    """``--set KEY=VALUE`` (and the ``short`` spellings), repeatable, collected in ``args.overrides``."""
    parser.add_argument("--set", *short, dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=OVERRIDE_HELP.format(example=example))


def output_path(args: argparse.Namespace, name: str) -> Path | None:
    """The file a command writes: ``<--output-dir>/<name>``, or None without ``--output-dir``."""
    return Path(args.output_dir) / name if args.output_dir else None
