"""The ``mlbasics`` command: list components and plugins, train experiments, sweep them, predict
with saved runs.

Each command lives in its own module with an ``add_parser`` and a ``run``. User errors
(:class:`mlbasics.MlbasicsError`) are printed as ``mlbasics: error: ...``, one line per problem, and
exit with status 2; a plugin's own failure (:class:`mlbasics.PluginBugError`) is one line and exits
with status 1; ``--debug`` shows the traceback instead. Nothing here imports torch until a
command needs it, so ``mlbasics list`` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from mlbasics._version import __version__
from mlbasics.cli import _plugins_dir
from mlbasics.cli import list as list_command
from mlbasics.cli import plugins as plugins_command
from mlbasics.cli import predict as predict_command
from mlbasics.cli import sweep as sweep_command
from mlbasics.cli import train as train_command
from mlbasics.errors import MlbasicsError, PluginBugError, first_line

COMMANDS = (list_command, plugins_command, train_command, sweep_command, predict_command)
EXIT_USER_ERROR = 2
EXIT_PLUGIN_BUG = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """Usage mistakes (a bad flag or value) are one line and exit 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"mlbasics: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mlbasics",
        description="Learn and extend basic machine learning with PyTorch: compose an experiment "
        "from registry names, train it, look at the result.",
    )
    parser.add_argument("--version", action="version", version=f"mlbasics {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    _plugins_dir.add_option(parser)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def command() -> int:
    """The ``mlbasics`` command (and ``python -m mlbasics``): :func:`main`, then, as one rank of a
    torchrun launch, an exit that skips the process group's teardown (see
    :func:`mlbasics.distributed.leave_now`)."""
    status = main()
    if "WORLD_SIZE" in os.environ:
        from mlbasics.distributed import leave_now

        leave_now(status)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = [*(sys.argv[1:] if argv is None else argv)]
    split = _split_by_the_shell(words)
    if split is not None:  # before argparse, which would take the cut-off rest for another argument
        print(f"mlbasics: error: {split}", file=sys.stderr)
        return EXIT_USER_ERROR
    args = parser.parse_args(words)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    try:
        _plugins_dir.apply(args)
        status: int = args.run(args)
    except MlbasicsError as exc:
        if not _speaks(exc):
            return EXIT_USER_ERROR
        if args.debug:
            raise
        for line in str(exc).splitlines():
            print(f"mlbasics: error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    except PluginBugError as exc:
        if not _speaks(exc):
            return EXIT_PLUGIN_BUG
        if args.debug:
            raise
        print(f"mlbasics: error: {first_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_PLUGIN_BUG
    except KeyboardInterrupt:
        if _speaks(None):
            print("mlbasics: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not _speaks(exc):  # another rank failed (it says why), or a bug: its traceback, from its rank
            return EXIT_PLUGIN_BUG
        if "WORLD_SIZE" in os.environ:
            _crash_rank()
        raise
    return status


def _split_by_the_shell(words: Sequence[str]) -> str | None:
    """Why a ``--set`` or ``--grid`` value on the command line is cut short (``model.hidden=[16,``,
    its rest ``16]`` the next word: the shell split it at a space), or ``None``."""
    from mlbasics.engine.experiment import cut_short

    for index, word in enumerate(words):
        flag, eq, value = word.partition("=")
        if flag not in ("--set", "--grid"):
            continue
        if not eq:
            if index + 1 >= len(words):
                continue
            value, index = words[index + 1], index + 1
        key, _, text = value.partition("=")
        rest = words[index + 1] if index + 1 < len(words) else None
        problem = cut_short(f"{flag} {key.strip()}", text.strip(), rest)
        if problem is not None:
            return problem
    return None


def _crash_rank() -> NoReturn:
    """A bug on one rank of a torchrun launch: its traceback, then an exit that skips the process
    group's teardown, which with the other ranks still waiting in a collective ends in an abort
    ("terminate called without an active exception") that would bury the traceback."""
    sys.excepthook(*sys.exc_info())  # torch's, under torchrun: each line says its rank
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_PLUGIN_BUG)


def _speaks(error: BaseException | None) -> bool:
    """Whether this process prints ``error``: always, unless torchrun started it as one of several
    ranks; then the rank that failed speaks for all (:func:`mlbasics.distributed.speaks`), and
    Ctrl-C, which reaches every rank, is said by rank 0."""
    import os

    if "WORLD_SIZE" not in os.environ:  # not under torchrun: nothing to import or agree on
        return True
    from mlbasics import distributed

    if error is None:
        return distributed.is_main()
    return distributed.speaks(error)
