"""The ledger: every received event ends in exactly one terminal log line.

Operators rely on it (``journalctl | grep <id>`` always ends in spoken/dropped/expired/evicted/
removed/failed), and the metrics are counted here. Its lines are the log's vocabulary for
what happened to each message, read back by ``ishowtts logs`` (shell/logview.py):

- ``received``: id, platform, kind, user, uid, text;
- then one fate (``Terminal``): id, kind, user, and ``rule`` (why) where there is one; ``spoken``
  adds text and voice, ``failed`` an ``error``, a saved one ``path``; one said by another line (a
  merged gift, a combined or storm line) names it in ``merged_into``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from enum import Enum
from typing import Any

import structlog

from ..events import ChatEvent

RECEIVED = "received"  # the event name of a message's first line


class Terminal(str, Enum):
    SPOKEN = "spoken"
    DROPPED = "dropped"  # a filter or dedupe rule said no; ``rule`` names it
    EXPIRED = "expired"  # stale before it could be read (TTL of its class)
    EVICTED = "evicted"  # the queue was full and this was the least important
    REMOVED = "removed"  # recalled on the platform, cleared or skipped by the operator
    FAILED = "failed"  # the engine or the player failed on it

    def __str__(self) -> str:
        return self.value


# Told of every received event (state None) and every terminal line: the console's live feed,
# health (the engine failing message after message).
Listener = Callable[[ChatEvent, "Terminal | None", dict[str, Any]], None]


class Ledger:
    def __init__(self) -> None:
        self.log = structlog.get_logger("ishowtts")
        self.open: dict[str, ChatEvent] = {}
        self.received_by_kind: Counter[str] = Counter()
        self.terminal_counts: Counter[tuple[str, str]] = Counter()  # (kind, state)
        self.rules: Counter[str] = Counter()  # why things were dropped/removed
        self.listeners: list[Listener] = []
        # A line's id → the events it also says (a combined or storm line): they stay open
        # and close with it, in its state, with ``merged_into`` naming it.
        self.covered: dict[str, list[str]] = {}

    def _tell(self, event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(event, state, fields)
            except Exception as exc:  # a viewer must never break the accounting
                self.log.exception("ledger_listener_failed", error=repr(exc))

    def received(self, event: ChatEvent) -> None:
        self.open[event.id] = event
        self.received_by_kind[event.kind.value] += 1
        self.log.info(
            RECEIVED,
            id=event.id,
            platform=event.platform,
            kind=event.kind.value,
            user=event.user.name,
            uid=event.user.id,
            text=event.text,
        )
        self._tell(event, None, {})

    def cover(self, line_id: str, event_id: str) -> bool:
        """``event_id`` is said by the line ``line_id`` (still open): it closes when that line
        does. False, and nothing recorded, if that line is closed already."""
        if line_id not in self.open or event_id not in self.open:
            return False
        self.covered.setdefault(line_id, []).append(event_id)
        return True

    def close(self, event_id: str, state: Terminal, **fields: Any) -> bool:
        """Log the one terminal line for ``event_id``; False if it was already closed."""
        event = self.open.pop(event_id, None)
        if event is None:
            return False
        self.terminal_counts[(event.kind.value, state.value)] += 1
        if "rule" in fields:
            self.rules[f"{state.value}:{fields['rule']}"] += 1
        level = "warning" if state is Terminal.FAILED else "info"
        getattr(self.log, level)(
            state.value, id=event_id, kind=event.kind.value, user=event.user.name, **fields
        )
        self._tell(event, state, fields)
        # The line's text is logged once; a covered event names the line that said it.
        said = {k: v for k, v in fields.items() if k not in ("text", "merged_into")}
        for covered in self.covered.pop(event_id, ()):
            self.close(covered, state, **said, merged_into=event_id)
        return True

    def close_all(self, state: Terminal, **fields: Any) -> int:
        ids = list(self.open)
        for event_id in ids:
            self.close(event_id, state, **fields)
        return len(ids)

    def summary(self) -> dict[str, int]:
        states: Counter[str] = Counter()
        for (_, state), n in self.terminal_counts.items():
            states[state] += n
        return {"received": sum(self.received_by_kind.values()), "open": len(self.open), **states}
