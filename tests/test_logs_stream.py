"""Log lines are never swallowed by a library that points stderr elsewhere for a moment:
sounddevice sends fd 2 to /dev/null while PortAudio starts, and the player restarts PortAudio
(to find a sound server or a device that came up) while other threads log chat decisions."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import threading
import sounddevice as sd
import structlog
from ishowtts import logs
logs.configure("info", "json")
log = structlog.get_logger()
stop = threading.Event()
def restart_portaudio():
    while not stop.is_set():
        sd._terminate()
        sd._initialize()
thread = threading.Thread(target=restart_portaudio)
thread.start()
for n in range(3000):
    log.info("received", n=n)
stop.set()
thread.join()
"""


def test_no_line_is_lost_while_portaudio_restarts() -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120, check=True
    )
    lines = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]
    assert sorted(r["n"] for r in lines if r["event"] == "received") == list(range(3000))
