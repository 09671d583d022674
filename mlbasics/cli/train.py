"""``mlbasics train``: compose an experiment from a TOML file and/or flags, train it, show the result."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from mlbasics.cli import _runs
from mlbasics.cli._output import print_json, show_notes, stderr, stdout
from mlbasics.engine.experiment import COMPONENT_KINDS, STANDARDIZE_CHOICES, Experiment
from mlbasics.errors import DivergenceError, SaveError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "train",
        help="train an experiment (default: the lecture's MLP on y = x² + 3)",
        description="Train an experiment read from CONFIG.toml (if given) with the flags applied on "
        "top. With no arguments: the lecture's 1-6-10-6-1 ReLU MLP on y = x² + 3, SGD lr 0.01, "
        "MSE, 10000 epochs.",
    )
    add_experiment_arguments(parser)
    parser.add_argument(
        "--plot", metavar="PATH.png", help="write the loss curve (and, for 1-D data, the fit) as a PNG"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as one JSON object, nothing else"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _runs.add_arguments(parser)
    parser.set_defaults(run=run)


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG.toml and the flags that change the experiment (shared with ``mlbasics sweep``)."""
    parser.add_argument("config", nargs="?", metavar="CONFIG.toml", help="experiment file (see examples/)")
    for kind in COMPONENT_KINDS:
        parser.add_argument(
            f"--{kind}", metavar="NAME", help=f"{kind} by registry name (drops the config's {kind} params)"
        )
    parser.add_argument("--lr", type=float, metavar="X", help="learning rate (sets optimizer.lr)")
    parser.add_argument("--epochs", type=int, metavar="N", help="number of epochs")
    parser.add_argument("--device", metavar="D", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the model's initialisation")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any value, e.g. model.hidden=[8,8], dataset.noise=0.1, epochs=500 (repeatable)",
    )
    watch = parser.add_argument_group("metrics and callbacks")
    watch.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME",
        help="compute metric NAME (r2, mae, accuracy, f1, ...) on every part of the data as training goes (repeatable)",
    )
    watch.add_argument(
        "--callback",
        action="append",
        default=[],
        metavar="NAME",
        help="add callback NAME (early-stopping, csv-logger, ...); set its params with "
        "--set callbacks.NAME.PARAM=VALUE (repeatable)",
    )
    data = parser.add_argument_group("held-out rows, mini-batches and standardization")
    data.add_argument(
        "--validation",
        type=float,
        metavar="F",
        help="hold out fraction F of the rows; its loss is shown as training goes",
    )
    data.add_argument(
        "--test", type=float, metavar="F", help="hold out fraction F of the rows, evaluated once at the end"
    )
    data.add_argument(
        "--split-seed", type=int, metavar="N", help="seed of the split into training/validation/test rows"
    )
    data.add_argument(
        "--batch-size", type=int, metavar="N", help="rows per step (default: all training rows)"
    )
    data.add_argument(
        "--no-shuffle", action="store_true", help="with --batch-size: keep the rows' order every epoch"
    )
    data.add_argument(
        "--drop-last", action="store_true", help="with --batch-size: leave out an epoch's last, smaller batch"
    )
    data.add_argument(
        "--no-stratify",
        action="store_true",
        help="split class labels at random, not each class in proportion (stratified, the default)",
    )
    data.add_argument(
        "--standardize",
        choices=STANDARDIZE_CHOICES,
        help="scale to mean 0, std 1 with the training rows' statistics (predictions stay in the data's units)",
    )
    parser.add_argument(
        "--no-cuda-graph",
        action="store_true",
        help="on CUDA, take every step eagerly instead of replaying a captured CUDA graph",
    )


def experiment_from_args(args: argparse.Namespace, base: Experiment | None = None) -> Experiment:
    """The config file (or ``base``, or the default experiment) with the command line's flags
    applied in order: component names, then --lr/--epochs/--device/--seed/--no-cuda-graph and the
    data flags (--validation ... --standardize, --no-stratify), then --metric and --callback, then
    every --set."""
    experiment = Experiment.load(args.config) if args.config else base or Experiment()
    for kind in COMPONENT_KINDS:
        name = getattr(args, kind)
        if name is not None:
            experiment = experiment.with_component(kind, name)
    flags = {
        "optimizer.lr": args.lr,
        "epochs": args.epochs,
        "device": args.device,
        "seed": args.seed,
        "cuda_graph": False if args.no_cuda_graph else None,
        "validation": args.validation,
        "test": args.test,
        "split_seed": args.split_seed,
        "batch_size": args.batch_size,
        "shuffle": False if args.no_shuffle else None,
        "drop_last": True if args.drop_last else None,
        "standardize": args.standardize,
        "stratify": False if args.no_stratify else None,
    }
    for key, value in flags.items():
        if value is not None:
            experiment = experiment.with_value(key, value)
    for field, names in (("metrics", args.metric), ("callbacks", args.callback)):
        for name in names:
            experiment = experiment.with_listed(field, name)
    return experiment.with_assignments(args.set)


def run(args: argparse.Namespace) -> int:
    checkpoint = _runs.load_resumed(args)
    experiment = experiment_from_args(args, checkpoint.experiment if checkpoint else None)
    if args.plot:
        from mlbasics.show.plotting import check_can_plot

        check_can_plot(args.plot)
    from mlbasics.distributed import is_main
    from mlbasics.engine.data_parallel import prepared
    from mlbasics.engine.interrupts import exit_status

    show_notes()
    # Under torchrun: built on every rank, then trained data-parallel (mlbasics.engine.data_parallel).
    setup, checkpointer = prepared(
        lambda: _runs.prepare_run(args, experiment, checkpoint), lambda built: built[0]
    )
    if checkpoint is not None:
        _runs.say_ranks(checkpoint)
    progress = None
    if not (args.json or args.quiet or not is_main()):
        from mlbasics.show.progress import ProgressBar

        progress = ProgressBar(stderr())
    failure = None
    try:
        result = _runs.train_guarded(args, setup, checkpointer, progress=progress)
    except SaveError as exc:
        if exc.result is None:
            raise
        result, failure = exc.result, exc  # the training done is shown before the error
    except DivergenceError as exc:
        if is_main():  # the loss up to the divergence: what there is to look at
            _show_divergence(args, setup.experiment, exc)
        raise
    if not is_main():  # rank 0 alone shows the result (and writes the plot)
        return exit_status(result.interrupted_by) if result.interrupted_by else 0
    plot = args.plot
    if plot:
        from mlbasics.show.plotting import save_training_plot

        try:
            save_training_plot(result, plot)
        except SaveError as exc:
            failure, plot = failure or exc, None
    if args.json:
        print_json(result.to_dict())
    else:
        from mlbasics.cli._summary import render_summary

        stdout().print(render_summary(result, plot=plot))
    if failure is not None:
        where = "in the JSON on stdout" if args.json else "above"
        saved = checkpointer is not None and checkpointer.written_epoch == result.epochs
        kept = f"and saved in {checkpointer.folder}" if saved and checkpointer else "not saved"
        raise SaveError(f"{failure}; the result of training is shown {where}, {kept}")
    if result.interrupted_by:
        return _runs.report_interrupt(result, checkpointer)
    return 0


def _show_divergence(args: argparse.Namespace, experiment: Experiment, error: DivergenceError) -> None:
    """Before the error is said: the loss up to the divergence drawn in ``--plot FILE``, and with
    ``--json`` the divergence itself as the JSON object on stdout (non-finite losses as null)."""
    plot = args.plot
    if plot:
        from mlbasics.show.plotting import divergence_figure, save_figure

        try:
            save_figure(divergence_figure(error, experiment.loss.name), plot)
        except SaveError as exc:
            print(f"mlbasics: error: {exc}", file=sys.stderr)
            plot = None
        else:
            if not args.json:
                stdout().print(f"the loss up to the divergence is drawn in {plot}")
    if args.json:
        print_json(
            {
                "diverged": {
                    "epoch": error.epoch,
                    "last_finite_loss": error.last_finite_loss,
                    "suggested_lr": error.suggested_lr,
                    "message": str(error),
                },
                "epochs": len(error.history),
                "history": [loss if math.isfinite(loss) else None for loss in error.history],
                "experiment": experiment.to_dict(),
                **({"plot": plot} if plot else {}),
            }
        )
