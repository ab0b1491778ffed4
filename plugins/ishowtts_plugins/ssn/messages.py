"""Social Stream Ninja's relayed messages (JSON objects) → ChatEvent / Retraction.

Pure: the connector hands each decoded frame to ``SsnMapper.translate``. The shapes are SSN's
own (its README's "Message structure" and the ``sources/*.js`` that build them): a chat message
is an object with ``chatname``, ``chatmessage`` (HTML unless ``textonly``), ``type`` (the site:
``tiktok``, ``kick``, ``youtube``...), ``userid``, ``id``, and optional ``hasDonation`` (free text:
"$5.00", "€10,00 EUR", "100 bits", "5 roses"), ``membership`` / ``subtitle`` (a membership or,
on a chat line, the member's tier), ``event`` (``joined``, ``new_follower``, ``giftpurchase``...),
``moderator``/``mod``, ``bot``, ``private``. Moderation arrives as ``{"deleteMessage": id}``,
``{"blockUser": {"chatname"|"username", "type"}}``, ``{"timeoutUser": {"username", "type"}}``.

Money is in USD (``ChatEvent.amount``), converted with ``money``; a donation in a unit with no
known price (TikTok's roses, Kick's KICKs) is paid with its amount unknown (0).
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection
from html.parser import HTMLParser
from typing import Any

from ishowtts.connectors import ChatEvent, Kind, Outcome, Retraction, Status, User, money

PLATFORM = "ssn"
MAX_TEXT = 2000
MAX_NAME = 64
SOURCE = re.compile(r"^[a-z0-9_.-]{1,32}$")
# Virtual currencies with a known price in USD per unit (what the streamer is roughly paid).
UNIT_USD = {"bit": 0.01, "bits": 0.01, "coin": 0.01, "coins": 0.01}  # Twitch bits, TikTok coins
# fmt: off
SYMBOLS = {
    "$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₩": "KRW", "₹": "INR",
    "CA$": "CAD", "C$": "CAD", "A$": "AUD", "AU$": "AUD", "NZ$": "NZD", "HK$": "HKD",
    "NT$": "TWD", "R$": "BRL", "MX$": "MXN", "₱": "PHP", "₺": "TRY", "₽": "RUB", "₴": "UAH",
    "₪": "ILS", "฿": "THB", "₫": "VND", "zł": "PLN", "CN¥": "CNY", "元": "CNY", "円": "JPY",
}
# fmt: on
EVENT_KINDS = {
    "joined": Kind.ENTER,
    "new_follower": Kind.FOLLOW,
    "follow": Kind.FOLLOW,
    "followed": Kind.FOLLOW,
    "shared": Kind.SHARE,
    "liked": Kind.LIKE,
    "reaction": Kind.LIKE,
}  # fmt: skip
MEMBER_EVENTS = frozenset(
    {"giftpurchase", "giftredemption", "subscription", "subscribe", "subscription_gift",
     "resub", "membership", "sponsorship", "new_member"}
)  # fmt: skip
# Events with nothing to read (SSN's own notices, stream state).
QUIET_EVENTS = frozenset({"thankyou", "notification", "notice", "system", "redirect", "viewers"})
_NUMBER = re.compile(r"\d[\d\s,.'’]*")
_CODE = re.compile(r"\b([A-Z]{3})\b")


class MalformedMessage(ValueError):
    pass


class _Text(HTMLParser):
    """The text of an HTML fragment: tags (emote images included) dropped, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def plain(value: Any, limit: int = MAX_TEXT, markup: bool = True) -> str:
    """A field as plain text on one line, bounded; markup (SSN's HTML chat) removed."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    text = str(value)  # as long as a frame (256 KiB) at most; the markup is parsed whole
    if markup and ("<" in text or "&" in text):
        parser = _Text()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    elif "&" in text:
        text = html.unescape(text)
    return " ".join(text.split())[:limit]


def parse_amount(text: str) -> tuple[float, str]:
    """A donation's text → (USD, its unit's name); 0 when its price is unknown."""
    m = _NUMBER.search(text)
    if m is None:
        return 0.0, text
    value = _number(m.group().strip())
    before, after = text[: m.start()].strip(), text[m.end() :].strip()
    code = _CODE.search(after) or _CODE.search(before)
    currency = code.group(1) if code else SYMBOLS.get(before.split(" ")[-1] if before else "")
    if currency is None and after:
        currency = SYMBOLS.get(after.split(" ")[0])
    if value is not None and currency:
        usd = money.convert(value, currency)
        return (usd or 0.0), currency
    unit = after.split(" ")[0].lower() if after else ""
    if value is not None and unit in UNIT_USD:
        return round(value * UNIT_USD[unit], 2), unit
    return 0.0, after or text


def _number(digits: str) -> float | None:
    """1,234.56 / 1.234,56 / 10,00 / 1 000 / 1.000 → a float (None past any real amount). The
    last separator is the decimal one, unless its kind repeats or three digits follow it."""
    digits = re.sub(r"[\s'’]", "", digits).rstrip(".,")
    last = max(digits.rfind(","), digits.rfind("."))
    if last >= 0:
        mark = digits[last]
        other = "." if mark == "," else ","
        grouping = other not in digits and (digits.count(mark) > 1 or len(digits) - last == 4)
        whole, frac = (digits, "") if grouping else (digits[:last], digits[last + 1 :])
        digits = re.sub(r"[,.]", "", whole) + ("." + frac if frac else "")
    try:
        value = float(digits)
    except ValueError:
        return None
    return value if value < 1e9 else None


def _count(text: str) -> int:
    m = re.search(r"\d{1,6}", text)
    return max(1, int(m.group())) if m else 1


class SsnMapper:
    def __init__(
        self, sources: Collection[str] = (), read_bots: bool = False, read_private: bool = False
    ) -> None:
        self.sources = frozenset(sources)  # empty: every site
        self.read_bots = read_bots
        self.read_private = read_private

    def translate(self, data: Any) -> Outcome:
        if not isinstance(data, dict):
            raise MalformedMessage(f"a {type(data).__name__}, not an object")
        if "deleteMessage" in data:
            raw = plain(data["deleteMessage"], 64, markup=False)
            if not raw:
                raise MalformedMessage("deleteMessage without an id")
            return Outcome(Status.RETRACTION, (Retraction(PLATFORM, raw_ids=(raw,)),))
        for key, reason in (("blockUser", "banned"), ("timeoutUser", "timeout")):
            if key in data:
                return self._ban(data[key], reason)
        if not any(k in data for k in ("chatname", "chatmessage", "hasDonation", "membership")):
            return Outcome(Status.IGNORED)  # SSN's other traffic: actions, counts, state
        return self._message(data)

    def _ban(self, target: Any, reason: str) -> Outcome:
        if not isinstance(target, dict):
            raise MalformedMessage(f"{reason} without a user")
        name = plain(target.get("chatname") or target.get("username"), MAX_NAME, markup=False)
        source = self._source(target.get("type"))
        if not name:
            raise MalformedMessage(f"{reason} without a user name")
        retraction = Retraction(PLATFORM, user_id=f"{source}:{name}", reason=reason)
        return Outcome(Status.RETRACTION, (retraction,))

    def _source(self, value: Any) -> str:
        source = value.lower() if isinstance(value, str) else ""
        return source if SOURCE.match(source) else "unknown"

    def _message(self, data: dict[str, Any]) -> Outcome:
        source = self._source(data.get("type"))
        if self.sources and source not in self.sources:
            return Outcome(Status.IGNORED)
        if (data.get("bot") is True and not self.read_bots) or (
            data.get("private") is True and not self.read_private
        ):
            return Outcome(Status.IGNORED)  # the host's bots; direct messages are not for all
        markup = data.get("textonly") is not True
        name = plain(data.get("chatname"), MAX_NAME, markup)
        text = plain(data.get("chatmessage"), MAX_TEXT, markup)
        donation = plain(data.get("hasDonation"), 64, markup)
        membership = plain(data.get("membership"), 64, markup)
        subtitle = plain(data.get("subtitle"), 64, markup)
        event = data.get("event")
        event_name = event.lower()[:40] if isinstance(event, str) else ""
        is_event = bool(event_name) or event is True
        user = self._user(data, source, name, membership)
        common: dict[str, Any] = {"raw_id": plain(data.get("id"), 64, markup=False)}
        if donation:
            usd, unit = parse_amount(donation)
            if text and event_name not in ("thankyou", "gift"):
                event_out = ChatEvent(
                    PLATFORM, source, Kind.SUPER_CHAT, user, text, amount=usd, **common
                )
            else:  # a gift (its text is SSN's: "sent <img>×5", or a thank-you it fills in)
                gift = plain(re.sub(r"^[\d\s,.]+", "", donation) or donation, 64, markup=False)
                count = _count(donation) if unit.isalpha() else 1
                event_out = ChatEvent(
                    PLATFORM, source, Kind.GIFT, user, "", usd, gift, count, **common
                )
            return Outcome(Status.EVENT, (event_out,))
        if membership and (event_name in MEMBER_EVENTS or (is_event and not text) or not text):
            count = _count(subtitle) if event_name == "giftpurchase" else 1
            guard = ChatEvent(
                PLATFORM, source, Kind.GUARD, user, text, 0.0, membership, count, **common
            )
            return Outcome(Status.EVENT, (guard,))
        if event_name in EVENT_KINDS:
            kind = EVENT_KINDS[event_name]
            return Outcome(Status.EVENT, (ChatEvent(PLATFORM, source, kind, user, text, **common),))
        if event_name in QUIET_EVENTS or (is_event and not text):
            return Outcome(Status.IGNORED)
        if is_event and event_name:
            return Outcome(Status.UNKNOWN, note=re.sub(r"[^a-z0-9_]", "_", event_name))
        if not text:
            return Outcome(Status.IGNORED)
        return Outcome(
            Status.EVENT, (ChatEvent(PLATFORM, source, Kind.DANMAKU, user, text, **common),)
        )

    def _user(self, data: dict[str, Any], source: str, name: str, membership: str) -> User:
        userid = plain(data.get("userid"), MAX_NAME, markup=False)
        moderator = data.get("moderator") is True or data.get("mod") is True
        member = bool(membership) or data.get("member") not in (None, False, "", 0)
        return User(
            id=f"{source}:{name}",  # SSN's bans name the user, so its name is the id
            name=name,
            guard_level=1 if member else 0,
            is_moderator=moderator,
            alt_ids=(f"{source}:{userid}",) if userid and userid != name else (),
        )
