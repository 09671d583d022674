"""``mlbasics predict DIR``: the trained model of a run folder, applied to new inputs."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "predict",
        help="predict with the model of a saved run (mlbasics train --save DIR)",
        description="Rebuild the model of run folder DIR from its recorded experiment (by registry "
        "name; nothing in the folder is executed), load its weights, and print its predictions as "
        "CSV: the feature columns, then the predicted target (for class labels: the class's name, or with "
        "--proba each class's probability).",
    )
    parser.add_argument("run_folder", metavar="DIR", help="a run folder written by mlbasics train --save DIR")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--x",
        nargs="+",
        metavar="VALUES",
        help="one sample per argument, its feature values separated by commas: --x 1 2 3, --x 1,2,3 4,5,6",
    )
    source.add_argument(
        "--csv", metavar="IN.csv", help="a CSV file with a header naming the model's features"
    )
    parser.add_argument("--output", metavar="OUT.csv", help="write the CSV here (atomically), not to stdout")
    parser.add_argument(
        "--proba",
        action="store_true",
        help="for a run on class labels: one column per class, its probability, in place of the predicted class",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="use the model even if its plugin is older than the one that trained it",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.output:
        from mlbasics._files import check_output_path

        check_output_path(args.output, what="output file")
    from mlbasics.errors import ValidationError
    from mlbasics.runs.checkpoints import Checkpoint
    from mlbasics.runs.prediction import parse_samples, predictions_csv, probabilities_csv, read_samples

    checkpoint = Checkpoint.load(args.run_folder)
    if args.proba and checkpoint.classes is None:
        raise ValidationError(
            [
                f"--proba: run {args.run_folder} was trained on real-valued targets; probabilities are for class labels"
            ]
        )
    names = checkpoint.feature_names
    features = parse_samples(args.x, names) if args.x is not None else read_samples(args.csv, names)
    if args.proba:
        assert checkpoint.classes is not None
        probabilities = checkpoint.predict_proba(features, force=args.force)
        text = probabilities_csv(features, probabilities, names, checkpoint.classes)
    else:
        predictions = checkpoint.predict(features, force=args.force)
        text = predictions_csv(features, predictions, names, checkpoint.target_names)
    if args.output:
        from mlbasics._files import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
