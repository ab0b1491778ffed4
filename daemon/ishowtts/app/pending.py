"""Paid messages that outlive the process: saved at a stop or restart, read after the next start.

A streamer would rather hear a super chat late than lose it because the GPU faulted or the
service was restarted. The file is small JSON (the events, with their original ids and wall
clock arrival), written atomically; at the next start each event is queued again with the time
it has left (a super chat older than its TTL expires, logged, instead of being read). The file
keeps the restored lines until each has its terminal line (``Restored`` rewrites it as they
close, and removes it after the last), so a crash before they are heard loses none, and none is
read twice. Everything read from it is bounded: a damaged file is logged and set aside, never
fatal (``pipeline/statefile.py``); an entry that cannot be read, or repeats an id, is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog

from ..events import ChatEvent, Kind, User
from ..pipeline import statefile
from ..queue.ledger import Ledger, Terminal

log = structlog.get_logger("ishowtts.app.pending")

VERSION = 1
MAX_BYTES = 4 << 20  # a queue's worth of events is a few hundred kB at most
MAX_EVENTS = 2000
FILENAME = "pending-paid.json"


def default_dir() -> Path:
    """systemd's StateDirectory, else the XDG state home."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "ishowtts"


def resolve(setting: str | None, config_path: Path) -> Path | None:
    """The file for a ``queue.pending_file`` setting (None: saving is off); ``auto`` is named
    after the config, so daemons of one user account keep their own paid lines."""
    if setting is None:
        return None
    if setting == "auto":
        return default_dir() / statefile.keyed(FILENAME, config_path)
    path = Path(os.path.expanduser(setting))
    return path if path.is_absolute() else config_path.parent / path


def save(path: Path, events: Iterable[ChatEvent]) -> int:
    """Write ``events`` (replacing the file); returns how many were written. With none, the
    file is left alone (a start that failed before reading it must not lose it)."""
    rows = [_row(e) for e in events][:MAX_EVENTS]
    if not rows:
        return 0
    body = {"version": VERSION, "saved_at": time.time(), "events": rows}
    # ASCII: a lone surrogate in chat text is kept as its escape, not an encoding error.
    statefile.write_atomic(path, json.dumps(body))
    return len(rows)


def _row(e: ChatEvent) -> dict[str, Any]:
    row = asdict(e)
    row["kind"] = e.kind.value
    row.pop("received_mono")  # meaningless in another process; received_wall carries the age
    return row


def load(path: Path) -> list[ChatEvent]:
    """The saved events (the file stays until they are heard: see ``Restored``). A damaged
    file is set aside."""
    rows = statefile.read_list(path, "pending", "events", MAX_BYTES)
    if rows is None:
        return []
    events: list[ChatEvent] = []
    seen: set[str] = set()
    skipped = 0
    now_wall, now_mono = time.time(), time.monotonic()
    for row in rows[:MAX_EVENTS]:
        try:
            event = _event(row, now_wall, now_mono)
        except (TypeError, ValueError, KeyError, ArithmeticError):
            skipped += 1
            continue
        if event.id in seen:  # one id read twice would be closed twice
            skipped += 1
            continue
        seen.add(event.id)
        events.append(event)
    if skipped:
        log.warning("pending_bad_entries", path=str(path), skipped=skipped)
    return events


def _str(row: dict[str, Any], key: str, default: str = "") -> str:
    value = row.get(key, default)
    if not isinstance(value, str):
        raise TypeError(key)
    return value[:2000]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(value)
    return float(value)


def _event(row: Any, now_wall: float, now_mono: float) -> ChatEvent:
    if not isinstance(row, dict) or not isinstance(row.get("user"), dict):
        raise TypeError("row")
    u = row["user"]
    user = User(
        id=_str(u, "id"),
        name=_str(u, "name"),
        guard_level=int(_number(u.get("guard_level", 0))),
        medal_level=int(_number(u.get("medal_level", 0))),
        medal_name=_str(u, "medal_name"),
        is_moderator=bool(u.get("is_moderator", False)),
    )
    kind = Kind(row["kind"])
    if kind not in (Kind.SUPER_CHAT, Kind.GIFT, Kind.GUARD):
        raise ValueError(kind)
    wall = _number(row["received_wall"])
    age = min(max(0.0, now_wall - wall), 365 * 86400.0)  # a clock step back reads as new
    count = int(_number(row.get("gift_count", 1)))
    if not 1 <= count <= 1_000_000:
        raise ValueError(count)
    event_id = _str(row, "id")
    if not event_id:
        raise ValueError("id")
    return ChatEvent(
        platform=_str(row, "platform"),
        room=_str(row, "room"),
        kind=kind,
        user=user,
        text=_str(row, "text"),
        amount=_number(row.get("amount", 0.0)),
        gift_name=_str(row, "gift_name"),
        gift_count=count,
        raw_id=_str(row, "raw_id"),
        reply_to=_str(row, "reply_to"),
        sticker=bool(row.get("sticker", False)),
        received_mono=now_mono - age,  # so its TTL counts from when it really arrived
        received_wall=wall,
        id=event_id,
    )


class Restored:
    """A ledger listener that keeps the pending file true to the restored lines not yet
    closed: rewritten as they close (once per loop turn, however many closed in it), removed
    after the last. A crash or kill before they are heard leaves them for the next start."""

    def __init__(self, path: Path, events: Iterable[ChatEvent]) -> None:
        self.path = path
        self.waiting = {e.id: e for e in events}
        self._flush: asyncio.Handle | None = None
        self.stopped = False

    def __call__(self, event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        if state is None or self.stopped or self.waiting.pop(event.id, None) is None:
            return
        if self._flush is None:
            try:
                self._flush = asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a tool, a test): at once
                self.flush()

    def flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        try:
            if self.waiting:
                save(self.path, self.waiting.values())
            else:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        except OSError as exc:
            log.error("pending_update_failed", path=str(self.path), error=str(exc))

    def stop(self) -> None:
        """Shutdown: bring the file up to date once more, then leave it to ``save_unheard``."""
        if not self.stopped:
            self.flush()
            self.stopped = True


def restore(
    path: Path | None, handle: Callable[[ChatEvent], None], ledger: Ledger
) -> Restored | None:
    """At start-up: queue again, through ``handle``, the paid messages the last run saved, with
    their original ids; the file follows them until each is closed (``Restored``)."""
    if path is None:
        return None
    events = load(path)
    if not events:
        return None
    log.info("restoring", count=len(events), path=str(path))
    restored = Restored(path, events)
    ledger.listeners.append(restored)
    for event in events:
        log.info("restored", id=event.id, kind=event.kind.value, user=event.user.name)
        handle(event)
    return restored


def save_unheard(path: Path | None, ledger: Ledger, restored: Restored | None = None) -> None:
    """At the end of shutdown: the paid messages not heard go to the file, and their ledger
    entries close as ``removed`` (rule ``saved``)."""
    if restored is not None:
        restored.stop()
    if path is None:
        return
    keep = [e for e in ledger.open.values() if e.is_paid]
    try:
        n = save(path, keep)
    except OSError as exc:
        log.error("pending_save_failed", path=str(path), error=str(exc))
        return
    for event in keep[:n]:
        ledger.close(event.id, Terminal.REMOVED, rule="saved", path=str(path))
    if n:
        log.warning("pending_saved", count=n, path=str(path))
