"""The ``sspa`` command line: one sub-command per module.

Each module named in :data:`COMMANDS` exposes ``configure_parser(parser, command)`` and
``run_cli(args) -> int``; only the module of the chosen sub-command is imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "notebooks": ("sspa_core.notebooks", "run the ordered notebooks with papermill"),
    "pretrain": ("sspa_core.tiny_clip", "pretrain (or load) the tiny CLIP of the offline world"),
    "data": ("sspa_core.data.check", "inspect and validate a dataset download"),
    "describe": ("sspa_core.descriptions", "generate label descriptions with an LLM (KAP)"),
    "train": ("sspa_core.training", "train SSPA or a baseline on one dataset"),
    "eval": ("sspa_core.training", "evaluate a checkpoint"),
    "predict": ("sspa_core.training", "top labels of images, with an optional attention figure"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="sspa", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if argv and argv[0] == name:
            module = importlib.import_module(module_name)
            module.configure_parser(command, name)
            command.set_defaults(run=module.run_cli)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"sspa {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
