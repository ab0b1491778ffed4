"""The bilibili connector against a local server speaking the live danmaku protocol."""

from __future__ import annotations

import json
import random
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from ishowtts.connectors import ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.bilibili import BilibiliConnector, BilibiliOptions
from ishowtts_plugins.bilibili import client as client_module
from ishowtts_plugins.bilibili.api import Target
from tests.servers import bilibili_samples as s
from tests.servers.bilibili import BiliServer, notice_frame, pack
from tests.servers.util import running, until

CTX = ConnectorContext(base_dir=__import__("pathlib").Path("."))
FAST = {
    "heartbeat_s": 0.05,
    "auth_timeout_s": 0.3,
    "read_timeout_s": 2.0,
    "backoff_initial_s": 0.02,
    "backoff_max_s": 0.1,
}


@pytest.fixture
async def server() -> AsyncIterator[BiliServer]:
    srv = await BiliServer().start()
    yield srv
    await srv.stop()


@pytest.fixture(autouse=True)
def no_http(monkeypatch: pytest.MonkeyPatch) -> None:
    async def forbidden(*_a: Any) -> Target:
        raise AssertionError("an endpoint override must not make HTTP calls")

    monkeypatch.setattr(client_module, "fetch_target", forbidden)


def connector(url: str, **extra: Any) -> BilibiliConnector:
    opts = BilibiliOptions(room=s.ROOM, endpoint=url, token="tok", uid=0, **{**FAST, **extra})
    return BilibiliConnector("bili", opts, CTX)


def events(items: list[Any]) -> list[ChatEvent]:
    return [i for i in items if isinstance(i, ChatEvent)]


async def test_auth_heartbeat_and_every_kind(server: BiliServer) -> None:
    conn = connector(server.url)
    with capture_logs() as logs:
        async with running(conn) as r:
            await server.wait_authed()
            auth = server.auths[0]
            assert auth["roomid"] == s.ROOM and auth["protover"] == 3 and auth["key"] == "tok"
            assert auth["platform"] == "web" and auth["type"] == 2 and auth["uid"] == 0
            await until(lambda: conn.state == ConnectorState.CONNECTED)
            commands = [
                s.LOG_IN_NOTICE, s.LIVE, s.danmu("你好", dmid=1), s.danmu("[doge]", dmid=2, sticker=True),
                s.super_chat(sc_id=10), s.super_chat(sc_id=10, jpn=True), s.send_gift(combo="c1"),
                s.combo_send("c1"), s.guard_buy(uid=60), s.user_toast(uid=60), s.user_toast_v2(),
                s.interact(1), s.interact(2), s.interact_v2(3), s.recall(1), s.super_chat_delete(10),
                s.WATCHED, s.NEW_CMD, s.NEW_CMD, s.LOG_IN_NOTICE, s.PREPARING,
            ]  # fmt: skip
            for i, ver in enumerate((0, 2, 3) * 7):
                await server.push([commands[i]], ver)
            await server.push(commands[:4], 3)  # one brotli frame, several packets
            await until(lambda: conn.counters["notice:login_notice"] >= 3, what="last frame")
            await until(lambda: conn.counters["heartbeat_replies"] >= 2, what="heartbeat replies")
    kinds = [i.kind if isinstance(i, ChatEvent) else "retract" for i in r.items]
    assert kinds == [
        Kind.DANMAKU, Kind.DANMAKU, Kind.SUPER_CHAT, Kind.GIFT, Kind.GUARD, Kind.GUARD,
        Kind.ENTER, Kind.FOLLOW, Kind.SHARE, "retract", "retract",
    ]  # fmt: skip
    assert server.heartbeats >= 2 and not server.bad_client_packets
    c = conn.counters
    assert c["unknown"] == 2 and c["unknown:SOMETHING_NEW_FROM_2030"] == 2 and c["ignored"] == 1
    assert c["duplicate"] >= 3 + 2  # JPN, combo, toast; then the re-sent danmaku
    assert c["malformed"] == 0 and c["reconnects"] == 0
    masked = [e for e in logs if e["event"] == "bilibili_names_masked"]
    assert len(masked) == 1  # one warning however often the server says it
    assert sum(e["event"] == "bilibili_live_status" for e in logs) == 3  # LIVE x2, PREPARING
    assert all("tok" not in json.dumps(e, default=str) for e in logs)


async def test_server_killed_and_restarted_mid_stream(server: BiliServer) -> None:
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_authed()
        await server.push([s.danmu(f"m{i}", dmid=100 + i) for i in range(5)], 2)
        await until(lambda: len(r.items) == 5)
        await server.kill()
        await until(lambda: conn.state == ConnectorState.RECONNECTING, what="reconnecting")
        await server.start()  # same port
        await server.wait_authed()
        await until(lambda: conn.state == ConnectorState.CONNECTED)
        # A relay that replays its buffer after a restart: the repeats are recognised.
        await server.push([s.danmu(f"m{i}", dmid=100 + i) for i in range(3, 10)], 3)
        await until(lambda: len(r.items) >= 10)
        await server.push([s.danmu("last", dmid=999)], 0)
        await until(lambda: len(r.items) >= 11)
    texts = [e.text for e in events(r.items)]
    assert texts == [f"m{i}" for i in range(10)] + ["last"]
    assert conn.counters["reconnects"] >= 1 and len(server.auths) >= 2
    assert ConnectorState.RECONNECTING in r.states and r.states.count(ConnectorState.CONNECTED) >= 2


async def test_server_that_never_answers_auth() -> None:
    srv = await BiliServer(auth="silent").start()
    try:
        conn = connector(srv.url)
        async with running(conn) as r:
            await until(lambda: len(srv.auths) >= 3, what="3 auth attempts")
            assert conn.state in (ConnectorState.RECONNECTING, ConnectorState.CONNECTING)
        assert ConnectorState.CONNECTED not in r.states
        assert conn.counters["auth_failures"] >= 2 and conn.counters["reconnects"] >= 2
        assert conn.backoff.attempt >= 2  # the delay grows; never reset without a good auth
    finally:
        await srv.stop()


async def test_refused_auth_ends_failed() -> None:
    srv = await BiliServer(auth="refuse").start()
    try:
        conn = connector(srv.url, max_auth_failures=2)
        async with running(conn):
            await until(lambda: conn.state == ConnectorState.FAILED, what="failed")
        assert len(srv.auths) == 2 and conn.counters["auth_failures"] == 2
    finally:
        await srv.stop()


def garbage(rng: random.Random, i: int) -> bytes | str:
    """Ten kinds of broken frame, each worth exactly one 'malformed'."""
    k = i % 10
    if k == 0:
        return rng.randbytes(rng.randint(0, 15))  # shorter than a header (or empty)
    if k == 1:
        return struct.pack(">IHHII", 16 + rng.randint(10, 999), 16, 0, 5, 0) + b"{}"  # overrun
    if k == 2:
        return pack(rng.randbytes(rng.randint(1, 64)), 5, 2)  # not zlib
    if k == 3:
        return pack(rng.randbytes(rng.randint(1, 64)), 5, 3)  # not brotli (or not packets)
    if k == 4:
        return pack(rng.randbytes(rng.randint(1, 40)) + b"\xff", 5, 0)  # not JSON / not UTF-8
    if k == 5:
        return pack(json.dumps(rng.choice([[1], "x", 3, None])).encode(), 5, 0)  # not an object
    if k == 6:
        return pack(json.dumps({"cmd": "DANMU_MSG", "info": rng.randint(0, 9)}).encode(), 5, 0)
    if k == 7:
        return "text frame " + str(i)  # the protocol is binary only
    if k == 8:
        return pack(b"{}", 5, rng.choice([4, 7, 100]))  # unknown protover
    return pack(zlib.compress(pack(b'{"cmd": "SEND_GIFT", "data": 7}', 5, 0)), 5, 2)


async def test_ten_thousand_garbage_frames(server: BiliServer) -> None:
    conn = connector(server.url)
    rng = random.Random(7)
    with capture_logs() as logs:
        async with running(conn) as r:
            await server.wait_authed()
            for i in range(10_000):
                await server.send_frame(garbage(rng, i))
            await server.push([s.danmu("still alive", dmid=5)], 3)
            await until(lambda: len(r.items) == 1, timeout=30, what="the danmaku after garbage")
            assert conn.state == ConnectorState.CONNECTED
    assert conn.counters["malformed"] == 10_000
    assert conn.counters["reconnects"] == 0 and events(r.items)[0].text == "still alive"
    # Logged, but not 10,000 times.
    assert 10 <= sum(e["event"] == "bilibili_malformed_frame" for e in logs) <= 30


async def test_fresh_token_and_server_list_each_attempt(
    server: BiliServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    async def fake_fetch(room: int, creds: Any) -> Target:
        calls.append(room)
        # The first list starts with a dead server: the next one is tried.
        dead = "ws://127.0.0.1:9/sub"
        return Target(s.ROOM, (dead, server.url), f"token-{len(calls)}", 0, "buvid")

    monkeypatch.setattr(client_module, "fetch_target", fake_fetch)
    conn = BilibiliConnector(
        "bili", BilibiliOptions(room="https://live.bilibili.com/123?x=1", **FAST), CTX
    )
    async with running(conn):
        await server.wait_authed()
        await server.kill()
        await server.start()
        await server.wait_authed()
    assert calls[:2] == [123, 123]
    assert [a["key"] for a in server.auths[:2]] == ["token-1", "token-2"]
    assert server.auths[0]["buvid"] == "buvid"


def test_options_validation() -> None:
    assert BilibiliOptions(room="https://live.bilibili.com/21452505").room == 21452505
    assert BilibiliOptions(room="  6 ").room == 6
    for bad in (
        {"room": "abc"},
        {"room": 0},
        {"room": 1, "endpoint": "http://x"},
        {"room": 1, "nope": 1},
    ):
        with pytest.raises(ValidationError):
            BilibiliOptions(**bad)


async def test_retraction_items_reach_the_consumer(server: BiliServer) -> None:
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_authed()
        await server.send_frame(notice_frame([s.danmu("oops", dmid=77), s.recall(77)], 3))
        await until(lambda: len(r.items) == 2)
    assert isinstance(r.items[1], Retraction) and r.items[1].raw_ids == (r.items[0].raw_id,)
