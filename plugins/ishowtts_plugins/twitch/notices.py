"""Twitch USERNOTICE kinds → ChatEvent: subs, gifts, upgrades, donations, raids.

The paid kinds are those Twitch documents and those seen in recorded chat (the upgrades of a
gifted or Prime sub, charity donations, one-tap gifts). Notices that only repeat a gift already
announced (pay-it-forward, reward gifts, bits badges) are known and not read. In shared chat
Twitch mirrors another channel's notices into this one (``source-room-id`` differs from
``room-id``, or ``msg-id=sharedchatnotice``): those are not this channel's money, so only a
mirrored announcement is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ishowtts.connectors import Kind, Outcome, Recent, Status, User, money

from .irc import Message
from .text import unwrap_action, usd_number

TIER_PRICE = {"1000": 4.99, "2000": 9.99, "3000": 24.99, "Prime": 0.0}
TIER_NAME = {"1000": "Tier 1", "2000": "Tier 2", "3000": "Tier 3", "Prime": "Prime"}
USD_PER_BIT = 0.01
MAX_MONTHS = 120  # a gift or prepaid sub is at most a year or two; past this it is garbage

# Known, nothing to read: each repeats a gift or sub announced by its own notice, or costs
# nothing. Any other kind is counted as unknown (``unknown:USERNOTICE:<kind>``) and not read.
QUIET = frozenset(
    {"standardpayforward", "communitypayforward", "rewardgift", "primecommunitygiftreceived",
     "bitsbadgetier", "ritual", "unraid", "viewermilestone", "modiversary",
     "socialsharingbadge"}
)  # fmt: skip

# The mapper's event builder: (kind, user, **ChatEvent fields) → Outcome.
EventMaker = Callable[..., Outcome]


class Notices:
    """Maps one USERNOTICE; ``event`` builds the ChatEvent, ``user`` the sender."""

    def __init__(
        self,
        event: EventMaker,
        user: Callable[[Message], User],
        number: Callable[[str, int], int],
        recent: Recent,
    ) -> None:
        self._event, self._user, self._int, self.recent = event, user, number, recent

    def translate(self, msg: Message, kind: str) -> Outcome:
        t = msg.tags
        text = unwrap_action(msg.params[1] if len(msg.params) > 1 else "")
        if mirrored(t) or kind == "sharedchatnotice":
            source = t.get("source-msg-id", kind)
            if source == "announcement":
                return self._event(Kind.DANMAKU, self._user(msg), text=text, raw_id=t.get("id", ""))
            return Outcome(Status.IGNORED, note=f"USERNOTICE:shared:{source}"[:64])
        handler = self._handlers.get(kind)
        if handler is not None:
            return handler(self, msg, text)
        known = Status.IGNORED if kind in QUIET else Status.UNKNOWN
        return Outcome(known, note=f"USERNOTICE:{kind}"[:64])

    def _months(self, tags: Mapping[str, str], key: str) -> int:
        return min(MAX_MONTHS, max(1, self._int(tags.get(key, "1"), 1)))

    def _sub(self, msg: Message, text: str) -> Outcome:
        t = msg.tags
        tier, price = _plan(t)
        cumulative = max(1, self._int(t.get("msg-param-cumulative-months", "1"), 1))
        # A multi-month sub is paid when bought (tenure 0); its monthly shares are not new money.
        prepaid = self._months(t, "msg-param-multimonth-duration")
        tenure = self._int(t.get("msg-param-multimonth-tenure", "0"), 0)
        amount = 0.0 if tenure > 0 else round(price * prepaid, 2)
        return self._event(
            Kind.GUARD,
            self._user(msg),
            text=text,
            amount=amount,
            gift_name=tier,
            gift_count=cumulative,
            raw_id=t.get("id", ""),
        )

    def _upgrade(self, msg: Message, text: str) -> Outcome:
        """A gifted or Prime sub continued as a paid one (giftpaidupgrade, primepaidupgrade...)."""
        t = msg.tags
        tier, price = _plan(t, default="1000")
        return self._event(
            Kind.GUARD,
            self._user(msg),
            text=text or t.get("system-msg", ""),
            amount=price,
            gift_name=tier,
            gift_count=1,
            raw_id=t.get("id", ""),
        )

    def _mass_gift(self, msg: Message, _text: str) -> Outcome:
        t = msg.tags
        tier, price = _plan(t)
        count = min(10_000, max(1, self._int(t.get("msg-param-mass-gift-count", "1"), 1)))
        community = t.get("msg-param-community-gift-id", "")
        if community:
            self.recent.check_and_add(f"community:{community}")
        return self._event(
            Kind.GIFT,
            self._user(msg),
            text=t.get("system-msg", ""),
            amount=round(price * count, 2),
            gift_name=f"{tier} sub",
            gift_count=count,
            raw_id=t.get("id", ""),
        )

    def _gift(self, msg: Message, _text: str) -> Outcome:
        t = msg.tags
        # One of a mass gift announced already by submysterygift: not counted again.
        community = t.get("msg-param-community-gift-id", "")
        if community and f"community:{community}" in self.recent:
            return Outcome(Status.DUPLICATE, note=f"community gift {community}")
        tier, price = _plan(t)
        months = self._months(t, "msg-param-gift-months")  # a 12-month gift is 12 months' price
        return self._event(
            Kind.GIFT,
            self._user(msg),
            text=t.get("msg-param-recipient-display-name", ""),
            amount=round(price * months, 2),
            gift_name=f"{tier} sub",
            gift_count=1,
            raw_id=t.get("id", ""),
        )

    def _charity(self, msg: Message, text: str) -> Outcome:
        t = msg.tags
        value = money.minor_units(
            self._int(t.get("msg-param-donation-amount", "0"), 0),
            self._int(t.get("msg-param-exponent", "2"), 2),
        )
        usd = usd_number(value, t.get("msg-param-donation-currency", "USD"))
        return self._event(
            Kind.SUPER_CHAT,
            self._user(msg),
            text=text or t.get("system-msg", ""),
            amount=usd,
            gift_name=t.get("msg-param-charity-name", "charity"),
            raw_id=t.get("id", ""),
        )

    def _one_tap(self, msg: Message, _text: str) -> Outcome:
        t = msg.tags
        bits = max(0, self._int(t.get("msg-param-bits-spent", "0"), 0))
        return self._event(
            Kind.GIFT,
            self._user(msg),
            amount=round(bits * USD_PER_BIT, 2),
            gift_name=t.get("msg-param-gift-id", "") or "bits",
            gift_count=1,
            raw_id=t.get("id", ""),
        )

    def _raid(self, msg: Message, _text: str) -> Outcome:
        t = msg.tags
        viewers = self._int(t.get("msg-param-viewerCount", "0"), 0)
        system = t.get("system-msg") or f"{viewers} raiders have joined"
        return self._event(
            Kind.SYSTEM,
            self._user(msg),
            text=system,
            gift_count=max(1, viewers),
            raw_id=t.get("id", ""),
        )

    def _announcement(self, msg: Message, text: str) -> Outcome:
        return self._event(Kind.DANMAKU, self._user(msg), text=text, raw_id=msg.tags.get("id", ""))

    _handlers: dict[str, Callable[[Notices, Message, str], Outcome]] = {
        "sub": _sub,
        "resub": _sub,
        "extendsub": _upgrade,
        "giftpaidupgrade": _upgrade,
        "anongiftpaidupgrade": _upgrade,
        "primepaidupgrade": _upgrade,
        "submysterygift": _mass_gift,
        "anonsubmysterygift": _mass_gift,
        "subgift": _gift,
        "anonsubgift": _gift,
        "charitydonation": _charity,
        "onetapgiftredeemed": _one_tap,
        "raid": _raid,
        "announcement": _announcement,
    }


def mirrored(tags: Mapping[str, str]) -> bool:
    """Shared chat: a message or notice that happened in another channel."""
    source, room = tags.get("source-room-id", ""), tags.get("room-id", "")
    return bool(source and room and source != room)


def _plan(tags: Mapping[str, str], default: str = "1000") -> tuple[str, float]:
    plan = tags.get("msg-param-sub-plan") or default
    return TIER_NAME.get(plan, plan), TIER_PRICE.get(plan, 0.0)
