"""The douyu connector against a local server speaking Douyu's framing and STT."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ishowtts.connectors import ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.douyu import DouyuConnector, DouyuOptions
from tests.servers import douyu_real as real
from tests.servers.douyu import DouyuServer, packet
from tests.servers.util import running, until

FAST = {"heartbeat_s": 0.05, "auth_timeout_s": 0.3, "read_timeout_s": 2.0,
        "backoff_initial_s": 0.02, "backoff_max_s": 0.1}  # fmt: skip
GIFTS = [{"id": 20003, "name": "飞机", "priceInfo": {"price": 10000, "priceType": 2}}]


@pytest.fixture
async def server() -> AsyncIterator[DouyuServer]:
    srv = await DouyuServer(room="2020877", gifts=GIFTS).start()
    yield srv
    await srv.stop()


def connector(srv: DouyuServer, **extra: Any) -> DouyuConnector:
    opts = DouyuOptions(
        room=f"https://www.douyu.com/{srv.room}", endpoint=srv.url, gift_list=srv.gift_url,
        **{**FAST, **extra},
    )  # fmt: skip
    return DouyuConnector("dy", opts, ConnectorContext(base_dir=Path(".")))


def here(body: str, room: str = "2020877") -> str:
    """A recorded message, as if sent in the test's room."""
    return body.replace("rid@=7750753", f"rid@={room}").replace("rid@=252802", f"rid@={room}")


async def test_login_join_heartbeat_chat_gifts_and_ban(server: DouyuServer) -> None:
    conn = connector(server)
    async with running(conn) as r:
        await server.wait_joined()
        await until(lambda: conn.state == ConnectorState.CONNECTED)
        assert server.received[:2] == ["type@=loginreq/roomid@=2020877/",
                                       "type@=joingroup/rid@=2020877/gid@=-9999/"]  # fmt: skip
        plane = (
            here(real.GIFT_824).replace("gfid@=824", "gfid@=20003").replace("gfcnt@=30", "gfcnt@=1")
        )
        await server.send(
            here(real.CHAT), plane, real.BAN, "type@=spbc/rid@=1/", "type@=new_thing/"
        )
        await until(lambda: len(r.items) >= 3)
        await until(lambda: server.heartbeats >= 2 and conn.counters["heartbeats_sent"] >= 2)
    chat, gift, ban = r.items
    assert isinstance(chat, ChatEvent) and chat.text == "冷门歌手哎，声音独特哎"
    assert isinstance(gift, ChatEvent) and (gift.kind, gift.gift_name, gift.amount) == (
        Kind.GIFT,
        "飞机",
        100.0,
    )
    assert isinstance(ban, Retraction) and ban.user_id == "181267795"
    assert conn.counters["unknown:new_thing"] == 1 and conn.counters["ignored"] >= 1
    assert conn.counters["malformed"] == 0 and not server.bad_client_packets
    assert server.gift_list_calls == 1


async def test_a_packet_split_across_frames_and_hostile_frames(server: DouyuServer) -> None:
    conn = connector(server)
    async with running(conn) as r:
        await server.wait_joined()
        whole = packet(here(real.CHAT))
        await server.send_raw(whole[:9])
        await server.send_raw(whole[9:])
        await until(lambda: len(r.items) == 1, what="the joined packet")
        await server.send_raw("not binary")
        await server.send_raw(struct.pack("<IIHBB", 1 << 30, 1 << 30, 690, 0, 0))  # a huge length
        await server.send_raw(b"\xff" * 40)
        await server.send(here(real.CHAT).replace("cid@=044c", "cid@=ffff"))
        await until(lambda: len(r.items) == 2, what="chat after garbage")
        assert conn.state == ConnectorState.CONNECTED and conn.counters["malformed"] == 3
        for i in range(200):  # server-chosen names are bounded in the counters
            await server.send(f"type@=invented{i}/")
        await until(lambda: conn.counters["unknown"] == 200)
    assert conn.counters["unknown:other"] > 0 and len(conn.counters) < 150


async def test_error_answer_and_killed_server_reconnect(server: DouyuServer) -> None:
    server.login = "error"
    conn = connector(server)
    async with running(conn):
        await until(lambda: server.connections >= 2, what="retries after the error")
        assert conn.state != ConnectorState.CONNECTED
        server.login = "ok"
        await until(lambda: conn.state == ConnectorState.CONNECTED, what="connected")
        await server.stop()
        await until(lambda: conn.state == ConnectorState.RECONNECTING)
        await server.start()
        await until(lambda: conn.state == ConnectorState.CONNECTED, what="back")
    assert conn.counters["reconnects"] >= 2


async def test_silent_login_and_a_bad_gift_list(server: DouyuServer) -> None:
    server.login = "silent"
    server.gift_status = 500
    conn = connector(server)
    async with running(conn):
        await until(lambda: conn.counters["auth_failures"] >= 2, what="login timeouts")
        assert conn.counters["gift_list_failures"] >= 1 and not conn.gifts


def test_options() -> None:
    assert DouyuOptions(room="https://www.douyu.com/9999?x=1").room == "9999"
    assert DouyuOptions(room=9999).room == "9999"
    for bad in ("abc", 0, -5, 10**30, "https://www.douyu.com/"):
        with pytest.raises(ValueError, match="Douyu room"):
            DouyuOptions(room=bad)
    with pytest.raises(ValueError, match="ws://"):
        DouyuOptions(room=1, endpoint="http://x")
