"""Douyu chat messages (STT objects, by their ``type``) → ChatEvent / Retraction.

Pure: the connector hands each message's fields (``stt.loads``) to ``DouyuMapper.translate``.
Money in CNY: a gift's price comes from the room's gift list (``GiftPrice``, in 分 of 鱼翅,
the paid currency; 鱼丸 gifts are free), a super danmaku (``comm_chatmsg`` of btype
``superDanmu``) carries its price in 分. Nobles (贵族) and diamond fans (钻粉) bought in this
room are read as guards; the platform does not say what they cost, so their amount is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ishowtts.connectors import ChatEvent, Kind, Outcome, Retraction, Status, User

from . import stt

PLATFORM = "douyu"
FEN_PER_CNY = 100.0
MAX_NUMBER = 2**53
NOBLE = {"1": "骑士", "2": "子爵", "3": "伯爵", "4": "公爵", "5": "国王", "6": "皇帝", "7": "游侠"}
ROOM_ADMIN, SUPER_ADMIN = "4", "5"  # chatmsg rg (room role) and pg (platform role)

# Known, nothing to read: rankings, broadcasts from other rooms, level-ups, heartbeats.
QUIET = frozenset(
    {"mrkl", "keeplive", "spbc", "ranklist", "rankup", "frank", "upgrade", "upbc", "blab",
     "synexp", "noble_num_info", "online_noble_list", "rri", "srres", "ssd", "tsgs",
     "fansupgradebroadcast", "configscreen", "gbroadcast", "wiru", "wirt", "qausrespond",
     "pingreq", "onlinegift", "ggbb", "gpbc", "rquizisn", "erquizisn", "al", "ab"}
)  # fmt: skip


class MalformedMessage(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GiftPrice:
    name: str
    fen: int  # price in 分 (0: a free gift)


def number(value: str, default: int = 0) -> int:
    """A numeric field; missing or not a number: ``default``; absurdly large: malformed."""
    try:
        n = int(value)
    except ValueError:
        if value.lstrip("+-").isdigit():  # more digits than int() takes
            raise MalformedMessage(f"number out of range: {value[:40]}") from None
        return default
    if not -MAX_NUMBER <= n <= MAX_NUMBER:
        raise MalformedMessage(f"number out of range: {value[:40]}")
    return n


class DouyuMapper:
    def __init__(self, room: str, prices: Callable[[str], GiftPrice | None] = lambda _: None):
        self.room = room
        self.prices = prices  # gift id → its name and price, from the room's gift list
        self._handlers: dict[str, Callable[[Mapping[str, str]], Outcome]] = {
            "chatmsg": self._chat,
            "dgb": self._gift,
            "comm_chatmsg": self._super_chat,
            "anbc": lambda m: self._noble(m, "开通"),
            "rnewbc": lambda m: self._noble(m, "续费"),
            "odfbc": lambda m: self._diamond_fan(m, "开通钻粉"),
            "rndfbc": lambda m: self._diamond_fan(m, "续费钻粉"),
            "uenter": self._enter,
            "newblackres": self._ban,
            "loginres": lambda _m: Outcome(Status.NOTICE, note="login"),
            "rss": lambda m: Outcome(
                Status.NOTICE, note="live" if m.get("ss") == "1" else "preparing"
            ),
        }

    def translate(self, msg: Mapping[str, str]) -> Outcome:
        kind = msg.get("type", "")
        if not kind:
            raise MalformedMessage("no type")
        handler = self._handlers.get(kind)
        if handler is None:
            return Outcome(Status.IGNORED if kind in QUIET else Status.UNKNOWN, note=kind[:64])
        room = msg.get("rid", "")
        if room and room not in (self.room, "0", "-1"):  # another room's, relayed
            return Outcome(Status.IGNORED, note=f"{kind} of room {room[:20]}")
        return handler(msg)

    def _event(self, kind: Kind, user: User, **fields: object) -> Outcome:
        event = ChatEvent(PLATFORM, self.room, kind, user, **fields)  # type: ignore[arg-type]
        return Outcome(Status.EVENT, (event,))

    def _chat(self, m: Mapping[str, str]) -> Outcome:
        text = m.get("txt", "")
        if not text:
            return Outcome(Status.IGNORED, note="chatmsg without text")
        return self._event(Kind.DANMAKU, _user(m), text=text, raw_id=m.get("cid", ""))

    def _gift(self, m: Mapping[str, str]) -> Outcome:
        gift_id = m.get("gfid", "")
        count = max(1, number(m.get("gfcnt", "1"), 1))
        price = self.prices(gift_id)
        name = m.get("gfn") or (price.name if price else "") or "礼物"
        fen = price.fen if price else 0
        return self._event(
            Kind.GIFT,
            _user(m),
            amount=fen * count / FEN_PER_CNY,
            gift_name=name,
            gift_count=count,
        )

    def _super_chat(self, m: Mapping[str, str]) -> Outcome:
        """``comm_chatmsg`` carries several kinds of pinned message; ``superDanmu`` is the paid
        one (its sender and text in the nested ``chatmsg``)."""
        if m.get("btype") != "superDanmu":
            return Outcome(Status.IGNORED, note=f"comm_chatmsg {m.get('btype', '')[:40]}")
        inner = stt.loads(m.get("chatmsg", ""))
        fen = number(m.get("cprice", "0"))
        if not inner.get("txt") or fen <= 0:
            raise MalformedMessage("superDanmu without text or price")
        return self._event(
            Kind.SUPER_CHAT,
            _user(inner),
            text=inner["txt"],
            amount=fen / FEN_PER_CNY,
            gift_name="超级弹幕",
            raw_id=inner.get("cid", ""),
        )

    def _noble(self, m: Mapping[str, str], verb: str) -> Outcome:
        # Sent to every room; drid is the room it was bought in.
        if m.get("drid") != self.room:
            return Outcome(Status.IGNORED, note=f"noble of room {m.get('drid', '')[:20]}")
        level = m.get("nl", "")
        user = User(id=m.get("uid", ""), name=m.get("unk", ""), guard_level=number(level))
        return self._event(Kind.GUARD, user, gift_name=verb + NOBLE.get(level, "贵族"))

    def _diamond_fan(self, m: Mapping[str, str], what: str) -> Outcome:
        user = User(id=m.get("uid", ""), name=m.get("nick", ""), medal_name=m.get("bn", ""))
        return self._event(Kind.GUARD, user, gift_name=what)

    def _enter(self, m: Mapping[str, str]) -> Outcome:
        return self._event(Kind.ENTER, _user(m))

    def _ban(self, m: Mapping[str, str]) -> Outcome:
        """A moderator muted or banned a viewer (``did``): that viewer's queued lines go."""
        target = m.get("did", "")
        if not target or m.get("ret", "0") != "0":  # ret != 0: the operation failed
            return Outcome(Status.IGNORED, note="newblackres without effect")
        return Outcome(Status.RETRACTION, (Retraction(PLATFORM, user_id=target, reason="ban"),))


def _user(m: Mapping[str, str]) -> User:
    return User(
        id=m.get("uid", "") or m.get("nn", ""),
        name=m.get("nn", ""),
        guard_level=number(m.get("nl", "0")),  # noble level
        medal_level=number(m.get("bl", "0")),
        medal_name=m.get("bnn", ""),
        is_moderator=m.get("rg") == ROOM_ADMIN or m.get("pg") == SUPER_ADMIN,
    )
