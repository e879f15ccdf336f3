"""The ``sspa`` command line: every sub-command's arguments, and thin functions that call the library.

The flags agree across commands: ``--output-dir DIR`` is the folder a command writes to,
``--set KEY=VALUE`` overrides a value (repeatable), ``--llm`` names a language model and
``--backbone`` a CLIP. Flags are not abbreviated (``--out`` is not ``--output-dir``). Only the
chosen sub-command's modules are imported.
``python -m sspa_core.cli`` is the same command (``torchrun ... -m sspa_core.cli train ...``).

A known failure (:mod:`sspa_core.errors`, and the standard exceptions of :func:`exit_code`) is
reported as one line naming the file or key at fault, with exit code 2 for bad input and 1 for a
run that cannot go on; ``sspa --debug COMMAND ...`` shows the traceback instead.

The commands are grouped in modules: :mod:`~sspa_core.cli.runs` (config, train, eval, predict, export),
:mod:`~sspa_core.cli.resources` (pretrain, describe, data), :mod:`~sspa_core.cli.tutorial`
(notebooks); :mod:`~sspa_core.cli.common` holds the flags they share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from sspa_core.cli.resources import (
    configure_data,
    configure_describe,
    configure_pretrain,
    run_data,
    run_describe,
    run_pretrain,
)
from sspa_core.cli.runs import (
    configure_config,
    configure_eval,
    configure_export,
    configure_predict,
    configure_train,
    run_config,
    run_eval,
    run_export,
    run_predict,
    run_train,
)
from sspa_core.cli.tutorial import configure_notebooks, run_notebooks

DESCRIPTION = "sspa: train, evaluate and explain SSPA and its baselines; run the notebooks; check datasets."

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]

#: name -> (help, the function adding its arguments, the function running it)
COMMANDS: dict[str, tuple[str, Configure, Run]] = {
    "notebooks": ("run the ordered notebooks with papermill", configure_notebooks, run_notebooks),
    "pretrain": ("pretrain (or load) the tiny CLIP of the offline world", configure_pretrain, run_pretrain),
    "data": ("inspect and validate a dataset download", configure_data, run_data),
    "describe": ("generate label descriptions with an LLM (KAP)", configure_describe, run_describe),
    "train": ("train SSPA or a baseline on one dataset", configure_train, run_train),
    "config": ("show a resolved run config and where each value came from", configure_config, run_config),
    "eval": ("evaluate a checkpoint", configure_eval, run_eval),
    "export": ("write a checkpoint as a shareable head (no optimizer state) with its recipe",
               configure_export, run_export),
    "predict": ("top labels of images, with the patch-importance and gate maps", configure_predict, run_predict),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``sspa`` parser, with the arguments of ``command`` (only its modules are imported)."""
    parser = argparse.ArgumentParser(prog="sspa", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, run) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if name == command:
            configure(command_parser)
            command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                        help="show the full traceback of an error (also: sspa --debug COMMAND)")
            command_parser.set_defaults(run=run)
    return parser


def exit_code(err: BaseException) -> int | None:
    """The exit code of a known failure, reported as one line: 2 for bad input (an
    :class:`~sspa_core.errors.InputError`, a missing file, a bad value or key), 1 for a run that
    cannot go on (any other :class:`~sspa_core.errors.SSPAError`, a file-system error such as a
    full disk or a refused permission, CUDA out of memory). None for anything else: a bug, shown
    with its traceback."""
    from sspa_core.errors import SSPAError

    if isinstance(err, SSPAError):
        return err.exit_code
    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError, KeyError)):
        return 2
    if isinstance(err, OSError) or _out_of_gpu_memory(err):
        return 1
    return None


def _out_of_gpu_memory(err: BaseException) -> bool:
    torch = sys.modules.get("torch")  # imported by the command if it uses a GPU at all
    return torch is not None and isinstance(err, torch.cuda.OutOfMemoryError)


def _one_line(err: BaseException) -> str:
    """The message of a known failure on one line, with the fix where the exception has none."""
    if isinstance(err, KeyError):
        return f"missing key {err} (sspa --debug ... shows where)"
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        hint = {PermissionError: "; check its permissions or choose another --output-dir"}.get(type(err), "")
        return f"{err.strerror}: {err.filename}{hint}"
    if _out_of_gpu_memory(err):
        return "out of GPU memory; lower train.batch_size or train.eval_batch_size, or set train.amp=true"
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except Exception as err:
        code = exit_code(err)
        if code is None or args.debug:
            raise
        print(f"sspa {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return code

