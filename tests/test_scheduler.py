"""The scheduler: ordering, TTL, eviction, removal, bounds; every exit reported once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from ishowtts.config import QueueConfig
from ishowtts.events import ChatEvent, Kind, Retraction, User, Utterance
from ishowtts.queue.ledger import Terminal
from ishowtts.queue.scheduler import Merge, Placed, Scheduler

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


def test_retract_by_raw_id_user_platform() -> None:
    s, rec = make()
    s.put(utt(text="a", raw_id="r1", uid="1"), 0.0)
    s.put(utt(text="b", raw_id="r2", uid="2"), 0.0)
    s.put(utt(text="c", raw_id="r3", uid="2"), 0.0)
    s.put(utt(text="d", raw_id="r1", uid="3", platform="twitch"), 0.0)
    assert s.retract(Retraction("bili", raw_ids=("r1",))) == 1
    assert s.retract(Retraction("", user_id="2", reason="banned")) == 2
    assert s.retract(Retraction("bili", raw_ids=("nope",))) == 0
    assert s.retract(Retraction("bili")) == 0  # nothing asked, nothing taken
    assert rec.states() == [
        ("a", "removed", "recalled"),
        ("b", "removed", "banned"),
        ("c", "removed", "banned"),
    ]
    assert drain(s) == ["d"]


def test_remove_by_predicate_and_retract_a_platform() -> None:
    s, rec = make()
    a = utt(text="a")
    s.put(a, 0.0)
    s.put(utt(text="b", platform="twitch"), 0.0)
    s.put(utt(text="c"), 0.0)
    assert s.remove(lambda u: u.id == a.id, reason="skipped") == 1
    assert s.retract(Retraction("twitch", everything=True, reason="room_clear")) == 1
    assert drain(s) == ["c"]
    assert rec.states() == [("a", "removed", "skipped"), ("b", "removed", "room_clear")]


@pytest.mark.parametrize(
    ("retraction", "hits"),
    [
        (Retraction("bili", raw_ids=("r1",)), {"a"}),
        (Retraction("bili", user_id="2"), {"b", "c"}),
        # Ids given: they are all it matches, even with a user (a replayed recall line).
        (Retraction("bili", raw_ids=("r2",), user_id="2"), {"b"}),
        (Retraction("bili", everything=True), {"a", "b", "c"}),
        (Retraction("", everything=True), {"a", "b", "c", "d"}),
        (Retraction("twitch", raw_ids=("r1",)), {"d"}),
        (Retraction("bili", raw_ids=("",)), set()),  # an empty id matches no id-less message
        (Retraction("bili"), set()),
    ],
)
def test_retraction_matches(retraction: Retraction, hits: set[str]) -> None:
    events = {
        "a": utt(text="a", raw_id="r1", uid="1").event,
        "b": utt(text="b", raw_id="r2", uid="2").event,
        "c": utt(text="c", uid="2").event,
        "d": utt(text="d", raw_id="r1", uid="3", platform="twitch").event,
    }
    assert {k for k, e in events.items() if retraction.matches(e)} == hits


def fold_count(queued: Utterance) -> Utterance:
    n = int(queued.text.rsplit("x", 1)[1]) if "x" in queued.text else 1
    return dataclasses.replace(queued, text=f"{queued.text.split(' x')[0]} x{n + 1}")


def test_put_says_what_happened_and_merges_keep_their_place() -> None:
    s, rec = make(max_items=3)
    gift = utt(Kind.GIFT, "g")
    merge = Merge(("bili", "1", "g"), 10.0, fold_count)
    assert s.put(gift, 0.0, merge) is Placed.QUEUED
    assert s.put(utt(Kind.GIFT, "other"), 1.0) is Placed.QUEUED
    for t in (2.0, 3.0):  # every repeat folds into the first line, which keeps its place
        assert s.put(utt(Kind.GIFT, "g again"), t, merge) is Placed.MERGED
    assert s.put(utt(Kind.SUPER_CHAT, "sc"), 4.0) is Placed.QUEUED
    assert s.put(utt(Kind.ENTER, "enter"), 5.0) is Placed.EVICTED  # full of better lines
    assert rec.states() == [
        ("g again", "dropped", "merged"),
        ("g again", "dropped", "merged"),
        ("enter", "evicted", "queue_full"),
    ]
    assert rec.calls[0][2]["merged_into"] == gift.id
    assert drain(s) == ["sc", "g x3", "other"]
    # Served: a repeat now starts a line of its own.
    assert s.put(utt(Kind.GIFT, "g"), 6.0, merge) is Placed.QUEUED


def test_merge_only_within_the_window_of_the_first() -> None:
    s, _ = make()
    merge = Merge("k", 5.0, fold_count)

    def gift(t: float) -> Utterance:
        u = utt(Kind.GIFT, "g")
        return dataclasses.replace(u, event=dataclasses.replace(u.event, received_mono=t))

    assert s.put(gift(0.0), 0.0, merge) is Placed.QUEUED
    assert s.put(gift(5.0), 5.0, merge) is Placed.MERGED
    assert s.put(gift(5.1), 5.1, merge) is Placed.QUEUED  # past the window: a new line
    assert s.put(gift(6.0), 6.0, merge) is Placed.MERGED  # into the newest
    assert drain(s) == ["g x2", "g x2"]


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
