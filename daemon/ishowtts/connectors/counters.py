"""Connector counters with a bound on distinct keys.

Some keys carry what a stranger sent (``unknown:<command>``, ``notice:<id>``) and every key
becomes a Prometheus label, so a server inventing names must not grow memory or the scrape
without end: past ``limit`` distinct keys, new ones are added up under ``OVERFLOW``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

OVERFLOW = "other_keys"


class BoundedCounter(Counter[str]):
    def __init__(self, *args: Any, limit: int = 256, **kwargs: Any) -> None:
        self.limit = limit  # before super().__init__, whose update() goes through __setitem__
        super().__init__(*args, **kwargs)

    def __setitem__(self, key: str, value: int) -> None:
        if key != OVERFLOW and key not in self and len(self) >= self.limit:
            # A missing key reads as 0, so ``value`` is all that is being added.
            key, value = OVERFLOW, self.get(OVERFLOW, 0) + value
        super().__setitem__(key, value)
