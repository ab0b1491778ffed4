"""The twitch connector against a local IRC-over-WebSocket server."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ishowtts.connectors import ConnectorContext, ConnectorState
from ishowtts.connectors.base import MAX_FIELD_CHARS, MAX_TEXT_CHARS
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.twitch import TwitchConnector, TwitchOptions
from tests.servers import twitch_samples as t
from tests.servers.twitch import TwitchServer
from tests.servers.util import running, until

FAST = {"ping_s": 0.05, "auth_timeout_s": 0.3, "read_timeout_s": 2.0,
        "backoff_initial_s": 0.02, "backoff_max_s": 0.1}  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[TwitchServer]:
    srv = await TwitchServer().start()
    yield srv
    await srv.stop()


def connector(url: str, **extra: Any) -> TwitchConnector:
    opts = TwitchOptions(channel="dallas", endpoint=url, **{**FAST, **extra})
    return TwitchConnector("tw", opts, ConnectorContext(base_dir=Path(".")))


async def test_anonymous_join_and_chat(server: TwitchServer) -> None:
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_joined()
        await until(lambda: conn.state == ConnectorState.CONNECTED)
        assert server.received[:3] == ["CAP REQ :twitch.tv/tags twitch.tv/commands", "PASS SCHMOOPIIE",
                                       server.received[2]]  # fmt: skip
        assert server.received[2].startswith("NICK justinfan") and server.joins == ["#dallas"]
        await server.send(
            t.privmsg("hi", msg_id="a"), t.privmsg("cheer100 hype", msg_id="b", bits=100),
            t.resub(months=3), t.submysterygift(count=2, community="c1"),
            t.subgift("x", community="c1", msg_id="g1"), t.subgift("y", community="c1", msg_id="g2"),
            t.raid(10), t.clearmsg("a"), t.clearchat(user="ronni", user_id="1337"), t.clearchat(),
            ":tmi.twitch.tv USERSTATE #dallas", ":tmi.twitch.tv NEWTHING #dallas",
        )  # fmt: skip
        await until(lambda: len(r.items) >= 8)
        await server.send("PING :tmi.twitch.tv")
        await until(lambda: server.pongs == [":tmi.twitch.tv"], what="our PONG")
        await until(lambda: conn.counters["pings_sent"] >= 2 and conn.counters["lines"] > 20)
    kinds = [i.kind if isinstance(i, ChatEvent) else "retract" for i in r.items]
    assert kinds == [Kind.DANMAKU, Kind.SUPER_CHAT, Kind.GUARD, Kind.GIFT, Kind.SYSTEM,
                     "retract", "retract", "retract"]  # fmt: skip
    assert r.items[1].amount == 1.0 and r.items[3].gift_count == 2
    assert conn.counters["duplicate"] == 2 and conn.counters["unknown:NEWTHING"] == 1
    assert isinstance(r.items[5], Retraction) and r.items[5].raw_ids == ("a",)


async def test_reconnect_command_and_server_restart(server: TwitchServer) -> None:
    conn = connector(server.url, backoff_initial_s=5.0, backoff_max_s=5.0)
    async with running(conn) as r:
        await server.wait_joined()
        await server.send(t.privmsg("one", msg_id="1"))
        await until(lambda: len(r.items) == 1)
        await server.send("RECONNECT")  # no backoff for a requested reconnect
        await server.wait_joined(timeout=2.0)
        await server.send(t.privmsg("one", msg_id="1"), t.privmsg("two", msg_id="2"))
        await until(lambda: len(r.items) == 2)
        assert conn.counters["reconnects"] == 1
    assert [e.text for e in r.items] == ["one", "two"]


async def test_server_killed_and_restarted(server: TwitchServer) -> None:
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_joined()
        await server.send(*(t.privmsg(f"m{i}", msg_id=str(i)) for i in range(3)))
        await until(lambda: len(r.items) == 3)
        await server.kill()
        await until(lambda: conn.state == ConnectorState.RECONNECTING)
        await server.start()
        await server.wait_joined()
        await server.send(*(t.privmsg(f"m{i}", msg_id=str(i)) for i in range(2, 6)))
        await until(lambda: len(r.items) == 6)
    assert [e.text for e in r.items] == [f"m{i}" for i in range(6)]
    assert r.states.count(ConnectorState.CONNECTED) == 2


async def test_server_that_never_welcomes() -> None:
    srv = await TwitchServer(welcome=False).start()
    try:
        conn = connector(srv.url)
        async with running(conn) as r:
            await until(lambda: srv.connections >= 3, what="3 attempts")
        assert ConnectorState.CONNECTED not in r.states and conn.counters["auth_failures"] >= 2
        assert conn.backoff.attempt >= 2
    finally:
        await srv.stop()


async def test_ten_thousand_garbage_lines(server: TwitchServer) -> None:
    conn = connector(server.url)
    rng = random.Random(5)
    async with running(conn) as r:
        await server.wait_joined()
        for i in range(10_000):
            k = i % 5
            if k == 0:
                await server.send_raw(rng.randbytes(rng.randint(1, 30)))  # binary frame
            elif k == 1:
                await server.send_raw("@" + "".join(rng.choice("ab=;") for _ in range(9)) + "\r\n")
            elif k == 2:
                await server.send_raw(f"!{rng.random()} nonsense\r\n")
            elif k == 3:
                await server.send_raw(f"@id={i} :a!a@a PRIVMSG #dallas\r\n")  # no text
            else:
                await server.send_raw(":tmi.twitch.tv USERNOTICE #dallas :no msg-id\r\n")
        await server.send(t.privmsg("alive", msg_id="z"))
        await until(lambda: len(r.items) == 1, timeout=30)
    assert conn.counters["malformed"] == 10_000 and conn.counters["reconnects"] == 0


def _letters(n: int) -> str:
    return "".join(chr(65 + n // 26**k % 26) for k in range(3))  # commands are letters only


async def test_server_chosen_names_cannot_grow_the_counters(server: TwitchServer) -> None:
    """NOTICE ids and unknown commands are named by the server: each family keeps a bounded set
    of names (the rest added up under one key), and the daemon's own counters still count."""
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_joined()
        for i in range(0, 3000, 100):
            await server.send(
                *(f"@msg-id=invented_{j} :tmi.twitch.tv NOTICE #dallas :x" for j in range(i, i + 100)),
                *(f":tmi.twitch.tv INVENTED{_letters(j)} #dallas" for j in range(i, i + 100)),
            )  # fmt: skip
        await server.send_raw(b"\x00")  # one malformed frame
        await server.send(t.privmsg("still counted", msg_id="z"))
        await until(lambda: len(r.items) == 1, timeout=30)
    c = conn.counters
    assert c["unknown"] == 3000 and c["malformed"] == 1 and c["events"] == 1
    for family in ("unknown", "notice"):
        named = {k: n for k, n in c.items() if k.startswith(f"{family}:")}
        assert len(named) <= 65 and sum(named.values()) == 3000, family
    assert len(c) < 200


async def test_absurd_numbers_cost_one_message(server: TwitchServer) -> None:
    """Bits or a raid size of 400 digits raised OverflowError, which ended the session and lost
    the rest of its batch; each is now one malformed message."""
    conn = connector(server.url)
    async with running(conn) as r:
        await server.wait_joined()
        await server.send(
            t.privmsg("cheer", msg_id="x1", bits=10**400),
            t.raid(viewers=10**400),
            t.privmsg("after them", msg_id="x2"),
        )
        await until(lambda: len(r.items) == 1, what="the message after the bad ones")
    assert r.items[0].text == "after them"
    assert conn.counters["malformed"] == 2 and conn.counters["reconnects"] == 0


async def test_repeated_reconnect_requests_back_off() -> None:
    """A server that answers every JOIN with RECONNECT drove ~1,265 reconnects a second: the
    first request is honoured at once, the ones that follow before a session proved stable wait
    like any failure, longer each time."""
    srv = await TwitchServer(reconnect_on_join=True).start()
    try:
        conn = connector(srv.url, backoff_initial_s=0.01, backoff_max_s=1.0)
        with capture_logs() as logs:
            async with running(conn):
                await until(lambda: srv.connections >= 5, what="5 connections")
    finally:
        await srv.stop()
    delays = [e["seconds"] for e in logs if e["event"] == "twitch_reconnect_in"][:4]
    assert delays[0] == 0.0  # the first request: at once
    assert 0.01 <= delays[1] <= 0.02 and 0.04 <= delays[3] <= 0.08  # then growing


async def test_huge_text_and_names_are_cut_where_they_come_in(server: TwitchServer) -> None:
    """A server may send a 100,000-character message or display name: it is cut to a bound at
    the connector, before it reaches the log, the normaliser or the queue, and counted."""
    conn = connector(server.url)
    long_name = "n" * 10_000
    async with running(conn) as r:
        await server.wait_joined()
        line = t.privmsg("長" * 100_000, msg_id="big").replace(
            "display-name=", f"display-name={long_name}", 1
        )
        await server.send(line)
        await until(lambda: len(r.items) == 1)
    event = r.items[0]
    assert len(event.text) == MAX_TEXT_CHARS and len(event.user.name) == MAX_FIELD_CHARS
    assert conn.counters["truncated"] == 1
