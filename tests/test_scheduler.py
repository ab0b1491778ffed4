"""The scheduler: ordering, TTL, eviction, removal, bounds; every exit reported once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from ishowtts.config import QueueConfig
from ishowtts.events import ChatEvent, Kind, User, Utterance
from ishowtts.ledger import Terminal
from ishowtts.scheduler import Scheduler

PRIO = {Kind.SUPER_CHAT: 50, Kind.GUARD: 40, Kind.GIFT: 30, Kind.DANMAKU: 20, Kind.ENTER: 10}


def utt(
    kind: Kind = Kind.DANMAKU,
    text: str = "hi",
    uid: str = "1",
    raw_id: str = "",
    deadline: float = 1e9,
    platform: str = "bili",
) -> Utterance:
    e = ChatEvent(
        platform=platform, room="1", kind=kind, user=User(uid, f"u{uid}"), text=text, raw_id=raw_id
    )
    return Utterance(event=e, text=text, voice="default", priority=PRIO[kind], deadline=deadline)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Terminal, dict[str, Any]]] = []

    def __call__(self, u: Utterance, state: Terminal, fields: dict[str, Any]) -> None:
        self.calls.append((u.text, state, fields))

    def states(self) -> list[tuple[str, str, str]]:
        return [(t, s.value, f.get("rule", "")) for t, s, f in self.calls]


def make(max_items: int = 10) -> tuple[Scheduler, Recorder]:
    rec = Recorder()
    return Scheduler(QueueConfig(max_items=max_items), rec), rec


def drain(s: Scheduler, now: float = 0.0) -> list[str]:
    out = []
    while (u := s.pop(now)) is not None:
        out.append(u.text)
    return out


def test_priority_then_arrival() -> None:
    s, rec = make()
    for kind, text in [
        (Kind.DANMAKU, "d1"),
        (Kind.ENTER, "e1"),
        (Kind.GIFT, "g1"),
        (Kind.DANMAKU, "d2"),
        (Kind.SUPER_CHAT, "s1"),
        (Kind.GUARD, "x1"),
        (Kind.SUPER_CHAT, "s2"),
    ]:
        s.put(utt(kind, text), now=0.0)
    assert len(s) == 7
    assert s.depth_by_kind() == {"danmaku": 2, "enter": 1, "gift": 1, "super_chat": 2, "guard": 1}
    assert [row["id"] for row in s.snapshot(0.0)] == [
        s.find(lambda u, t=t: u.text == t).id for t in ["s1", "s2", "x1", "g1", "d1", "d2", "e1"]
    ]
    assert drain(s) == ["s1", "s2", "x1", "g1", "d1", "d2", "e1"]
    assert rec.calls == [] and len(s) == 0


def test_pop_skips_and_reports_expired() -> None:
    s, rec = make()
    s.put(utt(Kind.SUPER_CHAT, "old", deadline=5.0), now=0.0)
    s.put(utt(Kind.DANMAKU, "fresh", deadline=50.0), now=0.0)
    assert drain(s, now=10.0) == ["fresh"]
    assert rec.states() == [("old", "expired", "ttl")]


def test_expire() -> None:
    s, rec = make()
    for i in range(5):
        s.put(utt(text=f"d{i}", deadline=float(i)), now=0.0)
    assert s.expire(2.5) == 3
    assert [t for t, _, _ in rec.states()] == ["d0", "d1", "d2"]
    assert drain(s, now=0.0) == ["d3", "d4"]


def test_full_evicts_lowest_class_oldest_first() -> None:
    s, rec = make(max_items=4)
    s.put(utt(Kind.DANMAKU, "d1"), 0.0)
    s.put(utt(Kind.ENTER, "e1"), 0.0)
    s.put(utt(Kind.ENTER, "e2"), 0.0)
    s.put(utt(Kind.DANMAKU, "d2"), 0.0)
    s.put(utt(Kind.GIFT, "g1"), 0.0)  # evicts e1 (lowest class, oldest)
    s.put(utt(Kind.DANMAKU, "d3"), 0.0)  # evicts e2
    s.put(utt(Kind.DANMAKU, "d4"), 0.0)  # evicts d1 (danmaku is now lowest; oldest)
    s.put(utt(Kind.ENTER, "e3"), 0.0)  # the newcomer is the least important: it goes
    assert rec.states() == [
        ("e1", "evicted", "queue_full"),
        ("e2", "evicted", "queue_full"),
        ("d1", "evicted", "queue_full"),
        ("e3", "evicted", "queue_full"),
    ]
    assert drain(s) == ["g1", "d2", "d3", "d4"]


def test_full_expires_before_evicting() -> None:
    s, rec = make(max_items=2)
    s.put(utt(Kind.SUPER_CHAT, "stale", deadline=1.0), 0.0)
    s.put(utt(Kind.ENTER, "e1", deadline=100.0), 0.0)
    s.put(utt(Kind.DANMAKU, "d1", deadline=100.0), 5.0)
    assert rec.states() == [("stale", "expired", "ttl")]
    assert drain(s, 5.0) == ["d1", "e1"]


def test_bounded_under_flood() -> None:
    s, rec = make(max_items=10)
    kinds = list(PRIO)
    for i in range(1000):
        s.put(utt(kinds[i % len(kinds)], f"m{i}"), float(i))
        assert len(s) <= 10
    assert len(rec.calls) == 990
    assert len(drain(s)) == 10
    # Every put either stayed or was reported, each once.
    texts = [t for t, _, _ in rec.calls]
    assert len(set(texts)) == len(texts)


def test_remove_by_raw_id_user_platform() -> None:
    s, rec = make()
    s.put(utt(text="a", raw_id="r1", uid="1"), 0.0)
    s.put(utt(text="b", raw_id="r2", uid="2"), 0.0)
    s.put(utt(text="c", raw_id="r3", uid="2"), 0.0)
    s.put(utt(text="d", raw_id="r1", uid="3", platform="twitch"), 0.0)
    assert s.remove(raw_ids=["r1"], platform="bili", reason="recalled") == 1
    assert s.remove(user_id="2", reason="banned") == 2
    assert s.remove(raw_ids=["nope"]) == 0
    assert s.remove() == 0  # nothing asked, nothing taken
    assert rec.states() == [
        ("a", "removed", "recalled"),
        ("b", "removed", "banned"),
        ("c", "removed", "banned"),
    ]
    assert drain(s) == ["d"]


def test_remove_by_event_id_and_platform_everything() -> None:
    s, rec = make()
    a = utt(text="a")
    s.put(a, 0.0)
    s.put(utt(text="b", platform="twitch"), 0.0)
    s.put(utt(text="c"), 0.0)
    assert s.remove(ids=[a.id], reason="skipped") == 1
    assert s.remove(platform="twitch", everything=True, reason="room_clear") == 1
    assert drain(s) == ["c"]
    assert rec.states() == [("a", "removed", "skipped"), ("b", "removed", "room_clear")]


def test_clear() -> None:
    s, rec = make()
    for i in range(5):
        s.put(utt(text=f"d{i}"), 0.0)
    assert s.clear("shutdown") == 5
    assert len(s) == 0 and s.pop(0.0) is None
    assert {r for _, _, r in rec.states()} == {"shutdown"} and len(rec.calls) == 5


def test_find_and_replace_keeps_position() -> None:
    s, rec = make()
    s.put(utt(Kind.GIFT, "g1", uid="1"), 0.0)
    s.put(utt(Kind.GIFT, "g2", uid="2"), 0.0)
    first = s.find(lambda u: u.event.user.id == "1")
    assert first is not None and first.text == "g1"
    s.replace(first.id, dataclasses.replace(first, text="g1 x2"))
    assert first.id in s
    assert rec.calls == []
    assert drain(s) == ["g1 x2", "g2"]
    assert s.find(lambda u: True) is None


def test_replace_with_another_id_reports_the_old() -> None:
    s, rec = make()
    old = utt(Kind.GIFT, "old")
    s.put(old, 0.0)
    s.put(utt(Kind.GIFT, "later"), 0.0)
    s.replace(old.id, utt(Kind.GIFT, "new"))
    assert rec.states() == [("old", "removed", "replaced")]
    assert drain(s) == ["new", "later"]


def test_put_twice_refused() -> None:
    s, _ = make()
    u = utt()
    s.put(u, 0.0)
    with pytest.raises(ValueError, match="already queued"):
        s.put(u, 0.0)


def test_reconfigure_shrinks() -> None:
    s, rec = make(max_items=5)
    for i in range(5):
        s.put(utt(text=f"d{i}"), 0.0)
    s.reconfigure(QueueConfig(max_items=2), now=0.0)
    assert len(s) == 2 and len(rec.calls) == 3
    assert drain(s) == ["d3", "d4"]


async def test_get_waits_and_skips_expired() -> None:
    s, rec = make()
    s.put(utt(Kind.SUPER_CHAT, "stale", deadline=time.monotonic() - 1), 0.0)
    getter = asyncio.create_task(s.get())
    await asyncio.sleep(0)
    assert not getter.done()  # the stale one was expired, nothing else yet
    assert rec.states() == [("stale", "expired", "ttl")]
    s.put(utt(text="fresh", deadline=time.monotonic() + 60), 0.0)
    got = await asyncio.wait_for(getter, 5)
    assert got.text == "fresh"


def test_expire_after_mixed_deadlines_and_peek() -> None:
    s, rec = make()
    a = utt(text="a", deadline=10.0)
    s.put(a, 0.0)
    assert s.expire(5.0) == 0
    assert s.peek(a.id) is a and s.peek("nope") is None
    s.put(utt(text="b", deadline=3.0), 0.0)
    assert s.expire(5.0) == 1
    assert s.expire(9.0) == 0
    assert s.expire(11.0) == 1
    assert s.peek(a.id) is None
    assert [t for t, _, _ in rec.states()] == ["b", "a"]
