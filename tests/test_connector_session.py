"""The connector skeleton, shown with a polling (HTTP long-poll) connector against a local
server: a platform that is not a WebSocket fits the same session/deliver shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ishowtts.connectors import (
    AuthFailed,
    BoundedCounter,
    ConnectorContext,
    ConnectorState,
    Outcome,
    SessionConnector,
    SessionEnded,
    SessionOptions,
    Status,
)
from ishowtts.connectors.counters import OTHER
from ishowtts.events import ChatEvent, Kind, Retraction, User
from tests.servers.util import running, until


class PollServer:
    """Messages by cursor; a poll waits (long-poll) until there is something after its cursor.

    ``fail_next``: HTTP statuses the next polls get instead of messages."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.fail_next: list[int] = []
        self.polls = 0
        self.changed = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> PollServer:
        app = web.Application()
        app.router.add_get("/poll", self.poll)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/poll"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def push(self, *messages: Any) -> None:
        self.messages.extend(messages)
        self.changed.set()

    async def poll(self, request: web.Request) -> web.StreamResponse:
        self.polls += 1
        if self.fail_next:
            return web.Response(status=self.fail_next.pop(0))
        cursor = int(request.query.get("cursor") or 0)
        while cursor >= len(self.messages):
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.5)
            except asyncio.TimeoutError:
                break  # an empty page: the client polls again
        return web.json_response({"cursor": len(self.messages), "messages": self.messages[cursor:]})


class PollOptions(SessionOptions):
    url: str


def map_message(msg: Any) -> Outcome:
    """The platform's message mapping: pure, raises ValueError on what it cannot read."""
    if not isinstance(msg, dict) or "type" not in msg:
        raise ValueError(f"not a message: {msg!r}"[:80])
    if msg["type"] == "chat":
        user = User(id=str(msg["uid"]), name=str(msg["uid"]))
        event = ChatEvent("poll", "room", Kind.DANMAKU, user, text=msg["text"], raw_id=msg["id"])
        return Outcome(Status.EVENT, (event,))
    if msg["type"] == "delete":
        return Outcome(Status.RETRACTION, (Retraction("poll", raw_ids=(msg["id"],)),))
    return Outcome(Status.UNKNOWN, note=str(msg["type"]))


class PollConnector(SessionConnector):
    """A whole polling connector: its session and its mapping, nothing else."""

    platform = "poll"
    options: PollOptions

    async def session(self, http: aiohttp.ClientSession) -> None:
        cursor = ""
        while True:
            async with http.get(self.options.url, params={"cursor": cursor}) as resp:
                if resp.status == 401:
                    raise AuthFailed("token refused", refused=True)
                if resp.status != 200:
                    raise SessionEnded(f"HTTP {resp.status}")
                page = await resp.json()
            if self.state != ConnectorState.CONNECTED:
                self.connected()
            cursor = str(page["cursor"])
            for message in page["messages"]:
                try:
                    outcome = map_message(message)
                except (ValueError, KeyError) as exc:
                    self.malformed(str(exc))
                    continue
                await self.deliver(outcome)


FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


@pytest.fixture
async def server() -> AsyncIterator[PollServer]:
    srv = await PollServer().start()
    yield srv
    await srv.stop()


def connector(url: str, **extra: Any) -> PollConnector:
    opts = PollOptions(url=url, **{**FAST, **extra})
    return PollConnector("poll", opts, ConnectorContext(base_dir=Path(".")))


def chat(i: int, text: str = "") -> dict[str, Any]:
    return {"type": "chat", "id": f"m{i}", "uid": 7, "text": text or f"hello {i}"}


async def test_polls_maps_dedupes_and_survives_garbage(server: PollServer) -> None:
    conn = connector(server.url)
    async with running(conn) as r:
        server.push(chat(1), chat(2), [1, 2], {"type": "future_thing"}, chat(2))
        await until(lambda: len(r.items) == 2, what="two chats")
        server.push({"type": "delete", "id": "m1"}, chat(3))
        await until(lambda: len(r.items) == 4, what="the retraction and the third chat")
        assert conn.state == ConnectorState.CONNECTED
    assert [getattr(i, "text", "retract") for i in r.items] == [
        "hello 1", "hello 2", "retract", "hello 3",
    ]  # fmt: skip
    c = conn.counters
    assert c["malformed"] == 1 and c["duplicate"] == 1 and c["unknown:future_thing"] == 1
    assert c["events"] == 3 and c["retractions"] == 1 and c["reconnects"] == 0


async def test_server_error_reconnects_and_repeats_are_dropped(server: PollServer) -> None:
    conn = connector(server.url)
    async with running(conn) as r:
        server.push(chat(1), chat(2))
        await until(lambda: len(r.items) == 2)
        await until(lambda: server.polls == 2, what="the next poll waiting")
        server.fail_next = [500, 502]
        server.push(chat(3))  # answers the waiting poll; the next two polls fail
        await until(lambda: conn.counters["reconnects"] == 2, what="two reconnects")
        # A new session starts from no cursor: the server sends all three again.
        await until(lambda: conn.counters["duplicate"] == 3, what="the repeats")
        assert conn.state == ConnectorState.CONNECTED
    assert [i.text for i in r.items] == ["hello 1", "hello 2", "hello 3"]
    assert ConnectorState.RECONNECTING in r.states
    assert conn.backoff.attempt == 0  # reset by the accepted session


async def test_refused_logins_end_failed(server: PollServer) -> None:
    server.fail_next = [401] * 10
    conn = connector(server.url, max_auth_failures=3)
    async with running(conn) as r:
        await until(lambda: conn.state == ConnectorState.FAILED, what="failed")
    assert server.polls == 3 and conn.counters["auth_failures"] == 3
    assert ConnectorState.CONNECTED not in r.states


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        (["u:a", "u:b"], {"u:a": 1, "u:b": 1}),
        (["u:a", "u:b", "u:c", "u:d", "u:a"], {"u:a": 2, "u:b": 1, "u:c": 1, f"u:{OTHER}": 1}),
        (["u:a", "u:b", "u:c", "u:d", "u:e", "u:c"], {"u:a": 1, "u:b": 1, "u:c": 2, f"u:{OTHER}": 2}),
        # Families are bounded one by one; the code's own names (no colon) always count.
        (["u:a", "u:b", "u:c", "u:d", "n:a", "events", "malformed"],
         {"u:a": 1, "u:b": 1, "u:c": 1, f"u:{OTHER}": 1, "n:a": 1, "events": 1, "malformed": 1}),
    ],
)  # fmt: skip
def test_counter_keys_are_bounded(updates: list[str], expected: dict[str, int]) -> None:
    c = BoundedCounter(limit=3)
    for key in updates:
        c[key] += 1
    assert dict(c) == expected


def test_counter_overflow_adds_up() -> None:
    c = BoundedCounter(limit=2)
    for i in range(10_000):
        c[f"unknown:{i}"] += 1
    assert len(c) == 3 and sum(c.values()) == 10_000


async def test_a_stop_during_a_side_jobs_cleanup_is_not_lost(server: PollServer) -> None:
    """The connector's task, cancelled (stopped) while ``alongside`` waits for its side job (a
    heartbeat finishing a send) to end, must end too. The old cleanup swallowed that
    cancellation with the side job's: the connector ran on, and a server asking it to reconnect
    kept it reconnecting forever while ``stop()`` waited (seen under load in the Twitch tests)."""
    conn = connector(server.url)
    in_cleanup, release = asyncio.Event(), asyncio.Event()
    after_block = asyncio.Event()

    async def heartbeat() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            in_cleanup.set()
            await release.wait()  # slow to stop: the owner's cancel lands meanwhile

    async def session_body() -> None:
        async with conn.alongside(heartbeat(), "heartbeat"):
            await asyncio.sleep(0)
        after_block.set()  # reached only if the owner's cancellation was swallowed
        await asyncio.sleep(3600)

    owner = asyncio.create_task(session_body())
    await until(in_cleanup.is_set)
    owner.cancel()
    await asyncio.sleep(0.01)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(owner, 5)
    assert not after_block.is_set()
