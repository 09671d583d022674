"""A throwaway virtual environment that sees this one's packages, for installing and uninstalling
plugin distributions with pip as a user would, without touching the environment running the tests.

``python -m venv --system-site-packages`` is not enough when the tests themselves run in a virtual
environment (the "system" would be the base interpreter, without mlbasics or torch), so the new
environment gets a ``.pth`` file that adds a *view* of this environment's site-packages: a folder of
links to all of its entries except the files of the distributions named in ``hide``. Installing a
distribution into the new environment, and uninstalling it, then changes what mlbasics finds there
and nowhere else. Installs use ``--no-deps --no-build-isolation``: every dependency (mlbasics, torch,
setuptools) is already in the view, and nothing is fetched from an index.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import site
import subprocess
import sysconfig
import venv
from collections.abc import Iterable
from pathlib import Path


class ThrowawayVenv:
    def __init__(self, root: Path, *, hide: Iterable[str] = ()) -> None:
        self.root = root
        venv.create(root / "env", with_pip=False, symlinks=True)
        self.python = root / "env" / "bin" / "python"
        purelib = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        views = [self._view(Path(p), set(hide), index) for index, p in enumerate(_site_dirs())]
        lines = "".join(f"import site; site.addsitedir({str(v)!r})\n" for v in views)
        Path(purelib, "_parent_environment.pth").write_text(lines)

    def _view(self, site_dir: Path, hide: set[str], index: int) -> Path:
        """A folder of links to ``site_dir``'s entries, less those of the hidden distributions."""
        hidden = {top for name in hide for top in _top_level_entries(name, site_dir)}
        view = self.root / f"view{index}"
        view.mkdir()
        for entry in site_dir.iterdir():
            if entry.name not in hidden:
                (view / entry.name).symlink_to(entry)
        return view

    def env(self) -> dict[str, str]:
        """The environment for commands: no MLBASICS_* settings, no PYTHONPATH, this venv first."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLBASICS_") and k != "PYTHONPATH"}
        env["PATH"] = os.pathsep.join([str(self.python.parent), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(self.python.parent.parent)
        return env

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run this venv's ``python ARGS``."""
        return subprocess.run(
            [str(self.python), *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=cwd,
            timeout=600,
            check=False,
        )

    def mlbasics(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """``mlbasics ARGS`` as this venv's user runs it (the console script is ``python -m mlbasics``)."""
        return self.run("-m", "mlbasics", *args, cwd=cwd)

    def pip(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = self.run("-m", "pip", "--disable-pip-version-check", *args, cwd=cwd)
        assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def install(self, *args: str | Path, cwd: Path | None = None) -> None:
        """``pip install ARGS`` from local folders only (see the module docstring)."""
        self.pip("install", "--no-deps", "--no-build-isolation", "--no-index", *map(str, args), cwd=cwd)


def _site_dirs() -> list[Path]:
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [Path(d) for d in dict.fromkeys(dirs) if Path(d).is_dir()]


def _top_level_entries(distribution: str, site_dir: Path) -> set[str]:
    """The names directly in ``site_dir`` that belong to ``distribution`` (its package, dist-info,
    and for an editable install the .pth file and finder module), from its RECORD."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return set()
    entries = set()
    for file in dist.files or []:
        located = Path(str(dist.locate_file(file)))
        if located.parent == site_dir or site_dir in located.parents:
            entries.add(located.relative_to(site_dir).parts[0])
    return entries


def copy_source(folder: Path, destination: Path) -> Path:
    """A clean copy of a distribution's source folder (pip writes build files into the source)."""
    ignore = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__", ".pytest_cache")
    return Path(shutil.copytree(folder, destination / folder.name, ignore=ignore))


__all__ = ["ThrowawayVenv", "copy_source"]
