"""Check scripts run in a fresh Python process, for what is decided when a process starts:
which modules it has imported by a given point, or Triton's CPU interpreter (chosen when triton
is imported). Neither can be tested inside the test process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def assert_script_passes(
    script: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 600
) -> None:
    """``script`` (its ``sys.argv[1:]``: ``argv``), run from the repository root, must print
    exactly "ok" and exit 0."""
    run = subprocess.run([sys.executable, "-c", script, *argv], env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=timeout, cwd=ROOT)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "ok", (
        run.stderr[-3000:] + run.stdout[-500:]
    )


def assert_passes_in_interpreter(script: str) -> None:
    """``assert_script_passes`` with ``TRITON_INTERPRET=1``."""
    assert_script_passes(script, env={"TRITON_INTERPRET": "1"})
