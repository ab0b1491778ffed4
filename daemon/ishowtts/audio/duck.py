"""Ducking: the gain of the bot's voice while the streamer speaks, ramped so it never clicks.

The mixer applies it to every block after the utterances' own fades. The listener (another
thread) sets the target; ``apply`` moves the gain toward it by a fixed step per sample: down over
``down_ms`` when the streamer starts, back up over ``up_ms`` when they stop. A block in which
nothing played jumps straight to the target: silence has no edge to click, and a line that
starts after the streamer stopped is heard at full level from its first sample.
"""

from __future__ import annotations

import math

import numpy as np


class Duck:
    def __init__(self, sample_rate: int, frames: int = 4096) -> None:
        self.sample_rate = sample_rate
        self.gain = 1.0  # applied now
        self.target = 1.0
        self._down = self._up = 1.0  # gain change per sample
        self.ramps(40.0, 250.0)
        self._env = np.empty(frames, dtype=np.float32)
        self._steps = np.arange(1, frames + 1, dtype=np.float32)

    def ramps(self, down_ms: float, up_ms: float) -> None:
        """How long a full swing (1 → 0 or 0 → 1) takes each way."""
        self._down = 1000.0 / (max(down_ms, 0.1) * self.sample_rate)
        self._up = 1000.0 / (max(up_ms, 0.1) * self.sample_rate)

    @property
    def silent(self) -> bool:
        """Held at zero (pause mode, fully faded): the mixer stops reading audio."""
        return self.gain <= 0.0 and self.target <= 0.0

    def frames_to_silence(self) -> int:
        """Frames until a ramp down to zero ends (pause mode: then the mixer stops reading)."""
        return math.ceil(self.gain / self._down - 1e-6)

    def apply(self, buf: np.ndarray, played: int) -> None:
        """Scale ``buf`` in place; ``played`` frames of it carry audio (the rest is silence)."""
        target, gain = self.target, self.gain
        if played == 0:
            self.gain = target
            return
        if gain == target:
            if gain != 1.0:
                buf *= gain
            return
        n = len(buf)
        if n > len(self._env):
            self._env = np.empty(n, dtype=np.float32)
            self._steps = np.arange(1, n + 1, dtype=np.float32)
        step = -self._down if target < gain else self._up
        env = self._env[:n]
        np.multiply(self._steps[:n], step, out=env)
        env += gain
        if step < 0:
            np.maximum(env, target, out=env)
        else:
            np.minimum(env, target, out=env)
        buf *= env
        self.gain = float(env[-1])
