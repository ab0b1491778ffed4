"""Filter rules: each rule drops what it should, and only that."""

from __future__ import annotations

from typing import Any

import pytest

from ishowtts.config import FiltersConfig
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.pipeline.filters import Filters, graphemes

ALICE = User(id="42", name="alice")


def ev(kind: Kind = Kind.DANMAKU, user: User = ALICE, text: str = "", **kw: Any) -> ChatEvent:
    return ChatEvent(platform="bili", room="1", kind=kind, user=user, text=text, **kw)


CASES: list[tuple[dict[str, Any], ChatEvent, str, str | None]] = [
    ({}, ev(), "你好", None),
    ({"kinds": ["danmaku"]}, ev(Kind.ENTER), "", "kind_disabled"),
    ({"kinds": ["danmaku"]}, ev(), "你好", None),
    ({"users": {"block": ["42"]}}, ev(), "你好", "blocked_user"),
    ({"users": {"block": ["alice"]}}, ev(), "你好", "blocked_user"),
    ({"users": {"block": ["alice"]}}, ev(Kind.SUPER_CHAT, amount=30), "你好", "blocked_user"),
    ({"users": {"block": ["bob"]}}, ev(), "你好", None),
    ({"users": {"allow": ["bob"]}}, ev(), "你好", "not_allowed_user"),
    ({"users": {"allow": ["bob"]}}, ev(Kind.GIFT, amount=1), "", "not_allowed_user"),
    ({"users": {"allow": ["alice"]}}, ev(), "你好", None),
    ({"users": {"allow": ["42"]}}, ev(), "你好", None),
    ({"users": {"allow": ["bob"]}}, ev(Kind.SYSTEM), "公告", None),
    ({"block_keywords": ["傻逼"]}, ev(), "你是傻逼吗", "blocked_keyword"),
    ({"block_keywords": ["傻逼"]}, ev(), "你是傻 逼吗", "blocked_keyword"),
    ({"block_keywords": ["Spam"]}, ev(), "buy SPAM now", "blocked_keyword"),
    ({"block_keywords": ["spam"]}, ev(Kind.SUPER_CHAT, amount=30), "spam", "blocked_keyword"),
    (
        {"block_keywords": ["spam"]},
        ev(Kind.ENTER, user=User("1", "spambot")),
        "",
        "blocked_keyword",
    ),
    ({"block_keywords": ["spam"]}, ev(), "hello", None),
    ({"block_keywords": ["", " "]}, ev(), "hello", None),
    ({"block_regex": [r"\d{5,}"]}, ev(), "加我12345678", "blocked_regex"),
    ({"block_regex": [r"(?i)^vx"]}, ev(), "VX: abc", "blocked_regex"),
    ({"block_regex": [r"\d{5,}"]}, ev(), "加我1234", None),
    ({"min_chars": 2}, ev(), "好", "too_short"),
    ({"min_chars": 2}, ev(), "好的", None),
    ({"min_chars": 2}, ev(Kind.SUPER_CHAT, amount=30), "好", None),
    ({"max_chars": 5}, ev(), "一二三四五六", "too_long"),
    ({"max_chars": 5}, ev(), "一二三四五", None),
    ({"max_chars": 1}, ev(), "👨‍👩‍👧", None),  # one grapheme
    ({"max_chars": 5}, ev(Kind.SUPER_CHAT, amount=30), "一二三四五六", None),
    ({}, ev(), "???", "punctuation_only"),
    ({}, ev(), "。。。！", "punctuation_only"),
    ({}, ev(), "~~ ++", "punctuation_only"),
    ({}, ev(), "+1", None),
    ({"drop_punctuation_only": False}, ev(), "???", None),
    ({}, ev(Kind.SUPER_CHAT, amount=30), "???", None),
]


@pytest.mark.parametrize(("options", "event", "text", "rule"), CASES)
def test_rule(options: dict[str, Any], event: ChatEvent, text: str, rule: str | None) -> None:
    assert Filters(FiltersConfig(**options)).check(event, text, now=0.0) == rule


def test_graphemes() -> None:
    assert graphemes("abc") == 3
    assert graphemes("你好") == 2
    assert graphemes("e\u0301") == 1
    assert graphemes("🇨🇳👍🏻") == 2


def test_rate_limit_per_user_and_window() -> None:
    f = Filters(FiltersConfig(rate={"messages": 2, "per_seconds": 10}))
    bob = User("7", "bob")
    assert f.check(ev(text="a"), "a", 0.0) is None
    assert f.check(ev(text="b"), "b", 1.0) is None
    assert f.check(ev(text="c"), "c", 2.0) == "rate_limited"
    assert f.check(ev(user=bob, text="d"), "d", 2.0) is None  # another user is not limited
    # Paid events are never rate limited.
    assert f.check(ev(Kind.SUPER_CHAT, amount=30), "e", 3.0) is None
    # Rejected messages do not extend the block: at 10.5 the first one left the window.
    assert f.check(ev(text="f"), "f", 9.0) == "rate_limited"
    assert f.check(ev(text="g"), "g", 10.5) is None
    assert f.check(ev(text="h"), "h", 10.6) == "rate_limited"


def test_rate_off() -> None:
    f = Filters(FiltersConfig(rate=None))
    assert all(f.check(ev(), "x", 0.0) is None for _ in range(100))


def test_rate_table_bounded() -> None:
    f = Filters(FiltersConfig(rate={"messages": 1, "per_seconds": 5}), max_users=100)
    for i in range(1000):
        f.check(ev(user=User(str(i), f"u{i}")), "hi", now=0.0)
        assert f.rate_table_size <= 100
    # Users idle for longer than the window are forgotten.
    f.check(ev(user=User("x", "x")), "hi", now=100.0)
    assert f.rate_table_size == 1


def test_reconfigure_keeps_rate_history() -> None:
    cfg = FiltersConfig(rate={"messages": 1, "per_seconds": 10})
    f = Filters(cfg)
    assert f.check(ev(), "a", 0.0) is None
    g = f.reconfigure(cfg.model_copy(update={"block_keywords": ["x"]}))
    assert g.check(ev(), "b", 1.0) == "rate_limited"
    assert g.check(ev(), "x", 20.0) == "blocked_keyword"


def test_users_without_id_or_name_do_not_share_one_rate_bucket() -> None:
    # Bilibili without a login: such users used to share one bucket, 3 lines per 15 s for all.
    f = Filters(FiltersConfig())
    nobody = ChatEvent("bilibili", "1", Kind.DANMAKU, User("", ""), text="hi")
    assert [f.check(nobody, f"line {i}", float(i)) for i in range(5)] == [None] * 5
