"""The pipeline: a received chat event becomes a queued utterance or a logged drop.

bots → chat commands (``chat``) → reading mode → normalise → filters → dedupe → gifts (value,
merge) → the line's language → render the template → route the voice → the pronunciation
dictionary → queue (where a gift repeat folds into its first line).
Pure and synchronous; time comes in as ``now`` (monotonic seconds). Never raises on chat
content: an unexpected error fails that one event in the ledger and is logged.
"""

from __future__ import annotations

import string
import time
from pathlib import Path

import structlog

from ..config import Config
from ..events import ChatEvent, Kind, Retraction, Utterance
from ..queue.ledger import Ledger, Terminal
from ..queue.scheduler import Placed, Scheduler
from .chat import ChatCommands, Done, Moderation
from .dedupe import Deduper
from .dictionary_file import Pronunciation
from .filters import Filters, Muted
from .gifts import Gifts
from .language import Languages, Route
from .normalize import Normalizer
from .reading import Reading
from .viewer_voices import ViewerVoices

log = structlog.get_logger("ishowtts.pipeline.ingest")


# What a viewer writes themselves, read in the voice they picked.
VIEWER_KINDS = frozenset({Kind.DANMAKU, Kind.SUPER_CHAT})


def _fields(template: str) -> frozenset[str]:
    return frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)


def _amount_text(amount: float) -> str:
    return f"{amount:.2f}".rstrip("0").rstrip(".") if amount else "0"


class Pipeline:
    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        scheduler: Scheduler,
        muted: Muted | None = None,
        moderation: Moderation | None = None,
        voices_file: Path | None = None,  # the viewers' voice choices; None: in memory only
        pronunciation: Pronunciation | None = None,  # None: the starter dictionary, no file
    ) -> None:
        self.ledger = ledger
        self.scheduler = scheduler
        self.deduper = Deduper(config.dedupe)
        self.filters = Filters(config.filters, muted=muted)
        self.reading = Reading(config.reading)
        self.viewer_voices = ViewerVoices(
            config.viewer_voices, config.voices, voices_file, self.reading.is_member
        )
        self.chat = ChatCommands(config.commands, self.reading, self.viewer_voices, moderation)
        self.pronunciation = pronunciation or Pronunciation(None, config.dictionary.starter)
        self.languages = Languages(config.languages)
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
        self.reading.reconfigure(config.reading)
        self.viewer_voices.reconfigure(config.viewer_voices, config.voices)
        self.chat.reconfigure(config.commands)
        self.pronunciation.reconfigure(self.pronunciation.path, config.dictionary.starter)
        if config.languages != self.languages.cfg:
            self.languages = Languages(config.languages)
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

    def flush(self) -> None:
        """Write state kept for later (the viewers' voices)."""
        self.viewer_voices.flush()

    def tick(self) -> None:
        """The daemon calls this often: state written, a changed dictionary file read."""
        self.viewer_voices.flush()
        self.pronunciation.poll()

    def _ingest(self, event: ChatEvent, now: float) -> Utterance | None:
        if self.reading.is_bot(event.user):
            self._drop(event, "bot")
            return None
        step = self.chat.take(event, now)
        if isinstance(step, Done):
            self._drop(event, "command", **step.fields)
            return None
        event = step.event
        rule = self.reading.check(event, step.via_tts)
        if rule is not None:
            self._drop(event, rule)
            return None
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
        line = self._render(event, self.normalizer(event.text) if event.text else "")
        return self.pronunciation.apply(line, self._voice(event))

    def _spoken_name(self, event: ChatEvent) -> str:
        """The sender's name as it is read aloud and shown on the overlay: a nickname if the
        config has one, else the same clean-up as text (the filters judge this form), never
        lost entirely; no name: the neutral word."""
        nick = self.config.reading.nicknames
        said = next((nick[n] for n in event.user.names() if n in nick), None)
        if said is not None:
            return said
        name = event.user.name
        return (self.normalizer(name) or name) if name else self.config.speech.anonymous

    def _render(self, event: ChatEvent, text: str, name: str | None = None) -> str:
        reading = self.config.reading
        template = self._templates[event.kind]
        if not reading.says_name(event.kind):
            name = self.config.speech.anonymous  # this kind's names are switched off
        else:
            if name is None:
                name = self._spoken_name(event)
            if "user" not in self._template_fields[event.kind] and reading.names.get(event.kind):
                template = reading.name_prefix + template  # asked for, and not in it: said first
        count = event.gift_count
        out = template.format(
            text=text,
            user=name,
            gift=event.gift_name,
            count=count,
            count_text=f"x{count}" if count > 1 else "",
            amount=_amount_text(event.amount),
            platform=event.platform,
        )
        return " ".join(out.split())

    def _voice(self, event: ChatEvent) -> str:
        """The operator's pick (the console's say box) if the config still has it; a routing
        rule naming this user; the viewer's own pick (or pool voice) for what they wrote;
        the kind's voice; the default."""
        cfg = self.config
        if event.voice in cfg.voices:
            return event.voice
        user = event.user
        if event.kind in VIEWER_KINDS and not any(n in cfg.routing.users for n in user.names()):
            own = self.viewer_voices.voice_for(event)
            if own is not None:
                return own
        return cfg.voice_for(event.kind, user.id, user.name, user.alt_ids)

    def _utterance(self, event: ChatEvent, text: str, name: str) -> Utterance:
        cfg = self.config
        kind = event.kind
        route = Route("")
        if text and event.voice not in cfg.voices:  # the operator's pick stands
            route = self.languages.route(text, cfg.engine.fallback is not None)
        voice = route.voice or self._voice(event)
        return Utterance(
            event=event,
            text=self.pronunciation.apply(self._render(event, text, name), voice, route.language),
            speaker=name,
            voice=voice,
            language=route.language,
            by_fallback=route.by_fallback,
            priority=cfg.queue.priority_of(kind),
            deadline=event.received_mono + cfg.queue.ttl_of(kind),
        )

    # -- retractions ---------------------------------------------------------------------------

    def retract(self, r: Retraction) -> int:
        """Take recalled/deleted/banned messages out of the queue."""
        return self.scheduler.retract(r)
