"""Exponential backoff with full jitter, shared by connectors and the player's stream reopen."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double up to ``maximum``; ``reset`` after an attempt that worked.

    Full jitter (a delay anywhere in the upper half of the ceiling) keeps many clients that lost
    the same server from all coming back in the same instant.
    """

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, factor: float = 2.0) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
