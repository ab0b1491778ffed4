"""The live event feed behind the console and the overlay: the ledger's decisions and the
player's start/finish, fanned out to a bounded set of subscribers.

Every bound here protects the daemon from its viewers: a subscriber has a bounded queue and a
subscriber that falls behind is dropped (its page reconnects and resumes from the ring, or
starts afresh); the ring of recent records and the number of subscribers are capped; chat text
is clipped. Publishing never blocks and never raises into the caller (the ledger), whatever
the text or numbers: a record is always valid JSON in valid UTF-8.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger("ishowtts.control.feed")

MAX_TEXT = 300  # characters of chat text per record: a page line, not an archive
RING = 1000  # recent records kept for a (re)connecting page
SUBSCRIBER_QUEUE = 512  # records a subscriber may lag behind before it is dropped
MAX_SUBSCRIBERS = 16
# Lone surrogates: valid in a Python str (and in JSON's \\u escapes, which replay files and
# platforms carry) but not encodable as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    type: str  # received, terminal, speaking, done, mutes
    data: bytes  # the JSON payload, encoded once for every subscriber


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[Record | None] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE)
    )
    dropped: bool = False  # fell behind (or the feed closed): its stream must end


class FeedFull(Exception):
    """Too many pages are subscribed already."""


class EventFeed:
    def __init__(
        self,
        ring: int = RING,
        max_subscribers: int = MAX_SUBSCRIBERS,
        queue_size: int = SUBSCRIBER_QUEUE,
    ) -> None:
        self.max_subscribers = max_subscribers
        self.queue_size = queue_size
        self._ring: deque[Record] = deque(maxlen=ring)
        self._subs: set[Subscriber] = set()
        self._seq = itertools.count(1)
        self.closed = False
        self.lagged = 0  # subscribers dropped for falling behind

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, type_: str, **payload: Any) -> None:
        if self.closed:
            return
        seq = next(self._seq)
        body = {"seq": seq, "type": type_, "t": round(time.time(), 3), **payload}
        record = Record(seq, type_, encode(body))
        self._ring.append(record)
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(record)
            except asyncio.QueueFull:
                self._drop(sub, lagged=True)

    def subscribe(self) -> Subscriber:
        if self.closed:
            raise FeedFull("the daemon is stopping")
        if len(self._subs) >= self.max_subscribers:
            raise FeedFull(f"{self.max_subscribers} pages are subscribed already")
        sub = Subscriber(asyncio.Queue(self.queue_size))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    def backlog(self, since: int | None, last: int) -> tuple[list[Record], bool]:
        """Records a page missed: after ``since`` (a reconnect), else the ``last`` few. The flag
        says the ring no longer reaches back to ``since`` (the page must refetch its state)."""
        records = list(self._ring)
        if since is None:
            return records[-last:] if last > 0 else [], False
        gap = bool(records) and records[0].seq > since + 1
        return [r for r in records if r.seq > since], gap

    def close(self) -> None:
        """End every stream (shutdown)."""
        self.closed = True
        for sub in list(self._subs):
            self._drop(sub, lagged=False)

    def _drop(self, sub: Subscriber, lagged: bool) -> None:
        self._subs.discard(sub)
        sub.dropped = True
        if lagged:
            self.lagged += 1
            log.warning("feed_subscriber_dropped", reason="fell behind", queued=self.queue_size)
        # Its handler ends the stream at once: what it had not sent is in the ring, where the
        # page's reconnection (``since``) finds it.
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)


def encode(body: dict[str, Any]) -> bytes:
    """``body`` as JSON in UTF-8 that any page parses: a lone surrogate becomes U+FFFD and a
    number that is not finite (two 1e308 gifts merged) becomes null, never ``Infinity``."""
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(body), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def records_by_type(records: Iterable[Record], type_: str) -> list[dict[str, Any]]:
    """Decoded records of one type (tests, tools)."""
    return [json.loads(r.data) for r in records if r.type == type_]
