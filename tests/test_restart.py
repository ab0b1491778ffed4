"""A device fault in a running daemon (a real ``torch.AcceleratorError`` from the engine): the
fallback reads the message that hit it, /healthz gives the reason, the daemon
exits 75 (systemd's Restart=on-failure restarts it), and the paid messages still queued are
saved; the next start reads them, with their original ids. Real player, PulseAudio null sink."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import torch
from structlog.testing import capture_logs

from ishowtts.app.daemon import EXIT_RESTART, Daemon, pending
from ishowtts.config import load_config
from ishowtts.control.api import ControlApi
from ishowtts.engines.tone import ToneEngine, ToneOptions

pytestmark = pytest.mark.audio

TERMINAL = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}
CONFIG = """\
engine: {{type: tone, seconds_per_char: 0.02, fallback: espeak}}
connectors: [{{type: replay, path: {replay}}}]
player: {{device: pulse, lookahead_s: 0.3}}
queue: {{pending_file: {pending}}}
api: {{port: 0}}
"""
# All at once: the system line (highest priority) is synthesised first and hits the fault.
EVENTS = [
    {"t": 0, "kind": "system", "user": {"id": "system", "name": "system"}, "text": "CRASH now"},
    {"t": 0, "kind": "super_chat", "user": {"id": "1", "name": "a"}, "text": "keep me",
     "amount": 30, "id": "sc-1"},
    {"t": 0, "kind": "guard", "user": {"id": "2", "name": "b"}, "gift": "舰长", "amount": 198},
    {"t": 0, "kind": "gift", "user": {"id": "3", "name": "c"}, "gift": "辣条", "amount": 1},
    {"t": 0, "kind": "danmaku", "user": {"id": "4", "name": "d"}, "text": "free chat is not kept"},
]  # fmt: skip


class FaultyGpu(ToneEngine):
    """The tone engine standing in for F5 on a GPU whose context dies on 'CRASH'."""

    def __init__(self) -> None:
        super().__init__(ToneOptions(seconds_per_char=0.02))

    def synthesize(self, text: str, voice: str) -> Iterator[np.ndarray]:
        if "CRASH" in text:
            raise torch.AcceleratorError(
                "CUDA error: an illegal memory access was encountered\n"
                "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions."
            )
        yield from super().synthesize(text, voice)


def write(tmp_path: Path, events: list[dict[str, Any]], name: str) -> Path:
    replay = tmp_path / f"{name}.jsonl"
    replay.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
    config = tmp_path / f"{name}.yaml"
    config.write_text(CONFIG.format(replay=replay, pending=tmp_path / "state/pending.json"))
    return config


def fates(logs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in logs:
        if r.get("event") == "received":
            out.setdefault(r["id"], [])
        elif r.get("event") in TERMINAL and r.get("id") in out:
            out[r["id"]].append(r)
    return out


async def test_device_fault_restarts_and_paid_messages_survive(tmp_path: Path, pulse: Any) -> None:
    config = load_config(write(tmp_path, EVENTS, "first"))
    daemon = Daemon(config, engine_factory=FaultyGpu, shutdown_grace_s=10.0)
    api = ControlApi(daemon, config.api, None)
    await api.start()
    try:
        with capture_logs() as logs:
            code = await asyncio.wait_for(daemon.run(), 60)
        assert code == EXIT_RESTART == 75
        base = f"http://127.0.0.1:{api.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/healthz") as resp:
                health = await resp.json()
                # stopping for the restart, and why
                assert resp.status == 503 and health["status"] == "stopping"
                assert "AcceleratorError" in health["reasons"]["engine"]
                assert "illegal memory access" in health["reasons"]["engine"]
            async with http.get(base + "/status") as resp:
                status = await resp.json()
                engine = status["engine"]
                assert "restarting" in status["health"]["engine"]
            async with http.get(base + "/metrics") as resp:
                metrics = await resp.text()
    finally:
        await api.stop()
    assert engine["speaking"] == "fallback" and engine["engine"] == "espeak"
    assert engine["primary"] == "tone" and engine["fallback"] == "espeak" and engine["fatal"]
    assert 'ishowtts_engine_speaking{engine="espeak",role="fallback"} 1.0' in metrics
    assert "ishowtts_engine_device_lost 1.0" in metrics

    events = [r["event"] for r in logs]
    assert "engine_device_lost" in events and "engine_fallback" in events
    assert events.index("engine_fallback") < events.index("restarting")
    first = fates(logs)
    assert len(first) == 5 and all(len(f) == 1 for f in first.values()), first
    by_kind = {f[0]["kind"]: f[0] for f in first.values()}
    saved = {i for i, f in first.items() if f[0].get("rule") == "saved"}
    assert {by_kind[k]["id"] for k in ("super_chat", "guard", "gift")} == saved
    assert by_kind["danmaku"]["event"] == "removed" and by_kind["danmaku"]["rule"] == "shutdown"
    # the message that hit the fault was read by the fallback, not failed
    assert by_kind["system"]["event"] in ("spoken", "removed")
    assert "failed" not in Counter(f[0]["event"] for f in first.values())
    state = tmp_path / "state/pending.json"
    assert {e["id"] for e in json.loads(state.read_text())["events"]} == saved

    # -- the restart: a healthy engine, nothing new from chat; the saved ones are read --------
    after = {
        "t": 0,
        "kind": "danmaku",
        "user": {"id": "5", "name": "e"},
        "text": "after",
        "id": "x",
    }
    config = load_config(write(tmp_path, [after], "second"))
    daemon = Daemon(config, until_idle=True, shutdown_grace_s=10.0)
    with capture_logs() as logs:
        assert await asyncio.wait_for(daemon.run(), 60) == 0
    assert {r["id"] for r in logs if r.get("event") == "restored"} == saved
    second = fates(logs)
    assert len(second) == 4 and saved < set(second)  # the same ids, received again
    assert all([x["event"] for x in f] == ["spoken"] for f in second.values()), second
    assert not state.exists() and pending.load(state) == []
