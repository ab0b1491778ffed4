"""Where the player's mixed audio goes: the contract an output meets.

An output pulls audio at its device's pace by calling ``render(buffer, now)`` from its own
thread (a PortAudio callback) or task; the player supervises it (``lost`` → close, reopen with
backoff, the queue kept). ``portaudio_output.PortAudioOutput`` is the sound-card one; an output
that is not a sound card (a paced null sink for benchmarks, a file) implements the same four
methods and is handed to ``Player(..., output=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

# Fills a mono float32 buffer with the next frames; ``now``: the monotonic time they start.
Render = Callable[[np.ndarray, float], None]


class Output(Protocol):
    xruns: int  # underflows the backend reported

    def check(self) -> None:
        """Raise ``PlayerError`` for a configuration that can never work (at start)."""

    def open(self, render: Render) -> None:
        """Start pulling audio through ``render`` (blocking; run off the loop). Raises when it
        cannot open now (the player retries)."""

    def close(self) -> None:
        """Stop pulling (blocking; may hang on a wedged backend: the player bounds it)."""

    def lost(self) -> str | None:
        """Why the output stopped working since ``open`` (e.g. "finished", "stalled"); None
        while it works."""
