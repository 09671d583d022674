"""The reliability side of ``mlbasics train``: run folders (--save, --resume), Ctrl-C and SIGTERM,
divergence, and anomaly detection. Kept apart from ``train.py`` so that command stays readable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlbasics.engine.experiment import Experiment
    from mlbasics.engine.results import TrainResult
    from mlbasics.engine.setup import Setup
    from mlbasics.runs.checkpoints import Checkpoint, Checkpointer
    from mlbasics.show.progress import ProgressBar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    runs = parser.add_argument_group("run folders, interruption and divergence")
    runs.add_argument(
        "--save",
        metavar="DIR",
        help="checkpoint the run into folder DIR: at the end, on Ctrl-C/SIGTERM, and every --checkpoint-every epochs",
    )
    runs.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run saved in DIR up to its epochs (or --epochs N); checkpoints go on into DIR",
    )
    runs.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also checkpoint every N epochs (needs --save or --resume)",
    )
    runs.add_argument(
        "--force",
        action="store_true",
        help="resume even if the experiment or a plugin differs from the saved run's; replace a run in --save DIR",
    )
    runs.add_argument(
        "--divergence-threshold",
        type=float,
        metavar="X",
        help="stop once the loss exceeds X times the first epoch's loss (X > 1); NaN/inf always stops",
    )
    runs.add_argument(
        "--detect-anomaly",
        action="store_true",
        help="run under torch.autograd.detect_anomaly and name the operation that produced a NaN (slow)",
    )


def load_resumed(args: argparse.Namespace) -> Checkpoint | None:
    """The checkpoint to resume (read and checked before anything else happens), or ``None``."""
    if args.resume is None:
        if args.checkpoint_every is not None and args.save is None:
            from mlbasics.errors import ValidationError

            raise ValidationError(["--checkpoint-every needs --save DIR (or --resume DIR)"])
        return None
    from mlbasics.distributed import is_main
    from mlbasics.runs._run_lock import refuse_if_in_use
    from mlbasics.runs.checkpoints import Checkpoint

    # Under torchrun rank 0 checks the lock; the others read the checkpoint before it trains on.
    if is_main() and (args.save is None or Path(args.save).resolve() == Path(args.resume).resolve()):
        refuse_if_in_use(Path(args.resume))  # before reading a checkpoint its holder may be replacing
    return Checkpoint.load(args.resume)


def prepare_run(
    args: argparse.Namespace, experiment: Experiment, checkpoint: Checkpoint | None
) -> tuple[Setup, Checkpointer | None]:
    """The setup to train (fresh, or restored from ``checkpoint``) and the checkpointer, if any.
    Every check that can fail runs here, before training starts. The run folder is checked first
    and locked (which creates it) last, so that a mistake found in between creates nothing."""
    from mlbasics.distributed import is_main
    from mlbasics.engine.setup import prepare
    from mlbasics.runs.checkpoints import Checkpointer, check_run_folder
    from mlbasics.training.divergence import DivergenceCheck

    DivergenceCheck.check_threshold(args.divergence_threshold)
    folder = args.save or args.resume
    if folder is not None and not is_main():  # under torchrun rank 0 alone keeps the run folder
        Checkpointer.check_interval(args.checkpoint_every)
        folder = None
    if folder is not None:
        Checkpointer.check_interval(args.checkpoint_every)
        own = checkpoint is not None and Path(folder).resolve() == checkpoint.run.resolve()
        check_run_folder(folder, overwrite=args.force or own)
    if checkpoint is None:
        setup = prepare(experiment)
    else:
        from mlbasics.training.resuming import restore

        setup, notes = restore(checkpoint, experiment, force=args.force)
        for note in notes if is_main() else ():
            print(f"mlbasics: warning: resuming anyway (--force): {note}", file=sys.stderr)
    checkpointer = None
    if folder is not None:
        checkpointer = Checkpointer.for_run(
            folder, checkpoint, every=args.checkpoint_every, overwrite=args.force
        )
    return setup, checkpointer


def say_ranks(checkpoint: Checkpoint) -> None:
    """What resuming on another number of ranks than saved the run means (said by rank 0, once
    the ranks agreed that they can train it)."""
    from mlbasics.distributed import launch
    from mlbasics.engine.data_parallel import resume_note

    current = launch()
    if current is None or current.is_main:
        line = resume_note(checkpoint, 1 if current is None else current.world_size)
        if line is not None:
            print(f"mlbasics: note: {line}", file=sys.stderr)


def train_guarded(
    args: argparse.Namespace,
    setup: Setup,
    checkpointer: Checkpointer | None,
    *,
    progress: ProgressBar | None = None,
) -> TrainResult:
    """Train with Ctrl-C/SIGTERM stopping at a step boundary, optionally under anomaly detection; a
    divergence, an anomaly or a callback that failed becomes one clear error, which names the
    checkpoint kept. Data-parallel under torchrun, the ranks stop together at an epoch's end
    (:mod:`mlbasics.distributed._signals`), and a failure is said once (:func:`_lockstep_failure`)."""
    if setup.ddp is None:
        return _guarded(args, setup, checkpointer, progress)
    from mlbasics.distributed import _signals

    def request(signum: int) -> None:
        setup.interrupt.requested = signum

    def stopped_now(signum: int) -> str:
        from mlbasics.engine.interrupts import signal_name

        return (
            f"mlbasics: interrupted by {signal_name(signum)} before the ranks could end the epoch "
            f"together (within {_signals.STOP_SECONDS:g} s); {kept(args, checkpointer)}"
        )

    with _signals.lockstep(request, stopped_now):
        try:
            return _guarded(args, setup, checkpointer, progress)
        except Exception as exc:
            _signals.leaving()
            failure = _lockstep_failure(exc, args, checkpointer)
            if failure is exc:
                raise
            raise failure from exc


def kept(args: argparse.Namespace, checkpointer: Checkpointer | None) -> str:
    """What the run folder keeps after a stop, and how to go on from it."""
    if checkpointer is not None:
        folder, epoch = checkpointer.folder, checkpointer.written_epoch
        if epoch is None:
            return (
                f"no checkpoint was written to {folder} yet (--checkpoint-every N writes one every N epochs)"
            )
        return f"the checkpoint of epoch {epoch} is kept in {folder}; resume with: mlbasics train --resume {folder}"
    folder = args.save or args.resume
    if folder is not None:  # on a rank other than 0, which does not write it
        return f"{folder} keeps the last checkpoint written; resume with: mlbasics train --resume {folder}"
    return "nothing was saved (train with --save DIR --checkpoint-every N to keep a run you can resume)"


def _lockstep_failure(
    exc: Exception, args: argparse.Namespace, checkpointer: Checkpointer | None
) -> Exception:
    """The error this rank ends with when data-parallel training failed, said once for the launch.
    The ranks cannot agree with a collective here (a peer may wait in a step's all-reduce), so:
    a collective that timed out names the rank that stopped answering
    (:func:`mlbasics.distributed.stopped_answering`); a mistake is said by rank 0, whether it made
    it (every rank meets an error in the data alike) or another rank did, which records its lines
    (:mod:`mlbasics.distributed._failures`) and leaves, failing rank 0's next collective; a bug is its
    traceback, from its rank."""
    from mlbasics import distributed
    from mlbasics.cli._output import error_lines, exit_status
    from mlbasics.distributed import _failures
    from mlbasics.errors import MlbasicsError, PluginBugError

    current = distributed.launch()
    assert current is not None
    stopped = distributed.stopped_answering(exc, kept(args, checkpointer))
    if stopped is not None:
        return stopped
    if isinstance(exc, MlbasicsError | PluginBugError):
        if not current.is_main:
            _failures.record(current.rank, error_lines(exc), exit_status(exc))
        distributed.settled(0)
        return exc
    if current.is_main:
        found = _failures.recorded(current.world_size)
        if found is not None:
            rank, lines, status = found
            distributed.settled(rank if not lines else 0)
            return distributed.LaunchFailure(lines, status) if lines else distributed.OtherRankFailed(rank)
    if distributed.peer_failed(exc):  # a peer that left without a word: torchrun's report says how
        return distributed.OtherRankFailed(None)
    _failures.record(current.rank, [], 1)  # a bug here: rank 0 leaves it to this traceback
    distributed.settled(current.rank)
    return exc


def _guarded(
    args: argparse.Namespace,
    setup: Setup,
    checkpointer: Checkpointer | None,
    progress: ProgressBar | None,
) -> TrainResult:
    from mlbasics.core.callbacks import CallbackError
    from mlbasics.errors import DivergenceError
    from mlbasics.training.anomaly import AnomalyError
    from mlbasics.training.runner import run

    try:
        return run(
            setup,
            progress=progress or False,
            checkpointer=checkpointer,
            divergence_threshold=args.divergence_threshold,
            # Under torchrun (setup.ddp) a rank may not stop alone at a step boundary (the others
            # would wait for it in the next all-reduce): train_guarded stops the ranks together.
            signals=setup.ddp is None,
            anomaly_detection=args.detect_anomaly,
        )
    except AnomalyError as exc:
        if args.debug and exc.details:
            print(exc.details, file=sys.stderr)
        raise
    except CallbackError as exc:
        if checkpointer is not None and checkpointer.written_epoch is not None:
            folder, epoch = checkpointer.folder, checkpointer.written_epoch
            raise CallbackError(
                f"{exc}; the checkpoint of epoch {epoch} is kept in {folder}; resume with: "
                f"mlbasics train --resume {folder}",
                error=exc.error,
            ) from exc
        raise
    except DivergenceError as exc:
        if checkpointer is not None and checkpointer.written_epoch is not None:
            folder, epoch = checkpointer.folder, checkpointer.written_epoch
            lr = exc.suggested_lr
            hint = f" --lr {lr:g}" if lr is not None else ""
            raise DivergenceError(
                f"{exc}\nthe last finite checkpoint, epoch {epoch}, is kept in {folder}; to go on from it "
                f"with other settings: mlbasics train --resume {folder} --force{hint}",
                epoch=exc.epoch,
                last_finite_loss=exc.last_finite_loss,
                history=exc.history,
                suggested_lr=lr,
            ) from None
        raise


def report_interrupt(result: TrainResult, checkpointer: Checkpointer | None) -> int:
    """After a signal stopped training: say what was kept and how to go on; return 128 + signal."""
    from mlbasics.engine.interrupts import exit_status, signal_name

    assert result.interrupted_by is not None
    where = f"interrupted by {signal_name(result.interrupted_by)} after epoch {result.epochs} of {result.experiment.epochs}"
    if checkpointer is not None and checkpointer.written_epoch == result.epochs:
        folder = checkpointer.folder
        print(
            f"mlbasics: {where}; checkpoint written to {folder}; resume with: mlbasics train --resume {folder}",
            file=sys.stderr,
        )
    else:
        print(
            f"mlbasics: {where}; nothing was saved (train with --save DIR to keep a run you can resume)",
            file=sys.stderr,
        )
    return exit_status(result.interrupted_by)
