"""Ingest benchmark: events per second through normalise → filters → dedupe → queue.

One core, a realistic chat mix (mostly danmaku with floods, repeats, emoji, stickers, links;
enters, gifts to merge, some super chats), the real Ledger (structlog set to drop its output so
the terminal is not what is measured), a consumer popping now and then. Prints each round and
the median.

    .venv/bin/python tools/bench_ingest.py [--events 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import time
from typing import Any

import structlog

from ishowtts.config import Config
from ishowtts.events import ChatEvent, Kind, User, Utterance
from ishowtts.pipeline.ingest import Pipeline
from ishowtts.queue.ledger import Ledger, Terminal
from ishowtts.queue.scheduler import Scheduler

PHRASES = [
    "主播好厉害啊",
    "哈哈哈哈哈哈哈哈哈哈",
    "666666666",
    "笑死笑死笑死笑死",
    "这波操作我给满分",
    "ｇｇ ｗｐ ＧＧ",
    "[doge][doge][笑哭]",
    "看这个 https://b23.tv/BV1xx411c7mD 太好笑了",
    "😂😂😂😂 绷不住了",
    "？？？？",
    "first time here, love the stream!",
    "主播能不能唱一首晴天",
    "晚上好\u200b呀家人们👋",
    "加我vx领福利广告",
    "awsl awsl awsl awsl",
    "前方高能！！！！！！",
]


def make_events(n: int, seed: int) -> list[tuple[ChatEvent, float]]:
    rng = random.Random(seed)
    out = []
    now = 0.0
    for i in range(n):
        now += rng.expovariate(200.0)  # ~200 events/s of chat time
        r = rng.random()
        uid = str(rng.randrange(5000))
        user = User(uid, f"观众{uid}")
        kw: dict[str, object] = {}
        if r < 0.75:
            kind = Kind.DANMAKU
            text = rng.choice(PHRASES) if rng.random() < 0.5 else f"{rng.choice(PHRASES)}{i % 97}"
        elif r < 0.87:
            kind, text = Kind.ENTER, ""
        elif r < 0.9:
            kind, text = Kind.FOLLOW, ""
        elif r < 0.98:
            kind, text = Kind.GIFT, ""
            user = User(str(rng.randrange(50)), "金主")
            kw = {"gift_name": rng.choice(["小心心", "辣条"]), "amount": 0.1}
        elif r < 0.995:
            kind, text, kw = Kind.SUPER_CHAT, rng.choice(PHRASES), {"amount": 30.0}
        else:
            kind, text, kw = Kind.GUARD, "", {"gift_name": "舰长", "amount": 198.0}
        event = ChatEvent(
            platform="bili",
            room="1",
            kind=kind,
            user=user,
            text=text,
            raw_id=f"m{i}",
            received_mono=now,
            **kw,  # type: ignore[arg-type]
        )
        out.append((event, now))
    return out


def one_round(events: list[tuple[ChatEvent, float]]) -> float:
    cfg = Config(filters={"block_keywords": ["广告", "spam"]}, queue={"max_items": 100})
    ledger = Ledger()

    def close(u: Utterance, state: Terminal, fields: dict[str, Any]) -> None:
        ledger.close(u.id, state, **fields)

    sched = Scheduler(cfg.queue, close)
    pipe = Pipeline(cfg, ledger, sched)
    start = time.perf_counter()
    for i, (event, now) in enumerate(events):
        pipe.ingest(event, now)
        if i % 50 == 0:  # the synth worker speaks a few lines a second
            u = sched.pop(now)
            if u is not None:
                ledger.close(u.id, Terminal.SPOKEN)
    elapsed = time.perf_counter() - start
    sched.clear("shutdown")
    assert not ledger.open, "accounting leak"
    return len(events) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    # Log calls still run through the ledger; the filtering logger makes them no-ops.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    rates = []
    for r in range(args.rounds):
        events = make_events(args.events, seed=r)
        rate = one_round(events)
        rates.append(rate)
        print(f"round {r + 1}: {rate:,.0f} events/s")
    print(
        f"median: {statistics.median(rates):,.0f} events/s over {args.rounds} rounds "
        f"of {args.events:,} events (goal >= 5,000)"
    )


if __name__ == "__main__":
    main()
