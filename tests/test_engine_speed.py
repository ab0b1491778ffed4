"""Every engine speaks faster when asked (``speed``, raised under a backlog) through its own
duration or rate control: the same text, fewer samples, the same pitch; an engine written
before ``speed`` joined the protocol keeps working at its own rate."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from ishowtts.engines import Voice, build, synthesize
from ishowtts.engines.tone import tone_frequency

TEXT = "主播今天唱得真好听，再来一首吧"


def audio(chunks: Iterator[np.ndarray]) -> np.ndarray:
    return np.concatenate(list(chunks))


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(spectrum.argmax())])


def test_the_tone_engine_shortens_the_line_and_keeps_its_pitch() -> None:
    engine = build("tone")
    engine.load({"default": Voice("default", speed=1.1)}, lambda _line: None)
    slow = audio(synthesize(engine, TEXT, "default"))
    fast = audio(synthesize(engine, TEXT, "default", 1.35))
    assert len(fast) == round(len(TEXT) * 0.06 / (1.1 * 1.35) * engine.sample_rate)
    assert len(slow) / len(fast) == pytest.approx(1.35, rel=1e-3)
    want = tone_frequency(TEXT)
    for samples in (slow, fast):  # the duration changes, not the pitch: no resampling
        assert peak_hz(samples, engine.sample_rate) == pytest.approx(want, abs=3)


def test_espeak_speaks_faster_at_its_own_rate() -> None:
    pytest.importorskip("espeakng_loader")
    engine = build("espeak")
    engine.load({"default": Voice("default")}, lambda _line: None)
    slow = audio(synthesize(engine, TEXT, "default"))
    fast = audio(synthesize(engine, TEXT, "default", 1.35))
    # eSpeak's words per minute rise 1.35 times; pauses and phrase ends shrink less.
    assert 1.15 < len(slow) / len(fast) < 1.5


class OldEngine:
    """An engine from before ``speed``: synthesize(text, voice) only."""

    name, sample_rate = "old", 8000

    def synthesize(self, text: str, voice: str) -> Iterator[np.ndarray]:
        yield np.zeros(len(text), np.float32)


def test_an_engine_without_speed_reads_at_its_own_rate() -> None:
    engine = OldEngine()
    assert len(audio(synthesize(engine, "abc", "default", 1.35))) == 3  # type: ignore[arg-type]
