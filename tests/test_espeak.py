"""The eSpeak NG engine through the bundled library: real speech at the daemon's rate, Mandarin
for Han characters and English for Latin words, picked per run of text."""

from __future__ import annotations

import numpy as np
import pytest

from ishowtts.engines import EngineError, Voice, build
from ishowtts.engines.espeak import EspeakEngine, EspeakOptions, runs


def speak(engine: EspeakEngine, text: str, voice: str = "zh") -> np.ndarray:
    return np.concatenate([np.zeros(0, np.float32), *engine.synthesize(text, voice)])


@pytest.fixture(scope="module")
def engine() -> EspeakEngine:
    e = build("espeak")  # through its entry point, as the daemon builds it
    assert isinstance(e, EspeakEngine)
    voices = {
        "zh": Voice("zh", options={"language": "zh"}),
        "en": Voice("en", options={"language": "en"}),
        "fast": Voice("fast", speed=2.0, options={"language": "zh"}),
    }
    e.load(voices, lambda _: None)
    e.warmup(lambda _: None)
    return e


def test_runs_split_text_by_script() -> None:
    assert runs("主播晚上好！今天播什么？", "zh") == [("zh", "主播晚上好！今天播什么？")]
    assert runs("hello from Twitch, nice", "zh") == [("en", "hello from Twitch, nice")]
    assert runs("谢谢alice送的小心心", "zh") == [
        ("zh", "谢谢"),
        ("en", "alice"),
        ("zh", "送的小心心"),
    ]
    # digits and punctuation join the run before them, or the voice's language with no run
    assert runs("胜率 75% 了", "en") == [("zh", "胜率 75% 了")]
    assert runs("666", "zh") == [("zh", "666")]
    assert runs("666", "en") == [("en", "666")]
    assert runs(" ！？ ", "zh") == [("zh", " ！？ ")]
    assert runs("", "zh") == []


def test_speaks_at_the_daemons_rate(engine: EspeakEngine) -> None:
    assert engine.sample_rate == 24000  # resampled from eSpeak's 22050 Hz
    audio = speak(engine, "主播晚上好，今天播什么？")
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    assert 1.0 < len(audio) / 24000 < 6.0
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.03 and np.abs(audio).max() <= 1.0
    # speech, not a tone: its energy is spread over many frequencies
    spectrum = np.abs(np.fft.rfft(audio))
    assert (spectrum > 0.1 * spectrum.max()).sum() > 50


def seconds(engine: EspeakEngine, text: str, voice: str = "zh") -> float:
    return len(speak(engine, text, voice)) / engine.sample_rate


def test_mandarin_and_english_are_picked_by_script(engine: EspeakEngine) -> None:
    """Han text is read by the Mandarin voice even for an English voice, Latin words by the
    English one; digits follow the voice's language (六十六 vs sixty-six: not the same length).
    eSpeak varies a few samples from call to call, so lengths are compared within 1 %."""

    def same(a: float, b: float) -> bool:
        return abs(a - b) <= 0.01 * max(a, b)

    assert same(seconds(engine, "你好", "zh"), seconds(engine, "你好", "en"))
    assert same(seconds(engine, "hello", "zh"), seconds(engine, "hello", "en"))
    assert seconds(engine, "66", "en") > 1.2 * seconds(engine, "66", "zh")
    assert seconds(engine, "2024", "en") > 1.1 * seconds(engine, "2024", "zh")
    assert seconds(engine, "谢谢alice") > seconds(engine, "谢谢") + 0.2


def test_speed_follows_the_voice(engine: EspeakEngine) -> None:
    text = "hello chat, this is the fallback voice"
    assert seconds(engine, text, "fast") < 0.75 * seconds(engine, text, "zh")


def test_bad_input(engine: EspeakEngine) -> None:
    with pytest.raises(EngineError, match="unknown voice"):
        list(engine.synthesize("hi", "nobody"))
    assert speak(engine, "").size == 0
    assert speak(engine, "<speak>not markup</speak> \x00 \ud83d").size > 0  # read as text
    long = EspeakEngine(EspeakOptions(max_chars=10))
    long.load({"zh": Voice("zh")}, lambda _: None)
    ten, many = len(speak(long, "一" * 10)), len(speak(long, "一" * 500))
    assert abs(ten - many) < 0.02 * ten  # the text was cut at max_chars


def test_other_rates() -> None:
    e = EspeakEngine(EspeakOptions(sample_rate=16000))
    e.load({"v": Voice("v")}, lambda _: None)
    assert e.sample_rate == 16000
    assert 0.3 < len(speak(e, "你好世界", "v")) / 16000 < 3.0
