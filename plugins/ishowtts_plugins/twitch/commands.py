"""Twitch IRC messages → ChatEvent / Retraction. Money in USD: 100 bits = 1 USD, subs at
their list price by tier, Hype Chats (``pinned-chat-paid-*``) converted from their currency.
USERNOTICE kinds are in notices.py."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from ishowtts.connectors import ChatEvent, Kind, Outcome, Recent, Retraction, Status, User, money

from .irc import Message
from .notices import USD_PER_BIT, Notices, mirrored
from .text import unwrap_action, usd_number

PLATFORM = "twitch"
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
        self.notices = Notices(self._event, self._user, _int, self.recent)

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
            is_vip=t.get("vip") == "1" or "vip/" in badges,
        )

    def _event(self, kind: Kind, user: User, **fields: object) -> Outcome:
        return Outcome(Status.EVENT, (ChatEvent(PLATFORM, self.channel, kind, user, **fields),))  # type: ignore[arg-type]

    def _privmsg(self, msg: Message) -> Outcome:
        if len(msg.params) < 2:
            raise MalformedMessage("PRIVMSG without text")
        t, text = msg.tags, unwrap_action(msg.params[-1])
        user = self._user(msg)
        raw_id = t.get("id", "")
        reply_to = t.get("reply-parent-display-name") or t.get("reply-parent-user-login", "")
        sticker = t.get("emote-only") == "1"
        # Shared chat shows other channels' messages here: their bits are not this channel's.
        bits = 0 if mirrored(t) else _int(t.get("bits", ""))
        hype = 0.0 if mirrored(t) else _hype_chat(t)
        if bits > 0 or hype > 0:
            spoken = " ".join(CHEERMOTE.sub("", text).split()) if bits else text
            return self._event(
                Kind.SUPER_CHAT, user, text=spoken, amount=round(bits * USD_PER_BIT + hype, 2),
                gift_name="bits" if bits else "Hype Chat", gift_count=max(1, bits),
                raw_id=raw_id, reply_to=reply_to,
            )  # fmt: skip
        return self._event(
            Kind.DANMAKU, user, text=text, raw_id=raw_id, reply_to=reply_to, sticker=sticker
        )

    def _usernotice(self, msg: Message) -> Outcome:
        kind = msg.tags.get("msg-id", "")
        if not kind:
            raise MalformedMessage("USERNOTICE without msg-id")
        return self.notices.translate(msg, kind)


def _hype_chat(tags: dict[str, str]) -> float:
    """A Hype Chat's price in USD (``pinned-chat-paid-amount`` in minor units of its currency);
    0 for a plain message or an unreadable amount (the message is then read as chat)."""
    if "pinned-chat-paid-amount" not in tags:
        return 0.0
    value = money.minor_units(
        _int(tags["pinned-chat-paid-amount"]), _int(tags.get("pinned-chat-paid-exponent", "2"), 2)
    )
    return usd_number(value, tags.get("pinned-chat-paid-currency", "USD"))
