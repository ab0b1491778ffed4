"""Gifts, a pipeline stage like dedupe: a gift worth too little is dropped; a repeat of the same
gift from the same user, while the first still waits (within ``merge_window_s``), folds into it
as one "x N" line that keeps its place in the queue.

The stage decides what may merge and how; the scheduler does the merge in ``put`` (it alone
knows what still waits), so nothing asks the queue and then acts on a stale answer.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

from ..config import GiftsConfig
from ..events import ChatEvent, Kind, Utterance
from ..queue.scheduler import Merge


def combined(first: ChatEvent, repeat: ChatEvent) -> ChatEvent:
    """The first gift's event with the repeat's count and value added (its id and arrival).
    The value stays finite (two 1e308 gifts would sum to inf, which no JSON page can read)."""
    return dataclasses.replace(
        first,
        gift_count=first.gift_count + repeat.gift_count,
        amount=min(first.amount + repeat.amount, sys.float_info.max),
    )


class Gifts:
    def __init__(self, cfg: GiftsConfig) -> None:
        self.cfg = cfg

    def check(self, event: ChatEvent) -> str | None:
        """The rule that drops this event, or None."""
        if event.kind is Kind.GIFT and event.amount < self.cfg.min_amount:
            return "gift_value"
        return None

    def merge(self, event: ChatEvent, render: Callable[[ChatEvent], str]) -> Merge | None:
        """How ``event`` may fold into a gift line still queued; ``render`` makes the merged
        line's text. None: not a gift, or merging is off."""
        window = self.cfg.merge_window_s
        if event.kind is not Kind.GIFT or window <= 0:
            return None

        def fold(queued: Utterance) -> Utterance:
            merged = combined(queued.event, event)
            return dataclasses.replace(queued, event=merged, text=render(merged))

        return Merge((event.platform, event.user.id, event.gift_name), window, fold)
