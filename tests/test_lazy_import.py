"""Listing components must not import torch or any plugin's heavy code: ``mlbasics list`` stays fast."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _torch_imported_after(code: str) -> bool:
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(
    "code",
    [
        "import mlbasics",
        "import mlbasics; mlbasics.default_registry().specs()",
        "from mlbasics.cli import main; main(['list'])",
        "from mlbasics.cli import main; main(['list', '--json'])",
        "from mlbasics.cli import main; main(['plugins'])",
        "from mlbasics.cli import main; main(['--help'])",
    ],
)
def test_listing_does_not_import_torch(code: str) -> None:
    assert not _torch_imported_after(
        code.replace("main(['--help'])", "\ntry: main(['--help'])\nexcept SystemExit: pass")
    )


def test_training_does_import_torch() -> None:
    # The probe itself works: the names that need torch load it on first use.
    assert _torch_imported_after("import mlbasics; mlbasics.collapse")


@pytest.mark.parametrize(
    "code",
    [
        "import mlbasics",
        "import mlbasics.testing",
        "from mlbasics.cli import main; main(['list'])",
        "from mlbasics.cli import main; main(['plugins'])",
    ],
)
def test_the_testing_kit_stays_out_of_the_way(code: str) -> None:
    # mlbasics.testing needs the `test` extra; nothing else may import it (or what it needs).
    probe = (
        f"{code}\nimport sys\nprint(sorted(m for m in ('hypothesis', 'pytest', 'torch') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
