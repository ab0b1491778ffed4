"""``ishowtts logs``: the daemon's JSON log read back as one line per decision (time, fate,
kind, user, text, and the rule or reason), warnings and errors between them, or a summary of
fates and rules over a window.

What the lines mean comes from the ledger (queue/ledger.py: ``received``, then one fate). A
message's fate line carries no text or uid, so the ``received`` line is remembered until its
fate comes (bounded: the oldest forgotten first). Nothing in a line is trusted: text from chat
may hold terminal escapes, control characters, lone surrogates or be huge; each shown value is
cut short and every control or invisible character shown as an escape. A line that is not a
JSON object is counted (shown with ``--all``), never fatal.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..queue.ledger import RECEIVED, Terminal

FATES = frozenset(t.value for t in Terminal)
LOUD = frozenset({"warning", "error", "critical"})  # levels shown without --all
MAX_TEXT = 160  # characters of chat text shown
MAX_VALUE = 120  # characters of any other value
MAX_OPEN = 100_000  # received messages remembered until their fate

COLOURS = {
    "spoken": "32", "dropped": "33", "expired": "35", "evicted": "35", "removed": "36",
    "failed": "31", "error": "1;31", "critical": "1;31", "warning": "33", "received": "2",
    "info": "2", "unreadable": "2",
}  # fmt: skip
# C0/C1 controls (ESC above all), zero-width and bidirectional marks, lone surrogates.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]"
)
_SKIP_KEYS = frozenset({"event", "level", "timestamp"})


def clean(value: object, limit: int) -> str:
    """``value`` safe for a terminal: at most ``limit`` characters, every control, invisible
    or unpaired character written as an escape (``\\x1b``, ``\\u202e``, ``\\ud83d``)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = _UNSAFE.sub(_escape, text[:limit])  # cut first: the text may be a megabyte
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def parse(raw: bytes) -> dict[str, Any] | None:
    """The JSON object on a log line, or None (not JSON, not an object, nested too deep)."""
    if not raw.startswith(b"{"):
        return None
    try:
        try:
            record = json.loads(raw)
        except UnicodeDecodeError:  # bytes that are not UTF-8: shown as U+FFFD
            record = json.loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


@functools.lru_cache(maxsize=4096)
def local_time(second: str) -> str:
    """``2026-12-04T14:33:10`` (UTC, as the log writes it) as local ``HH:MM:SS``."""
    try:
        when = datetime.fromisoformat(second).replace(tzinfo=timezone.utc)
    except ValueError:
        return "??:??:??"
    return when.astimezone().strftime("%H:%M:%S")


def stamp_of(record: Mapping[str, Any]) -> str:
    """The record's timestamp if it is one as the log writes them (``2026-12-04T14:33:10…``),
    else ""."""
    value = record.get("timestamp")
    if isinstance(value, str) and len(value) >= 19 and value[:4].isdigit() and value[10] == "T":
        return value
    return ""


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if type(value) is str:
        return value
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Filters:
    """What to keep: a line passes when, for every filter given, one of its values matches
    (users by name, case-insensitive, or by uid)."""

    users: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()
    since: str | None = None  # UTC, as the log's timestamps: compared as strings
    until: str | None = None

    def wants(self, record: Mapping[str, Any]) -> bool:
        if self.since is not None or self.until is not None:
            stamp = stamp_of(record)
            if stamp and (
                (self.since is not None and stamp < self.since)
                or (self.until is not None and stamp > self.until)
            ):
                return False
        if self.events and _text(record, "event") not in self.events:
            return False
        if self.kinds and _text(record, "kind") not in self.kinds:
            return False
        if self.rules and _text(record, "rule") not in self.rules:
            return False
        if self.users:
            return bool({_text(record, "user").lower(), _text(record, "uid")} & self.users)
        return True


@dataclass
class Reader:
    """Log lines in, records out: each fate joined with its message's ``received`` line."""

    filters: Filters
    show_all: bool = False
    unreadable: int = 0  # lines that are not a JSON object, or too long
    _open: OrderedDict[str, tuple[str, str]] = field(default_factory=OrderedDict)

    def read(self, raw: bytes | None) -> dict[str, Any] | None:
        """The record to show for one line, or None."""
        record = parse(raw) if raw is not None else None
        if record is None:
            self.unreadable += 1
            if self.show_all and raw is not None:
                return {"event": "unreadable", "line": raw.decode("utf-8", "replace")}
            return None
        event = _text(record, "event")
        if event == RECEIVED:
            self._remember(_text(record, "id"), _text(record, "uid"), _text(record, "text"))
            shown = self.show_all or RECEIVED in self.filters.events
        elif event in FATES:
            uid, text = self._open.pop(_text(record, "id"), ("", ""))
            record.setdefault("uid", uid)
            if not _text(record, "text"):
                record["text"] = text
            shown = True
        else:
            shown = self.show_all or _text(record, "level") in LOUD or event in self.filters.events
        return record if shown and self.filters.wants(record) else None

    def _remember(self, event_id: str, uid: str, text: str) -> None:
        self._open[event_id] = (uid, text[: MAX_TEXT + 1])
        if len(self._open) > MAX_OPEN:
            self._open.popitem(last=False)


class Printer:
    """One line per record, the fate (or level) coloured on a terminal."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def paint(self, name: str, text: str) -> str:
        code = COLOURS.get(name)
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def line(self, record: Mapping[str, Any]) -> str:
        stamp = stamp_of(record)
        when = local_time(stamp[:19]) if stamp else "--:--:--"
        event = _text(record, "event")
        if event == "unreadable":
            return self.paint(event, f"{when}  {clean(record['line'], 2 * MAX_TEXT)}")
        if event in FATES or event == RECEIVED:
            return self._decision(when, event, record)
        level = _text(record, "level") or "info"
        rest = " ".join(
            f"{key}={clean(value, MAX_VALUE)}"
            for key, value in list(record.items())[:24]
            if key not in _SKIP_KEYS
        )
        return f"{when}  {self.paint(level, f'{level.upper():<8}')} {clean(event, 60)}  {rest}"

    def _decision(self, when: str, event: str, record: Mapping[str, Any]) -> str:
        user = clean(_text(record, "user"), 40)
        text = clean(_text(record, "text"), MAX_TEXT)
        said = f"{user}: {text}" if text else user
        why = [clean(_text(record, key), MAX_VALUE) for key in ("rule", "error")]
        if into := _text(record, "merged_into"):  # said by another line (a gift, a storm)
            why.append(f"in {clean(into, 40)}")
        reason = f"  ({': '.join(w for w in why if w)})" if any(why) else ""
        kind = clean(_text(record, "kind"), 12)
        return f"{when}  {self.paint(event, f'{event:<8}')} {kind:<11} {said}{reason}"


@dataclass
class Summary:
    """Counts by fate and rule (and received by kind, loud lines by event) over a window."""

    received: Counter[str] = field(default_factory=Counter)
    fates: Counter[str] = field(default_factory=Counter)
    rules: dict[str, Counter[str]] = field(default_factory=dict)
    loud: Counter[str] = field(default_factory=Counter)
    first: str = ""
    last: str = ""
    _open: set[str] = field(default_factory=set)  # received here, fate not (yet)

    def add(self, record: Mapping[str, Any]) -> None:
        stamp = stamp_of(record)
        if stamp:
            self.first = min(self.first, stamp) if self.first else stamp
            self.last = max(self.last, stamp)
        event = _text(record, "event")
        if event == RECEIVED:
            self.received[_text(record, "kind") or "?"] += 1
            if len(self._open) < MAX_OPEN:
                self._open.add(_text(record, "id"))
        elif event in FATES:
            self.fates[event] += 1
            self._open.discard(_text(record, "id"))
            if rule := _text(record, "rule"):
                self.rules.setdefault(event, Counter())[rule] += 1
        elif _text(record, "level") in LOUD:
            self.loud[clean(event, 60)] += 1

    def lines(self, unreadable: int) -> Iterable[str]:
        return (line.rstrip() for line in self._lines(unreadable))

    def _lines(self, unreadable: int) -> Iterable[str]:
        window = "no dated lines"
        if self.first:
            window = f"{_utc(self.first)} to {_utc(self.last)} UTC"
        yield f"window     {window}"
        yield f"received   {sum(self.received.values()):>7}  {_top(self.received)}"
        for fate in (t.value for t in Terminal):
            if self.fates[fate]:
                yield f"{fate:<10} {self.fates[fate]:>7}  {_top(self.rules.get(fate, Counter()))}"
        yield f"undecided  {len(self._open):>7}  (received, no fate in the window)"
        if self.loud:
            yield f"warnings   {sum(self.loud.values()):>7}  {_top(self.loud)}"
        if unreadable:
            yield f"unreadable {unreadable:>7}  (not a JSON log line)"


def _utc(stamp: str) -> str:
    return clean(stamp[:19].replace("T", " "), 19)


def _top(counts: Counter[str], n: int = 10) -> str:
    shown = ", ".join(f"{clean(k, 40)} {v}" for k, v in counts.most_common(n))
    return shown + (f", … {len(counts) - n} more" if len(counts) > n else "")
