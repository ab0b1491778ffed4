"""The scheduler: a bounded priority queue of utterances waiting for the synth worker.

Served by (priority class desc, arrival). Stale items expire by their deadline; when full, the
lowest class and, within it, the oldest goes first (possibly the newcomer). Every way out of the
queue other than being served reports the utterance to ``on_terminal`` exactly once.

Paid lines (``is_paid``: a super chat, gift or guard with an amount) are never evicted: a
streamer would rather read every one late than lose one. They have their own room
(``max_paid``) beside ``max_items``, which counts only unpaid lines, so a chat flood cannot
push them out and they cannot push chat out. Past ``max_paid`` the paid newcomer is lost, as
EVICTED with rule ``paid_overflow`` (the daemon logs it at error level with user and amount).

One FIFO per priority class: the classes are few (seven kinds), so picking the best or the
worst class is a scan of a handful of keys, and every operation but a search is O(1).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..config import QueueConfig
from ..events import Retraction, Utterance
from .ledger import Terminal

OnTerminal = Callable[[Utterance, Terminal, dict[str, Any]], None]


def is_paid(utt: Utterance) -> bool:
    return utt.event.is_paid and utt.event.amount > 0


class Placed(str, Enum):
    """What ``put`` did with an utterance."""

    QUEUED = "queued"
    MERGED = "merged"  # folded into a queued one (reported: dropped, rule merged)
    EVICTED = "evicted"  # the queue was full of more important lines (reported: evicted)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Merge:
    """How a newcomer may fold into a queued utterance that was put with the same ``key``
    (gift repeats): within ``window_s`` of that one's arrival, ``fold(queued)`` replaces it."""

    key: Hashable
    window_s: float
    fold: Callable[[Utterance], Utterance]


class Scheduler:
    def __init__(self, cfg: QueueConfig, on_terminal: OnTerminal) -> None:
        self.cfg = cfg
        self.max_items = cfg.max_items
        self.max_paid = cfg.max_paid
        self.on_terminal = on_terminal
        self._paid = 0  # paid utterances queued
        self._unpaid: Counter[int] = Counter()  # priority → unpaid utterances queued
        # priority → slot → utterance, in arrival order; slots survive replace() so a merged
        # gift keeps its place.
        self._classes: dict[int, OrderedDict[int, Utterance]] = {}
        self._where: dict[str, tuple[int, int]] = {}  # utterance id → (priority, slot)
        self._slots = itertools.count()
        self._len = 0
        # A lower bound on the queued deadlines: expire() skips its scan while none can be due.
        self._min_deadline = float("inf")
        self._ready: asyncio.Event | None = None
        # Merge keys of queued utterances, both ways; an entry leaves with its utterance.
        self._merge_into: dict[Hashable, str] = {}
        self._merge_key: dict[str, Hashable] = {}

    # -- adding --------------------------------------------------------------------------------

    def put(self, utt: Utterance, now: float, merge: Merge | None = None) -> Placed:
        """Queue ``utt``, or fold it into the queued utterance ``merge`` names, or (full of
        more important lines) evict it at once; says which. All but QUEUED are reported."""
        if utt.id in self._where:
            raise ValueError(f"utterance {utt.id} is already queued")
        if merge is not None:
            into = self.peek(self._merge_into.get(merge.key, ""))
            if into is not None and now - into.event.received_mono <= merge.window_s:
                self.replace(into.id, merge.fold(into))
                self._report(utt, Terminal.DROPPED, rule="merged", merged_into=into.id)
                return Placed.MERGED
        if is_paid(utt):
            if self._paid >= self.max_paid:
                self.expire(now)
            if self._paid >= self.max_paid:
                self._report(utt, Terminal.EVICTED, rule="paid_overflow", **_money(utt))
                return Placed.EVICTED
        else:
            if self.unpaid >= self.max_items:
                self.expire(now)  # stale items go before anything is evicted
            while self.unpaid >= self.max_items:
                worst = min(p for p, n in self._unpaid.items() if n)
                if utt.priority < worst:
                    self._report(utt, Terminal.EVICTED, rule="queue_full")
                    return Placed.EVICTED
                self._evict_oldest_unpaid(worst)
        self._insert(utt, next(self._slots))
        if merge is not None:
            self._merge_into[merge.key] = utt.id
            self._merge_key[utt.id] = merge.key
        if self._ready is not None:
            self._ready.set()
        return Placed.QUEUED

    def replace(self, old_id: str, new_utt: Utterance) -> None:
        """Put ``new_utt`` where ``old_id`` waits (gift merging). A different id closes the old
        one as removed (``replaced``); a different priority moves it to the end of its class."""
        priority, slot = self._where[old_id]
        old = self._classes[priority][slot]
        if new_utt.id != old_id and new_utt.id in self._where:
            raise ValueError(f"utterance {new_utt.id} is already queued")
        key = self._merge_key.pop(old_id, None)  # the merge key goes with the replacement
        if new_utt.priority == priority:
            self._count(old, -1)
            self._count(new_utt, +1)
            self._classes[priority][slot] = new_utt
            self._min_deadline = min(self._min_deadline, new_utt.deadline)
            del self._where[old_id]
            self._where[new_utt.id] = (priority, slot)
        else:
            self._take(old_id)
            self._insert(new_utt, next(self._slots))
        if key is not None:
            self._merge_into[key] = new_utt.id
            self._merge_key[new_utt.id] = key
        if new_utt.id != old_id:
            self._report(old, Terminal.REMOVED, rule="replaced")

    # -- serving -------------------------------------------------------------------------------

    def pop(
        self,
        now: float,
        allow: Callable[[Utterance], bool] | None = None,
        newest_first: frozenset[int] = frozenset(),
    ) -> Utterance | None:
        """The best utterance still fresh at ``now`` that ``allow`` accepts (all by default),
        or None; stale ones on the way expire. Classes in ``newest_first`` serve their latest
        arrival first (plain chat under a backlog: what the room says now)."""
        for priority in sorted((p for p, q in self._classes.items() if q), reverse=True):
            queue = self._classes[priority]
            order = reversed(queue.values()) if priority in newest_first else queue.values()
            for utt in list(order):
                if utt.deadline < now:
                    self._take(utt.id)
                    self._report(utt, Terminal.EXPIRED, rule="ttl")
                elif allow is None or allow(utt):
                    return self._take(utt.id)
        return None

    async def get(self) -> Utterance:
        """Wait for the best fresh utterance."""
        while True:
            utt = self.pop(time.monotonic())
            if utt is not None:
                return utt
            await self.wait()

    async def wait(self, timeout: float | None = None) -> None:
        """Until something is put (or ``timeout`` seconds pass)."""
        if self._ready is None:
            self._ready = asyncio.Event()
        self._ready.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)

    # -- taking out ----------------------------------------------------------------------------

    def peek(self, utt_id: str) -> Utterance | None:
        """The queued utterance with this id, if it is still waiting."""
        where = self._where.get(utt_id)
        return None if where is None else self._classes[where[0]][where[1]]

    def expire(
        self, now: float, too_old: Callable[[Utterance], bool] | None = None, rule: str = "ttl"
    ) -> int:
        """Expire what is past its deadline, and (reported with ``rule``) what ``too_old``
        says is too old to be worth reading now; how many."""
        n = 0
        if now > self._min_deadline:
            for utt in [u for u in self._iter() if u.deadline < now]:
                self._take(utt.id)
                self._report(utt, Terminal.EXPIRED, rule="ttl")
                n += 1
            self._min_deadline = min((u.deadline for u in self._iter()), default=float("inf"))
        for utt in [] if too_old is None else [u for u in self._iter() if too_old(u)]:
            self._take(utt.id)
            self._report(utt, Terminal.EXPIRED, rule=rule)
            n += 1
        return n

    def retract(self, r: Retraction) -> int:
        """Take out what ``r`` matches; reported REMOVED with ``rule=r.reason``."""
        return self.remove(lambda u: r.matches(u.event), r.reason)

    def remove(self, match: Callable[[Utterance], bool], reason: str = "removed") -> int:
        """Take out every queued utterance ``match`` is true of; reported REMOVED with
        ``rule=reason``."""
        victims = [u for u in self._iter() if match(u)]
        for utt in victims:
            self._take(utt.id)
            self._report(utt, Terminal.REMOVED, rule=reason)
        return len(victims)

    def take_all(self, match: Callable[[Utterance], bool]) -> list[Utterance]:
        """Take out every queued utterance ``match`` is true of, in serving order, unreported:
        the caller accounts for them (a combined line covers them)."""
        return [self._take(u.id) for u in self._iter() if match(u)]

    def clear(self, reason: str = "cleared") -> int:
        return self.remove(lambda _u: True, reason)

    def reconfigure(self, cfg: QueueConfig, now: float) -> None:
        """New limits; a smaller queue evicts down to size at once."""
        self.cfg = cfg
        self.max_items = cfg.max_items
        self.max_paid = cfg.max_paid  # a smaller paid room takes no new ones; none is evicted
        if self.unpaid > self.max_items:
            self.expire(now)
        while self.unpaid > self.max_items:
            self._evict_oldest_unpaid(min(p for p, n in self._unpaid.items() if n))

    # -- looking -------------------------------------------------------------------------------

    def find(self, predicate: Callable[[Utterance], bool]) -> Utterance | None:
        for utt in self._iter():
            if predicate(utt):
                return utt
        return None

    def matching(self, predicate: Callable[[Utterance], bool]) -> list[Utterance]:
        return [utt for utt in self._iter() if predicate(utt)]

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._where

    def __len__(self) -> int:
        return self._len

    @property
    def paid(self) -> int:
        """Paid utterances queued (they count against ``max_paid``, not ``max_items``)."""
        return self._paid

    @property
    def unpaid(self) -> int:
        return self._len - self._paid

    def depth_by_kind(self) -> dict[str, int]:
        return dict(Counter(u.event.kind.value for u in self._iter()))

    def snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        """The queue in serving order, for /status."""
        now = time.monotonic() if now is None else now
        return [
            {
                "id": u.id,
                "kind": u.event.kind.value,
                "user": u.event.user.name,
                "text": u.text,
                "voice": u.voice,
                "priority": u.priority,
                "ttl_s": round(u.deadline - now, 1),
            }
            for u in self._iter()
        ]

    # -- internals -----------------------------------------------------------------------------

    def _iter(self) -> Iterator[Utterance]:
        """Serving order: best class first, arrival order within it."""
        for priority in sorted(self._classes, reverse=True):
            yield from list(self._classes[priority].values())

    def _count(self, utt: Utterance, sign: int) -> None:
        if is_paid(utt):
            self._paid += sign
        else:
            self._unpaid[utt.priority] += sign

    def _evict_oldest_unpaid(self, priority: int) -> None:
        victim = next(u for u in self._classes[priority].values() if not is_paid(u))
        self._take(victim.id)
        self._report(victim, Terminal.EVICTED, rule="queue_full")

    def _insert(self, utt: Utterance, slot: int) -> None:
        q = self._classes.get(utt.priority)
        if q is None:
            q = self._classes[utt.priority] = OrderedDict()
        q[slot] = utt
        self._where[utt.id] = (utt.priority, slot)
        self._min_deadline = min(self._min_deadline, utt.deadline)
        self._len += 1
        self._count(utt, +1)

    def _take(self, utt_id: str) -> Utterance:
        priority, slot = self._where.pop(utt_id)
        self._len -= 1
        self._drop_merge_key(utt_id)
        utt = self._classes[priority].pop(slot)
        self._count(utt, -1)
        return utt

    def _drop_merge_key(self, utt_id: str) -> None:
        key = self._merge_key.pop(utt_id, None)
        if key is not None and self._merge_into.get(key) == utt_id:
            del self._merge_into[key]

    def _report(self, utt: Utterance, state: Terminal, **fields: Any) -> None:
        self.on_terminal(utt, state, fields)


def _money(utt: Utterance) -> dict[str, Any]:
    return {"amount": utt.event.amount, "paid_kind": utt.event.kind.value}
