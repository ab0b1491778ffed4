"""Dedupe: a platform message seen twice, or the same line flooding the room, is read once.

Two tables, both bounded by ``max_entries``:
- platform message ids (any kind): connectors that reconnect may replay recent messages;
- canonical texts (danmaku, enter, follow) with the time they were last read: "666", "666!!",
  "６６６６６６" are one line within ``window_s``. Paid events are deduped by id only: two equal
  super chats are two payments.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import regex

from ..config import DedupeConfig
from ..events import ChatEvent, Kind

_TEXT_KINDS = frozenset({Kind.DANMAKU, Kind.ENTER, Kind.FOLLOW, Kind.SHARE, Kind.LIKE})
_NOISE = regex.compile(r"[\p{P}\p{S}\p{Z}\s]+")
# Repeated units collapse to one; digits only when the whole number is one repeated digit
# three or more times (666 ≡ 666666), so "1" and "11", "1000" and "10000" stay different lines.
_REPEATS = re.compile(r"(\D+?)\1+")
_DIGIT_RUN = re.compile(r"(?<!\d)(\d)\1{2,}(?!\d)")


def canonical(text: str) -> str:
    """The key near-same lines share: casefolded, no punctuation/symbols/spaces, repeats once."""
    folded = text.casefold()
    key = _NOISE.sub("", folded)
    if not key:
        return folded  # all punctuation: compare it as written
    return _DIGIT_RUN.sub(r"\1", _REPEATS.sub(r"\1", key))


class Deduper:
    def __init__(self, cfg: DedupeConfig) -> None:
        self.cfg = cfg
        self._ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._texts: OrderedDict[tuple[str, ...], float] = OrderedDict()  # oldest first

    def reconfigure(self, cfg: DedupeConfig) -> None:
        self.cfg = cfg
        if cfg.window_s == 0:
            self._texts.clear()
        self._trim()

    def __len__(self) -> int:
        return max(len(self._ids), len(self._texts))

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self._ids), len(self._texts)

    def check(self, event: ChatEvent, text: str, now: float) -> str | None:
        if event.raw_id:
            key_id = (event.platform, event.raw_id)
            if key_id in self._ids:
                return "duplicate_id"
            self._ids[key_id] = None
            if len(self._ids) > self.cfg.max_entries:
                self._ids.popitem(last=False)
        window = self.cfg.window_s
        if window <= 0 or event.kind not in _TEXT_KINDS:
            return None
        texts = self._texts
        horizon = now - window
        while texts:
            first_key = next(iter(texts))
            if texts[first_key] > horizon:
                break
            del texts[first_key]
        if event.kind is Kind.DANMAKU:
            key: tuple[str, ...] = ("d", canonical(text))
        else:
            # Welcome lines carry no text of their own: the same user entering twice is one.
            key = (event.kind.value, event.platform, event.user.id or event.user.name)
        if key in texts:
            return "duplicate"  # not refreshed: a steady flood is read once per window
        texts[key] = now
        if len(texts) > self.cfg.max_entries:
            texts.popitem(last=False)
        return None

    def _trim(self) -> None:
        while len(self._ids) > self.cfg.max_entries:
            self._ids.popitem(last=False)
        while len(self._texts) > self.cfg.max_entries:
            self._texts.popitem(last=False)
