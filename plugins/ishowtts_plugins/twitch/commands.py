"""Twitch IRC messages → ChatEvent / Retraction. Money in USD: 100 bits = 1 USD, subs at
their list price by tier."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from ishowtts.connectors import ChatEvent, Kind, Outcome, Recent, Retraction, Status, User

from .irc import Message

PLATFORM = "twitch"
USD_PER_BIT = 0.01
TIER_PRICE = {"1000": 4.99, "2000": 9.99, "3000": 24.99, "Prime": 0.0}
TIER_NAME = {"1000": "Tier 1", "2000": "Tier 2", "3000": "Tier 3", "Prime": "Prime"}
# Cheermotes are a word + amount ("Cheer100"); they are not meant to be read out.
CHEERMOTE = re.compile(
    r"(?i)\b(?:cheer|cheerwhal|biblethump|corgo|uni|showlove|party|seemsgood|pride|kappa|"
    r"frankerz|heyguys|dansgame|elegiggle|trihard|kreygasm|4head|swiftrage|notlikethis|"
    r"failfish|vohiyo|pjsalt|mrdestructoid|bday|ripcheer|shamrock|anon)\d+\b"
)
IGNORED = frozenset(
    {"CAP", "USERSTATE", "GLOBALUSERSTATE", "ROOMSTATE", "JOIN", "PART", "PONG", "HOSTTARGET",
     "WHISPER", "001", "002", "003", "004", "353", "366", "372", "375", "376"}
)  # fmt: skip


class MalformedMessage(ValueError):
    pass


MAX_NUMBER = 2**53  # no real bit count or raid size is larger; past it floats overflow


def _int(value: str, default: int = 0) -> int:
    """A number tag; missing or not a number: ``default``; absurdly large: malformed."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        if isinstance(value, str) and value.lstrip("+-").isdigit():  # too many digits to parse
            raise MalformedMessage(f"number out of range: {value[:40]}") from None
        return default
    if not -MAX_NUMBER <= n <= MAX_NUMBER:
        raise MalformedMessage(f"number out of range: {value[:40]}")
    return n


class MessageMapper:
    def __init__(
        self, channel: str, memory: int = 4096, clock: Callable[[], float] = time.monotonic
    ):
        self.channel = channel
        self.recent = Recent(memory, clock)

    def translate(self, msg: Message) -> Outcome:
        if msg.command == "PRIVMSG":
            return self._privmsg(msg)
        if msg.command == "USERNOTICE":
            return self._usernotice(msg)
        if msg.command == "CLEARMSG":
            target = msg.tags.get("target-msg-id", "")
            if not target:
                raise MalformedMessage("CLEARMSG without target-msg-id")
            r = Retraction(PLATFORM, raw_ids=(target,), reason="deleted by a moderator")
            return Outcome(Status.RETRACTION, (r,))
        if msg.command == "CLEARCHAT":
            if len(msg.params) >= 2:  # one user timed out or banned
                user_id = msg.tags.get("target-user-id") or msg.params[1]
                reason = "timeout" if "ban-duration" in msg.tags else "ban"
                return Outcome(
                    Status.RETRACTION, (Retraction(PLATFORM, user_id=user_id, reason=reason),)
                )
            return Outcome(
                Status.RETRACTION, (Retraction(PLATFORM, everything=True, reason="chat cleared"),)
            )
        if msg.command in IGNORED:
            return Outcome(Status.IGNORED, note=msg.command)
        return Outcome(Status.UNKNOWN, note=msg.command)

    def _user(self, msg: Message, login: str = "") -> User:
        t = msg.tags
        login = login or t.get("login") or msg.nick
        badges = t.get("badges", "")
        months = 0
        for badge in t.get("badge-info", "").split(","):
            name, _, version = badge.partition("/")
            if name in ("subscriber", "founder"):
                months = _int(version)
        return User(
            id=t.get("user-id") or login,
            name=t.get("display-name") or login,
            guard_level=1 if t.get("subscriber") == "1" or "subscriber/" in badges else 0,
            medal_level=months,
            medal_name="subscriber" if months else "",
            is_moderator=t.get("mod") == "1" or "broadcaster/" in badges or "moderator/" in badges,
        )

    def _event(self, kind: Kind, user: User, **fields: object) -> Outcome:
        return Outcome(Status.EVENT, (ChatEvent(PLATFORM, self.channel, kind, user, **fields),))  # type: ignore[arg-type]

    def _privmsg(self, msg: Message) -> Outcome:
        if len(msg.params) < 2:
            raise MalformedMessage("PRIVMSG without text")
        t, text = msg.tags, msg.params[-1]
        if text.startswith("\x01ACTION ") and text.endswith("\x01"):
            text = text[8:-1]  # /me
        user = self._user(msg)
        raw_id = t.get("id", "")
        reply_to = t.get("reply-parent-display-name") or t.get("reply-parent-user-login", "")
        sticker = t.get("emote-only") == "1"
        bits = _int(t.get("bits", ""))
        if bits > 0:
            return self._event(
                Kind.SUPER_CHAT, user, text=" ".join(CHEERMOTE.sub("", text).split()),
                amount=round(bits * USD_PER_BIT, 2), gift_name="bits", gift_count=bits,
                raw_id=raw_id, reply_to=reply_to,
            )  # fmt: skip
        return self._event(
            Kind.DANMAKU, user, text=text, raw_id=raw_id, reply_to=reply_to, sticker=sticker
        )

    def _usernotice(self, msg: Message) -> Outcome:
        t = msg.tags
        kind = t.get("msg-id", "")
        if not kind:
            raise MalformedMessage("USERNOTICE without msg-id")
        text = msg.params[1] if len(msg.params) > 1 else ""
        raw_id = t.get("id", "")
        plan = t.get("msg-param-sub-plan", "1000")
        tier, price = TIER_NAME.get(plan, plan), TIER_PRICE.get(plan, 0.0)
        if kind in ("sub", "resub"):
            months = max(1, _int(t.get("msg-param-cumulative-months", "1"), 1))
            return self._event(
                Kind.GUARD, self._user(msg), text=text, amount=price, gift_name=tier,
                gift_count=months, raw_id=raw_id,
            )  # fmt: skip
        if kind in ("submysterygift", "anonsubmysterygift"):
            count = max(1, _int(t.get("msg-param-mass-gift-count", "1"), 1))
            community = t.get("msg-param-community-gift-id", "")
            if community:
                self.recent.check_and_add(f"community:{community}")
            return self._event(
                Kind.GIFT, self._user(msg), text=t.get("system-msg", ""),
                amount=round(price * count, 2), gift_name=f"{tier} sub", gift_count=count,
                raw_id=raw_id,
            )  # fmt: skip
        if kind in ("subgift", "anonsubgift"):
            # One of a mass gift announced already by submysterygift: not counted again.
            community = t.get("msg-param-community-gift-id", "")
            if community and f"community:{community}" in self.recent:
                return Outcome(Status.DUPLICATE, note=f"community gift {community}")
            recipient = t.get("msg-param-recipient-display-name", "")
            return self._event(
                Kind.GIFT, self._user(msg), text=recipient, amount=price,
                gift_name=f"{tier} sub", gift_count=1, raw_id=raw_id,
            )  # fmt: skip
        if kind == "raid":
            viewers = _int(t.get("msg-param-viewerCount", "0"))
            system = t.get("system-msg") or f"{viewers} raiders have joined"
            return self._event(
                Kind.SYSTEM, self._user(msg), text=system, gift_count=max(1, viewers), raw_id=raw_id
            )
        if kind == "announcement":
            return self._event(Kind.DANMAKU, self._user(msg), text=text, raw_id=raw_id)
        return Outcome(Status.IGNORED, note=f"USERNOTICE:{kind}")
