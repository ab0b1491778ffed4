"""The audio tests' PulseAudio: always a private server of the test session's own, whatever
other server runs on the machine (a desktop session's, CI's, another test run's), which is
neither used nor changed, and never outlives the test process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audio_utils import SINK, PulseServer, start_pulseaudio

pytestmark = [
    pytest.mark.audio,
    pytest.mark.skipif(shutil.which("pulseaudio") is None, reason="PulseAudio is not installed"),
]

ROOT = Path(__file__).resolve().parent.parent

# A test session's start, in a process of its own: what it plays into, and what that server has.
SESSION = """
import json, os, subprocess
from tests.audio_utils import ensure_pulseaudio, pactl
server = ensure_pulseaudio()
sinks = pactl("list", "short", "sinks")
print(json.dumps({"server": os.environ["PULSE_SERVER"], "sinks": sinks}), flush=True)
server.stop()
"""


def run_session(env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", SESSION], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def modules(server: PulseServer) -> str:
    env = {**os.environ, "PULSE_SERVER": server.address}
    out = subprocess.run(["pactl", "list", "short", "modules"], env=env, capture_output=True,
                         text=True, timeout=10, check=True)  # fmt: skip
    return out.stdout


@pytest.fixture
def foreign() -> Iterator[PulseServer]:
    """Someone else's server: no obs_tts sink, and it must stay that way."""
    server = start_pulseaudio()
    env = {**os.environ, "PULSE_SERVER": server.address}
    for line in modules(server).splitlines():
        if "module-null-sink" in line:
            subprocess.run(["pactl", "unload-module", line.split("\t")[0]], env=env, check=True)
    yield server
    server.stop()


@pytest.mark.parametrize("reached_by", ["PULSE_SERVER", "session runtime dir"])
def test_a_running_server_is_neither_used_nor_changed(
    foreign: PulseServer, reached_by: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    if reached_by == "PULSE_SERVER":  # CI, or a shell that exported it
        env["PULSE_SERVER"] = foreign.address
    else:  # a desktop session: found through the user's own runtime folder
        env.update(HOME=str(foreign.base / "home"), XDG_RUNTIME_DIR=str(foreign.base / "run"))
    seen = run_session(env)
    assert seen["server"] != foreign.address
    assert SINK in seen["sinks"]
    assert foreign.proc.poll() is None  # still running, and as it was
    assert "module-null-sink" not in modules(foreign)


def test_sessions_at_once_each_have_their_own() -> None:
    a, b = start_pulseaudio(), start_pulseaudio()
    try:
        assert a.address != b.address
        assert SINK in modules(a) and SINK in modules(b)
        a.stop()
        assert SINK in modules(b)  # one session ending leaves the other's server alone
    finally:
        a.stop()
        b.stop()


def test_the_server_dies_with_the_test_process() -> None:
    """A killed test run (SIGKILL, OOM) leaves no server behind."""
    code = "from tests.audio_utils import start_pulseaudio; import time\n"
    code += "s = start_pulseaudio(); print(s.pid, s.base, flush=True); time.sleep(60)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    pid, base = proc.stdout.readline().split()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while (
        Path(f"/proc/{pid}").exists() and b"pulseaudio" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ):
        assert time.monotonic() < deadline, "the server outlived its test process"
        time.sleep(0.05)
    shutil.rmtree(base, ignore_errors=True)
