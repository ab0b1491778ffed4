"""tools/bench_daemon.py: the chat log it replays and its per-phase report, on the tone engine
(player.device none: paced like a sound card, no device)."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from ishowtts import logs

ROOT = Path(__file__).resolve().parents[1]


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_daemon", ROOT / "tools" / "bench_daemon.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_quiet_phase_leaves_room_after_a_super_chat_and_ids_name_the_phase() -> None:
    """F5 reads a super chat in ~9 s: the quiet event after one came 6–9 s later and found the
    daemon still speaking (so no quiet-phase gift was ever measured idle)."""
    tool = _tool()
    log = tool.chat_log(30.0, 1, 120.0)
    quiet = [e for e in log if e["t"] < 120.0]
    assert [e["id"].split("-")[0] for e in log] == ["quiet"] * len(quiet) + ["busy"] * (
        len(log) - len(quiet)
    )
    assert {e["kind"] for e in quiet} == {"danmaku", "super_chat", "gift"}
    for before, after in itertools.pairwise(quiet):
        least = 12.0 if before["kind"] == "super_chat" else 6.0
        assert after["t"] - before["t"] >= least, (before, after)


def test_the_report_is_per_phase_and_every_quiet_event_is_found_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tool sets the process's logging to warnings only; later tests capture info lines.
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)
    out = tmp_path / "results.json"
    args = ["--random-weights", "--tone", "--models", "tone", "--quiet", "24", "--seconds", "3"]
    assert _tool().main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())["tone"]
    quiet, busy = result["ttfa"]["quiet"], result["ttfa"]["busy"]
    assert set(quiet) == {"danmaku", "super_chat", "gift"}
    for kind, k in quiet.items():  # one event at a time, each heard: found idle, all of them
        assert k["n"] == k["idle_n"] == k["outcomes"]["spoken"] >= 1, (kind, k)
    assert busy and all(sum(k["outcomes"].values()) >= 1 for k in busy.values())
    received = sum(sum(k["outcomes"].values()) for p in result["ttfa"].values() for k in p.values())
    assert received == sum(result["terminals"].values())  # every event in one phase and kind
