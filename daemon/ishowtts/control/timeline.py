"""Recent history for the console's charts: time to first audio, RTF, queue depth and drops,
in fixed time slots over the last minutes (bounded memory whatever the chat rate)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SLOT_S = 10.0
SLOTS = 60  # ten minutes


@dataclass
class _Slot:
    start: float  # wall time
    ttfa: list[float] = field(default_factory=list)
    rtf: list[float] = field(default_factory=list)
    depth: int = 0  # the deepest the queue was seen
    spoken: int = 0
    dropped: int = 0  # dropped, expired or evicted: chat that was not read


MAX_SAMPLES = 256  # per slot and series; more only refines a median nobody needs refined


class Timeline:
    def __init__(
        self, slot_s: float = SLOT_S, slots: int = SLOTS, clock: Callable[[], float] = time.time
    ) -> None:
        self.slot_s = slot_s
        self.clock = clock
        self._slots: deque[_Slot] = deque(maxlen=slots)

    def _now(self) -> _Slot:
        start = math.floor(self.clock() / self.slot_s) * self.slot_s
        if not self._slots or self._slots[-1].start != start:
            self._slots.append(_Slot(start))
        return self._slots[-1]

    def ttfa(self, seconds: float) -> None:
        s = self._now()
        if len(s.ttfa) < MAX_SAMPLES:
            s.ttfa.append(seconds)

    def rtf(self, value: float) -> None:
        s = self._now()
        if math.isfinite(value) and len(s.rtf) < MAX_SAMPLES:
            s.rtf.append(value)

    def depth(self, n: int) -> None:
        s = self._now()
        s.depth = max(s.depth, n)

    def outcome(self, state: str) -> None:
        s = self._now()
        if state == "spoken":
            s.spoken += 1
        elif state in ("dropped", "expired", "evicted"):
            s.dropped += 1

    def series(self) -> dict[str, Any]:
        """Slots oldest first; medians (None where nothing was measured)."""
        self._now()
        return {
            "slot_s": self.slot_s,
            "start": [s.start for s in self._slots],
            "ttfa_ms": [_ms(_median(s.ttfa)) for s in self._slots],
            "rtf": [_round(_median(s.rtf), 4) for s in self._slots],
            "depth": [s.depth for s in self._slots],
            "spoken": [s.spoken for s in self._slots],
            "dropped": [s.dropped for s in self._slots],
        }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
