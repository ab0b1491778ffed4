"""The control API against hostile clients, over real sockets: idle and trickling connections,
a connection flood, bodies that used to make it answer 500 with a traceback, and clients that
leave mid-request. The server is the real ControlApi driving a real Daemon (tone engine,
PulseAudio null sink)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from ishowtts.app.daemon import Daemon
from ishowtts.config import load_config
from ishowtts.control.api import ControlApi
from tests.servers.control import Running, serve
from tests.servers.util import until
from tests.test_api import TOKEN

pytestmark = pytest.mark.audio

CONFIG = """\
engine: {{type: tone}}
connectors: []
player: {{device: pulse, lookahead_s: 1.0}}
api:
  host: 127.0.0.1
  port: 0
  token_env: ISHOWTTS_TEST_TOKEN
  idle_timeout_s: {idle}
  body_timeout_s: {body}
  max_connections: 4
"""


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, token: str | None = None, idle: float = 0.5, body: float = 0.5
) -> AsyncIterator[Running]:
    """Short deadlines by default; tests that hold connections open on purpose pass long ones
    (a loaded machine must not close them before the test looks)."""
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(idle=idle, body=body))
    async with serve(path, {"ISHOWTTS_TEST_TOKEN": token} if token else {}) as r:
        yield r


async def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def failures(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [ln for ln in logs if ln["log_level"] in ("error", "critical", "exception")]


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000 + b"]" * 5000,  # RecursionError in json.loads
        b'{"volume": ' + b"[" * 40 + b"]" * 40 + b"}",  # deeper than any body of ours
        b'{"volume": ' + b"7" * 5000 + b"}",  # past Python's int digit limit: ValueError
        b'{"text": "\xff\xfe"}',  # not UTF-8
    ],
    ids=["deep-array", "deep-field", "5000-digits", "not-utf8"],
)
async def test_hostile_bodies_get_400_not_500(tmp_path: Path, pulse: Any, raw: bytes) -> None:
    async with running(tmp_path) as r:
        with capture_logs() as logs:
            status, body, resp = await r.call("POST", "/volume", raw=raw)
        assert status == 400, body
        assert resp.content_type == "application/json"
        assert body["error"] == "body is not valid JSON"
        assert not failures(logs)
        assert r.daemon.player is not None and r.daemon.player.volume == 1.0


async def test_a_non_utf8_authorization_header_is_unauthorized(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, token=TOKEN) as r:
        assert r.api.port is not None
        with capture_logs() as logs:
            answer = await raw_exchange(
                r.api.port,
                b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                b"Authorization: Bearer \xff\xfe\xc3(\r\n\r\n",
            )
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert not failures(logs)
        status, _, _ = await r.call("GET", "/status", Authorization=f"Bearer {TOKEN}")
        assert status == 200


async def test_a_client_leaving_mid_body_is_logged_without_a_traceback(
    tmp_path: Path, pulse: Any
) -> None:
    async with running(tmp_path, body=30) as r:
        assert r.api.port is not None
        with capture_logs() as logs:
            _, writer = await asyncio.open_connection("127.0.0.1", r.api.port)
            writer.write(
                b"POST /say HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 200\r\n\r\n{"text": "half'
            )
            await writer.drain()
            await until(lambda: r.api.connections == 1)
            writer.close()
            await until(lambda: any(ln["event"] == "api_client_gone" for ln in logs))
        assert not failures(logs)
        assert r.daemon.ledger.summary()["received"] == 0


async def test_idle_and_trickling_connections_are_cut_off(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        port = r.api.port
        assert port is not None
        # Connects and says nothing: closed after idle_timeout_s, not held forever.
        assert await raw_exchange(port, b"") == b""
        assert r.api.idle_closed == 1
        # Sends its headers a byte at a time: the header deadline does not move with each byte.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        closed = asyncio.ensure_future(reader.read())
        request = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
        for byte in request:
            if closed.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.01)
        # The server closed it: an end of stream, or a reset when it closed with bytes of ours
        # still unread (both seen; the kernel chooses).
        assert closed.done(), "a trickling client kept its connection"
        error = closed.exception()
        assert isinstance(error, ConnectionResetError) or (error is None and closed.result() == b"")
        writer.close()
        # Complete headers, then a body that never finishes: 408 after body_timeout_s.
        answer = await raw_exchange(
            port,
            b"POST /say HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{",
        )
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "body too slow"
        await until(lambda: r.api.connections == 0)


async def test_silent_sockets_cannot_lock_the_operator_out(tmp_path: Path, pulse: Any) -> None:
    """At the cap, a connection that has sent no complete request holds no place: the
    newcomer takes the place of the one idle longest (it held the cap before auth)."""
    async with running(tmp_path, idle=30) as r:
        port = r.api.port
        assert port is not None
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await until(lambda: r.api.connections == 4)
        for _ in range(3):  # the operator, again and again, however many sockets sit there
            status, body, _ = await r.call("GET", "/healthz")
            assert status == 200 and body["status"] == "ok"
        # The oldest silent ones were closed for them.
        assert await asyncio.wait_for(held[0][0].read(), 10) == b""
        _, body, _ = await r.call("GET", "/status")
        assert body["api_connections"]["evicted"] >= 1
        assert body["api_connections"]["refused"] == 0
        for _, writer in held:
            writer.close()


async def test_connections_past_the_cap_are_refused_when_all_are_busy(
    tmp_path: Path, pulse: Any
) -> None:
    """Only when every connection is busy with a request (here: live event streams) is a
    newcomer turned away, with a 503; the API recovers once they end."""
    async with running(tmp_path, idle=30) as r:
        port = r.api.port
        assert port is not None
        streams = [await r.session.get(r.base + "/events").__aenter__() for _ in range(4)]
        assert all(s.status == 200 for s in streams)
        await until(lambda: r.api.connections == 4 and not r.api.server.idle)
        answer = await raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": "too many connections"}
        assert r.api.refused == 1
        for stream in streams:
            stream.close()
        await until(lambda: r.daemon.feed.subscribers == 0)
        status, body, _ = await r.call("GET", "/healthz")
        assert status == 200 and body["status"] == "ok"


def this_machines_address() -> str | None:
    """An IPv4 address of this machine off loopback (to connect from as a remote peer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: only the route is looked up
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


async def test_remote_streams_leave_the_console_its_place(tmp_path: Path, pulse: Any) -> None:
    """Held /events streams from off loopback (16 made the console's live view 503): one
    address keeps a few, its oldest ending as it opens more; the rest is loopback's."""
    address = this_machines_address()
    if address is None:
        pytest.skip("no address off loopback on this machine")
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(idle=30, body=10).replace("127.0.0.1", "0.0.0.0").replace(
        "max_connections: 4", "max_connections: 64"))  # fmt: skip
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with serve(path, {"ISHOWTTS_TEST_TOKEN": TOKEN}) as r:
        remote = f"http://{address}:{r.api.port}/events"
        held = []
        for _ in range(16):
            resp = await r.session.get(remote, headers=auth)
            assert resp.status == 200  # never refused: its own oldest stream makes room
            held.append(resp)
        await until(lambda: r.daemon.feed.subscribers == 4, 10, "the peer's share")
        async with r.session.get(r.base + "/events", headers=auth) as console:
            assert console.status == 200
        for resp in held:
            resp.close()


MALFORMED = [
    b"GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # duplicate Host
    b"GET /status HTTP/1.1\r\nHost: a\r\nbad header line\r\n\r\n",
    b"GET /status HTTP/1.1\r\nHost: a\x00b\r\n\r\n",  # NUL
    b"GET /status HTTP/1.1\r\nHost: a\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    b"POST /say HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /say HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
]


async def test_strangers_cannot_flood_the_log(
    tmp_path: Path, pulse: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Malformed requests logged a traceback each (200 requests: 185 KB in 0.6 s) and every
    wrong token a warning (3,000 in 0.3 s): now a few short lines per kind, then a count."""
    async with running(tmp_path, token=TOKEN) as r:
        port = r.api.port
        assert port is not None
        with capture_logs() as logs:
            for i in range(60):
                answer = await raw_exchange(port, MALFORMED[i % len(MALFORMED)])
                assert answer[:10] in (b"HTTP/1.0 4", b"HTTP/1.1 4") or answer == b"", answer[:80]
            for _ in range(100):
                status, _, _ = await r.call("GET", "/status", Authorization="Bearer wrong-token")
                assert status == 401
            for _ in range(50):
                status, _, _ = await r.call("GET", "/status", Origin="http://evil.example")
                assert status == 403
    tracebacks = [rec for rec in caplog.records if rec.exc_info or rec.name.startswith("aiohttp")]
    assert not tracebacks, tracebacks[:2]
    by_event: dict[str, int] = {}
    for line in logs:
        by_event[line["event"]] = by_event.get(line["event"], 0) + 1
    assert 1 <= by_event.get("api_bad_request", 0) <= 10, by_event
    assert 1 <= by_event.get("api_unauthorized", 0) <= 10, by_event
    assert 1 <= by_event.get("api_browser_refused", 0) <= 10, by_event
    assert sum(len(json.dumps(line)) for line in logs) < 20_000


async def test_reload_during_start_up_answers_starting(tmp_path: Path, pulse: Any) -> None:
    """A reload before the daemon is ready would tell systemd READY early: refused with 503."""
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG.format(idle=10, body=10).replace(
            "engine: {type: tone}", "engine: {type: tone, warmup_steps: 100, warmup_step_s: 0.05}"
        )
    )
    config = load_config(path)
    daemon = Daemon(config, shutdown_grace_s=2.0)
    api = ControlApi(daemon, config.api, None)
    await api.start()
    task = asyncio.create_task(daemon.run())
    try:
        url = f"http://127.0.0.1:{api.port}/reload"
        async with aiohttp.ClientSession() as session, session.post(url) as resp:
            assert resp.status == 503
            assert (await resp.json())["error"] == "starting"
        assert not daemon.ready.is_set()
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
        await api.stop()
