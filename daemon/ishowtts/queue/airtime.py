"""Airtime: which line the bot says next, and when, so that a busy room is heard well and a
talking streamer is not drowned. It sits between the scheduler (what waits) and the synth
worker (what is said): the worker's source, ``get()``.

- **Budget.** The bot speaks at most ``max_share`` of the last ``window_s`` seconds, measured
  from what the player really played (``started``/``finished``). When it is spent, only the
  ``exempt`` kinds (paid acknowledgements) start; plain chat waits, or expires.
- **Backlog.** The speech waiting, in seconds, estimated from the speaking rate heard so far.
  It raises the speaking rate of the next line (1 → ``max_speed``, through the engine's own
  duration control) and, past ``busy_backlog_s``, makes the bot brief: short templates, plain
  chat freshest first. Plain chat older than ``chat_max_age_s`` is not read while newer chat
  waits.
- **Together.** An acknowledgement of a combinable kind taken off the queue takes every other
  one of its kind waiting with it: one line says them all (``Wording.together``), and each
  event it covers closes with that line in the ledger, ``merged_into`` naming it. While
  other lines wait, a kind is said at most once every ``combine.min_gap_s``, so that they
  gather and chat is heard between.
- **The gate** (turn-taking hooks in here). ``hold(reason)`` / ``release(reason)``: while any
  hold is on, no line is taken, paid ones included; the worker resumes as soon as the last one
  is released. Listen holds while the streamer speaks. A line taken before the hold (made
  ahead, at most ``player.lookahead_s`` of audio) is already with the player, which may pause
  or duck it. ``may_start(utt)`` says whether a line could start now (holds and budget).
  Call these on the daemon's event loop (from a thread: ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from ..config import QueueConfig
from ..config.airtime import AirtimeConfig
from ..events import Kind, Utterance
from .ledger import Ledger
from .scheduler import Scheduler

SECONDS_PER_CHAR = 0.22  # real speech, about 4.5 characters a second, until one is heard
BUDGET_POLL_S = 0.25  # how often a spent budget is looked at again while lines wait


class Wording(Protocol):
    """What airtime needs of the words (``pipeline.words.Words``)."""

    def together(self, utts: Sequence[Utterance], busy: bool = False) -> str: ...
    def short(self, utt: Utterance) -> str | None: ...


class Budget:
    """Seconds the bot was heard over a rolling window, from the player's starts and ends."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._spans: deque[tuple[float, float]] = deque()  # finished lines, oldest first
        self._playing: dict[str, float] = {}  # line id → when it started

    def started(self, line_id: str, at: float) -> None:
        self._playing.setdefault(line_id, at)

    def finished(self, line_id: str, at: float) -> float:
        """The line ended; how long it played (0 if its start was never seen)."""
        start = self._playing.pop(line_id, None)
        if start is None:
            return 0.0
        self._spans.append((start, at))
        return at - start

    def spent(self, now: float) -> float:
        horizon = now - self.window_s
        while self._spans and self._spans[0][1] <= horizon:
            self._spans.popleft()
        done = sum(min(end, now) - max(start, horizon) for start, end in self._spans)
        return done + sum(now - max(start, horizon) for start in self._playing.values())


class Airtime:
    def __init__(
        self,
        cfg: AirtimeConfig,
        queue: QueueConfig,
        scheduler: Scheduler,
        ledger: Ledger,
        words: Wording,
    ) -> None:
        self.scheduler = scheduler
        self.ledger = ledger
        self.words = words
        self.budget = Budget(cfg.window_s)
        self.reconfigure(cfg, queue)
        self.seconds_per_char = SECONDS_PER_CHAR  # learnt from the lines heard
        self.speed = 1.0  # of the last line taken
        self.busy = False  # whether the last take found a backlog
        self.holds: set[str] = set()
        self._said_at: dict[Kind, float] = {}  # when a combinable kind was last taken
        self._unheld = asyncio.Event()
        self._unheld.set()

    def reconfigure(self, cfg: AirtimeConfig, queue: QueueConfig) -> None:
        self.cfg, self.queue = cfg, queue
        self.budget.window_s = cfg.window_s
        self._exempt = frozenset(cfg.exempt)
        self._combined = frozenset(cfg.combine.kinds)

    # -- the gate -----------------------------------------------------------------------------

    def hold(self, reason: str) -> None:
        """No line starts until ``reason`` is released (and every other hold)."""
        self.holds.add(reason)
        self._unheld.clear()

    def release(self, reason: str) -> None:
        self.holds.discard(reason)
        if not self.holds:
            self._unheld.set()

    def may_start(self, utt: Utterance | None = None, now: float | None = None) -> bool:
        """Whether ``utt`` (a line of plain chat, if None) could start now."""
        now = time.monotonic() if now is None else now
        exempt = utt is not None and utt.event.kind in self._exempt
        return not self.holds and (exempt or not self.spent(now))

    def spent(self, now: float) -> bool:
        """Whether the budget is used up (only exempt kinds start)."""
        cfg = self.cfg
        return cfg.max_share < 1 and self.budget.spent(now) >= cfg.max_share * cfg.window_s

    # -- what the player did ------------------------------------------------------------------

    def started(self, utt: Utterance, at: float) -> None:
        self.budget.started(utt.id, at)

    def finished(self, utt: Utterance, at: float, played: bool) -> None:
        took = self.budget.finished(utt.id, at)
        chars = len(utt.text)
        if played and chars >= 4 and took > 0:  # the speaking rate, at speed 1
            self.seconds_per_char += 0.2 * (took * utt.speed / chars - self.seconds_per_char)

    # -- serving ------------------------------------------------------------------------------

    async def get(self) -> Utterance:
        """The next line to say, once one may start."""
        while True:
            await self._unheld.wait()
            utt = self.take(time.monotonic())
            if utt is not None:
                return utt
            # Nothing may start: wait for a new line, or for the budget to free a little.
            await self.scheduler.wait(BUDGET_POLL_S if len(self.scheduler) else None)

    def take(self, now: float) -> Utterance | None:
        """The line to say now (combined, shortened, sped up), or None: nothing may start."""
        cfg, scheduler = self.cfg, self.scheduler
        scheduler.expire(now)
        self._expire_superseded_chat(now)
        self.busy = busy = self.backlog_s() >= cfg.busy_backlog_s
        chat = frozenset({self.queue.priority_of(Kind.DANMAKU)}) if busy else frozenset()
        resting = {k for k, at in self._said_at.items() if now - at < cfg.combine.min_gap_s}
        if resting and scheduler.find(lambda u: u.event.kind not in resting) is None:
            resting = set()  # nothing else waits: no reason to keep them waiting
        spent = self.spent(now)

        def allow(u: Utterance) -> bool:
            kind = u.event.kind
            return kind not in resting and (not spent or kind in self._exempt)

        utt = scheduler.pop(now, allow, newest_first=chat)
        if utt is None:
            return None
        kind = utt.event.kind
        others: list[Utterance] = []
        if kind in self._combined:
            self._said_at[kind] = now
            others = scheduler.take_all(lambda u: u.event.kind is kind)
        if others:
            text = self.words.together([utt, *others], busy)
            for other in others:
                self.ledger.cover(utt.id, other.id)
        else:
            text = (self.words.short(utt) if busy else None) or utt.text
        self.speed = self.speed_for(self.backlog_s())
        # A system line (the operator's, the speech API's) is said at the rate it asked for.
        speed = utt.speed if kind is Kind.SYSTEM else utt.speed * self.speed
        return dataclasses.replace(utt, text=text, speed=speed)

    def _expire_superseded_chat(self, now: float) -> None:
        """Plain chat that waited longer than ``chat_max_age_s`` expires (rule
        ``superseded``), all but the newest line: the room has moved on. Age runs from a
        line's newest event (a storm line's deadline moves with each repeat it says)."""
        ttl = self.queue.ttl_of(Kind.DANMAKU)
        chat = self.scheduler.matching(lambda u: u.event.kind is Kind.DANMAKU)
        if len(chat) < 2:
            return
        newest = max(chat, key=lambda u: u.deadline)
        horizon = now + ttl - self.cfg.chat_max_age_s  # a deadline before it: too old
        old = {u.id for u in chat if u.deadline < horizon and u is not newest}
        if old:
            self.scheduler.expire(now, lambda u: u.id in old, rule="superseded")

    def backlog_s(self) -> float:
        """Seconds of speech waiting (acknowledgements of a combinable kind count as one)."""
        chars, combined = 0, set()
        for utt in self.scheduler.matching(lambda _u: True):
            kind = utt.event.kind
            if kind in self._combined:
                if kind in combined:
                    continue
                combined.add(kind)
            chars += len(utt.text)
        return chars * self.seconds_per_char

    def speed_for(self, backlog_s: float) -> float:
        """The speaking rate for a backlog: 1 up to ``speed_from_s``, ``max_speed`` past
        ``speed_full_s``, straight between."""
        c = self.cfg
        x = (backlog_s - c.speed_from_s) / (c.speed_full_s - c.speed_from_s)
        return round(1.0 + (c.max_speed - 1.0) * min(1.0, max(0.0, x)), 3)

    def status(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        return {
            "share": round(self.budget.spent(now) / self.cfg.window_s, 3),
            "max_share": self.cfg.max_share,
            "spent": self.spent(now),
            "busy": self.busy,
            "speed": self.speed,
            "held": sorted(self.holds),
            "seconds_per_char": round(self.seconds_per_char, 3),
        }
