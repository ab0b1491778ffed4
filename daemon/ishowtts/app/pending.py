"""Paid messages that outlive the process: saved at a stop or restart, read after the next start.

A streamer would rather hear a super chat late than lose it because the GPU faulted or the
service was restarted. The file is small JSON (the events, with their original ids and wall
clock arrival), written atomically; at the next start each event is queued again with the time
it has left (a super chat older than its TTL expires, logged, instead of being read). The file
is removed once read, so nothing is read twice. Everything read from it is bounded: a damaged
file is logged and set aside, never fatal.
"""

from __future__ import annotations

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


def resolve(setting: str | None, base_dir: Path) -> Path | None:
    """The file for a ``queue.pending_file`` setting (None: saving is off)."""
    if setting is None:
        return None
    if setting == "auto":
        return default_dir() / FILENAME
    path = Path(os.path.expanduser(setting))
    return path if path.is_absolute() else base_dir / path


def save(path: Path, events: Iterable[ChatEvent]) -> int:
    """Write ``events`` (replacing the file); returns how many were written. With none, the
    file is left alone (a start that failed before reading it must not lose it)."""
    rows = [_row(e) for e in events][:MAX_EVENTS]
    if not rows:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = {"version": VERSION, "saved_at": time.time(), "events": rows}
    tmp.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one, never half
    return len(rows)


def _row(e: ChatEvent) -> dict[str, Any]:
    row = asdict(e)
    row["kind"] = e.kind.value
    row.pop("received_mono")  # meaningless in another process; received_wall carries the age
    return row


def load(path: Path) -> list[ChatEvent]:
    """The saved events, then the file is removed. A damaged file is renamed ``*.bad``."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    try:
        if size > MAX_BYTES:
            raise ValueError(f"{size} bytes, more than {MAX_BYTES}")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise ValueError("no 'events' list")
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        bad = path.with_name(path.name + ".bad")
        with contextlib.suppress(OSError):
            os.replace(path, bad)
        log.error("pending_unreadable", path=str(path), error=str(exc)[:300], moved_to=str(bad))
        return []
    events, skipped = [], 0
    now_wall, now_mono = time.time(), time.monotonic()
    for row in data["events"][:MAX_EVENTS]:
        try:
            events.append(_event(row, now_wall, now_mono))
        except (TypeError, ValueError, KeyError):
            skipped += 1
    with contextlib.suppress(OSError):
        path.unlink()
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


def restore(path: Path | None, handle: Callable[[ChatEvent], None]) -> None:
    """At start-up: queue again, through ``handle``, the paid messages the last run saved, with
    their original ids."""
    if path is None:
        return
    events = load(path)
    if events:
        log.info("restoring", count=len(events), path=str(path))
    for event in events:
        log.info("restored", id=event.id, kind=event.kind.value, user=event.user.name)
        handle(event)


def save_unheard(path: Path | None, ledger: Ledger) -> None:
    """At the end of shutdown: the paid messages not heard go to the file, and their ledger
    entries close as ``removed`` (rule ``saved``)."""
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
