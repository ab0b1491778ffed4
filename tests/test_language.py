"""Mixed-language chat: each line's language (Lingua), and who reads a line in a language the
voices do not speak: its configured voice, or the fallback engine (eSpeak NG) in that language."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ishowtts.config import Config
from ishowtts.config.chat import LanguagesConfig
from ishowtts.engines.espeak import EspeakEngine
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.pipeline.ingest import Pipeline
from ishowtts.pipeline.language import Languages
from ishowtts.queue.ledger import Ledger
from ishowtts.queue.scheduler import Scheduler


@pytest.mark.parametrize(
    ("line", "lang"),
    [
        ("主播今天状态不错", "zh"),
        ("这个boss好难打啊", "zh"),
        ("what a clutch play", "en"),
        ("gg wp", "en"),
        ("ありがとうございます", "ja"),
        ("草生える", "ja"),
        ("대박 진짜 잘한다", "ko"),
        ("666", ""),  # no letters
        ("😂😂😂", ""),
        ("???", ""),
    ],
)
def test_detect_real_chat_lines(line: str, lang: str) -> None:
    assert Languages(LanguagesConfig()).detect(line) == lang


def test_bad_codes_are_config_errors() -> None:
    with pytest.raises(ValueError, match="'xx' is not an ISO 639-1 language code"):
        LanguagesConfig(candidates=["zh", "xx"])


def build(**config: Any) -> Pipeline:
    config.setdefault("voices", {"default": {}, "nihongo": {}})
    config.setdefault("dedupe", {"window_s": 0})
    cfg = Config(**config)
    return Pipeline(cfg, Ledger(), Scheduler(cfg.queue, lambda u, s, f: None))


def ingest(p: Pipeline, text: str, **kw: Any) -> Any:
    event = ChatEvent("twitch", "c", Kind.DANMAKU, User("1", "someone"), text=text, **kw)
    utt = p.ingest(event, now=0.0)
    assert utt is not None
    return utt


def test_routes() -> None:
    fallback = {"type": "tone", "fallback": "espeak"}
    p = build(engine=fallback)
    utt = ingest(p, "ありがとうございます")
    assert (utt.language, utt.by_fallback, utt.voice) == ("ja", True, "default")
    utt = ingest(p, "主播加油 good game")
    assert (utt.language, utt.by_fallback) == ("zh", False)
    # A configured voice for the language wins over the fallback.
    p = build(engine=fallback, languages={"voices": {"ja": "nihongo"}})
    utt = ingest(p, "ありがとうございます")
    assert (utt.voice, utt.by_fallback) == ("nihongo", False)
    # No fallback engine: read as usual (and the line says what it is).
    utt = ingest(build(engine={"type": "tone"}), "대박 진짜 잘한다")
    assert (utt.language, utt.by_fallback) == ("ko", False)
    # The operator's own pick of voice stands; detection off: nothing is re-routed.
    utt = ingest(build(engine=fallback), "ありがとう", voice="default")
    assert (utt.language, utt.by_fallback) == ("", False)
    utt = ingest(build(engine=fallback, languages={"detect": False}), "ありがとう")
    assert (utt.language, utt.by_fallback) == ("", False)


def test_espeak_reads_a_language_voice_in_that_language() -> None:
    engine = EspeakEngine()
    engine.load({}, lambda line: None)
    line = "ありがとうございます"
    as_ja = np.concatenate(list(engine.synthesize(line, "lang:ja")))
    as_zh = np.concatenate(list(engine.synthesize(line, "default")))
    # The Mandarin voice cannot read kana (it spells the characters out, far longer).
    assert 0.5 < len(as_ja) / engine.sample_rate < 3.0
    assert len(as_zh) > 2 * len(as_ja)
    with pytest.raises(Exception, match="no voice 'xx'"):
        list(engine.synthesize(line, "lang:xx"))


def test_real_chat_lines_are_routed_right() -> None:
    """474 real lines (tools/data/chat_lines.tsv): Bilibili danmaku, English and Korean Twitch
    chat. A line the voices can read must stay with them; a Korean or Japanese one must not."""
    from tools.bench_language import ACCEPT, DATA, read

    languages = Languages(LanguagesConfig())
    rows = read(DATA)
    assert len(rows) >= 300
    right = [languages.detect(text) in ACCEPT.get(label, {label}) for label, text in rows]
    assert sum(right) / len(rows) >= 0.98
    korean = [languages.detect(text) for label, text in rows if label == "ko"]
    assert len(korean) >= 50 and korean.count("ko") == len(korean)
