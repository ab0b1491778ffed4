"""Record a live room's chat into the replay connector's JSONL format.

    python tools/record_chat.py --config config.yaml --connector bilibili -o chat.jsonl
    python tools/record_chat.py --type twitch --set channel=dallas --duration 600 -o chat.jsonl

One event a line: ``{"t": 1.25, "kind": "danmaku", "user": {"id": ..., "name": ..., "guard": 0},
"text": ..., "amount": 0, "id": ...}`` plus ``gift``/``count``/``reply_to``/``sticker`` and, in
``user``, ``medal_level``/``medal_name``/``moderator`` when set; recalls as ``{"t": ...,
"kind": "recall", "id": [...]}`` (or ``"user_id"``). ``t`` counts from the start of recording.
Stops on Ctrl-C, after ``--duration`` seconds or ``--max-events``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ishowtts import registry
from ishowtts.config import load_config
from ishowtts.connectors import GROUP, BaseConnector, ConnectorContext
from ishowtts.events import ChatEvent, ConnectorItem, Retraction


def to_record(item: ConnectorItem, t: float) -> dict[str, Any] | None:
    if isinstance(item, Retraction):
        if item.everything:
            return None  # the replay format has no room-wide clear
        out: dict[str, Any] = {"t": round(t, 3), "kind": "recall"}
        if item.raw_ids:
            out["id"] = list(item.raw_ids)
        else:
            out["user_id"] = item.user_id
        return out
    e: ChatEvent = item
    user: dict[str, Any] = {"id": e.user.id, "name": e.user.name, "guard": e.user.guard_level}
    if e.user.medal_level:
        user["medal_level"] = e.user.medal_level
    if e.user.medal_name:
        user["medal_name"] = e.user.medal_name
    if e.user.is_moderator:
        user["moderator"] = True
    rec: dict[str, Any] = {
        "t": round(t, 3),
        "kind": str(e.kind),
        "user": user,
        "text": e.text,
        "amount": e.amount,
    }
    if e.raw_id:
        rec["id"] = e.raw_id
    if e.gift_name:
        rec["gift"] = e.gift_name
    if e.gift_count != 1:
        rec["count"] = e.gift_count
    if e.reply_to:
        rec["reply_to"] = e.reply_to
    if e.sticker:
        rec["sticker"] = True
    return rec


def build(args: argparse.Namespace) -> BaseConnector:
    if args.config:
        config = load_config(args.config)
        entries = [c for c in config.connectors if args.connector in (None, c.name)]
        if not entries:
            names = ", ".join(c.name for c in config.connectors) or "none"
            raise SystemExit(f"no connector named {args.connector!r} in {args.config} ({names})")
        entry = entries[0]
        cls = registry.load(GROUP, entry.type)
        return cls(entry.name, entry.options, ConnectorContext(base_dir=config.base_dir))
    if not args.type:
        raise SystemExit("give --config (and --connector) or --type with --set key=value")
    cls = registry.load(GROUP, args.type)
    raw = dict(kv.split("=", 1) for kv in args.set)
    options = cls.Options.model_validate(raw) if hasattr(cls, "Options") else raw
    return cls(args.type, options, ConnectorContext(base_dir=Path.cwd()))


async def record(
    connector: BaseConnector, out: TextIO, duration: float | None, max_events: int | None
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    written = 0
    start = time.monotonic()

    async def drain() -> None:
        nonlocal written
        async for item in connector:
            rec = to_record(item, time.monotonic() - start)
            if rec is None:
                continue
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
            written += 1
            if max_events and written >= max_events:
                stop.set()

    await connector.start()
    task = asyncio.create_task(drain())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopper], timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    await connector.stop()
    for t in (task, stopper):
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, help="an ishowtts config file")
    ap.add_argument("--connector", help="which of its connectors (by name); default: the first")
    ap.add_argument("--type", help="a connector type, without a config file (bilibili, twitch)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of --type, repeatable (room=..., channel=..., endpoint=...)",
    )
    ap.add_argument("-o", "--output", type=Path, help="JSONL file (default: standard output)")
    ap.add_argument("--duration", type=float, help="seconds to record")
    ap.add_argument("--max-events", type=int, help="stop after this many lines")
    args = ap.parse_args(argv)
    connector = build(args)
    out = args.output.open("a", encoding="utf-8") if args.output else sys.stdout
    try:
        n = asyncio.run(record(connector, out, args.duration, args.max_events))
    finally:
        if args.output:
            out.close()
    print(f"recorded {n} events; counters: {dict(connector.counters)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
