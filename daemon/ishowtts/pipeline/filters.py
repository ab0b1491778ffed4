"""Filter rules from the config: which normalised chat events are read at all.

``check`` returns the name of the first rule that drops an event (the ledger logs it), or None.
Paid events (super chat, gift, guard) are always read unless a block rule or the allow list
says no: length, punctuation-only and rate apply to danmaku only.
"""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict, deque
from typing import Protocol

import regex

from ..config import FiltersConfig
from ..events import ChatEvent, Kind

_GRAPHEME = regex.compile(r"\X")
# Punctuation, symbols and separators only: "???", "。。。", "~~~", "+1" is not.
_PUNCT_ONLY = regex.compile(r"^[\p{P}\p{S}\p{Z}\s]*$")
_SPACES = re.compile(r"\s+")
# What a reader does not see or say: marks that do not compose (strike-through, "Zalgo"),
# format characters (zero-width space, soft hyphen, LRM, word joiner), controls, separators.
_UNSAID = frozenset({"Mn", "Me", "Cf", "Cc", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})

MAX_RATE_USERS = 20_000  # users remembered for the rate limit, at most


class Muted(Protocol):
    """The operator's runtime mute list (``ishowtts.pipeline.mutes.MuteList``)."""

    def matches(self, platform: str, ids: tuple[str, ...], name: str) -> bool: ...


def fold(text: str) -> str:
    """The form block words are matched in: compatibility forms folded (full-width, circled,
    mathematical bold letters read as the plain ones), case folded, and what is neither seen
    nor said removed, so "ｂａｄ\u200bｗｏｒｄ" and "𝐁𝐀𝐃 word" are "badword"."""
    if text.isascii():
        return _SPACES.sub("", text.casefold())
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch for ch in text if unicodedata.category(ch) not in _UNSAID and not ch.isspace()
    )


def graphemes(text: str) -> int:
    """Length as a reader sees it: 👨‍👩‍👧 is one, é written with a combining accent is one."""
    if text.isascii():
        return len(text)
    return len(_GRAPHEME.findall(text))


class Filters:
    def __init__(
        self, cfg: FiltersConfig, max_users: int = MAX_RATE_USERS, muted: Muted | None = None
    ) -> None:
        self.cfg = cfg
        self.max_users = max_users
        self.muted = muted  # merged with the config's block list; survives reloads
        self.kinds = frozenset(cfg.kinds)
        self.block_users = frozenset(cfg.users.block)
        self.allow_users = frozenset(cfg.users.allow)
        words = sorted({fold(w) for w in cfg.block_keywords} - {""}, key=len)
        # One alternation beats a loop over the list; spaces are removed from the text too, so
        # "傻 逼" does not slip past a keyword "傻逼".
        self._keywords = (
            re.compile("|".join(re.escape(w) for w in reversed(words))) if words else None
        )
        self._regexes = [re.compile(p) for p in cfg.block_regex]
        # (platform, user id) → times of that user's recent accepted danmaku; least recently
        # active first, so pruning pops from the front.
        self._rate: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def reconfigure(self, cfg: FiltersConfig) -> Filters:
        """A filter set for new rules that keeps the rate history when the limit is unchanged."""
        new = Filters(cfg, self.max_users, self.muted)
        if cfg.rate == self.cfg.rate:
            new._rate = self._rate
        return new

    @property
    def rate_table_size(self) -> int:
        return len(self._rate)

    def check(
        self, event: ChatEvent, text: str, now: float, spoken_name: str | None = None
    ) -> str | None:
        """``text`` and ``spoken_name`` are what would be read aloud (normalised); the name
        defaults to the user's as given."""
        cfg = self.cfg
        kind = event.kind
        if kind not in self.kinds:
            return "kind_disabled"
        user = event.user
        names = user.names()
        if any(n in self.block_users for n in names):
            return "blocked_user"
        if self.muted is not None and self.muted.matches(event.platform, user.ids(), user.name):
            return "muted_user"
        # System messages (the operator's own /say) are no chat user's.
        if (
            self.allow_users
            and kind is not Kind.SYSTEM
            and not any(n in self.allow_users for n in names)
        ):
            return "not_allowed_user"
        if self._keywords is not None:
            # Names are checked too: enter/follow/gift lines read them aloud. Each part on its
            # own (a NUL never folds into a keyword), so no word is made across two parts.
            name = user.name if spoken_name is None else spoken_name
            said = (text, name, event.gift_name)
            if self._keywords.search("\0".join(fold(part) for part in said if part)):
                return "blocked_keyword"
        for pattern in self._regexes:
            if pattern.search(text):
                return "blocked_regex"
        if kind is not Kind.DANMAKU:
            return None
        n = graphemes(text)
        if n < cfg.min_chars:
            return "too_short"
        if n > cfg.max_chars:
            return "too_long"
        if cfg.drop_punctuation_only and _PUNCT_ONLY.match(text):
            return "punctuation_only"
        if cfg.rate is not None and self._rate_limited(event, now):
            return "rate_limited"
        return None

    def _rate_limited(self, event: ChatEvent, now: float) -> bool:
        rate = self.cfg.rate
        assert rate is not None
        horizon = now - rate.per_seconds
        table = self._rate
        # Forget users whose last message left the window (front = least recently active).
        while table:
            first = next(iter(table.values()))
            if first[-1] > horizon:
                break
            table.popitem(last=False)
        who = event.user.id or event.user.name
        if not who:
            return False  # no way to tell this user from others: not one bucket for them all
        key = (event.platform, who)
        times = table.get(key)
        if times is None:
            times = table[key] = deque()
            if len(table) > self.max_users:
                table.popitem(last=False)
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= rate.messages:
            return True
        times.append(now)
        table.move_to_end(key)
        return False
