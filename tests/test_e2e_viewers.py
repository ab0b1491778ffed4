"""End to end on a real PulseAudio null sink: a replayed room where a viewer picks a voice with
!voice, a moderator !skips a long line and switches the room to paid-only mid-stream, the
dictionary changes a word, and a Japanese super chat goes to eSpeak NG in Japanese. The daemon
runs as an operator runs it (a subprocess); what it says is checked in its ledger and in the
recording of the sink's monitor (the tone engine's pitch tells lines apart, a voice's speed
their length)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from ishowtts.engines.tone import tone_frequency
from tests.audio_utils import Recorder, sound_segments, tone_sequence

pytestmark = pytest.mark.audio

SECONDS_PER_CHAR = 0.04
ALPHA = "alpha says good day"  # in the voice alpha picked: half speed, twice as long
BRAVO = "bravo says good day"  # the same length in the default voice
CHARLIE = "charlie has a rather long message that keeps on going for quite a while"
ECHO_WRITTEN, ECHO_SAID = "echo yyds", "echo forever god"
JAPANESE = "ありがとうございます"
A = {"id": "1", "name": "alpha"}
B = {"id": "2", "name": "bravo"}
MOD = {"id": "9", "name": "房管", "moderator": True}
LOG = [
    {"t": 0.0, "kind": "danmaku", "user": A, "text": "!voice slow"},
    {"t": 0.1, "kind": "danmaku", "user": A, "text": ALPHA},
    {"t": 0.2, "kind": "danmaku", "user": B, "text": BRAVO},
    {"t": 0.3, "kind": "danmaku", "user": {"id": "3", "name": "c"}, "text": CHARLIE},
    {"t": 2.9, "kind": "danmaku", "user": B, "text": "!skip"},  # not a moderator
    {"t": 3.2, "kind": "danmaku", "user": MOD, "text": "!skip"},
    {"t": 3.4, "kind": "danmaku", "user": MOD, "text": "!tts paid_only"},
    {"t": 3.5, "kind": "danmaku", "user": {"id": "4", "name": "d"}, "text": "delta is not read"},
    {"t": 3.6, "kind": "super_chat", "user": {"id": "5", "name": "e"}, "text": ECHO_WRITTEN,
     "amount": 30},
    {"t": 3.7, "kind": "super_chat", "user": {"id": "6", "name": "f"}, "text": JAPANESE,
     "amount": 30},
    {"t": 3.8, "kind": "danmaku", "user": A, "text": "alpha again"},
]  # fmt: skip

CONFIG = """\
engine: {type: tone, seconds_per_char: SPC, fallback: espeak}
connectors: [{type: replay, path: chat.jsonl}]
voices: {default: {}, slow: {speed: 0.5}}
speech:
  templates: {danmaku: "{text}", super_chat: "{text}"}
dedupe: {window_s: 0}
filters: {rate: null}
dictionary: {file: dictionary.json, starter: false}
player: {device: pulse, lookahead_s: 0.5}
api: {enabled: false}
log: {format: json}
""".replace("SPC", str(SECONDS_PER_CHAR))


def test_distinct_pitches() -> None:
    freqs = sorted(tone_frequency(t) for t in (ALPHA, BRAVO, CHARLIE, ECHO_WRITTEN, ECHO_SAID))
    assert min(b - a for a, b in itertools.pairwise(freqs)) >= 50


def test_a_room_uses_voices_moderation_modes_and_the_dictionary(pulse, tmp_path: Path) -> None:
    (tmp_path / "chat.jsonl").write_text("\n".join(json.dumps(e) for e in LOG) + "\n")
    (tmp_path / "config.yaml").write_text(textwrap.dedent(CONFIG))
    (tmp_path / "dictionary.json").write_text('[{"term": "yyds", "say": "forever god"}]')
    with Recorder() as recorder:
        proc = subprocess.run(
            [sys.executable, "-m", "ishowtts", "run", "--until-idle", "-c", "config.yaml"],
            cwd=tmp_path,
            env={**os.environ, "PULSE_SINK": "obs_tts"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        audio = recorder.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith("{")]

    # -- the ledger: every line ends once, each as the room asked -----------------------------
    terminal = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}
    received = {r["id"]: r["text"] for r in lines if r.get("event") == "received"}
    ends = [r for r in lines if r.get("event") in terminal]
    assert len(received) == len(LOG) and Counter(r["id"] for r in ends) == dict.fromkeys(
        received, 1
    )
    fate = {received[r["id"]] + "/" + r["user"]: r for r in ends}
    assert fate["!voice slow/alpha"]["outcome"] == "set"
    assert fate[f"{ALPHA}/alpha"]["voice"] == "slow"
    assert fate[f"{BRAVO}/bravo"]["voice"] == "default"
    assert fate["!skip/bravo"]["outcome"] == "refused: not a moderator"
    assert fate["!skip/房管"]["outcome"].startswith("skipped ")
    assert (fate[f"{CHARLIE}/c"]["event"], fate[f"{CHARLIE}/c"]["rule"]) == ("removed", "skip")
    assert fate["!tts paid_only/房管"]["outcome"] == "mode paid_only"
    assert fate["delta is not read/d"]["rule"] == "mode_paid_only"
    assert fate["alpha again/alpha"]["rule"] == "mode_paid_only"
    assert fate[f"{ECHO_WRITTEN}/e"]["text"] == ECHO_SAID
    ja = fate[f"{JAPANESE}/f"]
    assert (ja["event"], ja["read_by"], ja["language"]) == ("spoken", "fallback", "ja")
    used = [r for r in lines if r.get("event") == "moderator_command"]
    assert [(r["by"], r["command"]) for r in used] == [
        ("bravo", "skip"), ("房管", "skip"), ("房管", "tts")
    ]  # fmt: skip

    # -- the recording ------------------------------------------------------------------------
    sr = recorder.sample_rate
    heard = tone_sequence(audio, sr)

    def spans(text: str) -> list[float]:
        f = tone_frequency(text)
        return [end - start for start, end, got in heard if abs(got - f) < 12]

    alpha, bravo = sum(spans(ALPHA)), sum(spans(BRAVO))
    expected = len(ALPHA) * SECONDS_PER_CHAR
    assert abs(bravo - expected) < 0.15, heard
    assert abs(alpha - 2 * expected) < 0.25, heard  # another voice, other audio: twice as long
    charlie = sum(spans(CHARLIE))
    assert 0.2 < charlie < len(CHARLIE) * SECONDS_PER_CHAR - 0.5, heard  # cut short by !skip
    assert sum(spans(ECHO_SAID)) > 0.4 and not spans(ECHO_WRITTEN), heard
    # The Japanese line is speech after the last tone, not a tone.
    last_tone = max(end for start, end, got in heard if abs(got - tone_frequency(ECHO_SAID)) < 12)
    speech = [s for s in sound_segments(audio, sr) if s[0] > last_tone + 0.01]
    assert speech and speech[-1][1] - speech[0][0] > 0.5, speech
