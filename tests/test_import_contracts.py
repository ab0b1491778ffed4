"""The import contracts of pyproject.toml hold, and they do catch a forbidden import.

``lint-imports`` runs in .ci/run; here it runs on a copy of the tree with one deliberate
violation each, so a contract that cannot fail would show."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = [
    sys.executable,
    "-c",
    "from importlinter.cli import lint_imports_command; lint_imports_command()",
]


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy is found before the installed (editable) package.
    env = {**os.environ, "PYTHONPATH": f"{tree / 'daemon'}{os.pathsep}{tree / 'plugins'}"}
    return subprocess.run(
        [*LINT, "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for part in ("daemon", "plugins"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # The data path reaching up into the app.
        (
            "daemon/ishowtts/pipeline/filters.py",
            "from ..app import daemon",
            "Wings import downwards",
        ),
        # Control reaching into the process shell.
        (
            "daemon/ishowtts/control/status.py",
            "from ..shell import service",
            "Wings import downwards",
        ),
        # The foundation importing a wing.
        (
            "daemon/ishowtts/events.py",
            "from .queue import ledger",
            "The foundation imports no wing",
        ),
        # A plug-in going around the public API.
        (
            "plugins/ishowtts_plugins/http_say.py",
            "from ishowtts.queue import scheduler",
            "Plug-ins import only",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, module: str, line: str, contract: str
) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if "BROKEN" in row]
    assert any(contract in row for row in broken), result.stdout
