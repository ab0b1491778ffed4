"""The pipeline: a received chat event becomes a queued utterance or a logged drop.

bots → chat commands (``chat``) → reading mode → normalise → filters → dedupe → gifts (value,
merge) → the line's language → render the template → route the voice → the pronunciation
dictionary → queue (where a gift repeat folds into its first line); a repeated chat text is
said by its storm line (storms.py) rather than dropped. Airtime's combined and short lines are
worded here too (``together``, ``short``).
Pure and synchronous; time comes in as ``now`` (monotonic seconds). Never raises on chat
content: an unexpected error fails that one event in the ledger and is logged.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from ..config import Config
from ..events import ChatEvent, Kind, Retraction, Utterance
from ..queue.ledger import Ledger, Terminal
from ..queue.scheduler import Placed, Scheduler
from .chat import ChatCommands, Done, Moderation
from .dedupe import Deduper, canonical
from .dictionary_file import Pronunciation
from .filters import Filters, Muted
from .gifts import Gifts
from .language import Languages, Route
from .normalize import Normalizer
from .reading import Reading
from .storms import Storms
from .viewer_voices import ViewerVoices
from .words import Words, amount_text, fields

log = structlog.get_logger("ishowtts.pipeline.ingest")


# What a viewer writes themselves, read in the voice they picked.
VIEWER_KINDS = frozenset({Kind.DANMAKU, Kind.SUPER_CHAT})


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
        self.storms = Storms(
            config.airtime.storm, config.dedupe.window_s, config.dedupe.max_entries
        )
        self._apply(config)

    def _apply(self, config: Config) -> None:
        self.config = config
        self.gifts = Gifts(config.gifts)
        self.normalizer = Normalizer(config.normalize)
        self._templates = {k: config.speech.template_for(k) for k in Kind}
        self._template_fields = {k: fields(t) for k, t in self._templates.items()}
        self.words = Words(config, self.normalizer)
        self.storms.reconfigure(
            config.airtime.storm, config.dedupe.window_s, config.dedupe.max_entries
        )

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
        storm = kind is Kind.DANMAKU and self.storms.on
        if storm:
            senders = self.storms.sent(canonical(text), _sender(event), now)
            if rule == "duplicate":
                return self._storm(event, text, name, senders, now)
        if rule is not None:
            self._drop(event, rule)
            return None
        utt = self._utterance(event, text, name)
        if not utt.text:
            self._drop(event, "empty")
            return None
        merge = self.gifts.merge(event, self._rerender)
        # Merged or evicted at once: the scheduler has closed it in the ledger.
        if self.scheduler.put(utt, now, merge) is not Placed.QUEUED:
            return None
        if storm:
            self.storms.said_by(canonical(text), utt.id, storm=False)
        return utt

    def _storm(
        self, event: ChatEvent, text: str, name: str, senders: int, now: float
    ) -> Utterance | None:
        """A repeated chat text: said by the line waiting for it (a storm line once enough
        viewers sent it), or by a new storm line, or (too few viewers) dropped as a duplicate."""
        key, storms = canonical(text), self.storms
        waiting = self.scheduler.peek(storms.line(key))
        if waiting is not None:
            if storms.is_storm(senders):  # in the first sender's spelling
                said = self._storm_line(waiting, self.normalizer(waiting.event.text), senders)
                # Fresh while the storm goes on: the deadline follows the newest repeat.
                deadline = max(waiting.deadline, now + self.config.queue.ttl_of(Kind.DANMAKU))
                line = dataclasses.replace(waiting, text=said, deadline=deadline)
                self.scheduler.replace(waiting.id, line)
                storms.said_by(key, waiting.id, storm=True)
            if len(self.ledger.covered.get(waiting.id, ())) < storms.cfg.max_cover:
                self.ledger.cover(waiting.id, event.id)
                return None
        elif storms.is_storm(senders) and storms.may_start(key):
            utt = self._utterance(event, text, name)
            utt = dataclasses.replace(utt, text=self._storm_line(utt, text, senders))
            if self.scheduler.put(utt, now) is Placed.QUEUED:
                storms.said_by(key, utt.id, storm=True)
                return utt
            return None  # evicted at once: the scheduler has closed it
        self._drop(event, "duplicate")
        return None

    # -- airtime's wording (queue/airtime.py) ---------------------------------------------------

    def together(self, utts: Sequence[Utterance], busy: bool = False) -> str:
        """One line for acknowledgements of one kind waiting together (see words.py)."""
        head = utts[0]
        return self.pronunciation.apply(self.words.together(utts, busy), head.voice, head.language)

    def short(self, utt: Utterance) -> str | None:
        """``utt``'s line in its kind's short form (under a backlog), or None: it has none."""
        template = self.config.speech.short_template_for(utt.event.kind)
        if template is None:
            return None
        e = utt.event
        line = self._render(e, self.normalizer(e.text) if e.text else "", None, template)
        return self.pronunciation.apply(line, utt.voice, utt.language)

    def _storm_line(self, utt: Utterance, text: str, senders: int) -> str:
        return self.pronunciation.apply(self.words.storm(text, senders), utt.voice, utt.language)

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

    def _render(
        self, event: ChatEvent, text: str, name: str | None = None, template: str | None = None
    ) -> str:
        """The line for ``event``: its kind's template (or ``template``, a short form)."""
        reading = self.config.reading
        needs = self._template_fields[event.kind] if template is None else fields(template)
        template = template or self._templates[event.kind]
        if not reading.says_name(event.kind):
            name = self.config.speech.anonymous  # this kind's names are switched off
        else:
            if name is None:
                name = self._spoken_name(event)
            if "user" not in needs and reading.names.get(event.kind):
                template = reading.name_prefix + template  # asked for, and not in it: said first
        count = event.gift_count
        out = template.format(
            text=text,
            user=name,
            gift=event.gift_name,
            count=count,
            count_text=f"x{count}" if count > 1 else "",
            amount=amount_text(event.amount),
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


def _sender(event: ChatEvent) -> str:
    return f"{event.platform}:{event.user.id or event.user.name}"
