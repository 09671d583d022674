"""``python -m mlbasics`` is the ``mlbasics`` command."""

import sys

from mlbasics.cli import command

sys.exit(command())
