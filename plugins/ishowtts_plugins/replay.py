"""``replay``: a JSONL chat log replayed with its timing (demos, load tests, bug reports).

One event a line::

    {"t": 1.25, "kind": "danmaku", "user": {"id": "42", "name": "alice", "guard": 0},
     "text": "...", "amount": 0, "id": "optional-platform-id"}

Optional keys: ``gift``, ``count``, ``reply_to``, ``sticker`` and, in ``user``, ``medal_level``,
``medal_name``, ``moderator``. ``{"t": 3.0, "kind": "recall", "id": "..."}`` takes a message back
(``"user_id"`` instead of ``"id"``: all of one user's). ``t`` is seconds from the start.
A bad line is logged with its number and skipped.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import Field

from ishowtts.confload import Section
from ishowtts.connectors import BaseConnector, ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, ConnectorItem, Kind, Retraction, User

DEMO = "demo"


class ReplayOptions(Section):
    path: str = DEMO  # a JSONL file (relative to the config file), or "demo": the bundled log
    speed: float = Field(1.0, gt=0)  # 2.0 plays twice as fast
    loop: bool = False
    start_delay_s: float = Field(0.0, ge=0)
    platform: str = "replay"
    room: str = "replay"


class ReplayError(ValueError):
    pass


def _str(value: Any) -> str:
    """A text field: missing or null is empty (never the word "None")."""
    return "" if value is None else str(value)


def _amount(value: Any) -> float:
    amount = float(value or 0)
    if not 0 <= amount < math.inf:
        raise ValueError(f"'amount' must be a finite non-negative number, got {value!r}")
    return amount


def _count(value: Any) -> int:
    count = 1 if value is None else int(value)
    if count < 1:
        raise ValueError(f"'count' must be at least 1, got {value!r}")
    return count


def parse_line(line: str, platform: str, room: str) -> tuple[float, ConnectorItem]:
    """One JSONL line → (t, item). Raises ReplayError saying what is wrong."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"not JSON: {exc.msg}") from None
    if not isinstance(obj, Mapping):
        raise ReplayError("expected a JSON object")
    t = obj.get("t", 0.0)
    if not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t < math.inf:
        raise ReplayError(f"'t' must be a finite non-negative number, got {t!r}")
    kind = obj.get("kind", "danmaku")
    if kind == "recall":
        ids = obj.get("id")
        raw_ids = tuple(str(i) for i in (ids if isinstance(ids, list) else [ids] if ids else []))
        user_id = str(obj.get("user_id", ""))
        if not raw_ids and not user_id:
            raise ReplayError("a recall needs 'id' or 'user_id'")
        return float(t), Retraction(platform, raw_ids=raw_ids, user_id=user_id)
    try:
        kind = Kind(kind)
    except ValueError:
        raise ReplayError(f"unknown kind {kind!r}") from None
    user = obj.get("user") or {}
    if not isinstance(user, Mapping):
        raise ReplayError("'user' must be an object")
    try:
        event = ChatEvent(
            platform=platform,
            room=room,
            kind=kind,
            user=User(
                id=_str(user.get("id")),
                name=_str(user.get("name")),
                guard_level=int(user.get("guard", 0)),
                medal_level=int(user.get("medal_level", 0)),
                medal_name=_str(user.get("medal_name")),
                is_moderator=bool(user.get("moderator", False)),
            ),
            text=_str(obj.get("text")),
            amount=_amount(obj.get("amount")),
            gift_name=_str(obj.get("gift")),
            gift_count=_count(obj.get("count")),
            raw_id=_str(obj.get("id")),
            reply_to=_str(obj.get("reply_to")),
            sticker=bool(obj.get("sticker", False)),
        )
    except (TypeError, ValueError) as exc:
        raise ReplayError(f"bad field: {exc}") from None
    return float(t), event


def demo_path() -> Path:
    return Path(str(files("ishowtts").joinpath("data/demo_chat.jsonl")))


class ReplayConnector(BaseConnector):
    platform = "replay"
    Options = ReplayOptions

    def __init__(self, name: str, options: ReplayOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.platform = options.platform
        p = Path(options.path).expanduser()
        self.path = (
            demo_path() if options.path == DEMO else p if p.is_absolute() else context.base_dir / p
        )

    def _lines(self) -> Iterator[tuple[int, str]]:
        with self.path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    yield number, line

    async def run(self) -> None:
        o: ReplayOptions = self.options
        if not self.path.is_file():
            self.set_state(ConnectorState.FAILED, error=f"replay file not found: {self.path}")
            return
        self.set_state(ConnectorState.CONNECTED, path=str(self.path))
        await asyncio.sleep(o.start_delay_s)
        while True:
            await self._play_once(o)
            if not o.loop:
                break
            self.counters["loops"] += 1
        self.set_state(ConnectorState.FINISHED, **dict(self.counters))

    async def _play_once(self, o: ReplayOptions) -> None:
        start = time.monotonic()
        for number, line in self._lines():
            self.counters["lines"] += 1
            try:
                t, item = parse_line(line, o.platform, o.room)
            except ReplayError as exc:
                self.counters["malformed"] += 1
                self.log.warning("replay_line_skipped", line=number, error=str(exc))
                continue
            delay = start + t / o.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if isinstance(item, ChatEvent):
                # Arrival time is when it is replayed, not when the file was read.
                item = _restamp(item)
            await self.emit(item)


def _restamp(event: ChatEvent) -> ChatEvent:
    return replace(event, received_mono=time.monotonic(), received_wall=time.time())
