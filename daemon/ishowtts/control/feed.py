"""The live event feed behind the console and the overlay: the ledger's decisions and the
player's start/finish, fanned out to a bounded set of subscribers.

Every bound here protects the daemon from its viewers: a subscriber has a bounded queue and a
subscriber that falls behind is dropped (its page reconnects and resumes from the ring, or
starts afresh); the ring of recent records and the number of subscribers are capped, and no
one peer can hold every place: a peer at its share that subscribes again ends its own oldest
stream (a reloaded page, or a client hoarding streams, displaces itself, never the others), and
peers off loopback leave a few places to loopback (the operator's own console); chat text is
clipped. Publishing never blocks and never raises into the caller (the ledger), whatever
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
PER_REMOTE_PEER = 4  # streams one address off loopback may hold (a console and an overlay or two)
LOOPBACK_RESERVE = 4  # places only loopback peers may take
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
    peer: str = ""  # the client's address
    local: bool = True  # a loopback peer
    dropped: bool = False  # its stream must end (see ``why``)
    why: str = ""  # lagged | closed (shutdown) | replaced (its peer subscribed again) | token
    order: int = 0  # when it subscribed, among the others


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
        self._order = itertools.count(1)  # subscribers' order of arrival
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
                self._drop(sub, "lagged")

    def subscribe(self, peer: str = "", local: bool = True) -> Subscriber:
        """A new subscriber for ``peer`` (``local``: a loopback address). A peer at its share
        ends its own oldest stream; past the places its kind may take, FeedFull."""
        if self.closed:
            raise FeedFull("the daemon is stopping")
        mine = [s for s in self._subs if s.peer == peer]
        share = self.max_subscribers if local else min(self.max_subscribers, PER_REMOTE_PEER)
        if mine and len(mine) >= share:
            self._drop(min(mine, key=lambda s: s.order), "replaced")
        elif len(self._subs) >= self.max_subscribers:
            raise FeedFull(f"{self.max_subscribers} pages are subscribed already")
        elif not local and self._remote() >= self.max_subscribers - LOOPBACK_RESERVE:
            raise FeedFull(f"the places for pages off loopback are taken ({self._remote()})")
        sub = Subscriber(asyncio.Queue(self.queue_size), peer, local, order=next(self._order))
        self._subs.add(sub)
        return sub

    def _remote(self) -> int:
        return sum(not s.local for s in self._subs)

    def end_streams(self, why: str) -> int:
        """End every open stream (a rotated token: each page must authenticate again); the
        feed stays open. How many ended."""
        subs = list(self._subs)
        for sub in subs:
            self._drop(sub, why)
        return len(subs)

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
        self.end_streams("closed")

    def _drop(self, sub: Subscriber, why: str) -> None:
        self._subs.discard(sub)
        sub.dropped, sub.why = True, why
        if why == "lagged":
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
