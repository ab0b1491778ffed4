"""Paid lines in a full queue: never evicted, never lost silently. They have their own room
(queue.max_paid) beside max_items; past it each newcomer lost is an error line with user and
amount, a count in /status and the metrics, and /healthz says the paid queue is full."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from ishowtts.app.daemon import Daemon
from ishowtts.config import QueueConfig, load_config
from ishowtts.events import ChatEvent, Kind, User, Utterance
from ishowtts.queue.ledger import Terminal
from ishowtts.queue.scheduler import Placed, Scheduler

PRIO = {Kind.SYSTEM: 60, Kind.SUPER_CHAT: 50, Kind.GIFT: 30, Kind.DANMAKU: 20}


def utt(kind: Kind, text: str, amount: float = 0.0) -> Utterance:
    e = ChatEvent(
        platform="bili", room="1", kind=kind, user=User(text, text), text=text, amount=amount
    )
    return Utterance(event=e, text=text, voice="default", priority=PRIO[kind], deadline=1e9)


def test_paid_lines_have_their_own_room_and_are_never_evicted() -> None:
    lost: list[tuple[str, Terminal, dict[str, Any]]] = []
    s = Scheduler(
        QueueConfig(max_items=3, max_paid=4), lambda u, st, f: lost.append((u.text, st, f))
    )
    for i in range(4):
        assert s.put(utt(Kind.SUPER_CHAT, f"sc{i}", 30.0), 0.0) is Placed.QUEUED
    # Chat floods the unpaid room; higher-priority unpaid lines evict chat, never a paid one.
    for i in range(50):
        s.put(utt(Kind.DANMAKU, f"d{i}"), 0.0)
    for i in range(3):
        s.put(utt(Kind.SYSTEM, f"sys{i}"), 0.0)
    assert (s.paid, s.unpaid) == (4, 3)
    assert not any(text.startswith("sc") for text, _, _ in lost)
    assert {f["rule"] for _, _, f in lost} == {"queue_full"}
    # A free gift is not paid: it competes in the unpaid room.
    assert s.put(utt(Kind.GIFT, "free gift"), 0.0) is Placed.EVICTED
    # Past max_paid the paid newcomer is lost, reported with its amount; nothing queued goes.
    lost.clear()
    assert s.put(utt(Kind.SUPER_CHAT, "sc4", 50.0), 0.0) is Placed.EVICTED
    assert lost == [
        (
            "sc4",
            Terminal.EVICTED,
            {"rule": "paid_overflow", "amount": 50.0, "paid_kind": "super_chat"},
        )
    ]
    # Served by priority as before; a served paid line frees its room.
    order = []
    while (u := s.pop(0.0)) is not None:
        order.append(u.text)
    assert order == ["sys0", "sys1", "sys2", "sc0", "sc1", "sc2", "sc3"]
    assert (s.paid, s.unpaid) == (0, 0)
    assert s.put(utt(Kind.SUPER_CHAT, "sc5", 30.0), 0.0) is Placed.QUEUED


def test_a_flood_of_super_chats_loses_none_silently(tmp_path: Path) -> None:
    """517 super chats into a queue with room for 400 paid lines (issue 9: before, 401 of 517
    were evicted, oldest first, each as one info line among thousands)."""
    (tmp_path / "config.yaml").write_text(
        "engine: {type: tone}\nconnectors: []\nfilters: {rate: null}\ndedupe: {window_s: 0}\n"
        "queue: {max_items: 100, max_paid: 400}\n"
    )
    daemon = Daemon(load_config(tmp_path / "config.yaml"))
    with capture_logs() as logs:
        for i in range(517):
            daemon.handle(
                ChatEvent(
                    platform="bili",
                    room="1",
                    kind=Kind.SUPER_CHAT,
                    user=User(str(i), f"fan{i}"),
                    text=f"第{i}条醒目留言",
                    amount=30.0 + i,
                )
            )
        for i in range(2000):  # then a chat flood: it must not push a paid line out
            daemon.handle(
                ChatEvent(
                    platform="bili",
                    room="1",
                    kind=Kind.DANMAKU,
                    user=User("c", "c"),
                    text=f"刷屏{i}",
                )
            )
    s = daemon.scheduler
    assert (s.paid, s.unpaid) == (400, 100)
    # The first 400 wait (none evicted); the 117 that came after are lost, each loudly.
    queued_users = {
        u.event.user.name for u in s.matching(lambda u: u.event.kind is Kind.SUPER_CHAT)
    }
    assert queued_users == {f"fan{i}" for i in range(400)}
    errors = [ln for ln in logs if ln["event"] == "paid_message_lost"]
    assert len(errors) == 117 and all(ln["log_level"] == "error" for ln in errors)
    assert [(ln["user"], ln["amount"]) for ln in errors] == [
        (f"fan{i}", 30.0 + i) for i in range(400, 517)
    ]
    evicted = [ln for ln in logs if ln["event"] == "evicted" and ln["kind"] == "super_chat"]
    assert {ln["rule"] for ln in evicted} == {"paid_overflow"} and len(evicted) == 117
    status = daemon.status()
    assert status["paid_lost"]["count"] == 117
    assert status["paid_lost"]["amount"] == sum(30.0 + i for i in range(400, 517))
    assert status["paid_lost"]["recent"][-1]["user"] == "fan516"
    assert "paid queue full" in status["health"]["queue"]
    metrics = daemon.metrics.render().decode()
    assert "ishowtts_paid_lost_total 117.0" in metrics
    assert 'ishowtts_degraded{part="queue"} 1.0' in metrics
