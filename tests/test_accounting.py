"""A 10,000-event synthetic replay: every id ends in exactly one terminal state, memory bounded.

Floods, duplicates (same text and re-sent platform ids), blocked words, rate-limited users,
gifts to merge, expiries by advancing ``now``, recalls, bans, and a consumer that pops some.
"""

from __future__ import annotations

import random
from collections import Counter

from structlog.testing import capture_logs

from ishowtts.config import Config
from ishowtts.events import ChatEvent, Kind, Retraction, User
from ishowtts.pipeline.ingest import Pipeline
from ishowtts.queue.ledger import Ledger, Terminal
from ishowtts.queue.scheduler import Scheduler

TERMINALS = {t.value for t in Terminal}
PHRASES = [
    "主播好厉害",
    "哈哈哈哈哈哈哈哈",
    "666666",
    "笑死笑死笑死笑死",
    "这把稳了",
    "ｇｇ ｗｐ",
    "[doge][doge]",
    "看这个 https://b23.tv/abc",
    "😂😂😂",
    "？？？",
    "加我vx广告",
    "buy SPAM now",
    "first time here, love the stream",
    "晚上好\u200b呀",
]
MAX_ITEMS = 40
MAX_PAID = 30  # paid lines have their own room, never evicted; past it, lost loudly
MAX_ENTRIES = 300
MAX_USERS = 150


def test_ten_thousand_events_each_closed_once() -> None:
    rng = random.Random(20240601)
    cfg = Config(
        filters={"block_keywords": ["广告", "spam"], "rate": {"messages": 3, "per_seconds": 15}},
        dedupe={"window_s": 20, "max_entries": MAX_ENTRIES},
        gifts={"merge_window_s": 10, "min_amount": 0.1},
        queue={"max_items": MAX_ITEMS, "max_paid": MAX_PAID},
    )
    with capture_logs() as logs:
        ledger = Ledger()
        sched = Scheduler(cfg.queue, lambda u, state, f: ledger.close(u.id, state, **f))
        pipe = Pipeline(cfg, ledger, sched)
        pipe.filters.max_users = MAX_USERS
        events: list[ChatEvent] = []
        recent_raw: list[str] = []
        now = 1000.0
        for i in range(10_000):
            r = rng.random()
            if i % 1000 == 500:
                now += 45.0  # a lull: what waited goes stale
            elif i % 500 < 150:
                pass  # a flood: 150 events in the same instant
            else:
                now += rng.uniform(0.0, 0.06)
            uid = str(rng.randrange(3000 if r < 0.7 else 20))
            user = User(uid, f"user{uid}")
            raw_id = f"m{i}"
            if rng.random() < 0.03 and recent_raw:
                raw_id = rng.choice(recent_raw)  # a reconnect replays a message
            kw: dict[str, object] = {}
            if r < 0.7:
                kind = Kind.DANMAKU
                text = rng.choice(PHRASES) if rng.random() < 0.6 else f"消息{rng.randrange(9999)}"
            elif r < 0.8:
                kind, text = Kind.ENTER, ""
            elif r < 0.83:
                kind, text = Kind.FOLLOW, ""
            elif r < 0.95:
                kind, text = Kind.GIFT, ""
                kw = {
                    "gift_name": rng.choice(["小心心", "辣条", "打call"]),
                    "gift_count": rng.randint(1, 5),
                    "amount": rng.choice([0.0, 0.1, 1.0, 5.2]),
                }
            elif r < 0.98:
                kind, text, kw = Kind.SUPER_CHAT, rng.choice(PHRASES), {"amount": 30.0}
            elif r < 0.995:
                kind, text, kw = Kind.GUARD, "", {"gift_name": "舰长", "amount": 198.0}
            else:
                kind, text = Kind.SYSTEM, "系统公告"
            event = ChatEvent(
                platform="bili",
                room="1",
                kind=kind,
                user=user,
                text=text,
                raw_id=raw_id,
                received_mono=now,
                **kw,  # type: ignore[arg-type]
            )
            events.append(event)
            pipe.ingest(event, now=now)
            recent_raw.append(raw_id)
            del recent_raw[:-200]

            if i % 97 == 0:  # a recalled message or a banned user
                if rng.random() < 0.5:
                    pipe.retract(Retraction("bili", raw_ids=(rng.choice(recent_raw),)))
                else:
                    pipe.retract(Retraction("bili", user_id=uid, reason="banned"))
            if i % 7 == 0:  # the synth worker takes one
                u = sched.pop(now)
                if u is not None:
                    state = Terminal.FAILED if rng.random() < 0.05 else Terminal.SPOKEN
                    ledger.close(
                        u.id, state, **({"error": "engine"} if state is Terminal.FAILED else {})
                    )
            if i % 250 == 0:
                sched.expire(now)

            assert sched.unpaid <= MAX_ITEMS and sched.paid <= MAX_PAID
            ids, texts = pipe.deduper.sizes
            assert ids <= MAX_ENTRIES and texts <= MAX_ENTRIES
            assert pipe.filters.rate_table_size <= MAX_USERS

        while (u := sched.pop(now)) is not None:
            ledger.close(u.id, Terminal.SPOKEN)
            if len(ledger.open) % 2:
                break
        sched.clear("shutdown")

    assert not ledger.open and len(sched) == 0

    received = Counter(e["id"] for e in logs if e["event"] == "received")
    closed = Counter(e["id"] for e in logs if e["event"] in TERMINALS)
    all_ids = {e.id for e in events}
    assert len(all_ids) == 10_000
    assert set(received) == all_ids and set(received.values()) == {1}
    assert set(closed) == all_ids and set(closed.values()) == {1}

    summary = ledger.summary()
    assert summary["received"] == 10_000 and summary["open"] == 0
    assert sum(summary[t] for t in TERMINALS if t in summary) == 10_000
    # The replay exercised every way out.
    assert set(summary) >= TERMINALS
    for rule in [
        "dropped:merged", "dropped:duplicate", "dropped:duplicate_id", "dropped:blocked_keyword",
        "dropped:rate_limited", "dropped:empty", "dropped:punctuation_only",
        "dropped:gift_value", "evicted:queue_full", "expired:ttl", "removed:recalled",
        "removed:banned", "removed:shutdown",
    ]:  # fmt: skip
        assert ledger.rules[rule] > 0, rule
