"""The console's parts without a browser: the live feed's bounds, the mute list's file, the
charts' timeline, the browser-origin rule, and the console's routes over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from ishowtts.config import FiltersConfig
from ishowtts.control.console import CSP
from ishowtts.control.feed import EventFeed, FeedFull
from ishowtts.control.http import browser_refusal, host_name, is_loopback
from ishowtts.control.timeline import Timeline
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.pipeline.filters import Filters
from ishowtts.pipeline.mutes import MAX_FIELD, MuteError, MuteList, default_path
from tests.console_daemon import TOKEN, mute_file, running
from tests.servers import bilibili_samples as samples
from tests.servers.bilibili_open import APP_ID, AUTH_CODE, KEY_ID, SECRET, OpenServer
from tests.servers.util import until

# ---- the feed ------------------------------------------------------------------------------


async def test_feed_fans_out_and_resumes_from_the_ring() -> None:
    feed = EventFeed(ring=5, max_subscribers=2, queue_size=10)
    for i in range(3):
        feed.publish("received", id=str(i))
    sub = feed.subscribe()
    backlog, gap = feed.backlog(None, 2)
    assert [r.seq for r in backlog] == [2, 3] and not gap
    feed.publish("terminal", id="0", state="spoken")
    got = sub.queue.get_nowait()
    assert got is not None and got.seq == 4 and json.loads(got.data)["state"] == "spoken"
    assert [r.seq for r in feed.backlog(2, 200)[0]] == [3, 4]
    for i in range(5):
        feed.publish("received", id=f"x{i}")
    records, gap = feed.backlog(1, 200)  # the ring (5) no longer reaches back to 2
    assert gap and [r.seq for r in records] == [5, 6, 7, 8, 9]
    assert feed.backlog(None, 0) == ([], False)


async def test_feed_caps_subscribers_and_drops_a_slow_one() -> None:
    feed = EventFeed(max_subscribers=2, queue_size=3)
    slow, other = feed.subscribe("a"), feed.subscribe("b")
    with pytest.raises(FeedFull):
        feed.subscribe("c")
    for i in range(3):
        feed.publish("received", id=str(i))
    other.queue.get_nowait()  # keeps up
    feed.publish("received", id="3")  # the fourth overflows the slow one
    assert slow.dropped and not other.dropped and feed.lagged == 1
    assert feed.subscribers == 1
    assert slow.queue.get_nowait() is None  # its handler wakes up and ends the stream
    feed.subscribe()  # the slot is free again
    feed.close()
    assert other.dropped and feed.subscribers == 0
    with pytest.raises(FeedFull):
        feed.subscribe()
    feed.publish("received", id="after")  # ignored, no error


async def test_no_peer_can_hold_every_stream() -> None:
    """A peer at its share that subscribes again ends its own oldest stream (16 held streams
    made the console's live view 503); peers off loopback leave places to loopback."""
    from ishowtts.control.feed import LOOPBACK_RESERVE, PER_REMOTE_PEER

    feed = EventFeed(max_subscribers=16)
    hoard = [feed.subscribe("127.0.0.1", local=True) for _ in range(16)]
    console = feed.subscribe("127.0.0.1", local=True)  # not 503: the oldest of its peer ends
    assert hoard[0].dropped and hoard[0].why == "replaced" and not console.dropped
    assert hoard[0].queue.get_nowait() is None and feed.subscribers == 16
    feed.end_streams("token")
    assert feed.subscribers == 0 and all(s.why == "token" for s in [*hoard[1:], console])
    assert not feed.closed
    # Off loopback: a few streams per address, and a reserve only loopback may take.
    mine = [feed.subscribe("192.0.2.9", local=False) for _ in range(PER_REMOTE_PEER + 2)]
    assert sum(not s.dropped for s in mine) == PER_REMOTE_PEER
    others = []
    for n in range(10):
        with contextlib.suppress(FeedFull):
            others.append(feed.subscribe(f"198.51.100.{n}", local=False))
    assert feed.subscribers == 16 - LOOPBACK_RESERVE
    with pytest.raises(FeedFull):
        feed.subscribe("203.0.113.1", local=False)
    for _ in range(LOOPBACK_RESERVE):
        feed.subscribe("::1", local=True)
    assert feed.subscribers == 16


def test_every_listener_takes_any_text_and_any_amount(tmp_path: Path) -> None:
    """A lone surrogate (valid JSON, which replay files and platforms carry) and gift values
    that merge past the float range reach the console and the overlay as valid JSON in UTF-8;
    no ledger listener fails on them."""
    from structlog.testing import capture_logs

    from ishowtts.app.daemon import Daemon
    from ishowtts.config import load_config
    from tests.console_daemon import write_config

    daemon = Daemon(load_config(write_config(tmp_path)))
    odd = User("7", json.loads('"lone \\ud83d name"'))
    events = [
        ChatEvent("bilibili", "1", Kind.DANMAKU, odd, text=json.loads('"lone \\ud83d half"')),
        *(
            ChatEvent(
                "bilibili", "1", Kind.GIFT, User("8", "rich"), gift_name="rocket", amount=1e308
            )
            for _ in range(2)
        ),
    ]
    with capture_logs() as logs:
        for event in events:
            daemon.handle(event)
    assert not [line for line in logs if line["event"] == "ledger_listener_failed"]
    records = [json.loads(r.data.decode("utf-8")) for r in daemon.feed.backlog(None, 100)[0]]
    assert {r["id"] for r in records if r["type"] == "received"} == {e.id for e in events}
    assert records[0]["text"] == "lone \ufffd half" and records[0]["user"] == "lone \ufffd name"
    amounts = [r["amount"] for r in records if r["type"] == "received"][1:]
    assert amounts == [1e308, 1e308]
    queued = daemon.scheduler.peek(events[1].id)
    assert queued is not None and queued.event.amount == sys.float_info.max  # merged, finite
    daemon.live.started(queued, time.monotonic())  # the overlay's record of the merged gift
    last = json.loads(daemon.feed.backlog(None, 1)[0][0].data)
    assert last["type"] == "speaking" and last["amount"] == round(sys.float_info.max, 2)
    assert last["user"] == queued.speaker == "rich"  # the overlay shows the name heard
    daemon.feed.publish("terminal", amount=float("inf"), nested=[float("nan")])
    assert json.loads(daemon.feed.backlog(None, 1)[0][0].data)["amount"] is None


# ---- the mute list -------------------------------------------------------------------------


def test_mutes_survive_a_restart_and_match_by_id_or_name(tmp_path: Path) -> None:
    path = tmp_path / "state" / "mutes.json"
    mutes = MuteList(path)
    mutes.add("bilibili", "42", "troll")
    mutes.add("twitch", "", "nameonly")
    assert mutes.matches("bilibili", ("42",), "renamed troll")  # the id counts, not the name
    assert not mutes.matches("twitch", ("42",), "troll")  # another platform's 42
    assert mutes.matches("twitch", ("7",), "nameonly")
    again = MuteList(path)
    assert [m["name"] for m in again.list()] == ["troll", "nameonly"]
    assert again.remove("bilibili", "42", "")
    assert not again.remove("bilibili", "42", "")
    assert not MuteList(path).matches("bilibili", ("42",), "troll")
    assert not list(path.parent.glob("*.tmp"))  # written through a rename


@pytest.mark.parametrize(
    "body",
    [
        b'{"users": [{"platform": "bilibili"',
        b'{"users": [{"platform": "bilibili", "uid": "1", "name": "\xb2\xe2"}]}',  # GBK
        b"[" * 100_000 + b"]" * 100_000,  # nested past the stack
        b'{"users": "none"}',
    ],
)
def test_a_broken_mute_file_is_kept_aside_not_overwritten(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "mutes.json"
    path.write_bytes(body)
    mutes = MuteList(path)
    assert len(mutes) == 0
    (aside,) = tmp_path.glob("mutes.json.bad-*")
    assert aside.read_bytes() == body
    mutes.add("bilibili", "1", "a")
    assert json.loads(path.read_text(encoding="utf-8"))["users"][0]["uid"] == "1"


def test_one_bad_mute_entry_does_not_lift_the_others(tmp_path: Path) -> None:
    """An entry too long, or with a 400-digit time, is skipped; every other mute holds."""
    path = tmp_path / "mutes.json"
    users = [
        {"platform": "bilibili", "uid": "1", "name": "kept", "at": 1.0},
        {"platform": "bilibili", "uid": "2", "name": "x" * (MAX_FIELD + 1)},
        {"platform": "bilibili", "uid": "3", "name": "far future", "at": 10**400},
        {"platform": "bilibili", "uid": "4", "name": "also kept"},
        "junk",
    ]
    path.write_text(json.dumps({"users": users}), encoding="utf-8")
    mutes = MuteList(path)
    assert [m["uid"] for m in mutes.list()] == ["4", "1"]
    assert not list(tmp_path.glob("mutes.json.bad-*"))


def test_a_mute_file_that_is_not_a_regular_file_is_set_aside(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text(json.dumps({"users": [{"platform": "b", "uid": "1"}]}), encoding="utf-8")
    for name, make in (("fifo.json", os.mkfifo), ("link.json", lambda p: p.symlink_to(real))):
        path = tmp_path / name
        make(path)
        loaded: list[MuteList] = []  # in a thread: on a FIFO a plain read would hang forever
        reader = threading.Thread(target=lambda p=path, out=loaded: out.append(MuteList(p)))
        reader.daemon = True
        reader.start()
        reader.join(10)
        assert loaded and len(loaded[0]) == 0, name  # no hang, no read through the link
        assert not os.path.lexists(path) and len(list(tmp_path.glob(f"{name}.bad-*"))) == 1
    assert real.exists()


def test_the_mute_save_never_follows_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / "mutes.json.tmp").symlink_to(victim)  # the old fixed temporary name
    mutes = MuteList(tmp_path / "mutes.json")
    mutes.add("bilibili", "1", "a")
    assert victim.read_text() == "untouched" and mutes.save_error is None
    assert len(MuteList(tmp_path / "mutes.json")) == 1


def test_mute_requests_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mutes = MuteList(None)
    with pytest.raises(MuteError):
        mutes.add("bilibili", "", "")
    with pytest.raises(MuteError):
        mutes.add("bilibili", "1", "x" * (MAX_FIELD + 1))
    monkeypatch.setattr("ishowtts.pipeline.mutes.MAX_MUTES", 2)
    mutes.add("bilibili", "1", "a")
    mutes.add("bilibili", "2", "b")
    mutes.add("bilibili", "2", "b again")  # the same user: replaced, not counted twice
    with pytest.raises(MuteError, match="full"):
        mutes.add("bilibili", "3", "c")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_mute_file_is_reported_and_kept_in_memory(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        mutes = MuteList(folder / "mutes.json")
        mutes.add("bilibili", "1", "a")
        assert mutes.matches("bilibili", ("1",), "a") and mutes.save_error
    finally:
        folder.chmod(0o700)


def test_an_unwritable_mute_path_is_reported_and_kept_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    mutes = MuteList(blocker / "mutes.json")  # its folder is a file: cannot be written
    mutes.add("bilibili", "1", "a")
    assert mutes.matches("bilibili", ("1",), "a")
    assert mutes.save_error is not None and "not-a-folder" in mutes.save_error


def test_the_mute_file_lives_in_the_state_directory_under_systemd(tmp_path: Path) -> None:
    env = {"STATE_DIRECTORY": "/var/lib/ishowtts:/var/lib/other"}
    config = tmp_path / "config.yaml"
    assert default_path(config, env).parent == Path("/var/lib/ishowtts")
    assert default_path(config, {}).parent == tmp_path
    assert default_path(config, {}).name.startswith("mutes-config-")
    # Each config its own list: configs sharing a folder, or a state directory.
    assert default_path(tmp_path / "room2.yaml", env) != default_path(config, env)
    assert default_path(tmp_path / "x" / "config.yaml", env) != default_path(config, env)


def test_mutes_are_a_filter_rule_beside_the_config_block_list() -> None:
    mutes = MuteList(None)
    filters = Filters(FiltersConfig.model_validate({"users": {"block": ["spammer"]}}), muted=mutes)

    def chat(uid: str, name: str) -> ChatEvent:
        return ChatEvent("bilibili", "1", Kind.DANMAKU, User(uid, name), text="hello")

    assert filters.check(chat("9", "spammer"), "hello", 0.0) == "blocked_user"
    assert filters.check(chat("42", "troll"), "hello", 0.0) is None
    mutes.add("bilibili", "42", "troll")
    assert filters.check(chat("42", "troll"), "hello", 1.0) == "muted_user"
    reloaded = filters.reconfigure(
        FiltersConfig.model_validate({})
    )  # a config reload keeps the mutes
    assert reloaded.check(chat("42", "troll"), "hello", 2.0) == "muted_user"
    assert reloaded.check(chat("9", "spammer"), "hello", 2.0) is None


def test_a_mute_by_any_of_a_users_ids_silences_them() -> None:
    """Bilibili names one user by several ids (open platform: open_id and union_id; the web
    feed: the uid, and the sender's hash when logged out): a mute by any of them counts."""
    mutes = MuteList(None)
    filters = Filters(FiltersConfig.model_validate({}), muted=mutes)

    def chat(uid: str, *alt: str, name: str = "troll") -> ChatEvent:
        user = User(uid, name, alt_ids=alt)
        return ChatEvent("bilibili", "1", Kind.DANMAKU, user, text="hello")

    mutes.add("bilibili", "U-o-troll", "")  # muted by the union_id
    assert filters.check(chat("o-troll", "U-o-troll"), "hello", 0.0) == "muted_user"
    assert filters.check(chat("o-other", "U-o-other"), "hello", 0.0) is None
    mutes.add("bilibili", "hash:8f3a", "")  # from a logged-out line: only the hash was known
    assert filters.check(chat("12345", "hash:8f3a", name=""), "hello", 1.0) == "muted_user"
    mute = mutes.add("bilibili", "o-bob", "bob")  # by the open_id; bob's union_id comes along
    assert mute.covers("bilibili", ("U-o-bob", "o-bob"), "renamed")
    assert not mute.covers("twitch", ("o-bob",), "bob")
    # A by-name mute is never matched by an id that spells its key.
    mutes.add("bilibili", "", "carol")
    assert filters.check(chat("name:carol", name="x"), "hello", 2.0) is None


@pytest.mark.audio
async def test_a_mute_by_union_id_silences_the_open_platform_user(
    tmp_path: Path, pulse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon reading a local open platform: the operator mutes a user by the union_id
    (what another tool or a previous session knew them by) while chat arrives by open_id; what
    of theirs waits is removed and what they say next is dropped."""
    monkeypatch.setenv("BILIBILI_AUTH_CODE", AUTH_CODE)
    monkeypatch.setenv("BILIBILI_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("BILIBILI_ACCESS_KEY_SECRET", SECRET)
    server = await OpenServer(heartbeat_timeout_s=5.0).start()
    connectors = f"[{{type: bilibili-open, app_id: {APP_ID}, api_base: '{server.base}'}}]"
    try:
        async with running(tmp_path, connectors) as r:
            await server.wait_live()
            r.daemon.pause()  # what is made fills the lookahead; the rest waits in the queue
            long = "a fairly long line that keeps the player busy for a while"
            said = [(f"{long} {i}", f"m{i}", who) for i, who in enumerate("abab")]
            await server.push([samples.open_dm(t, m, f"o-{who}", who) for t, m, who in said])
            await until(lambda: r.daemon.ledger.summary()["received"] == 4, 10, "received")
            await until(lambda: len(r.daemon.scheduler) >= 2, 10, "queued")
            assert "b" in {q["user"] for q in r.daemon.scheduler.snapshot()}
            status, body = await r.call("POST", "/mute", {"platform": "bilibili", "uid": "U-o-b"})
            assert status == 200 and body["removed"] >= 1
            assert "b" not in {q["user"] for q in r.daemon.scheduler.snapshot()}
            muted = [f for _, s, f in r.closed if f.get("rule") == "muted"]
            assert len(muted) == body["removed"]
            await server.push([samples.open_dm("still here", "m9", "o-b", "b")])
            await until(lambda: r.daemon.ledger.summary()["received"] == 5, 10, "the next line")
            last = [f for _, s, f in r.closed if s == "dropped"]
            assert last and last[-1] == {"rule": "muted_user"}
    finally:
        await server.stop()


# ---- the charts' timeline ------------------------------------------------------------------


def test_timeline_keeps_medians_per_slot_and_forgets_old_slots() -> None:
    now = [1000.0]
    tl = Timeline(slot_s=10, slots=3, clock=lambda: now[0])
    for ttfa in (0.1, 0.3, 0.2):
        tl.ttfa(ttfa)
    tl.rtf(0.05)
    tl.rtf(float("inf"))  # an empty synthesis: not a point
    tl.depth(4)
    tl.depth(2)
    for state in ("spoken", "dropped", "expired", "removed"):
        tl.outcome(state)
    now[0] = 1025.0
    s = tl.series()
    assert s["start"] == [1000.0, 1020.0]
    assert s["ttfa_ms"] == [200.0, None] and s["rtf"] == [0.05, None]
    assert s["depth"] == [4, 0] and s["spoken"] == [1, 0] and s["dropped"] == [2, 0]
    now[0] = 1100.0
    tl.series()
    now[0] = 1110.0
    tl.series()
    assert len(tl.series()["start"]) == 3  # bounded


# ---- the browser rule ----------------------------------------------------------------------


def test_a_link_from_another_site_may_open_the_pages_only() -> None:
    link = CIMultiDict({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert browser_refusal(link, "127.0.0.1:8765", False, "GET", "/") is None
    assert browser_refusal(link, "127.0.0.1:8765", False, "GET", "/overlay") is None
    assert browser_refusal(link, "127.0.0.1:8765", False, "GET", "/status") is not None
    assert browser_refusal(link, "127.0.0.1:8765", False, "POST", "/") is not None  # a form
    assert browser_refusal(link, "evil.example:8765", False, "GET", "/") is not None


@pytest.mark.parametrize(
    ("headers", "host", "token", "refused"),
    [
        ({}, "127.0.0.1:8765", False, None),  # curl
        ({"Origin": "http://127.0.0.1:8765"}, "127.0.0.1:8765", False, None),  # the console
        (
            {"Origin": "http://localhost:8765", "Sec-Fetch-Site": "same-origin"},
            "localhost:8765",
            False,
            None,
        ),
        ({"Origin": "http://[::1]:8765"}, "[::1]:8765", False, None),
        ({"Origin": "http://evil.example"}, "127.0.0.1:8765", False, "Origin"),
        ({"Origin": "null"}, "127.0.0.1:8765", False, "Origin"),
        ({"Origin": "http://127.0.0.1:9999"}, "127.0.0.1:8765", False, "Origin"),
        ({"Sec-Fetch-Site": "cross-site"}, "127.0.0.1:8765", False, "cross-site"),
        ({"Sec-Fetch-Site": "same-site"}, "127.0.0.1:8765", False, "cross-site"),
        # DNS rebinding: a page's own name now points at 127.0.0.1, so it looks same-origin
        ({"Origin": "http://evil.example:8765"}, "evil.example:8765", False, "loopback"),
        ({}, "evil.example:8765", False, "loopback"),
        # with a token the API may be reached by any name; the token is the guard
        ({"Origin": "http://jetson.local:8765"}, "jetson.local:8765", True, None),
        ({"Origin": "http://evil.example"}, "jetson.local:8765", True, "Origin"),
    ],
)
def test_browser_requests_pass_only_from_the_console_itself(
    headers: dict[str, str], host: str, token: bool, refused: str | None
) -> None:
    why = browser_refusal(CIMultiDict(headers), host, token)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


# ---- the routes over HTTP ------------------------------------------------------------------


async def read_sse(resp: Any, n: int) -> list[tuple[str, dict[str, Any]]]:
    """The first ``n`` records of an event stream (comments and control lines skipped)."""
    out: list[tuple[str, dict[str, Any]]] = []
    block: list[str] = []
    while len(out) < n:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
        if line:
            block.append(line)
            continue
        fields = dict(x.split(": ", 1) for x in block if ": " in x and not x.startswith(":"))
        block = []
        if "data" in fields and fields.get("event") not in (None, "gap", "lagged"):
            out.append((fields["event"], json.loads(fields["data"])))
    return out


@pytest.mark.audio
async def test_pages_are_public_but_data_needs_the_token(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, token=TOKEN) as r:
        for path, kind in (("/", "text/html"), ("/overlay", "text/html")):
            async with r.session.get(r.base + path) as resp:
                assert resp.status == 200 and resp.content_type == kind
                assert resp.headers["Content-Security-Policy"] == CSP
                assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert '<script type="module" src="/static/' in await resp.text()
        async with r.session.get(r.base + "/static/console.js") as resp:
            assert resp.status == 200 and resp.content_type == "text/javascript"
        for path in ("/static/..%2Fapi.py", "/static/api.py", "/static/nothing.js"):
            async with r.session.get(r.base + path) as resp:
                assert resp.status == 404, path
        for path in ("/console/state", "/events", "/mutes"):
            async with r.session.get(r.base + path) as resp:
                assert resp.status == 401, path
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, body = await r.call("GET", "/console/state", **auth)
        assert status == 200 and body["ready"] is True and body["voices"] == ["bright", "default"]
        status, _ = await r.call("POST", "/mute", {"platform": "x", "name": "y"})
        assert status == 401 and len(r.daemon.mutes) == 0


@pytest.mark.audio
async def test_the_event_stream_carries_each_fate(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        async with r.session.get(r.base + "/events?backlog=0") as resp:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            spoken = r.chat("alice", "hello stream")
            dropped = r.chat("bob", "buy followers here")
            got = await read_sse(resp, 6)
        seen = {(kind, rec["id"], rec.get("state")) for kind, rec in got}
        assert ("received", spoken.id, None) in seen and ("received", dropped.id, None) in seen
        assert ("terminal", dropped.id, "dropped") in seen
        assert ("speaking", spoken.id, None) in seen
        assert ("done", spoken.id, None) in seen and ("terminal", spoken.id, "spoken") in seen
        rule = next(rec for kind, rec in got if kind == "terminal" and rec["id"] == dropped.id)
        assert rule["rule"] == "blocked_keyword" and rule["user"] == "bob"
        assert rule["platform"] == "bilibili" and rule["uid"] == "uid-bob"
        # A reconnecting page resumes after the last record it saw, and misses nothing.
        first = min(rec["seq"] for _, rec in got)
        async with r.session.get(f"{r.base}/events?since={first}") as resp:
            again = await read_sse(resp, 5)
        assert [rec["seq"] for _, rec in again] == sorted(rec["seq"] for _, rec in got)[1:]
        async with r.session.get(r.base + "/events?since=-1") as resp:
            assert resp.status == 400
        async with r.session.get(r.base + "/events?backlog=100000") as resp:
            assert resp.status == 400
        feed = r.daemon.feed
        await until(lambda: feed.subscribers == 0, 10, "closed streams to be noticed")
        feed.max_subscribers = 1
        async with r.session.get(r.base + "/events") as first_view:
            assert first_view.status == 200
            # The same peer again (a reloaded page): its older stream ends, not a 503.
            async with r.session.get(r.base + "/events") as second:
                assert second.status == 200
                await asyncio.wait_for(first_view.content.read(), 10)
                assert feed.subscribers == 1


@pytest.mark.audio
async def test_only_the_console_origin_passes(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        own = {"Origin": r.base, "Sec-Fetch-Site": "same-origin"}
        status, body = await r.call("POST", "/pause", **own)
        assert (status, body) == (200, {"paused": True})
        status, body = await r.call("POST", "/say", {"text": "hi"}, Origin="http://evil.example")
        assert status == 403 and "Origin" in body["detail"]
        rebound = {"Origin": "http://evil.example:1", "Host": "evil.example:1"}
        status, body = await r.call("POST", "/say", {"text": "hi"}, **rebound)
        assert status == 403 and "loopback" in body["detail"]
        status, _ = await r.call("GET", "/console/state", Host="evil.example")
        assert status == 403
        assert r.daemon.ledger.summary()["received"] == 0


@pytest.mark.audio
async def test_queue_removal_mutes_and_the_say_voice(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        r.daemon.pause()  # what is made fills the lookahead; the rest waits in the queue
        long = "a fairly long line that keeps the player busy for a while"
        lines = [r.chat(name, f"{long} {i}") for i, name in enumerate(["a", "troll", "b", "troll"])]
        await until(lambda: len(r.daemon.scheduler) >= 3, 10, "queued")
        status, state = await r.call("GET", "/console/state")
        queued = [q["id"] for q in state["queue"]]
        assert state["queued"] == len(queued) >= 3 and state["player"]["paused"]
        assert all(q["age_s"] >= 0 and q["ttl_s"] > 0 for q in state["queue"])
        victim = next(e for e in lines if e.id in queued and e.user.name != "troll")
        status, body = await r.call("POST", "/queue/remove", {"id": victim.id})
        assert (status, body) == (200, {"removed": victim.id})
        assert r.fate(victim.id) == ("removed", {"rule": "operator"})
        status, _ = await r.call("POST", "/queue/remove", {"id": victim.id})
        assert status == 404
        status, body = await r.call(
            "POST", "/mute", {"platform": "bilibili", "uid": "uid-troll", "name": "troll"}
        )
        assert status == 200 and body["saved"] is True
        trolls_queued = [e for e in lines if e.user.name == "troll" and e.id in queued]
        assert body["removed"] == len(trolls_queued) >= 1
        assert all(r.fate(e.id) == ("removed", {"rule": "muted"}) for e in trolls_queued)
        later = r.chat("troll", "am I still heard")
        assert r.fate(later.id) == ("dropped", {"rule": "muted_user"})
        saved = json.loads(mute_file(tmp_path).read_text(encoding="utf-8"))
        assert saved["users"][0]["uid"] == "uid-troll"
        status, body = await r.call("POST", "/mute", {"platform": "bilibili"})
        assert status == 422 and body["error"] == "cannot mute"
        status, body = await r.call("POST", "/unmute", {"platform": "bilibili", "uid": "uid-troll"})
        assert status == 200
        assert r.fate(r.chat("troll", "back again").id) != ("dropped", {"rule": "muted_user"})
        # The say box's voice choice reaches the utterance; an unknown voice is refused.
        status, body = await r.call(
            "POST", "/say", {"text": "in the other voice", "voice": "bright"}
        )
        assert status == 202
        utt = r.daemon.scheduler.peek(body["id"])
        assert utt is not None and utt.voice == "bright"
        status, body = await r.call("POST", "/say", {"text": "x", "voice": "nobody"})
        assert status == 422 and body["detail"][0]["field"] == "voice"


def test_a_failing_ledger_listener_never_breaks_the_accounting() -> None:
    from ishowtts.queue.ledger import Ledger, Terminal

    ledger = Ledger()
    seen: list[str | None] = []

    def broken(event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        raise RuntimeError("a viewer bug")

    ledger.listeners += [broken, lambda e, s, f: seen.append(s and s.value)]
    event = ChatEvent("bilibili", "1", Kind.DANMAKU, User("1", "a"), text="hi")
    ledger.received(event)
    assert ledger.close(event.id, Terminal.SPOKEN)
    assert seen == [None, "spoken"] and ledger.summary()["spoken"] == 1


def test_the_mixer_says_how_much_of_a_line_is_left() -> None:
    import numpy as np

    from ishowtts.audio.mixer import Mixer
    from ishowtts.events import AudioChunk, Utterance

    mixer = Mixer(1000, fade_ms=1.0)
    event = ChatEvent("bilibili", "1", Kind.DANMAKU, User("1", "a"), text="hi")
    utt = Utterance(event, "hi", "default", 20, deadline=1e9)
    assert mixer.left(utt.id) is None
    mixer.enqueue(AudioChunk(utt, np.zeros(500, np.float32), 1000, 0, last=False))
    assert mixer.left(utt.id) == (0.5, False)  # more may come
    mixer.enqueue(AudioChunk(utt, np.zeros(300, np.float32), 1000, 1, last=True))
    mixer.fill(np.zeros(200, np.float32), 0.0)
    assert mixer.left(utt.id) == (0.6, True)


@pytest.mark.audio
async def test_the_state_says_which_engine_speaks(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        status, state = await r.call("GET", "/console/state")
        engine = state["engine"]
        assert status == 200 and engine["engine"] == "tone" and engine["state"] == "ready"
        assert "voices" not in engine  # lists left out
        assert engine["speaking"] == "primary" and "primary_error" not in engine
        # When the fallback speaks, the state says so and why (the worker's two attributes).
        r.daemon.worker.speaking = "fallback"
        r.daemon.worker.primary_error = "weights missing"
        _, state = await r.call("GET", "/console/state")
        assert state["engine"]["speaking"] == "fallback"
        assert state["engine"]["primary_error"] == "weights missing"


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:8765", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8765", "::1"),
        ("[::1]", "::1"),
        ("[::1]x", "[::1]x"),
        ("127.0.0.1:abc", "127.0.0.1:abc"),
        ("a:b:c", "a:b:c"),
        ("", ""),
    ],
)
def test_host_names(host: str, name: str) -> None:
    assert host_name(host) == name
    assert (browser_refusal(CIMultiDict(), host, False) is None) == is_loopback(name)
