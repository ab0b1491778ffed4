"""Open platform commands (``LIVE_OPEN_PLATFORM_*``) → ChatEvent / Retraction.

Users are named by ``open_id`` (per app) with ``union_id`` (per developer) as an alternative id,
never a uid: the platform does not give one. Money: gift and guard prices are in 金瓜子/电池
thousandths (1000 = 1 CNY); super chat ``rmb`` is CNY.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ishowtts.connectors import ChatEvent, Kind, Outcome, Recent, Retraction, Status, User

from .fields import _ROLE, GOLD_PER_CNY, PLATFORM, MalformedCommand, _data, _int, _map, _str

PREFIX = "LIVE_OPEN_PLATFORM_"
# Bounds on what the platform says (a count or price past these is not a real gift, and an
# unbounded one would overflow the float of the amount).
MAX_COUNT = 1_000_000
MAX_PRICE = 100_000_000  # thousandths of a CNY: 100,000 CNY for one item


def _bounded(value: Any, hi: int, default: int = 0) -> int:
    n = _int(value, default)
    if not 0 <= n <= hi:
        raise MalformedCommand(f"{n} is out of range (0..{hi})")
    return n


class OpenCommandMapper:
    def __init__(
        self,
        room: str = "",
        memory: int = 4096,
        mirror: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.room = room
        self.mirror = mirror
        self.recent = Recent(memory, clock)
        self._handlers: dict[str, Callable[[Mapping[str, Any]], Outcome]] = {
            "DM": self._dm,
            "DM_MIRROR": self._dm_mirror,
            "SEND_GIFT": self._gift,
            "SUPER_CHAT": self._super_chat,
            "SUPER_CHAT_DEL": self._super_chat_del,
            "GUARD": self._guard,
            "LIKE": self._like,
            "LIVE_ROOM_ENTER": self._enter,
            "LIVE_START": lambda _m: Outcome(Status.NOTICE, note="live"),
            "LIVE_END": lambda _m: Outcome(Status.NOTICE, note="preparing"),
            "INTERACTION_END": self._interaction_end,
        }

    def translate(self, msg: Any) -> Outcome:
        if not isinstance(msg, Mapping):
            raise MalformedCommand("a command must be a JSON object")
        cmd = msg.get("cmd")
        if not isinstance(cmd, str) or not cmd:
            raise MalformedCommand("no 'cmd' string")
        handler = self._handlers.get(cmd.removeprefix(PREFIX)) if cmd.startswith(PREFIX) else None
        if handler is None:
            return Outcome(Status.UNKNOWN, note=cmd)
        try:
            return handler(msg)
        except MalformedCommand:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise MalformedCommand(f"{cmd}: {type(exc).__name__}: {exc}") from None

    def _user(self, d: Mapping[str, Any], medal: bool = True) -> User:
        open_id = _str(d["open_id"])
        if not open_id:
            raise MalformedCommand("no open_id")
        union_id = _str(d.get("union_id"))
        return User(
            id=open_id,
            name=_str(d.get("uname")),
            guard_level=_int(d.get("guard_level")),
            medal_level=_int(d.get("fans_medal_level")) if medal else 0,
            medal_name=_str(d.get("fans_medal_name")) if medal else "",
            is_moderator=_int(d.get("is_admin")) == 1,
            alt_ids=(union_id,) if union_id and union_id != open_id else (),
        )

    def _event(self, kind: Kind, user: User, **fields: Any) -> Outcome:
        return Outcome(Status.EVENT, (ChatEvent(PLATFORM, self.room, kind, user, **fields),))

    def _dm(self, msg: Mapping[str, Any]) -> Outcome:
        d = _data(msg)
        return self._event(
            Kind.DANMAKU,
            self._user(d),
            text=_str(d["msg"]),
            raw_id=_str(d.get("msg_id")),
            reply_to=_str(d.get("reply_uname")),
            sticker=_int(d.get("dm_type")) == 1,  # 1: an emoji sticker, the text is its name
        )

    def _dm_mirror(self, msg: Mapping[str, Any]) -> Outcome:
        if not self.mirror:
            return Outcome(Status.IGNORED, note="DM_MIRROR")
        return self._dm(msg)

    def _gift(self, msg: Mapping[str, Any]) -> Outcome:
        d = _data(msg)
        count = max(1, _bounded(d.get("gift_num"), MAX_COUNT, 1))
        # r_price is what was really paid for one (discounts); free gifts may carry a price.
        unit = _bounded(d.get("r_price"), MAX_PRICE) or _bounded(d.get("price"), MAX_PRICE)
        paid = bool(d.get("paid", True))
        return self._event(
            Kind.GIFT,
            self._user(d),
            amount=unit * count / GOLD_PER_CNY if paid else 0.0,
            gift_name=_str(d.get("gift_name")),
            gift_count=count,
            raw_id=_str(d.get("msg_id")),
        )

    def _super_chat(self, msg: Mapping[str, Any]) -> Outcome:
        d = _data(msg)
        return self._event(
            Kind.SUPER_CHAT,
            self._user(d),
            text=_str(d.get("message")),
            amount=float(_bounded(d.get("rmb"), MAX_PRICE)),
            gift_name="醒目留言",
            raw_id=_str(d["message_id"]),  # what SUPER_CHAT_DEL names
        )

    def _super_chat_del(self, msg: Mapping[str, Any]) -> Outcome:
        ids = _data(msg).get("message_ids")
        if not isinstance(ids, list) or not ids:
            raise MalformedCommand("SUPER_CHAT_DEL without message_ids")
        raw = tuple(_str(i) for i in ids)
        return Outcome(Status.RETRACTION, (Retraction(PLATFORM, raw_ids=raw, reason="deleted"),))

    def _guard(self, msg: Mapping[str, Any]) -> Outcome:
        d = _data(msg)
        info = {**_map(d.get("user_info")), **{k: d[k] for k in ("guard_level",) if k in d}}
        level = _int(d.get("guard_level"))
        months = max(1, _bounded(d.get("guard_num"), MAX_COUNT, 1))
        return self._event(
            Kind.GUARD,
            self._user(info, medal=False),
            amount=_bounded(d.get("price"), MAX_PRICE) * months / GOLD_PER_CNY,
            gift_name=_ROLE.get(level, ""),
            gift_count=months,
            raw_id=_str(d.get("msg_id")),
        )

    def _like(self, msg: Mapping[str, Any]) -> Outcome:
        d = _data(msg)
        return self._event(
            Kind.LIKE,
            self._user(d),
            gift_count=max(1, _bounded(d.get("like_count"), MAX_COUNT, 1)),
            raw_id=_str(d.get("msg_id")),
        )

    def _enter(self, msg: Mapping[str, Any]) -> Outcome:
        d = _data(msg)
        return self._event(Kind.ENTER, self._user(d, medal=False), raw_id=_str(d.get("msg_id")))

    def _interaction_end(self, msg: Mapping[str, Any]) -> Outcome:
        return Outcome(Status.NOTICE, note=f"interaction_end:{_str(_data(msg).get('game_id'))}")
