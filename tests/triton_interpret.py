"""Run a check script under Triton's CPU interpreter. A subprocess: the interpreter is chosen
when triton is imported, so it cannot be switched on inside the test process."""

from __future__ import annotations

import os
import subprocess
import sys


def assert_passes_in_interpreter(script: str) -> None:
    """``script`` must print exactly "ok" and exit 0 with ``TRITON_INTERPRET=1``."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
