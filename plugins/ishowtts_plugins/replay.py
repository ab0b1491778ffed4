"""``replay``: a JSONL chat log replayed with its timing (demos, load tests, bug reports).

One event a line::

    {"t": 1.25, "kind": "danmaku", "user": {"id": "42", "name": "alice", "guard": 0},
     "text": "...", "amount": 0, "id": "optional-platform-id"}

Optional keys: ``gift``, ``count``, ``reply_to``, ``sticker`` and, in ``user``, ``medal_level``,
``medal_name``, ``moderator``. ``{"t": 3.0, "kind": "recall", "id": "..."}`` takes a message back
(``"user_id"`` instead of ``"id"``: all of one user's). ``t`` is seconds from the start.
A bad line (not JSON, not UTF-8, longer than 64 KiB, a field of the wrong type or an absurd
number) is logged with its number and skipped; a file without one valid line fails the connector.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import Field

from ishowtts.connectors import (
    BaseConnector,
    ChatEvent,
    ConnectorContext,
    ConnectorItem,
    ConnectorState,
    Kind,
    Retraction,
    Section,
    User,
)

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


MAX_LINE_BYTES = 64 * 1024  # a chat line is far smaller; past this a line is bad, not read in
MAX_COUNT = 1_000_000  # gift counts, raid sizes
MAX_LEVEL = 10_000  # guard and medal levels
# A loop shorter than this (in log time) is padded to it: a one-line log at t=0 must not flood.
MIN_PASS_S = 1.0
YIELD_EVERY = 256  # lines read between turns of the event loop


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(obj: Mapping[str, Any], key: str, name: str = "") -> str:
    """A string field: missing or null is empty (never the word "None"); anything else is bad."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReplayError(f"'{name or key}' must be a string, got {_show(value)}")
    return value


def _ident(obj: Mapping[str, Any], key: str, name: str = "") -> str:
    """An id: a string or an integer (platforms use both)."""
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise ReplayError(f"'{name or key}' must be a string or an integer, got {_show(value)}")


def _flag(obj: Mapping[str, Any], key: str, name: str = "") -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise ReplayError(f"'{name or key}' must be true or false, got {_show(value)}")
    return value


def _number(obj: Mapping[str, Any], key: str) -> float:
    """A finite non-negative JSON number (an int too large for a float is not one)."""
    value = obj.get(key)
    if value is None:
        return 0.0
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    try:
        number = float(value) if ok else math.nan
    except OverflowError:
        number = math.nan
    if not 0 <= number < math.inf:
        raise ReplayError(f"'{key}' must be a finite non-negative number, got {_show(value)}")
    return number


def _whole(obj: Mapping[str, Any], key: str, default: int, lo: int, hi: int, name: str = "") -> int:
    """A whole number in [lo, hi]: 3 or 3.0, never 2.7, "3" or true."""
    value = obj.get(key)
    if value is None:
        return default
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and lo <= value <= hi) or (isinstance(value, float) and not value.is_integer()):
        raise ReplayError(
            f"'{name or key}' must be a whole number from {lo} to {hi}, got {_show(value)}"
        )
    return int(value)


def parse_line(line: str, platform: str, room: str) -> tuple[float, ConnectorItem]:
    """One JSONL line → (t, item). Raises ReplayError saying what is wrong."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"not JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # 5,000-digit numbers, nesting past the stack
        raise ReplayError(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(obj, Mapping):
        raise ReplayError("expected a JSON object")
    t = _number(obj, "t")
    kind = obj.get("kind", "danmaku")
    if kind == "recall":
        ids = obj.get("id")
        listed = ids if isinstance(ids, list) else [] if ids is None else [ids]
        raw_ids = tuple(_ident({"id": i}, "id") for i in listed)
        user_id = _ident(obj, "user_id")
        if not any(raw_ids) and not user_id:
            raise ReplayError("a recall needs 'id' or 'user_id'")
        return t, Retraction(platform, raw_ids=tuple(i for i in raw_ids if i), user_id=user_id)
    try:
        kind = Kind(kind)
    except (ValueError, TypeError):
        raise ReplayError(f"unknown kind {_show(kind)}") from None
    user = obj.get("user") or {}
    if not isinstance(user, Mapping):
        raise ReplayError("'user' must be an object")
    event = ChatEvent(
        platform=platform,
        room=room,
        kind=kind,
        user=User(
            id=_ident(user, "id", "user.id"),
            name=_text(user, "name", "user.name"),
            guard_level=_whole(user, "guard", 0, 0, MAX_LEVEL, "user.guard"),
            medal_level=_whole(user, "medal_level", 0, 0, MAX_LEVEL, "user.medal_level"),
            medal_name=_text(user, "medal_name", "user.medal_name"),
            is_moderator=_flag(user, "moderator", "user.moderator"),
        ),
        text=_text(obj, "text"),
        amount=_number(obj, "amount"),
        gift_name=_text(obj, "gift"),
        gift_count=_whole(obj, "count", 1, 1, MAX_COUNT),
        raw_id=_ident(obj, "id"),
        reply_to=_text(obj, "reply_to"),
        sticker=_flag(obj, "sticker"),
    )
    return t, event


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

    def _lines(self) -> Iterator[tuple[int, str | ReplayError]]:
        """(number, text) per line worth parsing, or (number, error) for one that cannot be read:
        bytes, not text, so one bad byte or a huge line costs that line only."""
        with self.path.open("rb") as f:
            for number in itertools.count(1):
                raw = f.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while raw and not raw.endswith(b"\n"):  # skip the rest, never hold it
                        raw = f.readline(MAX_LINE_BYTES)
                    yield number, ReplayError(f"longer than {MAX_LINE_BYTES} bytes")
                    continue
                if number == 1:
                    raw = raw.removeprefix(codecs.BOM_UTF8)  # Windows editors write one
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield number, ReplayError(f"not UTF-8 at byte {exc.start}")
                    continue
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
            started = time.monotonic()
            if not await self._play_once(o):
                # Looping over nothing would spin without ever yielding to the loop.
                self.set_state(
                    ConnectorState.FAILED, error=f"no valid line in {self.path}", **self.counters
                )
                return
            if not o.loop:
                break
            self.counters["loops"] += 1
            await asyncio.sleep(started + MIN_PASS_S / o.speed - time.monotonic())
        self.set_state(ConnectorState.FINISHED, **dict(self.counters))

    async def _play_once(self, o: ReplayOptions) -> int:
        """One pass over the file; how many items it emitted."""
        start = time.monotonic()
        emitted = 0
        for number, line in self._lines():
            self.counters["lines"] += 1
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # bad lines emit nothing: a long run must not hold the loop
            try:
                if isinstance(line, ReplayError):
                    raise line
                t, item = parse_line(line, o.platform, o.room)
            except ReplayError as exc:
                n = self.counters["malformed"] = self.counters["malformed"] + 1
                if n <= 10 or n % 1000 == 0:  # a broken file must not flood the log
                    self.log.warning(
                        "replay_line_skipped", line=number, error=str(exc), malformed_total=n
                    )
                continue
            delay = start + t / o.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if isinstance(item, ChatEvent):
                # Arrival time is when it is replayed, not when the file was read.
                item = _restamp(item)
            await self.emit(item)
            emitted += 1
        return emitted


def _restamp(event: ChatEvent) -> ChatEvent:
    return replace(event, received_mono=time.monotonic(), received_wall=time.time())
