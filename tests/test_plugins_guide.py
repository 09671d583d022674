"""docs/plugins.md, followed word for word, produces a working plugin.

The test does what a reader does, in an empty folder: it writes every file the guide shows (each
file block starts with a comment naming its path) and runs every ``sh`` block up to "Publishing it",
in order, in one shell, in a throwaway environment that sees this one's packages (mlbasics, torch,
pytest). One thing differs from a reader's machine: the ``pip`` there adds ``--no-deps
--no-build-isolation --no-index`` to ``pip install``, because everything needed (setuptools
included) is already installed and the test must not download anything.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.throwaway_venv import ThrowawayVenv

GUIDE = Path(__file__).parent.parent / "docs" / "plugins.md"
NOT_RUN_FROM = "## Publishing it"
FILE_COMMENT = re.compile(r"^# (\S+\.(?:py|toml))\n")


class Block(NamedTuple):
    language: str
    text: str


def guide_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, in order."""
    return [
        Block(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    ]


def guide_files(blocks: list[Block]) -> dict[str, str]:
    """Path -> content of every block that is a file (its first line is a comment naming it)."""
    files = {}
    for block in blocks:
        match = FILE_COMMENT.match(block.text)
        if match:
            files[match[1]] = block.text
    return files


def guide_commands(text: str) -> str:
    """The ``sh`` blocks before the publishing section, as one script."""
    runnable = text.split(NOT_RUN_FROM, 1)[0]
    return "".join(block.text for block in guide_blocks(runnable) if block.language == "sh")


def test_the_guide_names_its_files() -> None:
    files = guide_files(guide_blocks(GUIDE.read_text(encoding="utf-8")))
    assert sorted(files) == [
        "lecture_models.py",
        "mlbasics-wave/pyproject.toml",
        "mlbasics-wave/src/mlbasics_wave/components.py",
        "mlbasics-wave/src/mlbasics_wave/plugin.py",
        "mlbasics-wave/src/mlbasics_wave/training.py",
        "mlbasics-wave/tests/test_wave.py",
        "mlbasics-wave/wave.toml",
    ]


@pytest.mark.slow
def test_following_the_guide_gives_a_working_plugin(tmp_path: Path) -> None:
    text = GUIDE.read_text(encoding="utf-8")
    env = ThrowawayVenv(tmp_path / "venv")
    folder = tmp_path / "work"  # the reader's empty folder
    folder.mkdir()
    for name, content in guide_files(guide_blocks(text)).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content, encoding="utf-8")
    bin_dir = env.python.parent
    # The commands a reader has: `mlbasics` (what its console script runs) and `pip` (see above).
    (bin_dir / "mlbasics").write_text(f'#!/bin/sh\nexec "{env.python}" -m mlbasics "$@"\n')
    (bin_dir / "pip").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = install ]; then shift; set -- install --no-deps --no-build-isolation --no-index "$@"; fi\n'
        f'exec "{env.python}" -m pip --disable-pip-version-check "$@"\n'
    )
    for command in ("mlbasics", "pip"):
        (bin_dir / command).chmod(0o755)
    script = "set -euo pipefail\n" + guide_commands(text)
    shell_env = env.env() | {"COLUMNS": "200"}
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"the guide's commands failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )

    # What the guide says one sees.
    assert "parabola" in result.stdout
    assert "lecture_models" in result.stdout
    assert "wave 0.1.0" in result.stdout  # the plugin column of `mlbasics list datasets wave`
    assert "within" in result.stdout  # `mlbasics list metrics`
    # The two runs with the callback, from wave.toml and from the command line.
    assert "stopped early: the loss is below 0.01 after epoch" in result.stdout
    assert "stopped early: the loss is below 0.05 after epoch" in result.stdout
    # The guide's own tests, run by `python -m pytest`: 19 conformance checks of the four
    # components (the callback's through a training, and a save and resume) and 4 tests.
    assert "23 passed" in result.stdout

    listed = env.mlbasics("list", "--json", cwd=folder)
    components = {c["name"]: c for c in json.loads(listed.stdout) if c["plugin"]["name"] == "wave"}
    assert sorted((c["kind"], name) for name, c in components.items()) == [
        ("activation", "snake"),
        ("callback", "good-enough"),
        ("dataset", "wave"),
        ("metric", "within"),
    ]
    assert {c["plugin"]["distribution"] for c in components.values()} == {"mlbasics-wave"}
    assert {c["plugin"]["version"] for c in components.values()} == {"0.1.0"}

    parabola = env.mlbasics(
        "--plugins-dir", "lecture_models.py", "train", "--model", "parabola", "--lr", "0.1",
        "--epochs", "200", "--json", cwd=folder,
    )  # fmt: skip
    assert parabola.returncode == 0, parabola.stderr
    learned = json.loads(parabola.stdout)["parameters"]
    assert (learned["w"], learned["b"]) == ([pytest.approx(1.0, abs=1e-4)], [pytest.approx(3.0, abs=1e-4)])

    package = folder / "mlbasics-wave"
    from_toml = env.mlbasics("train", "wave.toml", "--epochs", "400", "--json", cwd=package)
    assert from_toml.returncode == 0, from_toml.stderr
    _check_watched(json.loads(from_toml.stdout), loss=0.01, tolerance=0.1, epochs=400)

    from_flags = env.mlbasics(
        "train", "--dataset", "wave", "--set", "dataset.frequency=2.0", "--model", "mlp",
        "--set", "model.activation=snake", "--set", "model.hidden=[16, 16]", "--lr", "0.05",
        "--epochs", "400", "--validation", "0.2", "--metric", "within", "--metric", "r2",
        "--set", "metrics.within.tolerance=0.2", "--callback", "good-enough",
        "--set", "callbacks.good-enough.loss=0.02", "--json", cwd=folder,
    )  # fmt: skip
    assert from_flags.returncode == 0, from_flags.stderr
    _check_watched(json.loads(from_flags.stdout), loss=0.02, tolerance=0.2, epochs=400)

    notebook = env.run("-c", _python_blocks_after("From Python", text), cwd=folder)
    assert notebook.stdout.strip().endswith("[('lecture_models', 'active')]"), notebook.stderr


def _python_blocks_after(words: str, text: str) -> str:
    """The first ``python`` block after the paragraph starting with ``words``."""
    after = text.split(f"\n{words}", 1)[1]
    return next(block.text for block in guide_blocks(after) if block.language == "python")


def _check_watched(result: dict[str, Any], *, loss: float, tolerance: float, epochs: int) -> None:
    """A run with the guide's metric and callback: stopped by the callback once the loss of an
    epoch was below ``loss``, and ``within`` computed on both parts, with its plugin recorded."""
    assert result["epochs"] < epochs
    assert result["stopped"] == f"the loss is below {loss} after epoch {result['epochs']}"
    assert result["history"][-1] < loss
    metrics = result["metrics"]
    assert set(metrics) == {"within", "r2", "validation_within", "validation_r2"}
    assert all(0 <= metrics[name] <= 1 for name in ("within", "validation_within"))
    [within] = [m for m in result["metrics_components"] if m["name"] == "within"]
    assert (within["params"], within["plugin"], within["version"]) == (
        {"tolerance": tolerance},
        "wave",
        "0.1.0",
    )
    [callback] = result["callbacks_components"]
    assert (callback["name"], callback["params"], callback["plugin"]) == (
        "good-enough",
        {"loss": loss},
        "wave",
    )
