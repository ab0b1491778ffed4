"""/healthz tells the truth: ``degraded`` (503, with the part and the reason) while the engine
fails every message, the player has no output stream, a connector has given up or the log
cannot be written; ``ok`` again once the part heals. A real Daemon and ControlApi (tone engine,
PulseAudio null sink); the disk-full case runs the daemon as a process with stderr on
/dev/full."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from ishowtts.control.health import Health
from ishowtts.engines import Engine, EngineError
from ishowtts.engines.tone import ToneEngine
from tests.servers.control import Running, serve
from tests.servers.util import until

pytestmark = pytest.mark.audio
ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
engine: {{type: tone}}
connectors: {connectors}
player: {{device: pulse, lookahead_s: 0.5}}
filters: {{rate: null}}
dedupe: {{window_s: 0.001}}
api: {{host: 127.0.0.1, port: {port}}}
"""


class FailingTone(ToneEngine):
    """The tone engine, except that any text with "boom" in it fails as a broken GPU would."""

    def synthesize(self, text: str, voice: str) -> Iterator[np.ndarray]:
        if "boom" in text:
            raise EngineError("CUDA error: an illegal memory access was encountered")
        return super().synthesize(text, voice)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    connectors: str = "[]",
    engine_factory: Callable[[], Engine] | None = None,
) -> AsyncIterator[Running]:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(connectors=connectors, port=0))
    async with serve(path, engine_factory=engine_factory) as r:
        yield r


def test_health_merges_reports_and_checks() -> None:
    health = Health()
    assert health.problems() == {}
    state: dict[str, str | None] = {"why": None}
    health.add_check("player", lambda: state["why"])
    health.add_check("broken", lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    health.report("engine", "3 failed")
    state["why"] = "no stream"
    assert health.problems() == {
        "broken": "health check failed: ZeroDivisionError('division by zero')",
        "engine": "3 failed",
        "player": "no stream",
    }
    health.clear("engine")
    state["why"] = None
    assert list(health.problems()) == ["broken"]


async def test_an_engine_failing_every_message_is_degraded_until_one_is_spoken(
    tmp_path: Path, pulse: Any
) -> None:
    async with running(tmp_path, engine_factory=FailingTone) as r:
        for i in range(3):
            status, _, _ = await r.call("POST", "/say", {"text": f"boom {i}"})
            assert status == 202
        await until(lambda: r.daemon.ledger.summary().get("failed", 0) == 3, 10)
        status, body, _ = await r.call("GET", "/healthz")
        assert status == 503 and body["status"] == "degraded"
        assert "illegal memory access" in body["reasons"]["engine"]
        _, metrics, _ = await r.call("GET", "/metrics")
        assert 'ishowtts_degraded{part="engine"} 1.0' in metrics
        _, status_body, _ = await r.call("GET", "/status")
        assert "engine" in status_body["health"]

        await r.call("POST", "/say", {"text": "fine now"})
        await until(lambda: r.daemon.ledger.summary().get("spoken", 0) == 1, 10)
        status, body, _ = await r.call("GET", "/healthz")
        assert (status, body) == (200, {"status": "ok"})


class HangingTone(ToneEngine):
    """The tone engine, except that a text with "hang" in it never returns until released, as
    a wedged GPU would."""

    release = threading.Event()

    def synthesize(self, text: str, voice: str) -> Iterator[np.ndarray]:
        if "hang" in text:
            self.release.wait(30)
        return super().synthesize(text, voice)


async def test_an_engine_hung_in_a_call_is_degraded_not_ok(
    tmp_path: Path, pulse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog is withheld while one utterance synthesises past the stall limit; /healthz
    says so too (it answered 200 while the engine hung), and heals when the engine does."""
    monkeypatch.setattr("ishowtts.app.health_checks.SYNTH_STALL_S", 0.5)
    HangingTone.release.clear()
    try:
        async with running(tmp_path, engine_factory=HangingTone) as r:
            assert (await r.call("GET", "/healthz"))[0] == 200
            await r.call("POST", "/say", {"text": "hang here"})
            await until(lambda: r.daemon.stall.reason is not None, 10, "the stall")
            status, body, _ = await r.call("GET", "/healthz")
            assert status == 503 and body["status"] == "degraded"
            assert "synthesis stalled" in body["reasons"]["engine"]
            assert not r.daemon.stall()  # what the watchdog feeder asks
            HangingTone.release.set()
            await until(lambda: r.daemon.ledger.summary().get("spoken", 0) == 1, 10, "spoken")
            await until(lambda: r.daemon.stall.reason is None, 10, "healed")
            assert (await r.call("GET", "/healthz"))[0] == 200
    finally:
        HangingTone.release.set()


async def test_a_connector_that_gave_up_is_degraded(tmp_path: Path, pulse: Any) -> None:
    missing = tmp_path / "nowhere.jsonl"
    async with running(tmp_path, connectors=f"[{{type: replay, path: {missing}}}]") as r:
        await until(lambda: str(r.daemon.connectors[0].state) == "failed")
        status, body, _ = await r.call("GET", "/healthz")
        assert status == 503 and body["status"] == "degraded"
        assert "gave up" in body["reasons"]["connector:replay"]


async def test_a_player_without_a_stream_is_degraded(
    tmp_path: Path, pulse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sound server unreachable when the daemon starts: the stream cannot open.
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path / 'no-such-pulse'}")
    async with running(tmp_path) as r:
        status, body, _ = await r.call("GET", "/healthz")
        assert status == 503 and body["status"] == "degraded"
        assert "no output stream" in body["reasons"]["player"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data, method="POST" if data else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_full_disk_under_the_log_neither_stops_intake_nor_hides(
    tmp_path: Path, pulse: Any
) -> None:
    port = _free_port()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(connectors="[]", port=port) + "log: {format: json}\n")
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC
        proc = subprocess.Popen(
            [sys.executable, "-m", "ishowtts", "run", "-c", str(config)],
            cwd=ROOT,
            # Buffered stderr (as a shell gives it), so unwritten log bytes wait in it at exit:
            # that final flush failing made the exit status 120.
            env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
            stdout=subprocess.DEVNULL,
            stderr=full,
        )
    try:
        deadline = time.monotonic() + 60
        health: tuple[int, Any] = (0, None)
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError):
                health = _get(port, "/healthz")
                if health[1].get("status") not in (None, "starting"):
                    break
            time.sleep(0.1)
        assert proc.poll() is None, f"the daemon exited with {proc.returncode}"
        status, body = health
        assert status == 503 and body["status"] == "degraded", health
        assert "No space left on device" in body["reasons"]["log"]

        for i in range(3):
            assert _get(port, "/say", {"text": f"still reading chat {i}"})[0] == 202
        while time.monotonic() < deadline:
            ledger = _get(port, "/status")[1]["ledger"]
            if ledger.get("spoken", 0) == 3:
                break
            time.sleep(0.1)
        assert ledger.get("spoken", 0) == 3, ledger
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


async def test_ready_only_once_the_output_plays(tmp_path: Path, pulse: Any) -> None:
    """Ready means a line is heard at once: the fresh PulseAudio stream has settled (it plays
    silence for up to ~1.6 s after opening) before the daemon says ready, not after."""
    with capture_logs() as logs:
        async with running(tmp_path) as r:
            assert r.daemon.player is not None
            events = [ln["event"] for ln in logs]
            assert "player_stream_settled" in events, "ready before the output plays"
            assert events.index("player_stream_settled") < events.index("ready")
