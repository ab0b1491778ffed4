"""The built wheel holds every package and data file of the source tree.

An editable install imports straight from the folders, so a subpackage or data file that
package discovery misses would pass every other test and still be absent for users.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_FOLDERS = ("daemon", "plugins")
SKIP_PARTS = {"__pycache__"}


def source_files() -> set[str]:
    """Paths inside the wheel that the tree says must be there: every file of every package
    (a folder with ``__init__.py``), relative to its top-level folder."""
    wanted: set[str] = set()
    for top in TOP_FOLDERS:
        base = ROOT / top
        for path in base.rglob("*"):
            if not path.is_file() or SKIP_PARTS & set(path.parts) or path.suffix == ".pyc":
                continue
            package_dir = path.parent
            while package_dir != base and not (package_dir / "__init__.py").exists():
                package_dir = package_dir.parent
            if package_dir == base:
                continue  # not inside a package: nothing ships it
            wanted.add(path.relative_to(base).as_posix())
    return wanted


def source_copy(dest: Path) -> Path:
    """What a build reads, copied: building in the checkout would leave an ``ishowtts.egg-info``
    at its root, which sits on the tests' sys.path and hides later entry-point changes."""
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    shutil.copy2(ROOT / "README.md", dest / "README.md")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for top in TOP_FOLDERS:
        shutil.copytree(ROOT / top, dest / top, ignore=junk)
    return dest


@pytest.mark.slow
def test_wheel_holds_every_package_and_data_file(tmp_path: Path) -> None:
    left_before = set(ROOT.glob("*.egg-info"))
    (tmp_path / "src").mkdir()
    source = source_copy(tmp_path / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("ishowtts-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    wanted = source_files()
    assert "ishowtts/data/demo_chat.jsonl" in wanted  # the walk itself sees data files
    assert any(name.startswith("ishowtts_plugins/bilibili/") for name in wanted)
    missing = sorted(wanted - shipped)
    assert not missing, f"not in the wheel: {missing}"
    assert set(ROOT.glob("*.egg-info")) == left_before  # the checkout was not written to
