"""A busy moment through the whole daemon (real replay connector, pipeline, queue, airtime,
synth worker, tone engine, paced player on ``player.device: none``): gifts from many viewers,
hostile names among them, a repeat, a chat storm, follows, a super chat. Every event ends in one
terminal line, and each combined or storm line covers exactly what it says."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from ishowtts.app.daemon import Daemon
from ishowtts.config import load_config
from ishowtts.events import ChatEvent
from ishowtts.queue.ledger import Terminal

HOSTILE = "长" * 10_000


def user(uid: int, name: str = "") -> dict[str, Any]:
    return {"id": str(uid), "name": name or f"观众{uid}"}


def busy_moment() -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = [
        {"t": 0.0, "kind": "super_chat", "user": user(1, "老板"), "amount": 50,
         "text": "主播今天的歌太好听了，一直支持你"},
    ]  # fmt: skip
    names = ["小鱼", "橘猫酱", HOSTILE, "\x00\x07\u202e\u200b", "夜猫子233", "北风", "团子"]
    for i, name in enumerate(names):
        log.append({"t": 0.1 + 0.1 * i, "kind": "gift", "user": user(10 + i, name),
                    "gift": "小心心" if i % 2 else "辣条", "count": 1, "amount": 0.1})  # fmt: skip
    log.append({"t": 0.9, "kind": "gift", "user": user(10, "小鱼"), "gift": "辣条", "count": 2,
                "amount": 0.2})  # a repeat: folds into 小鱼's first  # fmt: skip
    for i, text in enumerate(["666", "6666", "666666", "６６６", "666"]):
        log.append({"t": 0.2 + 0.15 * i, "kind": "danmaku", "user": user(30 + i), "text": text})
    for i in range(3):
        log.append({"t": 0.4 + 0.2 * i, "kind": "follow", "user": user(40 + i)})
    log.append({"t": 0.5, "kind": "danmaku", "user": user(50), "text": "这首歌叫什么名字"})
    for n, ev in enumerate(log):
        ev["id"] = f"m{n}"
    return log


def test_every_event_closes_once_and_each_line_covers_what_it_says(tmp_path: Path) -> None:
    log = busy_moment()
    (tmp_path / "chat.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in log), encoding="utf-8"
    )
    (tmp_path / "config.yaml").write_text(
        # Slow enough that everything has arrived when the super chat ends; never "busy", so
        # the full forms are said.
        "engine: {type: tone, seconds_per_char: 0.15}\n"
        "airtime: {busy_backlog_s: 600}\n"
        "connectors: [{type: replay, path: chat.jsonl}]\n"
        "player: {device: none, lookahead_s: 0.5}\n"
        "api: {enabled: false}\n"
        "queue: {pending_file: null}\n",
        encoding="utf-8",
    )
    daemon = Daemon(load_config(tmp_path / "config.yaml"), until_idle=True, shutdown_grace_s=2)
    received: dict[str, ChatEvent] = {}
    closed: dict[str, list[tuple[Terminal, dict[str, Any]]]] = {}

    def listen(event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        if state is None:
            received[event.id] = event
        else:
            closed.setdefault(event.id, []).append((state, fields))

    daemon.ledger.listeners.append(listen)
    assert asyncio.run(asyncio.wait_for(daemon.run(), 60)) == 0

    assert len(received) == len(log) and set(closed) == set(received)
    assert all(len(c) == 1 for c in closed.values())  # exactly one terminal line each
    fate = {eid: c[0] for eid, c in closed.items()}
    lines = {eid: f["text"] for eid, (s, f) in fate.items() if s is Terminal.SPOKEN and "text" in f}
    covered: dict[str, list[ChatEvent]] = {eid: [received[eid]] for eid in lines}
    for eid, (state, fields) in fate.items():
        if "merged_into" in fields:
            assert fields["merged_into"] in lines, (eid, state, fields)
            covered[fields["merged_into"]].append(received[eid])
    # Nothing was lost: every event was said, on its own line or by the line covering it.
    assert {s for s, _ in fate.values()} <= {Terminal.SPOKEN, Terminal.DROPPED}
    assert all(f.get("rule") == "merged" for s, f in fate.values() if s is Terminal.DROPPED)

    by_kind = {str(events[0].kind): (lines[eid], events) for eid, events in covered.items()}
    text, gifts = by_kind["gift"]
    people = {e.user.id for e in gifts}
    assert len(gifts) == 8 and len(people) == 7  # 小鱼's repeat folded into their first
    assert text.startswith("感谢小鱼、橘猫酱、长长长等7位送的")  # runs of a character cut to 3
    assert set(re.split("[、]", text.split("送的")[1])) == {"辣条", "小心心"}
    assert len(text) < 60
    storm_lines = [(lines[k], v) for k, v in covered.items() if "刷" in lines[k]]
    ((text, storm),) = storm_lines
    assert text == "好多人在刷六六六" and len(storm) == 5  # the starter dictionary reads 666 so
    assert {e.text for e in storm} == {"666", "6666", "666666", "６６６"}
    text, follows = by_kind["follow"]
    assert text == "欢迎观众40、观众41、观众42关注" and len(follows) == 3
    # Chat's full-width punctuation is read as ASCII (normalize.fullwidth).
    assert by_kind["super_chat"][0] == "老板的醒目留言：主播今天的歌太好听了,一直支持你"
