"""The pipeline: a received chat event becomes a queued utterance or a logged drop.

normalise → filters → dedupe → gift merge → render the template → route the voice → queue.
Pure and synchronous; time comes in as ``now`` (monotonic seconds). Never raises on chat
content: an unexpected error fails that one event in the ledger and is logged.
"""

from __future__ import annotations

import dataclasses
import string
import time

import structlog

from .config import Config
from .dedupe import Deduper
from .events import ChatEvent, Kind, Retraction, Utterance
from .filters import Filters
from .ledger import Ledger, Terminal
from .normalize import Normalizer
from .scheduler import Scheduler

log = structlog.get_logger("ishowtts.pipeline")


def _fields(template: str) -> frozenset[str]:
    return frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)


def _amount_text(amount: float) -> str:
    return f"{amount:.2f}".rstrip("0").rstrip(".") if amount else "0"


class Pipeline:
    def __init__(self, config: Config, ledger: Ledger, scheduler: Scheduler) -> None:
        self.ledger = ledger
        self.scheduler = scheduler
        self.deduper = Deduper(config.dedupe)
        self.filters = Filters(config.filters)
        # (platform, user id, gift name) → id of the queued gift line a repeat folds into
        self._gifts: dict[tuple[str, str, str], str] = {}
        self._apply(config)

    def _apply(self, config: Config) -> None:
        self.config = config
        self.normalizer = Normalizer(config.normalize)
        self._templates = {k: config.speech.template_for(k) for k in Kind}
        self._template_fields = {k: _fields(t) for k, t in self._templates.items()}

    def reconfigure(self, config: Config, now: float | None = None) -> None:
        """New rules (reload); the queue and the dedupe/rate memory stay."""
        self._apply(config)
        self.filters = self.filters.reconfigure(config.filters)
        self.deduper.reconfigure(config.dedupe)
        self.scheduler.reconfigure(config.queue, time.monotonic() if now is None else now)

    # -- ingest --------------------------------------------------------------------------------

    def ingest(self, event: ChatEvent, now: float | None = None) -> Utterance | None:
        """Take one event in; the queued utterance, or None (dropped, merged, evicted, failed)."""
        now = time.monotonic() if now is None else now
        self.ledger.received(event)
        try:
            return self._ingest(event, now)
        except Exception as exc:  # chat content must never take the daemon down
            log.exception("pipeline_error", id=event.id, kind=event.kind.value)
            self.ledger.close(event.id, Terminal.FAILED, error=f"{type(exc).__name__}: {exc}")
            return None

    def _drop(self, event: ChatEvent, rule: str, **fields: object) -> None:
        self.ledger.close(event.id, Terminal.DROPPED, rule=rule, **fields)

    def _ingest(self, event: ChatEvent, now: float) -> Utterance | None:
        kind = event.kind
        needs = self._template_fields[kind]
        text = self.normalizer(event.text) if event.text else ""
        if not text and "text" in needs:
            self._drop(event, "empty")
            return None
        rule = self.filters.check(event, text, now) or self.deduper.check(event, text, now)
        if rule is not None:
            self._drop(event, rule)
            return None
        if kind is Kind.GIFT:
            if event.amount < self.config.gifts.min_amount:
                self._drop(event, "gift_value")
                return None
            if self._merge_gift(event, now):
                return None
        utt = self._utterance(event, text)
        if not utt.text:
            self._drop(event, "empty")
            return None
        self.scheduler.put(utt, now)
        if utt.id not in self.scheduler:
            return None  # the queue was full of more important lines: evicted at once
        if kind is Kind.GIFT:
            self._remember_gift(utt)
        return utt

    def _merge_gift(self, event: ChatEvent, now: float) -> bool:
        """Fold a repeated gift into the queued one from the same user (position kept)."""
        window = self.config.gifts.merge_window_s
        if window <= 0:
            return False
        key = (event.platform, event.user.id, event.gift_name)
        queued_id = self._gifts.get(key)
        queued = self.scheduler.peek(queued_id) if queued_id is not None else None
        if queued is None or now - queued.event.received_mono > window:
            return False
        first = queued.event
        merged = dataclasses.replace(
            first,
            gift_count=first.gift_count + event.gift_count,
            amount=first.amount + event.amount,
        )
        text = self.normalizer(first.text) if first.text else ""
        new = dataclasses.replace(queued, event=merged, text=self._render(merged, text))
        self.scheduler.replace(queued.id, new)
        self._drop(event, "merged", merged_into=queued.id)
        return True

    def _remember_gift(self, utt: Utterance) -> None:
        e = utt.event
        self._gifts[(e.platform, e.user.id, e.gift_name)] = utt.id
        if len(self._gifts) > 2 * self.scheduler.max_items + 64:
            # Keep only gifts still waiting: the index never outgrows the queue by much.
            self._gifts = {k: v for k, v in self._gifts.items() if v in self.scheduler}

    # -- rendering -----------------------------------------------------------------------------

    def _render(self, event: ChatEvent, text: str) -> str:
        needs = self._template_fields[event.kind]
        name = event.user.name
        if "user" in needs and name:
            # Names are read aloud: same clean-up as text, but never lose the name entirely.
            name = self.normalizer(name) or name
        count = event.gift_count
        out = self._templates[event.kind].format(
            text=text,
            user=name,
            gift=event.gift_name,
            count=count,
            count_text=f"x{count}" if count > 1 else "",
            amount=_amount_text(event.amount),
            platform=event.platform,
        )
        return " ".join(out.split())

    def _utterance(self, event: ChatEvent, text: str) -> Utterance:
        cfg = self.config
        kind = event.kind
        return Utterance(
            event=event,
            text=self._render(event, text),
            voice=cfg.voice_for(kind, event.user.id, event.user.name),
            priority=cfg.queue.priority_of(kind),
            deadline=event.received_mono + cfg.queue.ttl_of(kind),
        )

    # -- retractions ---------------------------------------------------------------------------

    def retract(self, r: Retraction) -> int:
        """Take recalled/deleted/banned messages out of the queue."""
        if r.everything:
            return self.scheduler.remove(platform=r.platform, everything=True, reason=r.reason)
        if not r.raw_ids and not r.user_id:
            return 0
        return self.scheduler.remove(
            raw_ids=r.raw_ids, user_id=r.user_id, platform=r.platform, reason=r.reason
        )
