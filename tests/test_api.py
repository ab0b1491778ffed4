"""The control API end to end over real HTTP, driving a real Daemon (tone engine, the real
player on the PulseAudio null sink)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ishowtts.config import ApiConfig
from ishowtts.control.api import ApiError, resolve_token
from ishowtts.control.http import is_loopback
from tests.servers.control import Running, serve
from tests.servers.util import until

pytestmark = pytest.mark.audio

TOKEN = "a-long-enough-test-token-0123456789"

CONFIG = """\
engine: {{type: tone}}
connectors: []
player: {{device: pulse, lookahead_s: 1.0}}
filters:
  block_keywords: [{blocked}]
api: {{host: "{host}", port: 0, token_env: ISHOWTTS_TEST_TOKEN}}
"""


def write_config(path: Path, host: str = "127.0.0.1", blocked: str = "spam") -> Path:
    path.write_text(CONFIG.format(host=host, blocked=blocked))
    return path


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, host: str = "127.0.0.1", token: str | None = None
) -> AsyncIterator[Running]:
    env = {"ISHOWTTS_TEST_TOKEN": token} if token else {}
    async with serve(write_config(tmp_path / "config.yaml", host), env) as r:
        yield r


async def test_health_status_and_metrics(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        status, body, _ = await r.call("GET", "/healthz")
        assert (status, body) == (200, {"status": "ok"})
        status, body, _ = await r.call("GET", "/status")
        assert status == 200
        assert body["ready"] is True
        assert body["engine"]["state"] == "ready" and body["engine"]["engine"] == "tone"
        assert body["connectors"]["http"]["state"] == "connected"
        assert {"queue", "player", "ledger"} <= set(body)
        status, text, resp = await r.call("GET", "/metrics")
        assert status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        assert 'ishowtts_queue_depth{kind="danmaku"} 0.0' in text
        assert "ishowtts_time_to_first_audio_seconds_bucket" in text
        assert (
            'ishowtts_connector_state{connector="http",platform="http",state="connected"} 1.0'
            in text
        )
        assert "ishowtts_ready 1.0" in text


async def test_say_is_spoken_and_counted(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        status, body, _ = await r.call("POST", "/say", {"text": "hello from the api", "user": "op"})
        assert status == 202 and body["accepted"] is True
        event_id = body["id"]
        ledger = r.daemon.ledger
        await until(lambda: ledger.terminal_counts[("system", "spoken")] == 1, 20, "spoken")
        assert event_id not in ledger.open
        _, text, _ = await r.call("GET", "/metrics")
        assert 'ishowtts_events_total{kind="system",state="spoken"} 1.0' in text
        assert "ishowtts_time_to_first_audio_seconds_count 1.0" in text
        assert "ishowtts_synth_rtf_count 1.0" in text
        # The filters apply to /say like any chat: a blocked keyword is dropped, with its rule.
        status, body, _ = await r.call("POST", "/say", {"text": "buy spam now"})
        assert status == 202
        await until(lambda: ledger.terminal_counts[("system", "dropped")] == 1, 20, "dropped")


@pytest.mark.parametrize(
    ("path", "raw", "status", "error"),
    [
        ("/say", b"{not json", 400, "body is not valid JSON"),
        ("/say", b"[1, 2]", 400, "body must be a JSON object"),
        ("/say", b"{}", 422, "invalid body"),
        ("/say", b'{"text": "   "}', 422, "invalid body"),
        ("/say", b'{"text": "hi", "voice": "x"}', 422, "invalid body"),
        ("/say", b'{"text": 5}', 422, "invalid body"),
        ("/volume", b'{"volume": 2.5}', 422, "invalid body"),
        ("/volume", b'{"volume": NaN}', 422, "invalid body"),
        ("/volume", b'{"volume": "loud"}', 422, "invalid body"),
        ("/skip", b'{"now": true}', 422, "invalid body"),
        ("/clear", b'{"reason": ""}', 422, "invalid body"),
        ("/reading", b'{"mode": "loud"}', 422, "invalid body"),
        ("/reading", b'{"enabled": "maybe"}', 422, "invalid body"),
    ],
)
async def test_bad_bodies_are_rejected_with_json_errors(
    tmp_path: Path, pulse: Any, path: str, raw: bytes, status: int, error: str
) -> None:
    async with running(tmp_path) as r:
        got, body, resp = await r.call("POST", path, raw=raw)
        assert got == status
        assert resp.content_type == "application/json"
        assert body["error"] == error
        assert r.daemon.ledger.summary()["received"] == 0  # nothing reached the pipeline


async def test_size_limit_methods_and_unknown_paths(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        limit = r.daemon.config.api.max_body_bytes
        big = json.dumps({"text": "x" * (limit + 10)}).encode()
        status, body, _ = await r.call("POST", "/say", raw=big)
        assert status == 413 and body["error"] == "body too large"
        status, body, resp = await r.call("GET", "/say")
        assert status == 405 and "POST" in resp.headers["Allow"] and "error" in body
        status, body, _ = await r.call("GET", "/nowhere")
        assert status == 404 and body == {"error": "no such endpoint"}


async def test_operator_actions_reach_the_player_and_queue(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        player = r.daemon.player
        assert player is not None
        status, body, _ = await r.call("POST", "/volume", {"volume": 0.5})
        assert (status, body) == (200, {"volume": 0.5}) and player.volume == 0.5
        status, body, _ = await r.call("POST", "/pause")
        assert (status, body) == (200, {"paused": True}) and player.state == "paused"
        status, body, _ = await r.call("POST", "/resume", {})
        assert (status, body) == (200, {"paused": False}) and player.state != "paused"
        status, body, _ = await r.call("POST", "/skip")
        assert (status, body) == (200, {"skipped": None})  # nothing playing
        status, body, _ = await r.call("POST", "/clear", {"reason": "test"})
        assert (status, body) == (200, {"cleared": 0})
        status, body, _ = await r.call("POST", "/reading", {"mode": "paid_only"})
        assert (status, body) == (200, {"reading": {"mode": "paid_only", "enabled": True}})
        _, body, _ = await r.call("POST", "/reading", {"enabled": False})
        assert body["reading"]["enabled"] is False
        _, status_body, _ = await r.call("GET", "/status")
        assert status_body["reading"] == {"mode": "paid_only", "enabled": False, "viewer_voices": 0}


async def test_reload_rejects_a_broken_config_and_keeps_the_old_one(
    tmp_path: Path, pulse: Any
) -> None:
    async with running(tmp_path) as r:
        path = tmp_path / "config.yaml"
        before = r.daemon.config
        path.write_text(path.read_text() + "queue: {max_items: 0}\n")
        status, body, _ = await r.call("POST", "/reload")
        assert status == 422
        assert body["error"] == "config rejected; the running config is kept"
        assert any("queue.max_items" in p and "config.yaml:" in p for p in body["detail"])
        assert r.daemon.config is before
        write_config(path, blocked="eggs")
        status, body, _ = await r.call("POST", "/reload")
        assert (status, body) == (200, {"reloaded": True, "changed": ["filters.block_keywords"]})
        assert r.daemon.config.filters.block_keywords == ["eggs"]


async def test_off_loopback_needs_a_token(tmp_path: Path, pulse: Any) -> None:
    cfg = ApiConfig(host="0.0.0.0", token_env="ISHOWTTS_TEST_TOKEN")
    with pytest.raises(ApiError, match="ISHOWTTS_TEST_TOKEN"):
        resolve_token(cfg, {})
    assert resolve_token(cfg, {"ISHOWTTS_TEST_TOKEN": TOKEN}) == TOKEN
    assert resolve_token(ApiConfig(), {}) is None
    from_file = ApiConfig(host="0.0.0.0", token=TOKEN)
    assert resolve_token(from_file, {}) == TOKEN
    assert resolve_token(from_file, {"ISHOWTTS_TOKEN": "env-" + TOKEN}) == "env-" + TOKEN
    assert TOKEN not in repr(from_file)  # never printed with the config
    async with running(tmp_path, host="0.0.0.0", token=TOKEN) as r:
        status, body, resp = await r.call("GET", "/status")
        assert status == 401 and body["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        status, _, _ = await r.call("POST", "/skip", Authorization="Bearer wrong-token")
        assert status == 401
        status, _, _ = await r.call("GET", "/status", Authorization=f"Basic {TOKEN}")
        assert status == 401
        status, body, _ = await r.call("GET", "/status", Authorization=f"Bearer {TOKEN}")
        assert status == 200 and body["ready"] is True
        status, _, _ = await r.call("POST", "/say", {"text": "hi"}, Authorization="Bearer x")
        assert status == 401 and r.daemon.ledger.summary()["received"] == 0
        status, body, _ = await r.call("GET", "/healthz")  # probes need no token
        assert (status, body) == (200, {"status": "ok"})


async def test_browser_requests_are_refused(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        status, body, _ = await r.call(
            "POST", "/say", {"text": "from a web page"}, Origin="http://evil.example"
        )
        assert status == 403 and "error" in body
        assert r.daemon.ledger.summary()["received"] == 0


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.53")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("::")
    assert not is_loopback("192.168.1.10") and not is_loopback("tts.local")


def test_gpu_memory_is_exported_when_torch_uses_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter
    from types import SimpleNamespace

    from ishowtts.control.metrics import Metrics

    cuda = SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        device_count=lambda: 1,
        memory_allocated=lambda i: 1_000,
        memory_reserved=lambda i: 4_096,
        max_memory_allocated=lambda i: 2_000,
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    ready = asyncio.Event()
    ready.set()
    daemon = SimpleNamespace(
        ledger=SimpleNamespace(
            received_by_kind=Counter({"danmaku": 3}),
            terminal_counts=Counter({("danmaku", "spoken"): 2, ("danmaku", "dropped"): 1}),
            rules=Counter({"dropped:blocked_keyword": 1}),
            open={},
        ),
        scheduler=SimpleNamespace(depth_by_kind=lambda: {"gift": 2}),
        connectors=[],
        worker=SimpleNamespace(
            state="synthesizing", engine=None, speaking="primary", failovers=0, fatal=None
        ),
        player=None,
        ready=ready,
        health=SimpleNamespace(problems=lambda: {}),
        started_at=0.0,
    )
    text = Metrics(daemon).render().decode()  # type: ignore[arg-type]
    assert 'ishowtts_gpu_memory_allocated_bytes{device="0"} 1000.0' in text
    assert 'ishowtts_gpu_memory_reserved_bytes{device="0"} 4096.0' in text
    assert 'ishowtts_events_total{kind="danmaku",state="dropped"} 1.0' in text
    assert 'ishowtts_event_rules_total{rule="blocked_keyword",state="dropped"} 1.0' in text
    assert 'ishowtts_queue_depth{kind="gift"} 2.0' in text
    assert 'ishowtts_engine_state{state="synthesizing"} 1.0' in text
