"""A cheap deterministic engine for testing everything around the real one: a sine tone whose
pitch is a function of the text and whose length follows the text's length. Never the default."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from pydantic import Field

from ..confload import Section
from .base import EngineError, Progress, Voice


def tone_frequency(text: str, low: float = 300.0, high: float = 1500.0) -> float:
    """The pitch a text is spoken at; tests use it to tell utterances apart in a recording."""
    step = 25.0  # keeps distinct texts at least one FFT bin apart in short recordings
    slots = int((high - low) / step)
    return low + step * (zlib.crc32(text.encode()) % slots)


class ToneOptions(Section):
    sample_rate: int = Field(24000, ge=8000, le=192000)
    seconds_per_char: float = Field(0.06, gt=0)
    min_seconds: float = Field(0.25, gt=0)
    chunk_seconds: float = Field(0.5, gt=0)
    amplitude: float = Field(0.3, gt=0, le=1)
    delay_s: float = Field(0.0, ge=0)  # pretend synthesis takes this long per chunk
    warmup_steps: int = Field(0, ge=0)  # pretend warm-up has this many buckets...
    warmup_step_s: float = Field(0.0, ge=0)  # ...taking this long each


class ToneEngine:
    name = "tone"
    Options = ToneOptions

    def __init__(self, options: ToneOptions | None = None) -> None:
        o = options or ToneOptions()
        self.sample_rate = o.sample_rate
        self.seconds_per_char = o.seconds_per_char
        self.min_seconds = o.min_seconds
        self.chunk_seconds = o.chunk_seconds
        self.amplitude = o.amplitude
        self.delay_s = o.delay_s
        self.warmup_steps, self.warmup_step_s = o.warmup_steps, o.warmup_step_s
        self.voices: dict[str, Voice] = {}

    def load(self, voices: Mapping[str, Voice], progress: Progress) -> None:
        self.set_voices(voices)
        progress(f"tone engine ready at {self.sample_rate} Hz")

    def set_voices(self, voices: Mapping[str, Voice]) -> None:
        self.voices = dict(voices)

    def warmup(self, progress: Progress) -> None:
        for i in range(self.warmup_steps):
            time.sleep(self.warmup_step_s)
            progress(f"tone warm-up: step {i + 1}/{self.warmup_steps}")
        progress("tone engine warm")

    def duration(self, text: str, voice: str, speed: float = 1.0) -> float:
        """Seconds ``text`` takes: its length at the speaking rate, the voice's speed times
        ``speed`` (the tone stays at its pitch: the duration is what changes)."""
        speed *= self.voices[voice].speed if voice in self.voices else 1.0
        return max(self.min_seconds, len(text) * self.seconds_per_char) / speed

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        if self.voices and voice not in self.voices:
            raise EngineError(f"unknown voice {voice!r}")
        freq = tone_frequency(text)
        total = round(self.duration(text, voice, speed) * self.sample_rate)
        step = max(1, round(self.chunk_seconds * self.sample_rate))
        for start in range(0, total, step):
            if self.delay_s:
                time.sleep(self.delay_s)
            t = np.arange(start, min(total, start + step)) / self.sample_rate
            yield (self.amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    def describe(self) -> Mapping[str, Any]:
        return {"engine": "tone", "device": "cpu", "sample_rate": self.sample_rate}

    def close(self) -> None:
        pass
