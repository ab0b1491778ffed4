"""``player.device: none``: an output that plays nowhere but keeps a sound card's pace.

A thread asks the mixer for one block (``player.blocksize`` frames) every block period,
scheduled on the monotonic clock from the moment it opened, so the daemon queues, looks ahead
and reports time to first audio exactly as it would on a card, on machines without one (GPU
servers, CI). If the host falls behind by more than ``MAX_LAG_S`` (a stalled process), the
clock is reset rather than rushed through the backlog, and the slip is counted as an xrun,
as a card would underflow. ``tap``, when given, sees every rendered block (benchmarks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from .output import Render

MAX_LAG_S = 0.2
DEFAULT_BLOCK = 480  # 20 ms at 24 kHz, when blocksize is 0 (let the backend choose)

NONE_DEVICE = "none"

Tap = Callable[[np.ndarray, float], None]


def is_null_device(device: str | int | None) -> bool:
    return isinstance(device, str) and device.strip().lower() == NONE_DEVICE


class NullOutput:
    def __init__(self, sample_rate: int, blocksize: int = 0, tap: Tap | None = None) -> None:
        self.sample_rate = sample_rate
        self.block = blocksize or DEFAULT_BLOCK
        self.tap = tap
        self.xruns = 0
        self.frames = 0  # rendered since the last open
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None

    def check(self) -> None:
        """Nothing to check: there is no device."""

    def open(self, render: Render) -> None:
        self._stop.clear()
        self._error = None
        self.frames = 0
        self._thread = threading.Thread(
            target=self._run, args=(render,), name="ishowtts-null-output", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def lost(self) -> str | None:
        thread = self._thread
        if thread is None:
            return "not_open"
        if self._error is not None:
            return self._error
        return None if thread.is_alive() else "finished"

    def _run(self, render: Render) -> None:
        buf = np.zeros(self.block, dtype=np.float32)
        period = self.block / self.sample_rate
        start = time.monotonic()
        blocks = 0
        try:
            while not self._stop.is_set():
                due = start + blocks * period
                now = time.monotonic()
                if now - due > MAX_LAG_S:  # fell behind: restart the clock, like an underflow
                    self.xruns += 1
                    start, blocks, due = now, 0, now
                elif due > now:
                    if self._stop.wait(due - now):
                        break
                    now = time.monotonic()
                render(buf, now)
                if self.tap is not None:
                    self.tap(buf, now)
                blocks += 1
                self.frames += self.block
        except Exception as exc:  # the player sees it through lost(), closes and reopens
            self._error = f"render failed: {exc!r}"[:200]
