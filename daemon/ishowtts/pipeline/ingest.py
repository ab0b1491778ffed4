"""The pipeline: a received chat event becomes a queued utterance or a logged drop.

normalise → filters → dedupe → gifts (value, merge) → render the template → route the voice →
queue (where a gift repeat folds into its first line).
Pure and synchronous; time comes in as ``now`` (monotonic seconds). Never raises on chat
content: an unexpected error fails that one event in the ledger and is logged.
"""

from __future__ import annotations

import string
import time

import structlog

from ..config import Config
from ..events import ChatEvent, Kind, Retraction, Utterance
from ..queue.ledger import Ledger, Terminal
from ..queue.scheduler import Placed, Scheduler
from .dedupe import Deduper
from .filters import Filters, Muted
from .gifts import Gifts
from .normalize import Normalizer

log = structlog.get_logger("ishowtts.pipeline.ingest")


def _fields(template: str) -> frozenset[str]:
    return frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)


def _amount_text(amount: float) -> str:
    return f"{amount:.2f}".rstrip("0").rstrip(".") if amount else "0"


class Pipeline:
    def __init__(
        self, config: Config, ledger: Ledger, scheduler: Scheduler, muted: Muted | None = None
    ) -> None:
        self.ledger = ledger
        self.scheduler = scheduler
        self.deduper = Deduper(config.dedupe)
        self.filters = Filters(config.filters, muted=muted)
        self._apply(config)

    def _apply(self, config: Config) -> None:
        self.config = config
        self.gifts = Gifts(config.gifts)
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
        name = self._spoken_name(event)
        rule = (
            self.filters.check(event, text, now, name)
            or self.deduper.check(event, text, now)
            or self.gifts.check(event)
        )
        if rule is not None:
            self._drop(event, rule)
            return None
        utt = self._utterance(event, text, name)
        if not utt.text:
            self._drop(event, "empty")
            return None
        merge = self.gifts.merge(event, self._rerender)
        # Merged or evicted at once: the scheduler has closed it in the ledger.
        return utt if self.scheduler.put(utt, now, merge) is Placed.QUEUED else None

    # -- rendering -----------------------------------------------------------------------------

    def _rerender(self, event: ChatEvent) -> str:
        """The line for an event changed after it was queued (a merged gift)."""
        return self._render(event, self.normalizer(event.text) if event.text else "")

    def _spoken_name(self, event: ChatEvent) -> str:
        """The user's name as it is read aloud and shown on the overlay: the same clean-up as
        text (the filters judge this form), never lost entirely; no name: the neutral word."""
        name = event.user.name
        return (self.normalizer(name) or name) if name else self.config.speech.anonymous

    def _render(self, event: ChatEvent, text: str, name: str | None = None) -> str:
        if name is None:
            name = self._spoken_name(event)
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

    def _utterance(self, event: ChatEvent, text: str, name: str) -> Utterance:
        cfg = self.config
        kind = event.kind
        return Utterance(
            event=event,
            text=self._render(event, text, name),
            speaker=name,
            # A voice the operator chose (the console's say box) if the config still has it.
            voice=event.voice
            if event.voice in cfg.voices
            else cfg.voice_for(kind, event.user.id, event.user.name, event.user.alt_ids),
            priority=cfg.queue.priority_of(kind),
            deadline=event.received_mono + cfg.queue.ttl_of(kind),
        )

    # -- retractions ---------------------------------------------------------------------------

    def retract(self, r: Retraction) -> int:
        """Take recalled/deleted/banned messages out of the queue."""
        return self.scheduler.retract(r)
