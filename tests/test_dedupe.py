"""Dedupe: platform ids once, near-same lines once per window, bounded tables."""

from __future__ import annotations

from typing import Any

import pytest

from ishowtts.config import DedupeConfig
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.pipeline.dedupe import Deduper, canonical


def ev(kind: Kind = Kind.DANMAKU, uid: str = "1", **kw: Any) -> ChatEvent:
    return ChatEvent(platform="bili", room="1", kind=kind, user=User(uid, f"u{uid}"), **kw)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("666", "666666"),
        ("666", "6 6 6！"),
        ("Hello World", "hello, world!!"),
        ("哈哈哈", "哈哈哈哈哈哈。"),
        ("笑死", "笑死笑死笑死"),
        ("???", "???"),
    ],
)
def test_near_same(a: str, b: str) -> None:
    assert canonical(a) == canonical(b)


@pytest.mark.parametrize(("a", "b"), [("666", "667"), ("好的", "好"), ("???", "!!!")])
def test_different(a: str, b: str) -> None:
    assert canonical(a) != canonical(b)


def test_text_window() -> None:
    d = Deduper(DedupeConfig(window_s=30))
    assert d.check(ev(uid="1"), "666", 0.0) is None
    assert d.check(ev(uid="2"), "666!!", 10.0) == "duplicate"  # any user
    assert d.check(ev(uid="3"), "666", 29.9) == "duplicate"
    # Not refreshed by duplicates: a steady flood is read once per window.
    assert d.check(ev(uid="4"), "666", 30.1) is None
    assert d.check(ev(uid="5"), "777", 30.2) is None


def test_window_zero_turns_text_dedupe_off() -> None:
    d = Deduper(DedupeConfig(window_s=0))
    assert d.check(ev(), "666", 0.0) is None
    assert d.check(ev(), "666", 0.0) is None


def test_paid_by_id_only() -> None:
    d = Deduper(DedupeConfig())
    assert d.check(ev(Kind.SUPER_CHAT, amount=30), "加油", 0.0) is None
    assert d.check(ev(Kind.SUPER_CHAT, amount=30), "加油", 1.0) is None
    assert d.check(ev(Kind.GIFT, raw_id="g1"), "", 1.0) is None
    assert d.check(ev(Kind.GIFT, raw_id="g1"), "", 2.0) == "duplicate_id"


def test_raw_id_any_kind_and_platform_scoped() -> None:
    d = Deduper(DedupeConfig(window_s=0))
    assert d.check(ev(raw_id="m1"), "a", 0.0) is None
    assert d.check(ev(raw_id="m1"), "b", 999.0) == "duplicate_id"
    other = ChatEvent(
        platform="twitch", room="1", kind=Kind.DANMAKU, user=User("1", "x"), raw_id="m1"
    )
    assert d.check(other, "c", 999.0) is None


def test_enter_follow_per_user() -> None:
    d = Deduper(DedupeConfig(window_s=10))
    assert d.check(ev(Kind.ENTER, uid="1"), "", 0.0) is None
    assert d.check(ev(Kind.ENTER, uid="2"), "", 0.0) is None
    assert d.check(ev(Kind.ENTER, uid="1"), "", 5.0) == "duplicate"
    assert d.check(ev(Kind.FOLLOW, uid="1"), "", 5.0) is None
    assert d.check(ev(Kind.ENTER, uid="1"), "", 11.0) is None


def test_bounded() -> None:
    d = Deduper(DedupeConfig(window_s=1000, max_entries=50))
    for i in range(500):
        assert d.check(ev(raw_id=f"m{i}"), f"line {i} 不同", float(i) / 100) is None
        ids, texts = d.sizes
        assert ids <= 50 and texts <= 50
    # The oldest were forgotten, the newest are remembered.
    assert d.check(ev(raw_id="m0"), "fresh", 5.0) is None
    assert d.check(ev(raw_id="m499"), "fresh2", 5.0) == "duplicate_id"


def test_expired_entries_pruned() -> None:
    d = Deduper(DedupeConfig(window_s=1))
    for i in range(100):
        d.check(ev(), f"line{i}x", 0.0)
    d.check(ev(), "later", 5.0)
    assert d.sizes[1] == 1


@pytest.mark.parametrize(("a", "b"), [("1", "11"), ("1000", "10000"), ("line 1", "line 11")])
def test_numbers_stay_apart(a: str, b: str) -> None:
    assert canonical(a) != canonical(b)
