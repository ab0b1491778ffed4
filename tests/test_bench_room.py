"""tools/bench_room.py: the room's chat log is the stored one, shaped like the issue's peak."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location("bench_room", ROOT / "tools" / "bench_room.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_room"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_the_stored_log_is_the_generated_one_and_ids_name_their_phase() -> None:
    tool = _tool()
    log = tool.room_log(1)
    stored = [json.loads(line) for line in tool.DEFAULT_LOG.read_text("utf-8").splitlines()]
    assert stored == log
    for ev in log:
        assert tool.phase_at(ev["t"], tool.phase_bounds()) == tool.phase_of(ev["id"])


def test_the_peak_is_the_issues_busy_room() -> None:
    tool = _tool()
    log = tool.room_log(1)
    seconds = dict(tool.PHASES)
    per_minute = Counter(e["kind"] for e in log if e["id"].startswith("busy-"))
    minutes = seconds["busy"] / 60
    assert 100 <= per_minute["danmaku"] / minutes <= 140  # 120 danmaku a minute
    assert 25 <= len({(e["user"]["id"], round(e["t"])) for e in log  # 30 small gifts a minute
                      if e["id"].startswith("busy-") and e["kind"] == "gift"}) / minutes <= 45  # fmt: skip
    assert per_minute["super_chat"] >= 2 * minutes - 1 and per_minute["guard"] == 1
    assert per_minute["enter"] and per_minute["follow"]
    busy = [e["text"] for e in log if e["id"].startswith("busy-") and e["kind"] == "danmaku"]
    assert len(set(busy)) >= len(busy) / 4  # many distinct texts, as a real peak has
    storm = Counter(e["text"] for e in log if e["id"].startswith("storm-") and "text" in e)
    memes = {v for spellings in tool.MEMES.values() for v in spellings}
    assert sum(n for t, n in storm.items() if t in memes) > sum(storm.values()) / 2
    quiet = [e for e in log if e["id"].startswith("quiet-")]
    assert all(b["t"] - a["t"] >= 7 for a, b in itertools.pairwise(quiet))
