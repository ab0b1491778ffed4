"""Chat storms: many viewers sending the same (or nearly the same) text within the dedupe
window are heard as one line ("好多人在刷666") instead of as silent duplicates.

The first of a text is queued as usual and remembered here. A repeat (dedupe's ``duplicate``)
is said by the line still waiting for its text, if there is one (the ledger closes it with that
line, ``merged_into`` naming it), and turns that line into the storm line once ``min_senders``
viewers sent it. With no line waiting (the first was read already), a repeat starts a storm line
once enough viewers sent it, at most once a window for a text; below that it is dropped as a
duplicate, as before. Bounded: ``max_entries`` texts, 99 senders counted per text.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from ..config.airtime import StormConfig

MAX_SENDERS = 99


@dataclass
class _Text:
    first: float  # when the window for this text began
    senders: set[str] = field(default_factory=set)
    line: str = ""  # the id of the line that says it (queued, or said already)
    storm: bool = False  # a storm line for it was made in this window


class Storms:
    def __init__(self, cfg: StormConfig, window_s: float, max_entries: int) -> None:
        self.reconfigure(cfg, window_s, max_entries)
        self._texts: OrderedDict[str, _Text] = OrderedDict()  # oldest window first

    def reconfigure(self, cfg: StormConfig, window_s: float, max_entries: int) -> None:
        self.cfg, self.window_s, self.max_entries = cfg, window_s, max_entries

    @property
    def on(self) -> bool:
        return self.cfg.enabled and self.window_s > 0

    def sent(self, key: str, sender: str, now: float) -> int:
        """Count ``sender`` for the text ``key``; how many viewers sent it in its window."""
        horizon = now - self.window_s
        while self._texts and next(iter(self._texts.values())).first <= horizon:
            self._texts.popitem(last=False)
        entry = self._texts.get(key)
        if entry is None:
            entry = self._texts[key] = _Text(now)
            if len(self._texts) > self.max_entries:
                self._texts.popitem(last=False)
        if len(entry.senders) < MAX_SENDERS:
            entry.senders.add(sender)
        return len(entry.senders)

    def is_storm(self, senders: int) -> bool:
        return senders >= self.cfg.min_senders

    def line(self, key: str) -> str:
        """The id of the line saying ``key`` this window ("" if none)."""
        entry = self._texts.get(key)
        return entry.line if entry is not None else ""

    def may_start(self, key: str) -> bool:
        """Whether a new storm line may be made for ``key`` (none yet this window)."""
        entry = self._texts.get(key)
        return entry is not None and not entry.storm

    def said_by(self, key: str, line_id: str, storm: bool) -> None:
        """``line_id`` (queued) says ``key``; ``storm``: as a storm line."""
        entry = self._texts.get(key)
        if entry is not None:
            entry.line = line_id
            entry.storm = entry.storm or storm
