"""Words for airtime's lines: several acknowledgements waiting together said as one (names,
how many people, the gifts and their totals), and a chat storm.

Everything a viewer chooses is bounded here before it is said: names (as read aloud: the
pipeline's cleaned or nick name) and gift names are cut to ``max_name_chars`` and read for at
most ``max_names`` people; totals are capped and a non-finite amount reads as 0. A viewer with
a 10,000-character name cannot make a combined line longer than its template allows.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import regex

from ..config import Config
from ..events import Utterance
from .normalize import Normalizer

MAX_COUNT = 99_999  # a total count read aloud, at most
MAX_AMOUNT = 1e9  # a total amount read aloud, at most
_GRAPHEME = regex.compile(r"\X")


def fields(template: str) -> frozenset[str]:
    return frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)


def amount_text(amount: float) -> str:
    if not math.isfinite(amount) or amount <= 0:
        return "0"
    return f"{min(amount, MAX_AMOUNT):.2f}".rstrip("0").rstrip(".")


def _said(text: str) -> str:
    return " ".join(text.split())


class Words:
    def __init__(self, config: Config, normalizer: Normalizer) -> None:
        self.anonymous = config.speech.anonymous
        self.combine = config.airtime.combine
        self.storm_template = config.airtime.storm.template
        self.normalizer = normalizer

    def together(self, utts: Sequence[Utterance], busy: bool = False) -> str:
        """One line for acknowledgements of one kind waiting together: up to ``max_names``
        names (fewer when ``busy``), how many people in all, the gifts and their totals."""
        c = self.combine
        people: dict[tuple[str, str], str] = {}
        for u in utts:
            e = u.event
            people.setdefault((e.platform, e.user.id or e.user.name), self._name(u))
        limit = c.busy_max_names if busy else c.max_names
        named = [n for n in people.values() if n][:limit] or [self.anonymous]
        others = max(0, len(people) - len(named))
        events = [u.event for u in utts]
        gifts = list(dict.fromkeys(self._cut(e.gift_name, clean=True) for e in events))
        count = sum(min(e.gift_count, MAX_COUNT) for e in events)
        amount = math.fsum(e.amount for e in events if math.isfinite(e.amount))
        more = c.more.format(people=len(people), others=others) if others else ""
        return _said(
            c.template_for(events[0].kind).format(
                names=c.separator.join(named),
                more=more,
                people=len(people),
                others=others,
                gift=c.separator.join([g for g in gifts if g][: c.max_gifts]),
                count=min(count, MAX_COUNT),
                amount=amount_text(amount),
            )
        )

    def storm(self, text: str, senders: int) -> str:
        """The line for many viewers sending ``text`` (cleaned)."""
        return _said(self.storm_template.format(text=text, count=senders))

    def _name(self, utt: Utterance) -> str:
        """The name read for ``utt``'s sender (as the pipeline reads it, ``speaker``), cleaned
        and cut; "" for a viewer without one (counted, not named). Cleaned again: a name that
        cleans to nothing is kept raw for a line of its own, never for a combined one."""
        name = utt.speaker or utt.event.user.name
        return "" if name == self.anonymous else self._cut(name, clean=True)

    def _cut(self, raw: str, clean: bool = False) -> str:
        """``raw`` (cleaned like chat text when ``clean``) cut to ``max_name_chars``."""
        n = self.combine.max_name_chars
        head = raw[: n * 8]  # enough for n characters, even joined emoji: never clean a huge name
        return "".join(_GRAPHEME.findall(self.normalizer(head) if clean else head)[:n])
