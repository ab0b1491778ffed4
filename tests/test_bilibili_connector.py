"""The bilibili connector against a local server speaking the live danmaku protocol."""

from __future__ import annotations

import json
import random
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import brotli
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from ishowtts.connectors import ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.bilibili import BilibiliConnector, BilibiliOptions
from ishowtts_plugins.bilibili import api as api_module
from ishowtts_plugins.bilibili import client as client_module
from ishowtts_plugins.bilibili import protocol as p
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
    async def forbidden(*_a: Any) -> None:
        raise AssertionError("an endpoint override must not make HTTP calls")

    monkeypatch.setattr(api_module.WebApi, "_get", forbidden)
    for name in ("SESSDATA", "BUVID3", "BUVID4", "DEDEUSERID", "BILI_JCT"):
        monkeypatch.delenv(f"BILIBILI_{name}", raising=False)


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


# "deep": an answer nested past json's recursion limit raised RecursionError, a generic error
# never counted as a refusal: a hostile server kept the connector retrying past the limit.
@pytest.mark.parametrize("auth", ["refuse", "deep"])
async def test_refused_auth_ends_failed(auth: str) -> None:
    srv = await BiliServer(auth=auth).start()
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
    monkeypatch.undo()  # the real HTTP side, against the local server
    conn = BilibiliConnector(
        "bili",
        BilibiliOptions(
            room="https://live.bilibili.com/123?x=1", live_api=server.http_base,
            main_api=server.http_base, **FAST,
        ),
        CTX,
    )  # fmt: skip
    async with running(conn):
        await server.wait_authed()
        await server.kill()
        await server.start()
        await server.wait_authed()
    # The first server in the list is dead: the next one was used, with a fresh token each time.
    assert [a["key"] for a in server.auths[:2]] == ["token-1", "token-2"]
    assert server.auths[0]["roomid"] == 21452505 and server.auths[0]["buvid"] == "B3-FROM-SPI-infoc"
    assert not server.http_refusals, server.http_refusals
    for path, headers in server.http_calls:
        assert "Chrome/" in headers["User-Agent"], path
        if path != "/x/frontend/finger/spi":
            assert "buvid3=B3-FROM-SPI-infoc" in headers["Cookie"], path
            assert "buvid4=B4-FROM-SPI" in headers["Cookie"], path


async def test_risk_control_is_one_line_and_a_slow_retry(
    server: BiliServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()
    server.risk = [-352, -412, -352]
    opts = BilibiliOptions(
        room=123, live_api=server.http_base, main_api=server.http_base, risk_backoff_s=0.05,
        **FAST,
    )  # fmt: skip
    conn = BilibiliConnector("bili", opts, CTX)
    with capture_logs() as logs:
        async with running(conn):
            await server.wait_authed()
    assert conn.counters["risk_control"] == 3 and not server.risk
    risk = [e for e in logs if e["event"] == "bilibili_risk_control"]
    assert len(risk) == 1 and "SESSDATA" in risk[0]["hint"]  # one line for the whole streak
    waits = [e["seconds"] for e in logs if e["event"] == "bilibili_reconnect_in"]
    # Slower each time (0.05, 0.1, 0.15 s here; minutes by default), never the plain backoff.
    assert len(waits) == 3 and waits == sorted(waits) and waits[0] >= 0.05
    assert any(e["event"] == "bilibili_risk_control_cleared" for e in logs)


async def test_an_old_user_agent_is_what_the_service_refuses(server: BiliServer) -> None:
    """The local server's -352 rule is real: a request as an old client made it is refused."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        old = {"User-Agent": "Mozilla/5.0 Chrome/124.0 Safari/537.36"}
        async with http.get(f"{server.http_base}/x/frontend/finger/spi", headers=old) as resp:
            assert (await resp.json())["code"] == -352


async def test_an_oversized_http_answer_is_an_error_then_retried(
    server: BiliServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()
    server.nav_padding = 2 << 20
    opts = BilibiliOptions(room=5, live_api=server.http_base, main_api=server.http_base, **FAST)
    conn = BilibiliConnector("bili", opts, CTX)
    with capture_logs() as logs:
        async with running(conn):
            await server.wait_authed()
    errors = [e for e in logs if e["event"] == "bilibili_error"]
    assert len(errors) == 1 and "larger than" in errors[0]["error"]


async def test_missing_room_fails(server: BiliServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    server.room_exists = False
    opts = BilibiliOptions(room=5, live_api=server.http_base, main_api=server.http_base, **FAST)
    conn = BilibiliConnector("bili", opts, CTX)
    async with running(conn):
        await until(lambda: conn.state == ConnectorState.FAILED)


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


async def test_gift_v2_mirror_and_masked_names(server: BiliServer) -> None:
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_authed()
        await server.push([
            s.send_gift(name="小花花", price=100, num=3, tid="t1", combo=""),
            s.send_gift_v2([("小花花", 3, 100, "t1"), ("辣条", 2, 100, "t2")]),  # t1 again
            s.danmu_mirror("from another room", dmid=41),
            {**s.danmu("蒙面", uid=0, name="用户***", dmid=42),
             "dm_v2": s.dm_v2("42", "蒙面", uid=0, name="用户***")},
        ], 3)  # fmt: skip
        await until(lambda: conn.counters["ignored"] >= 1 and len(r.items) >= 3)
    gifts = [e for e in events(r.items) if e.kind == Kind.GIFT]
    assert [(g.gift_name, g.gift_count, g.raw_id) for g in gifts] == [
        ("小花花", 3, "t1"), ("辣条", 2, "t2")
    ]  # fmt: skip
    assert gifts[1].amount == 0.2 and conn.counters["duplicate"] == 1
    masked = [e for e in events(r.items) if e.kind == Kind.DANMAKU]
    assert [e.text for e in masked] == ["蒙面"] and masked[0].user.name == ""


async def test_mirror_read_when_asked(server: BiliServer) -> None:
    conn = connector(server.url, mirror=True)
    async with running(conn) as r:
        await server.wait_authed()
        await server.push([s.danmu_mirror("from another room", dmid=41)], 0)
        await until(lambda: len(r.items) == 1)


async def test_nested_decompression_bomb_costs_one_frame(server: BiliServer) -> None:
    """A small frame whose nested compressed packets inflate past the frame's allowance: that
    frame is dropped and counted; the session (and chat after it) goes on. The cost of a frame
    is bounded, so dropping the connection for one would only lose chat."""
    quarter = pack(brotli.compress(pack(b"\x00" * (p.MAX_INFLATED // 4 + 1), 3, 1)), 5, 3)
    bomb = pack(brotli.compress(quarter * 4), 5, 3)
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_authed()
        await server.send_frame(bomb)
        await server.push([s.danmu("after the bomb", dmid=8)], 3)
        await until(lambda: len(r.items) == 1, timeout=30, what="the danmaku after the bomb")
        assert conn.state == ConnectorState.CONNECTED
    assert conn.counters["oversized"] == 1 and conn.counters["malformed"] == 1
    assert conn.counters["reconnects"] == 0 and events(r.items)[0].text == "after the bomb"


async def test_server_chosen_names_cannot_grow_the_counters(server: BiliServer) -> None:
    """Unknown commands and op codes are named by the server: each family keeps a bounded set
    of names (the rest added up under one key), and the daemon's own counters still count."""
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_authed()
        for i in range(0, 3000, 100):
            await server.push([{"cmd": f"INVENTED_{j}"} for j in range(i, i + 100)], 3)
            await server.send_frame(b"".join(pack(b"{}", 1000 + j, 1) for j in range(i, i + 100)))
        await server.send_frame(b"\x00" * 5)  # one malformed frame
        await server.push([s.danmu("still counted", dmid=3)], 3)
        await until(lambda: len(r.items) == 1, timeout=30)
    c = conn.counters
    assert c["unknown"] == 3000 and c["malformed"] == 1 and c["events"] == 1
    assert c["kind:danmaku"] == 1
    for family in ("unknown", "op"):
        named = {k: n for k, n in c.items() if k.startswith(f"{family}:")}
        assert len(named) <= 65 and sum(named.values()) == 3000, family
    assert len(c) < 200


async def test_absurd_numbers_and_deep_nesting_cost_one_command(server: BiliServer) -> None:
    """A gift with a huge num or price raised OverflowError, which ended the session and lost
    the rest of its frame; deep nesting raised RecursionError the same way. Each is now one
    malformed command, and the commands after it in the same frame are read."""
    big = 10**400  # JSON allows it; no float holds it
    bad = [s.send_gift(num=big, price=1), s.send_gift(num=1, price=big), s.send_gift(num=1e308)]
    bad[2]["data"]["total_coin"] = 1e308
    huge_text = s.send_gift()
    huge_text["data"].update(price="1e400", total_coin=0)  # a string that parses as infinity
    inner = [json.dumps(c).encode() for c in [*bad, huge_text]]
    inner.append(b'{"cmd": "DANMU_MSG", "info": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    inner.append(json.dumps(s.danmu("after them", dmid=4)).encode())
    frame = pack(brotli.compress(b"".join(pack(body, 5, 0) for body in inner)), 5, 3)
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_authed()
        await server.send_frame(frame)
        await until(lambda: len(r.items) == 1, what="the danmaku after the bad commands")
    assert events(r.items)[0].text == "after them"
    assert conn.counters["malformed"] == 5 and conn.counters["reconnects"] == 0


async def test_a_server_sending_bombs_again_and_again_is_dropped(server: BiliServer) -> None:
    """Each bomb costs up to the frame's allowance of inflating: a server sending them in a row
    loses its session (and waits out the backoff) instead of keeping the loop busy."""
    quarter = pack(brotli.compress(pack(b"\x00" * (p.MAX_INFLATED // 4 + 1), 3, 1)), 5, 3)
    bomb = pack(brotli.compress(quarter * 4), 5, 3)
    conn = connector(server.url)
    with capture_logs() as logs:
        async with running(conn):
            await server.wait_authed()
            for _ in range(client_module.MAX_OVERSIZED):
                await server.send_frame(bomb)
            await until(lambda: conn.counters["reconnects"] == 1, what="the session ended")
    assert conn.counters["oversized"] == client_module.MAX_OVERSIZED
    ended = [e for e in logs if e["event"] == "bilibili_disconnected"]
    assert ended and "oversized frames in one session" in ended[0]["error"]
