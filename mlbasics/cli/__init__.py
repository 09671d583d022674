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
from typing import TYPE_CHECKING, NoReturn

from mlbasics._version import __version__
from mlbasics.cli import _plugins_dir
from mlbasics.cli import list as list_command
from mlbasics.cli import plugins as plugins_command
from mlbasics.cli import predict as predict_command
from mlbasics.cli import sweep as sweep_command
from mlbasics.cli import train as train_command
from mlbasics.cli._output import EXIT_INTERRUPTED, EXIT_PLUGIN_BUG, EXIT_USER_ERROR, error_lines, exit_status
from mlbasics.errors import MlbasicsError, PluginBugError

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    from mlbasics.distributed import Launch

COMMANDS = (list_command, plugins_command, train_command, sweep_command, predict_command)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes (a bad flag or value) are one line and exit 2, like every other user error.
    Under torchrun every rank parses the same command line: rank 0 alone prints what argparse says
    (a mistake, --help, --version)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"mlbasics: error: {message} (see `{self.prog} --help`)\n")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if _LAUNCHED not in os.environ or _speaks_for_all():
            super()._print_message(message, file)


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


#: Set by torchrun in every rank it starts.
_LAUNCHED = "WORLD_SIZE"


def command() -> int:
    """The ``mlbasics`` command (and ``python -m mlbasics``): :func:`main`. As one rank of a
    torchrun launch: Ctrl-C and SIGTERM watched from the start (:mod:`mlbasics.distributed._signals`); a
    rank that stayed silent while another says why the launch failed waits for torchrun to stop
    it (so the speaker is not stopped first, and torchrun's report names it); and an exit that skips
    the process group's teardown (see :func:`mlbasics.distributed.leave_now`)."""
    if _LAUNCHED not in os.environ:
        return main()
    from mlbasics import distributed
    from mlbasics.distributed import _failures, _signals

    launched = _launch()
    if launched is not None:  # a world of one trains as one process does, signals and all
        _signals.watch(main=launched.is_main)
    try:
        status = main()
    except SystemExit as exc:  # argparse's: a mistake, or --help and --version
        status = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    if status != 0 and distributed.lingers():
        _failures.linger()
    distributed.leave_now(status)
    return status


def _launch() -> Launch | None:
    from mlbasics import distributed

    try:
        return distributed.launch()
    except MlbasicsError:  # torchrun's environment is malformed: main() says so
        return None


def _speaks_for_all() -> bool:
    from mlbasics import distributed

    try:
        return distributed.speaks_for_all()
    except MlbasicsError:
        return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = [*(sys.argv[1:] if argv is None else argv)]
    split = _split_by_the_shell(words)
    if split is not None:  # before argparse, which would take the cut-off rest for another argument
        if _LAUNCHED not in os.environ or _speaks_for_all():  # under torchrun, rank 0 alone says it
            _say([f"mlbasics: error: {split}"])
        return EXIT_USER_ERROR
    args = parser.parse_args(words)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    try:
        _plugins_dir.apply(args)
        status: int = args.run(args)
    except (MlbasicsError, PluginBugError) as exc:
        status = exit_status(exc)
        if not _speaks(exc):
            return status
        if args.debug:
            raise
        _say(error_lines(exc))
        return status
    except KeyboardInterrupt:
        if _speaks(None):
            _say(["mlbasics: interrupted"])
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _LAUNCHED in os.environ:
            return _rank_failed(exc)
        raise
    return status


def _say(lines: list[str]) -> None:
    """``lines`` on stderr in one write: under torchrun, lines of two ranks never run together."""
    sys.stderr.write("".join(f"{line}\n" for line in lines))
    sys.stderr.flush()


def _rank_failed(exc: Exception) -> int:
    """Any other error on a rank of a torchrun launch: what the ranks settled this rank says (a
    :class:`~mlbasics.distributed.LaunchFailure`), a collective that timed out (the rank that
    stopped answering, named once), another rank's failure (silence: that rank says why), or a
    bug (its traceback, from its rank)."""
    from mlbasics import distributed
    from mlbasics.distributed import _signals

    _signals.leaving()
    failure = exc if isinstance(exc, distributed.LaunchFailure) else distributed.stopped_answering(exc)
    if isinstance(failure, distributed.LaunchFailure):
        _say(failure.lines)
        if failure.ended:  # torchrun is to see them gone before this rank: its report names them
            distributed.linger_later()
        return failure.status
    if failure is not None or not _speaks(exc):
        return EXIT_PLUGIN_BUG
    return _crash_rank()


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
