"""The ssn connector against a local relay that behaves like io.socialstream.ninja, sending the
message shapes SSN's sources build (tests/servers/ssn.py says where they come from)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from ishowtts.connectors import ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.ssn import SsnConnector, SsnOptions
from ishowtts_plugins.ssn.messages import SsnMapper, parse_amount
from tests.servers.ssn import SAMPLES, SESSION, SsnRelay
from tests.servers.util import running, until

FAST = {"backoff_initial_s": 0.02, "backoff_max_s": 0.1, "heartbeat_s": 0.2}


@pytest.fixture
async def relay() -> AsyncIterator[SsnRelay]:
    srv = await SsnRelay().start()
    yield srv
    await srv.stop()


@pytest.fixture
def session_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSN_TEST_SESSION", SESSION)


def connector(relay: SsnRelay, **extra: Any) -> SsnConnector:
    opts = SsnOptions(endpoint=relay.url, session_env="SSN_TEST_SESSION", **{**FAST, **extra})
    return SsnConnector("ssn", opts, ConnectorContext(base_dir=Path(".")))


def events(items: list[Any]) -> dict[str, ChatEvent]:
    return {i.raw_id: i for i in items if isinstance(i, ChatEvent)}


async def test_chat_gifts_donations_members_and_moderation(
    relay: SsnRelay, session_env: None
) -> None:
    conn = connector(relay)
    with structlog.testing.capture_logs() as logs:
        async with running(conn) as r:
            await relay.wait_joined()
            await until(lambda: conn.state == ConnectorState.CONNECTED)
            await relay.publish(*SAMPLES.values())
            await relay.publish(SAMPLES["tiktok_chat"], session="another-room")  # not ours
            await relay.publish(SAMPLES["twitch_bits"], out=2)  # another channel
            await until(lambda: conn.counters["retractions"] == 3, what="every sample")
    assert relay.joins == [{"join": SESSION, "out": 3, "in": 4}]
    got = events(r.items)
    chat = got["1201"]
    assert (chat.kind, chat.platform, chat.room) == (Kind.DANMAKU, "ssn", "tiktok")
    assert chat.text == "hello from tiktok" and chat.user.name == "lily🌸"  # emote image dropped
    assert chat.user.id == "tiktok:lily🌸" and chat.user.alt_ids == ("tiktok:7012345678901234567",)
    gift = got["1202"]
    assert (gift.kind, gift.gift_name, gift.gift_count, gift.amount) == (Kind.GIFT, "roses", 5, 0)
    assert (got["1203"].kind, got["1203"].amount) == (Kind.GIFT, 5.0)  # 500 TikTok coins
    sc = got["1204"]
    assert (sc.kind, sc.text, sc.amount) == (Kind.SUPER_CHAT, "love the stream!", 3.65)
    assert sc.user.name == "Alice & Bob"
    members = got["1205"]
    assert (members.kind, members.gift_name, members.gift_count) == (Kind.GUARD, "gift_giver", 5)
    kick = got["1206"]
    assert kick.kind == Kind.DANMAKU and kick.user.guard_level == 1 and kick.user.is_moderator
    bits = got["1207"]
    assert (bits.kind, bits.amount) == (Kind.SUPER_CHAT, 1.0)
    assert got["1208"].kind == Kind.FOLLOW
    assert (got["1209"].kind, got["1209"].amount) == (Kind.SUPER_CHAT, 3.24)
    assert "1210" not in got and "1211" not in got  # a bot's line and a direct message
    assert len(got) == 9  # nothing from another room or channel
    retractions = [i for i in r.items if isinstance(i, Retraction)]
    assert [(x.raw_ids, x.user_id, x.reason) for x in retractions] == [
        (("1201",), "", "recalled"),
        ((), "kick:kicker", "banned"),
        ((), "tiktok:bigfan", "timeout"),
    ]
    # The ban takes back what that user said (the scheduler and player use this rule).
    assert retractions[1].matches(kick) and not retractions[1].matches(chat)
    assert conn.counters["malformed"] == 0 and conn.counters["ignored"] == 4
    assert SESSION not in json.dumps(logs, default=str)  # the session id is never logged


async def test_hostile_frames_are_counted_and_skipped(relay: SsnRelay, session_env: None) -> None:
    conn = connector(relay)
    async with running(conn) as r:
        await relay.wait_joined()
        for frame in ("not json", "[1, 2]", "1" * 5000, "[" * 100_000, '{"deleteMessage": {}}'):
            await relay.send_raw(frame)
        await relay.send_raw(b"\x00\x01binary")
        await relay.publish({"chatname": "x" * 100_000, "chatmessage": "<b>" * 50_000 + "hi"})
        await relay.publish(SAMPLES["kick_member_chat"])
        await until(lambda: len(r.items) == 2, what="the lines after garbage")
        assert conn.state == ConnectorState.CONNECTED and conn.counters["malformed"] == 6
        long = r.items[0]
        assert len(long.user.name) == 64 and long.text == "hi"
        for i in range(200):  # server-chosen event names are bounded in the counters
            await relay.publish({"chatname": "a", "chatmessage": "b", "event": f"made_up{i}"})
        await until(lambda: conn.counters["unknown"] == 200)
        assert conn.counters["unknown:other"] > 0 and len(conn.counters) < 150
        await relay.send_raw("x" * (300 * 1024))  # past the frame limit: the session ends
        await until(lambda: relay.connections >= 2, what="a new session")
        await relay.wait_joined()
        # Deflated to a few KiB, 64 MiB once inflated: refused at the limit, not inflated whole.
        await relay.send_raw('{"chatmessage": "' + "x" * (64 << 20) + '"}')
        await until(lambda: relay.connections >= 3, what="a session after the bomb")
        await relay.wait_joined()
        await relay.publish(SAMPLES["facebook_follow"])
        await until(lambda: len(r.items) == 3, what="chat after the reconnect")


async def test_relay_dropping_every_socket_and_restarts(relay: SsnRelay, session_env: None) -> None:
    relay.close_after_join = True
    conn = connector(relay)
    async with running(conn):
        await until(lambda: relay.connections >= 4, what="reconnects")
        assert conn.counters["reconnects"] >= 3
        relay.close_after_join = False
        await until(lambda: conn.state == ConnectorState.CONNECTED)
        await relay.stop()
        await until(lambda: conn.state == ConnectorState.RECONNECTING)
        await relay.start()
        await relay.wait_joined()
        await until(lambda: conn.state == ConnectorState.CONNECTED, what="back")


async def test_without_a_session_id_it_fails_with_one_clear_line(
    relay: SsnRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSN_TEST_SESSION", raising=False)
    conn = connector(relay)
    with structlog.testing.capture_logs() as logs:
        async with running(conn):
            await until(lambda: conn.state == ConnectorState.FAILED)
    assert relay.connections == 0
    assert any("$SSN_TEST_SESSION" in json.dumps(line, default=str) for line in logs)
    monkeypatch.setenv("SSN_TEST_SESSION", "not a session/../x")
    conn = connector(relay)
    async with running(conn):
        await until(lambda: conn.state == ConnectorState.FAILED)
    assert relay.connections == 0


async def test_only_the_sites_asked_for(relay: SsnRelay, session_env: None) -> None:
    conn = connector(relay, sources=["kick"], read_bots=True)
    async with running(conn) as r:
        await relay.wait_joined()
        await relay.publish(
            SAMPLES["tiktok_chat"], SAMPLES["kick_member_chat"], SAMPLES["bot_line"]
        )
        await relay.publish(SAMPLES["private_line"])
        await until(lambda: conn.counters["ignored"] == 3)
    assert [i.raw_id for i in r.items] == ["1206"]


def test_amounts() -> None:
    cases = {
        "$5.00": 5.0, "€10,00 EUR": 10.8, "1.234,56 €": 1333.32, "1,234.56 USD": 1234.56,
        "£3": 3.81, "¥500": 3.35, "100 bits": 1.0, "5 roses": 0.0, "21 sats": 0.0, "DONATION": 0.0,
        "$" + "9" * 400: 0.0,
    }  # fmt: skip
    for text, usd in cases.items():
        assert parse_amount(text)[0] == usd, text


def test_options() -> None:
    with pytest.raises(ValueError, match="ws://"):
        SsnOptions(endpoint="https://io.socialstream.ninja")
    with pytest.raises(ValueError, match="lower-case type"):
        SsnOptions(sources=["TikTok"])
    assert SsnMapper().translate({"chatname": "a", "chatmessage": ""}).status.value == "ignored"
