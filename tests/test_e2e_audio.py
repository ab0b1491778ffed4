"""End to end on a real PulseAudio null sink: the daemon (a subprocess, as an operator runs it)
replays a chat log through the whole path with the tone engine; the sink's monitor is recorded.
Sound must arrive in priority order, with no gap over 50 ms while the queue is not empty, and
every event must end in exactly one terminal log line."""

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
from tests.audio_utils import Recorder, gaps, sound_segments, tone_sequence

pytestmark = pytest.mark.audio

# Every text is spoken as is ({text} templates), so its tone's pitch identifies it.
FIRST = "first line plays while the others arrive 0"
EXPECTED_ORDER = [
    FIRST,  # the queue was empty: it starts at once; the rest arrive while it plays
    "super chat thanks 0",
    "guard joins 1",
    "gift hearts 0",
    "plain chat two 5",
    "new fan follows 3",
]
LOG = [
    {"t": 0.0, "kind": "danmaku", "user": {"id": "1", "name": "a"}, "text": FIRST, "id": "m1"},
    {"t": 0.5, "kind": "follow", "user": {"id": "2", "name": "b"}, "text": "new fan follows 3"},
    {"t": 0.55, "kind": "danmaku", "user": {"id": "3", "name": "c"}, "text": "plain chat two 5"},
    {
        "t": 0.6,
        "kind": "gift",
        "user": {"id": "4", "name": "d"},
        "text": "gift hearts 0",
        "gift": "heart",
        "amount": 1,
    },
    {
        "t": 0.65,
        "kind": "guard",
        "user": {"id": "5", "name": "e"},
        "text": "guard joins 1",
        "amount": 198,
    },
    {
        "t": 0.7,
        "kind": "super_chat",
        "user": {"id": "6", "name": "f"},
        "text": "super chat thanks 0",
        "amount": 30,
    },
    # dropped (blocked word) and recalled ones are accounted for, never heard; the same text
    # again is said by the line still waiting for it (spoken, merged_into naming it)
    {"t": 0.75, "kind": "danmaku", "user": {"id": "7", "name": "g"}, "text": "buy followers now"},
    {"t": 0.8, "kind": "danmaku", "user": {"id": "8", "name": "h"}, "text": "plain chat two 5"},
    {
        "t": 0.85,
        "kind": "danmaku",
        "user": {"id": "9", "name": "i"},
        "text": "oops wrong",
        "id": "m9",
    },
    {"t": 0.9, "kind": "recall", "id": "m9"},
]

CONFIG = """\
engine:
  type: tone
  seconds_per_char: 0.03
connectors:
  - type: replay
    path: chat.jsonl
speech:
  templates: {danmaku: "{text}", super_chat: "{text}", gift: "{text}", guard: "{text}", follow: "{text}"}
filters:
  block_keywords: [buy followers]
player:
  device: pulse
  lookahead_s: 0.5
api:
  enabled: false
log:
  format: json
"""


def test_distinct_pitches() -> None:
    freqs = sorted(tone_frequency(t) for t in EXPECTED_ORDER)
    assert min(b - a for a, b in itertools.pairwise(freqs)) >= 100


def test_daemon_speaks_in_priority_order_without_gaps(pulse, tmp_path: Path) -> None:
    (tmp_path / "chat.jsonl").write_text(
        "\n".join(json.dumps(e) for e in LOG) + "\n", encoding="utf-8"
    )
    (tmp_path / "config.yaml").write_text(textwrap.dedent(CONFIG), encoding="utf-8")
    env = {**os.environ, "PULSE_SINK": "obs_tts"}
    with Recorder() as recorder:
        proc = subprocess.run(
            [sys.executable, "-m", "ishowtts", "run", "--until-idle", "-c", "config.yaml"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        audio = recorder.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]

    # -- what was heard, in which order ----------------------------------------------------------
    sr = recorder.sample_rate
    heard = tone_sequence(audio, sr)
    expected = [tone_frequency(t) for t in EXPECTED_ORDER]
    nearest = [min(expected, key=lambda e, f=f: abs(e - f)) for _, _, f in heard]
    order = [f for i, f in enumerate(nearest) if i == 0 or f != nearest[i - 1]]
    assert order == expected, (order, expected, heard)
    for _, _, f in heard:
        assert min(abs(f - e) for e in expected) < 15, f"unexpected pitch {f:.0f} Hz"

    # -- no gap while the queue was not empty: all six played back to back ----------------------
    segments = sound_segments(audio, sr)
    assert segments, "nothing was heard"
    start, end = heard[0][0] - 0.05, heard[-1][1] + 0.05
    inside = [s for s in segments if s[1] > start and s[0] < end]
    assert max(gaps(inside), default=0.0) < 0.050, gaps(inside)

    # -- accounting: every received id ends in exactly one terminal line ------------------------
    terminal = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}
    received = [r["id"] for r in lines if r.get("event") == "received"]
    ended = Counter(r["id"] for r in lines if r.get("event") in terminal)
    assert len(received) == len(LOG) - 1  # the recall is not an event
    assert all(ended[i] == 1 for i in received), ended
    states = Counter(r["event"] for r in lines if r.get("event") in terminal)
    assert states == {"spoken": 7, "dropped": 1, "removed": 1}
    rules = {r.get("rule") for r in lines if r.get("event") == "dropped"}
    assert rules == {"blocked_keyword"}
    said_by = {r["id"]: r.get("merged_into") for r in lines if r.get("event") == "spoken"}
    first = next(r["id"] for r in lines if r.get("text") == "plain chat two 5")
    assert list(said_by.values()).count(first) == 1  # the repeat, said by the first
    speaking = [r for r in lines if r.get("event") == "speaking"]
    assert len(speaking) == 6 and all(r["ttfa_ms"] >= 0 for r in speaking)


def test_until_idle_with_a_failed_connector_exits_nonzero(pulse, tmp_path: Path) -> None:
    """A replay whose file is missing ends the run as a failure, said at error level."""
    config = CONFIG.replace("path: chat.jsonl", "path: missing.jsonl")
    (tmp_path / "config.yaml").write_text(textwrap.dedent(config), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "ishowtts", "run", "--until-idle", "-c", "config.yaml"],
        cwd=tmp_path,
        env={**os.environ, "PULSE_SINK": "obs_tts"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    failed = [r for r in lines if r.get("event") == "connector_state" and r["state"] == "failed"]
    assert failed and failed[0]["level"] == "error" and "missing.jsonl" in failed[0]["error"]
    idle = [r for r in lines if r.get("event") == "idle"]
    assert idle and idle[0]["level"] == "error" and idle[0]["failed"] == ["replay"]
