"""The viewers' own voices: "!voice list | <name> | reset" from chat, kept per platform identity
across restarts, and a stable voice from a pool for those who never asked.

A viewer changes only their own voice: the choice is keyed by the sender's platform and id,
which the platform vouches for (never by a name in the arguments). The file (``statefile``:
written whole, a bad or oversized one moved aside) holds at most ``max_users`` choices, the
oldest going first; a burst of changes is written at most every ``SAVE_EVERY_S``.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import structlog

from ..config.chat import ViewerVoicesConfig
from ..events import ChatEvent, User
from . import statefile

log = structlog.get_logger("ishowtts.pipeline.viewer_voices")

FILE_NAME = "voices.json"
MAX_FILE_BYTES = 32 << 20  # 100,000 choices take ~10 MB
MAX_NAME = 64
MAX_PAID = 20_000  # viewers remembered as having paid in this run
SAVE_EVERY_S = 2.0


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: str  # listed | set | reset | unknown_voice | not_allowed | cooldown | no_id
    text: str  # what the viewer is told (console, log; aloud only for a list when configured)


class ViewerVoices:
    def __init__(
        self,
        cfg: ViewerVoicesConfig,
        voices: Collection[str],
        path: Path | None,
        is_member: Callable[[User], bool],
    ) -> None:
        self.path: Path | None = None
        self.is_member = is_member
        self._choices: OrderedDict[tuple[str, str], str] = OrderedDict()  # oldest change first
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()  # cooldowns
        self._paid: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._dirty = False
        self._saved_at = float("-inf")
        self.save_error: str | None = None
        self.reconfigure(cfg, voices)
        self.attach(path)

    def attach(self, path: Path | None) -> None:
        """Keep the choices in ``path`` from now on, starting with what it holds."""
        self.path = path
        if path is not None:
            self._load(path)

    def reconfigure(self, cfg: ViewerVoicesConfig, voices: Collection[str]) -> None:
        self.cfg = cfg
        self.voices = list(voices)
        self.allowed = [v for v in (cfg.allowed or self.voices) if v in self.voices]
        self.pool = [v for v in cfg.pool if v in self.voices]

    def __len__(self) -> int:
        return len(self._choices)

    # -- reading a line ------------------------------------------------------------------------

    def voice_for(self, event: ChatEvent) -> str | None:
        """The voice this viewer picked (if the config still has it), else one from the pool."""
        for uid in event.user.ids():
            voice = self._choices.get((event.platform, uid)) if uid else None
            if voice in self.voices:
                return voice
        uid = event.user.id
        if self.pool and uid:
            digest = hashlib.blake2b(f"{event.platform}\0{uid}".encode(), digest_size=8).digest()
            return self.pool[int.from_bytes(digest, "big") % len(self.pool)]
        return None

    def saw(self, event: ChatEvent) -> None:
        """Remember who paid in this run (paid voices are theirs to pick)."""
        if event.is_paid and event.amount > 0 and event.user.id:
            key = (event.platform, event.user.id)
            self._paid[key] = None
            self._paid.move_to_end(key)
            if len(self._paid) > MAX_PAID:
                self._paid.popitem(last=False)

    # -- the command ---------------------------------------------------------------------------

    def choosable(self, event: ChatEvent) -> list[str]:
        user = event.user
        paid = user.guard_level > 0 or (event.platform, user.id) in self._paid
        member = self.is_member(user)
        return [
            v
            for v in self.allowed
            if (v not in self.cfg.paid or paid) and (v not in self.cfg.members or member)
        ]

    def command(self, event: ChatEvent, args: str, now: float) -> Answer:
        word = args.split(maxsplit=1)[0][:MAX_NAME] if args.strip() else "list"
        mine = self.choosable(event)
        if word.casefold() == "list":
            return Answer("listed", "voices: " + ", ".join(mine) if mine else "no voices to pick")
        key = (event.platform, event.user.id)
        if not event.user.id:
            return Answer("no_id", "this platform gives no id to remember a choice by")
        last = self._last.get(key)
        if last is not None and now - last < self.cfg.cooldown_s:
            return Answer("cooldown", f"wait {self.cfg.cooldown_s - (now - last):.0f} s")
        if word.casefold() == "reset":
            if self._choices.pop(key, None) is None:
                return Answer("reset", "no voice was picked")
            self._changed(key, now)
            return Answer("reset", "voice reset")
        voice = next((v for v in self.voices if v.casefold() == word.casefold()), None)
        if voice is None:
            return Answer("unknown_voice", f"no voice {word!r}; voices: {', '.join(mine)}")
        if voice not in mine:
            why = "paying viewers" if voice in self.cfg.paid else "members"
            if voice not in self.allowed:
                why = "the streamer"
            return Answer("not_allowed", f"voice {voice!r} is for {why} only")
        self._choices[key] = voice
        self._choices.move_to_end(key)
        while len(self._choices) > self.cfg.max_users:
            self._choices.popitem(last=False)
        self._changed(key, now)
        return Answer("set", f"voice {voice}")

    def _changed(self, key: tuple[str, str], now: float) -> None:
        self._last[key] = now
        self._last.move_to_end(key)
        while self._last and (
            now - next(iter(self._last.values())) >= self.cfg.cooldown_s
            or len(self._last) > self.cfg.max_users
        ):
            self._last.popitem(last=False)
        self._dirty = True
        if now - self._saved_at >= SAVE_EVERY_S:
            self.flush(now)

    # -- the file ------------------------------------------------------------------------------

    def flush(self, now: float | None = None) -> None:
        """Write pending changes (the daemon calls this often, and at shutdown)."""
        if not self._dirty or self.path is None:
            return
        self._saved_at = time.monotonic() if now is None else now
        self._dirty = False
        rows = [{"platform": p, "uid": u, "voice": v} for (p, u), v in self._choices.items()]
        self.save_error = statefile.write(self.path, {"version": 1, "choices": rows}, "voices")

    def _load(self, path: Path) -> None:
        rows = statefile.read_list(path, "voices", "choices", MAX_FILE_BYTES)
        if rows is None:
            return
        skipped = 0
        for row in rows[-self.cfg.max_users :]:
            try:
                platform, uid, voice = (str(row[k]) for k in ("platform", "uid", "voice"))
                if not (platform and uid and voice) or max(map(len, (platform, uid))) > 128:
                    raise ValueError(f"bad choice {row!r:.80}")
            except (ValueError, TypeError, KeyError, AttributeError):
                skipped += 1  # one bad row (a hand edit) must not lose every viewer's choice
                continue
            self._choices[(platform, uid)] = voice[:MAX_NAME]
        if skipped:
            log.warning("voices_bad_entries", path=str(path), skipped=skipped)
        log.info("viewer_voices_loaded", path=str(path), viewers=len(self._choices))
