"""Connector counters with a bound on the names a stranger can choose.

Keys of the form ``family:name`` carry what a server sent (``unknown:<command>``,
``notice:<id>``, ``op:<code>``), and every key becomes a Prometheus label, so a server inventing
names must not grow memory or the scrape without end: past ``limit`` names in one family, new
ones are added up under ``family:other``. Keys without a colon are the code's own fixed names
(``events``, ``malformed``, ``reconnects``) and are always counted: a flood of invented names
must not hide what the daemon itself counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

OTHER = "other"


class BoundedCounter(Counter[str]):
    def __init__(self, *args: Any, limit: int = 64, **kwargs: Any) -> None:
        # Before super().__init__, whose update() goes through __setitem__.
        self.limit = limit
        self._names: Counter[str] = Counter()  # family → names it holds
        super().__init__(*args, **kwargs)

    def __setitem__(self, key: str, value: int) -> None:
        family, colon, _ = key.partition(":")
        if colon and key not in self:
            if self._names[family] >= self.limit:
                # A missing key reads as 0, so ``value`` is all that is being added.
                key = f"{family}:{OTHER}"
                value = self.get(key, 0) + value
            else:
                self._names[family] += 1
        super().__setitem__(key, value)
