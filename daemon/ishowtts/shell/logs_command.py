"""The ``ishowtts logs`` command: its options, and the loop from a source through the reader to
the terminal (logsources.py reads, logview.py makes the lines)."""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..errors import UsageError
from .logsources import open_source
from .logview import Filters, Printer, Reader, Summary

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "logs",
        help="the daemon's decisions, one readable line each (from its journal, a file or stdin)",
        description="Read the daemon's JSON log as one line per decision: time, fate, kind, "
        "user, text, rule or reason; warnings and errors between them.",
    )
    p.add_argument("source", nargs="?", help="a log file, or - for stdin (default: the journal)")
    p.add_argument("-f", "--follow", action="store_true", help="keep reading as lines come")
    p.add_argument("--summary", action="store_true", help="counts by fate and rule instead")
    p.add_argument("--since", help="from this time: 10m, 2h, 1d ago, or 2026-12-04T20:00")
    p.add_argument("--until", help="up to this time (same forms)")
    p.add_argument("-n", "--lines", type=int, help="start from the last N lines of the source")
    p.add_argument("--user", action="append", default=[], help="only this user (name or uid)")
    p.add_argument("--kind", action="append", default=[], help="only this kind (danmaku, gift...)")
    p.add_argument("--event", action="append", default=[], help="only this event (spoken...)")
    p.add_argument("--rule", action="append", default=[], help="only this rule (duplicate...)")
    p.add_argument("--all", action="store_true", help="received, info and non-JSON lines too")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--unit", default="ishowtts", help="the systemd unit (default: ishowtts)")
    p.add_argument("--user-unit", action="store_true", help="the user service's journal")
    p.add_argument("-D", "--journal-dir", type=Path, help="read journal files from this folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.summary and args.follow:
        raise UsageError("--summary counts a window: it cannot --follow")
    if args.lines is not None and args.lines < 1:
        raise UsageError("--lines must be at least 1")
    now = datetime.now(timezone.utc)
    since = _when(args.since, now, "--since")
    until = _when(args.until, now, "--until")
    filters = Filters(
        users=frozenset(u.lower() for u in _values(args.user)) | frozenset(_values(args.user)),
        kinds=frozenset(_values(args.kind)),
        events=frozenset(_values(args.event)),
        rules=frozenset(_values(args.rule)),
        since=_stamp(since),
        until=_stamp(until),
    )
    reader = Reader(filters, show_all=args.all or args.summary)
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="replace")  # a terminal that cannot show a character: "?"
    source = open_source(
        args.source, follow=args.follow, unit=args.unit, user_unit=args.user_unit,
        journal_dir=args.journal_dir, lines=args.lines,
        since=f"@{since.timestamp():.0f}" if since else None,
    )  # fmt: skip
    try:
        with source as lines:
            if args.summary:
                summary = Summary()
                for record in _records(reader, lines):
                    summary.add(record)
                out.write("\n".join(summary.lines(reader.unreadable)) + "\n")
            else:
                printer = Printer(_colour(args.color, out))
                for record in _records(reader, lines):
                    out.write(printer.line(record) + "\n")
                    if args.follow:
                        out.flush()
        out.flush()
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `ishowtts logs | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())  # no error at exit's flush
    return 0


def _records(reader: Reader, lines: Iterator[bytes | None]) -> Iterator[dict[str, object]]:
    for raw in lines:
        record = reader.read(raw)
        if record is not None:
            yield record


def _values(given: list[str]) -> list[str]:
    """Repeated options and comma-separated lists alike."""
    return [v.strip() for item in given for v in item.split(",") if v.strip()]


def _when(text: str | None, now: datetime, option: str) -> datetime | None:
    """``10m`` (ago) or an ISO date/time (local unless it says otherwise), in UTC."""
    if text is None:
        return None
    if m := _AGO.fullmatch(text.strip()):
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        hint = "give 10m, 2h, 1d or a time like 2026-12-04T20:00"
        raise UsageError(f"{option} {text!r}: {hint}") from None
    return (when if when.tzinfo else when.astimezone()).astimezone(timezone.utc)


def _stamp(when: datetime | None) -> str | None:
    """As the log writes timestamps (UTC, microseconds), so that strings compare as times."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else None


def _colour(choice: str, out: object) -> bool:
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and bool(getattr(out, "isatty", lambda: False)())
