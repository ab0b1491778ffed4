"""The bilibili-open connector against a local open platform (signed HTTP + WebSocket)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from ishowtts.config import Config, FiltersConfig, RoutingConfig
from ishowtts.connectors import ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts.pipeline.filters import Filters
from ishowtts_plugins.bilibili import BilibiliOpenConnector, BilibiliOpenOptions
from ishowtts_plugins.bilibili.commands import MalformedCommand
from ishowtts_plugins.bilibili.open_commands import OpenCommandMapper
from ishowtts_plugins.bilibili.openapi import sign
from tests.servers import bilibili_samples as s
from tests.servers.bilibili_open import APP_ID, AUTH_CODE, KEY_ID, SECRET, OpenServer
from tests.servers.util import running, until

CTX = ConnectorContext(base_dir=Path("."))
FAST = {
    "heartbeat_s": 0.05,
    "app_heartbeat_s": 0.05,
    "auth_timeout_s": 0.5,
    "read_timeout_s": 2.0,
    "backoff_initial_s": 0.02,
    "backoff_max_s": 0.1,
}


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILIBILI_AUTH_CODE", AUTH_CODE)
    monkeypatch.setenv("BILIBILI_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("BILIBILI_ACCESS_KEY_SECRET", SECRET)


@pytest.fixture
async def server() -> AsyncIterator[OpenServer]:
    srv = await OpenServer(heartbeat_timeout_s=1.0).start()
    yield srv
    await srv.stop()


def connector(srv: OpenServer, **extra: Any) -> BilibiliOpenConnector:
    opts = BilibiliOpenOptions(app_id=APP_ID, api_base=srv.base, **{**FAST, **extra})
    return BilibiliOpenConnector("open", opts, CTX)


def events(items: list[Any]) -> list[ChatEvent]:
    return [i for i in items if isinstance(i, ChatEvent)]


EVERY_KIND = [
    s.open_live(True), s.open_dm("你好", "m1"), s.open_dm_mirror("别的房间", "m2"),
    s.open_gift("g1", num=2, price=1000), s.open_gift("g2", paid=False),
    s.open_super_chat(501), s.open_guard("gd1", level=3, num=2), s.open_like("l1", count=5),
    s.open_enter("e1"), s.open_super_chat_del(501), s.open_live(False),
    {"cmd": "LIVE_OPEN_PLATFORM_SOMETHING_NEW", "data": {}},
]  # fmt: skip


def test_mapping_of_every_kind() -> None:
    m = OpenCommandMapper(room="1")
    out = [m.translate(c) for c in EVERY_KIND]
    assert [o.status for o in out] == [
        "notice", "event", "ignored", "event", "event", "event", "event", "event", "event",
        "retraction", "notice", "unknown",
    ]  # fmt: skip
    dm, gift, free, sc, guard, like, enter = (
        o.items[0] for o in out if o.status == "event"
    )  # fmt: skip
    assert isinstance(dm, ChatEvent) and dm.kind == Kind.DANMAKU and dm.text == "你好"
    assert dm.user.id == "o-alice" and dm.user.alt_ids == ("U-o-alice",) and dm.raw_id == "m1"
    assert dm.user.name == "爱丽丝" and dm.user.medal_level == 7
    assert isinstance(gift, ChatEvent) and gift.amount == 2.0 and gift.gift_count == 2
    assert isinstance(free, ChatEvent) and free.amount == 0.0
    assert isinstance(sc, ChatEvent) and sc.kind == Kind.SUPER_CHAT and sc.amount == 30
    assert sc.raw_id == "501"
    assert isinstance(guard, ChatEvent) and guard.kind == Kind.GUARD and guard.gift_name == "舰长"
    assert guard.amount == 396.0 and guard.user.id == "o-dave" and guard.user.guard_level == 3
    assert isinstance(like, ChatEvent) and like.kind == Kind.LIKE and like.gift_count == 5
    assert isinstance(enter, ChatEvent) and enter.kind == Kind.ENTER and enter.user.name == "弗兰克"
    retraction = out[9].items[0]
    assert isinstance(retraction, Retraction) and retraction.raw_ids == ("501",)
    mirrored = OpenCommandMapper(mirror=True).translate(s.open_dm_mirror("别的房间", "m2"))
    assert mirrored.status == "event"


@pytest.mark.parametrize(
    "bad",
    [
        {**s.open_gift("g", num=10**30)},
        {
            "cmd": "LIVE_OPEN_PLATFORM_SEND_GIFT",
            "data": {**s.open_gift("g")["data"], "r_price": "1e400"},
        },
        {
            "cmd": "LIVE_OPEN_PLATFORM_SUPER_CHAT",
            "data": {**s.open_super_chat(1)["data"], "rmb": -5},
        },
        {"cmd": "LIVE_OPEN_PLATFORM_DM", "data": {**s.open_dm("x", "m")["data"], "open_id": ""}},
        {"cmd": "LIVE_OPEN_PLATFORM_DM", "data": "x"},
        {"cmd": 5},
        [],
    ],
)
def test_malformed_commands(bad: Any) -> None:
    with pytest.raises(MalformedCommand):
        OpenCommandMapper().translate(bad)


def test_filters_and_routing_by_open_id_and_union_id() -> None:
    event = OpenCommandMapper().translate(s.open_dm("hi", "m1")).items[0]
    assert isinstance(event, ChatEvent)
    for name in ("o-alice", "U-o-alice", "爱丽丝"):
        assert Filters(FiltersConfig(users={"block": [name]})).check(event, "hi", 0) == (
            "blocked_user"
        )
        assert Filters(FiltersConfig(users={"allow": [name]})).check(event, "hi", 0) is None
        cfg = Config(routing=RoutingConfig(users={name: "alice-voice"}))
        assert cfg.voice_for(Kind.DANMAKU, event.user.id, event.user.name, event.user.alt_ids) == (
            "alice-voice"
        )
    assert Filters(FiltersConfig(users={"allow": ["someone"]})).check(event, "hi", 0) == (
        "not_allowed_user"
    )


def test_signature_matches_a_hand_computed_one() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    h = sign(body, "kid", "sec", nonce="n1", ts=1_700_000_000)
    lines = (
        "x-bili-accesskeyid:kid\n"
        f"x-bili-content-md5:{hashlib.md5(body).hexdigest()}\n"
        "x-bili-signature-method:HMAC-SHA256\nx-bili-signature-nonce:n1\n"
        "x-bili-signature-version:1.0\nx-bili-timestamp:1700000000"
    )
    assert h["Authorization"] == hmac.new(b"sec", lines.encode(), hashlib.sha256).hexdigest()


async def test_session_every_kind_interaction_end_and_app_end(server: OpenServer) -> None:
    conn = connector(server)
    with capture_logs() as logs:
        async with running(conn) as r:
            await server.wait_live()
            await until(lambda: conn.state == ConnectorState.CONNECTED)
            await server.push(EVERY_KIND, 3)
            await until(lambda: conn.counters["notice:preparing"] == 1, what="every kind")
            await until(lambda: server.games[0].beats >= 2, what="app heartbeats")
            await until(lambda: server.socket_heartbeats >= 2, what="socket heartbeats")
            # The platform ends the session mid-stream: the connector starts a new one.
            await server.push([s.open_dm("before end", "m10")], 2)
            await server.end_now()
            await until(lambda: len(server.games) == 2, what="a second session")
            await server.wait_live(2)
            await until(lambda: conn.state == ConnectorState.CONNECTED)
            # The platform re-sends what it had in flight: read once.
            await server.push([s.open_dm("before end", "m10"), s.open_dm("after", "m11")], 0)
            await until(lambda: len(events(r.items)) >= 9, what="after the restart")
        assert [c for c in server.paths() if c != "heartbeat"] == ["start", "start", "end"]
        assert server.calls[-1] == ("end", {"app_id": APP_ID, "game_id": "game-2"})
    kinds = [i.kind if isinstance(i, ChatEvent) else "retract" for i in r.items]
    assert kinds == [
        Kind.DANMAKU, Kind.GIFT, Kind.GIFT, Kind.SUPER_CHAT, Kind.GUARD, Kind.LIKE, Kind.ENTER,
        "retract", Kind.DANMAKU, Kind.DANMAKU,
    ]  # fmt: skip
    assert [e.text for e in events(r.items) if e.kind == Kind.DANMAKU] == [
        "你好", "before end", "after"
    ]  # fmt: skip
    assert not server.refused, server.refused
    assert conn.counters["app_ended_by_platform"] == 1 and conn.counters["duplicate"] == 1
    assert conn.state == ConnectorState.STOPPED
    text = json.dumps(logs, default=str)
    assert SECRET not in text and AUTH_CODE not in text and "k1" not in text  # auth body too
    assert sum(e["event"] == "bilibili_open_session_ended" for e in logs) == 1


async def test_heartbeats_stop_and_the_platform_ends_the_session(server: OpenServer) -> None:
    # The app beats slower than the platform tolerates: the platform ends the session, the
    # connector starts a new one by itself, and nothing is read twice.
    conn = connector(server, app_heartbeat_s=30.0)
    async with running(conn) as r:
        await server.wait_live()
        await server.push([s.open_dm("one", "a1")], 3)
        await until(lambda: len(r.items) == 1)
        await until(lambda: len(server.games) >= 2, timeout=10, what="the session restarted")
        await until(lambda: bool(server.live()), what="a socket on the new session")
        await server.push([s.open_dm("one", "a1"), s.open_dm("two", "a2")], 3)
        await until(lambda: len(r.items) == 2)
    assert [e.text for e in events(r.items)] == ["one", "two"]
    assert conn.counters["app_ended_by_platform"] >= 1


async def test_expired_heartbeat_restarts_the_session(server: OpenServer) -> None:
    conn = connector(server)
    async with running(conn):
        await server.wait_live()
        game = server.games[0]
        game.ended = True  # the platform forgot it: heartbeats now answer 7003
        await until(lambda: len(server.games) == 2, what="a new session after 7003")
        await server.wait_live(2)
    assert conn.counters["app_error:7003"] >= 1


async def test_socket_drop_reconnects_on_the_same_session(server: OpenServer) -> None:
    conn = connector(server)
    async with running(conn) as r:
        await server.wait_live()
        await server.push([s.open_dm("x", "d1")], 3)
        await until(lambda: len(r.items) == 1)
        await server.drop_sockets()
        await server.wait_live(2)
        await server.push([s.open_dm("x", "d1"), s.open_dm("y", "d2")], 3)
        await until(lambda: len(r.items) == 2)
    assert len(server.games) == 1 and conn.counters["reconnects"] >= 1
    assert [e.text for e in events(r.items)] == ["x", "y"]


async def test_a_refused_socket_or_dead_servers_start_a_new_session(server: OpenServer) -> None:
    server.dead_games = 1  # game-1 names no live server: after 3 failed sockets, game-2
    server.refuse_sockets = 1  # whose socket is refused: game-3
    conn = connector(server)
    async with running(conn) as r:
        await server.wait_live()
        await server.push([s.open_dm("ok", "z1")], 3)
        await until(lambda: len(r.items) == 1)
    assert server.auths == ["game-3"] and [g.ended for g in server.games] == [True] * 3
    assert [c for c in server.paths() if c != "heartbeat"] == ["start", "end"] * 3
    assert conn.counters["auth_failures"] == 1


async def test_a_heartbeat_answer_with_a_junk_code_does_not_stop_the_heartbeat(
    server: OpenServer,
) -> None:
    """An answer whose code is not an integer is one failed beat: the next ones go on, so the
    platform does not end the session ~60 s later."""
    server.heartbeat_codes = ["oops", None, [1], 1.5]
    conn = connector(server)
    async with running(conn):
        await server.wait_live()
        game = server.live_game()
        assert game is not None
        await until(lambda: game.beats >= 8, 10, "heartbeats after the junk answers")
        assert conn.counters["app_heartbeat_errors"] + conn.counters["app_error:-1"] == 4
        assert not game.ended and conn.state == ConnectorState.CONNECTED


async def test_a_start_naming_thousands_of_servers_tries_a_few(server: OpenServer) -> None:
    """2,000 dead wss_links: the session keeps the first few, so each attempt tries (and logs)
    a bounded number, and the session is started anew after a few failed ones."""
    from ishowtts_plugins.bilibili.openapi import MAX_SERVERS

    server.extra_links = 2000
    conn = connector(server)
    with capture_logs() as logs:
        async with running(conn):
            await until(lambda: conn.counters["app_starts"] >= 2, 10, "a second session")
            app = conn.app
    assert app is None or len(app.urls) <= MAX_SERVERS
    tried = [r for r in logs if r["event"] == "bilibili_server_unreachable"]
    assert 0 < len(tried) <= MAX_SERVERS * 3 * conn.counters["app_starts"]


async def test_a_session_ended_at_every_auth_backs_off(server: OpenServer) -> None:
    """The platform ends every session right after its socket is accepted: the accepted
    session does not reset the wait, which keeps growing (before, it stayed at the floor:
    ~1 app start a second at the defaults)."""
    server.end_at_auth = True
    conn = connector(server)
    async with running(conn):
        await until(lambda: conn.backoff.attempt >= 4, 10, "the backoff to grow")
    assert conn.counters["app_ended_by_platform"] >= 3 and len(server.auths) >= 3


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda m, srv: m.setenv("BILIBILI_AUTH_CODE", "WRONGCODE"), 7007),
        (lambda m, srv: setattr(srv, "whitelisted", False), 5004),
        (lambda m, srv: m.setenv("BILIBILI_ACCESS_KEY_SECRET", "wrong"), 4002),
    ],
)
async def test_errors_where_retrying_cannot_help(
    server: OpenServer, monkeypatch: pytest.MonkeyPatch, setup: Any, code: int
) -> None:
    setup(monkeypatch, server)
    conn = connector(server)
    with capture_logs() as logs:
        async with running(conn):
            await until(lambda: conn.state == ConnectorState.FAILED, what="failed")
    assert server.paths() == ["start"]  # asked once, not in a loop
    lines = [e for e in logs if e["event"] == "bilibili_open_start_failed"]
    assert len(lines) == 1 and lines[0]["code"] == code
    assert "WRONGCODE" not in json.dumps(logs, default=str)


async def test_transient_errors_are_retried(server: OpenServer) -> None:
    server.start_codes = [7001, 5000, 7002]
    conn = connector(server)
    async with running(conn):
        await server.wait_live()
    assert server.paths()[:4] == ["start"] * 4 and len(server.games) == 1


async def test_missing_secrets_fail_with_their_names(
    server: OpenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BILIBILI_ACCESS_KEY_SECRET")
    conn = connector(server)
    with capture_logs() as logs:
        async with running(conn):
            await until(lambda: conn.state == ConnectorState.FAILED)
    failed = [e for e in logs if e["event"] == "connector_state" and e["state"] == "failed"]
    assert "$BILIBILI_ACCESS_KEY_SECRET" in failed[0]["error"] and not server.calls


def test_options() -> None:
    with pytest.raises(ValidationError):
        BilibiliOpenOptions()  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        BilibiliOpenOptions(app_id=0)


def test_a_deleted_super_chat_leaves_the_queue() -> None:
    from ishowtts.pipeline.ingest import Pipeline
    from ishowtts.queue.ledger import Ledger
    from ishowtts.queue.scheduler import Scheduler

    cfg = Config()
    ledger = Ledger()
    sched = Scheduler(cfg.queue, lambda u, state, f: ledger.close(u.id, state, **f))
    pipeline = Pipeline(cfg, ledger, sched)
    m = OpenCommandMapper(room="1")
    sc = m.translate(s.open_super_chat(777)).items[0]
    other = m.translate(s.open_super_chat(778)).items[0]
    assert isinstance(sc, ChatEvent) and isinstance(other, ChatEvent)
    assert pipeline.ingest(sc, now=sc.received_mono) and pipeline.ingest(
        other, now=sc.received_mono
    )
    retraction = m.translate(s.open_super_chat_del(777)).items[0]
    assert isinstance(retraction, Retraction)
    pipeline.retract(retraction)
    assert sc.id not in sched and other.id in sched
