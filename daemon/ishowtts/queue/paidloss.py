"""Paid lines the queue could not take: never silent. The scheduler never evicts a paid line;
only past ``queue.max_paid`` is a newcomer lost, and each one is logged at error level with
user and amount, counted for /status and the metrics, and the last few kept for /status."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

import structlog

from ..events import Utterance

log = structlog.get_logger("ishowtts")

RECENT = 20  # lost lines listed in /status (a bound: a flood of them is counted, not listed)


class PaidLoss:
    def __init__(self) -> None:
        self.count = 0
        self.amount = 0.0
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)

    def record(self, utt: Utterance, queued_paid: int) -> None:
        e = utt.event
        self.count += 1
        self.amount = min(self.amount + e.amount, sys.float_info.max)  # finite: /status is JSON
        line = {
            "id": utt.id,
            "kind": e.kind.value,
            "platform": e.platform,
            "user": e.user.name,
            "uid": e.user.id,
            "amount": e.amount,
            "text": e.text[:200],
        }
        self.recent.append(line)
        log.error("paid_message_lost", reason="paid queue full", queued_paid=queued_paid, **line)

    def status(self) -> dict[str, Any]:
        return {"count": self.count, "amount": round(self.amount, 2), "recent": list(self.recent)}
