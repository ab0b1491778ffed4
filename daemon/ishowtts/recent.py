"""A bounded memory of keys seen lately, for dropping repeats (platform ids, merged commands)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class Recent:
    """Keys seen lately: bounded in count (oldest forgotten first) and optionally in time."""

    def __init__(self, size: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.size, self.clock = size, clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check_and_add(self, key: str, window_s: float | None = None) -> bool:
        """True if ``key`` was seen (within ``window_s``); records it either way."""
        now = self.clock()
        at = self._seen.pop(key, None)
        self._seen[key] = now
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return at is not None and (window_s is None or now - at <= window_s)

    def __contains__(self, key: str) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)
