"""The youtube connector against a local server speaking the Data API's JSON
(tests/servers/youtube.py): streamList, list polling, the live chat id from a video or a
channel, money, memberships, retractions, and each API error's retry."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from ishowtts.connectors import ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.youtube import YoutubeConnector, YoutubeOptions
from ishowtts_plugins.youtube.api import ArraySplitter
from ishowtts_plugins.youtube.client import until_quota_reset
from ishowtts_plugins.youtube.messages import translate
from tests.servers.util import running, until
from tests.servers.youtube import CHANNEL, ITEMS, KEY, VIDEO, YoutubeApi

FAST = {"backoff_initial_s": 0.02, "backoff_max_s": 0.1, "min_poll_s": 0.05}


@pytest.fixture
async def server() -> AsyncIterator[YoutubeApi]:
    srv = await YoutubeApi().start()
    yield srv
    await srv.stop()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YT_TEST_KEY", KEY)


def connector(srv: YoutubeApi, **extra: Any) -> YoutubeConnector:
    where = {"video": f"https://www.youtube.com/watch?v={VIDEO}"} if "channel" not in extra else {}
    opts = YoutubeOptions(endpoint=srv.url, api_key_env="YT_TEST_KEY", **{**FAST, **where, **extra})
    return YoutubeConnector("yt", opts, ConnectorContext(base_dir=Path(".")))


ALL = [ITEMS[k] for k in ("text", "superchat", "sticker", "member", "milestone", "gifting",
                          "received", "deleted", "banned", "poll")]  # fmt: skip


def check_items(items: list[Any]) -> None:
    events = {i.raw_id: i for i in items if isinstance(i, ChatEvent)}
    text = events["m1"]
    assert (text.kind, text.text, text.user.id, text.user.name, text.room) == (
        Kind.DANMAKU, "hello youtube", "UCalice000000000000000000", "Alice", VIDEO,
    )  # fmt: skip
    assert (events["m2"].kind, events["m2"].text, events["m2"].amount) == (
        Kind.SUPER_CHAT,
        "gg",
        5.4,
    )
    sticker = events["m3"]
    assert (sticker.kind, sticker.gift_name, sticker.amount, sticker.sticker) == (
        Kind.GIFT, "Happy cat", 2.0, True,
    )  # fmt: skip
    assert (events["m4"].kind, events["m4"].gift_name) == (Kind.GUARD, "Fan club")
    assert (events["m5"].kind, events["m5"].text) == (Kind.GUARD, "a year!")
    gifting = events["m6"]
    assert (gifting.kind, gifting.gift_count) == (Kind.GUARD, 5)
    assert gifting.user.is_moderator and gifting.user.guard_level == 1
    assert set(events) == {"m1", "m2", "m3", "m4", "m5", "m6"}
    deleted, banned = (i for i in items if isinstance(i, Retraction))
    assert deleted.raw_ids == ("m1",) and deleted.matches(text)
    assert (banned.user_id, banned.reason) == ("UCalice000000000000000000", "timeout")


async def test_stream_list_reads_everything_and_skips_history(server: YoutubeApi) -> None:
    server.pages = [[ITEMS["text"]]]  # already in the chat: not read
    conn = connector(server)
    with structlog.testing.capture_logs() as logs:
        async with running(conn) as r:
            await server.wait_stream()
            await until(lambda: conn.state == ConnectorState.CONNECTED)
            await server.push(*ALL[:4])
            await server.push(*ALL[4:])
            await until(lambda: conn.counters["retractions"] == 2, what="every item")
    check_items(r.items)
    assert conn.counters["history_skipped"] == 1 and conn.counters["malformed"] == 0
    paths = [p for p, _ in server.requests]
    assert paths == ["/youtube/v3/videos", "/youtube/v3/liveChat/messages/stream"]
    assert server.keys_in_query == 0 and KEY not in json.dumps(logs, default=str)


async def test_list_polling_when_the_stream_is_unavailable(server: YoutubeApi) -> None:
    server.stream_available = False
    server.pages = [[ITEMS["text"]], ALL[:5], ALL[5:]]
    conn = connector(server)
    async with running(conn) as r:
        await until(lambda: conn.counters["retractions"] == 2, what="every item")
    check_items(r.items)
    polls = [q for p, q in server.requests if p == "/youtube/v3/liveChat/messages"]
    assert polls[0].get("pageToken") is None and polls[1]["pageToken"].startswith("t")


async def test_a_channel_its_live_video_and_the_chat_ending(server: YoutubeApi) -> None:
    server.channel_live = False
    conn = connector(
        server, channel=f"https://www.youtube.com/channel/{CHANNEL}", channel_check_s=30
    )
    conn.wait_at_least = lambda seconds: None  # type: ignore[method-assign]  # no 30 s waits here
    async with running(conn) as r:
        await until(lambda: len(server.requests) >= 2, what="looking again")
        assert conn.state != ConnectorState.CONNECTED
        server.channel_live = True
        await server.wait_stream()
        await server.push(ITEMS["text"])
        await server.push(ITEMS["ended"])
        await until(lambda: conn.state == ConnectorState.RECONNECTING, what="the chat's end")
    assert [i.raw_id for i in r.items] == ["m1"]
    assert "/youtube/v3/playlistItems" in [p for p, _ in server.requests]
    assert "/youtube/v3/search" not in [p for p, _ in server.requests]  # 100 units a call


async def test_a_channel_that_does_not_exist(server: YoutubeApi) -> None:
    conn = connector(server, channel="UCzzzzzzzzzzzzzzzzzzzzzz")
    async with running(conn):
        await until(lambda: conn.state == ConnectorState.FAILED)


async def test_a_video_whose_stream_ended_finishes_with_one_line(server: YoutubeApi) -> None:
    server.live, server.ended = False, True
    conn = connector(server)
    with structlog.testing.capture_logs() as logs:
        async with running(conn):
            await until(lambda: conn.state == ConnectorState.FINISHED)
    over = [x for x in logs if x.get("state") == "finished"]
    assert len(over) == 1 and over[0]["why"] == "the stream has ended"
    assert not [x for x in logs if x.get("log_level") == "error"]  # an end, not a failure


@pytest.mark.parametrize(
    ("status", "reason", "state"),
    [
        (403, "quotaExceeded", ConnectorState.RECONNECTING),
        (403, "rateLimitExceeded", ConnectorState.RECONNECTING),
        (403, "forbidden", ConnectorState.FAILED),
        (403, "liveChatDisabled", ConnectorState.FAILED),
        (403, "liveChatEnded", ConnectorState.FINISHED),
        (503, "backendError", ConnectorState.CONNECTED),
    ],
)
async def test_api_errors(
    server: YoutubeApi, status: int, reason: str, state: ConnectorState
) -> None:
    server.error = (status, reason)
    waits: list[float] = []
    conn = connector(server)
    conn.wait_at_least = waits.append  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        async with running(conn):
            await until(lambda: conn.counters[f"api_error:{reason}"] == 1)
            if state == ConnectorState.CONNECTED:  # retried after the backoff
                await server.wait_stream()
            await until(lambda: conn.state == state)
    if reason == "quotaExceeded":
        assert 60 <= waits[0] <= 25 * 3600
        assert any(line.get("event") == "youtube_quota_exceeded" for line in logs)
    if reason == "rateLimitExceeded":
        assert waits == [30.0]


async def test_hostile_stream(server: YoutubeApi) -> None:
    conn = connector(server)
    async with running(conn) as r:
        await server.wait_stream()
        await server.push(raw=b",\n[1, 2]")  # not an object: the stream is broken, a new one
        await server.wait_stream()
        await server.push(raw=b',\n{"items": [{"id": "x"}, 7], "nextPageToken": "n1"}')
        await server.push(ITEMS["text"])
        await until(lambda: len(r.items) == 1)
        assert conn.counters["malformed"] == 2
        await server.push(raw=b",\n{" + b'"a": "' + b"x" * (1 << 20) + b'"}')  # too big
        await server.wait_stream()
        await until(lambda: conn.state == ConnectorState.CONNECTED)


async def test_without_a_key(server: YoutubeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YT_TEST_KEY")
    conn = connector(server)
    async with running(conn):
        await until(lambda: conn.state == ConnectorState.FAILED)
    assert not server.requests


def test_splitter_and_quota_reset() -> None:
    doc = b'[{"a": "}{\\"["}, {"b": [1, {"c": 2}]}'
    splitter = ArraySplitter()
    out = [o for i in range(len(doc)) for o in splitter.feed(doc[i : i + 1])]
    assert [json.loads(o) for o in out] == [{"a": '}{"['}, {"b": [1, {"c": 2}]}]
    at = dt.datetime(2026, 12, 4, 7, 0, tzinfo=dt.timezone.utc)  # 23:00 in Los Angeles
    assert until_quota_reset(at) == 3600


def test_a_super_chat_without_words_is_read_as_a_gift() -> None:
    silent = json.loads(json.dumps(ITEMS["superchat"]))
    del silent["snippet"]["superChatDetails"]["userComment"]
    (event,) = translate(silent, VIDEO).items
    assert isinstance(event, ChatEvent)
    assert (event.kind, event.gift_name, event.amount) == (Kind.GIFT, "€5.00", 5.4)


def test_options() -> None:
    assert YoutubeOptions(video="https://youtu.be/dQw4w9WgXcQ?t=1").video == VIDEO
    assert YoutubeOptions(video="https://www.youtube.com/live/dQw4w9WgXcQ").video == VIDEO
    with pytest.raises(ValueError, match="one of video"):
        YoutubeOptions()
    with pytest.raises(ValueError, match="channel id"):
        YoutubeOptions(channel="@somebody")
