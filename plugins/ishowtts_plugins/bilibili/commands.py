"""Bilibili live commands (the JSON of op-5 notices) → ChatEvent / Retraction.

Pure and synchronous: the connector feeds each command dict to ``CommandMapper.translate`` and
logs/counts by the returned status. The mapper keeps a bounded memory for the duplicates the
platform sends on purpose (a super chat again as ``SUPER_CHAT_MESSAGE_JPN``, a guard purchase as
both ``GUARD_BUY`` and ``USER_TOAST_MSG``, gift combos as ``SEND_GIFT`` + ``COMBO_SEND``).
Money: gift prices are in 金瓜子 (1000 = 1 CNY); super chat prices are already CNY; red
envelopes (POPULARITY_RED_POCKET_*) are priced in 电池 (10 = 1 CNY).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ishowtts.connectors import ChatEvent, Kind, Outcome, Recent, Retraction, Status, User

from . import danmaku as dm
from . import protobuf as pb
from .fields import (
    _ROLE,
    BATTERY_PER_CNY,
    GOLD_PER_CNY,
    PLATFORM,
    MalformedCommand,
    _data,
    _gift_user,
    _int,
    _map,
    _str,
)

# Commands that arrive all the time and carry nothing to read aloud: counted, never logged.
NOISE = frozenset(
    [
        "WATCHED_CHANGE",
        "ONLINE_RANK_COUNT",
        "ONLINE_RANK_V2",
        "ONLINE_RANK_V3",
        "ONLINE_RANK_TOP3",
        "STOP_LIVE_ROOM_LIST",
        "ROOM_REAL_TIME_MESSAGE_UPDATE",
        "LIKE_INFO_V3_UPDATE",
        "LIKE_INFO_V3_CLICK",
        "ENTRY_EFFECT",
        "ENTRY_EFFECT_MUST_RECEIVE",
        "NOTICE_MSG",
        "WIDGET_BANNER",
        "HOT_RANK_CHANGED",
        "HOT_RANK_CHANGED_V2",
        "POPULAR_RANK_CHANGED",
        "AREA_RANK_CHANGED",
        "DM_INTERACTION",
        "SUPER_CHAT_ENTRANCE",
        "COMMON_NOTICE_DANMAKU",
        "GUARD_HONOR_THOUSAND",
        "ROOM_CHANGE",
        "WIDGET_GIFT_STAR_PROCESS",
        "PK_BATTLE_PROCESS",
        "PK_BATTLE_PROCESS_NEW",
        "PK_BATTLE_START",
        "PK_BATTLE_END",
        "GIFT_STAR_PROCESS",
        "RANK_CHANGED",
        "REVENUE_RANK_CHANGED",
        "ROOM_SKIN_MSG",
    ]
)

INTERACT_KIND = {
    1: (Kind.ENTER, ""),
    2: (Kind.FOLLOW, ""),
    3: (Kind.SHARE, ""),
    4: (Kind.FOLLOW, ""),
    5: (Kind.FOLLOW, ""),
}


class CommandMapper:
    def __init__(
        self,
        room: str,
        memory: int = 4096,
        guard_window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        mirror: bool = False,
        masked_names: bool = False,
        lottery: bool = False,
    ) -> None:
        self.room = room
        self.mirror = mirror  # read DANMU_MSG_MIRROR (a danmaku from another room) too
        self.lottery = lottery  # read the danmaku a lottery or gift storm sends for a viewer
        self.combo_window_s = 60.0  # a COMBO_SEND this soon after V2 gifts sums them up
        self.masked_names = masked_names  # not logged in: names like "用户***" are not names
        self.guard_window_s = guard_window_s
        self.recent = Recent(memory, clock)
        self.memory = memory
        self._ids: OrderedDict[str, str] = OrderedDict()  # any id of a danmaku → its raw_id
        self._handlers: dict[str, Callable[[Mapping[str, Any]], Outcome]] = {
            "DANMU_MSG": self._danmu,
            "DANMU_MSG_MIRROR": self._mirror,
            "SUPER_CHAT_MESSAGE": self._super_chat,
            "SUPER_CHAT_MESSAGE_JPN": self._super_chat,
            "SUPER_CHAT_MESSAGE_DELETE": self._super_chat_delete,
            "SEND_GIFT": self._gift,
            "SEND_GIFT_V2": self._gift_v2,
            "COMBO_SEND": self._combo,
            "GUARD_BUY": lambda m: self._guard_flat(m, "gift_name"),
            "USER_TOAST_MSG": lambda m: self._guard_flat(m, "role_name"),
            "USER_TOAST_MSG_V2": self._user_toast_v2,
            "INTERACT_WORD": self._interact,
            "INTERACT_WORD_V2": self._interact_v2,
            "RECALL_DANMU_MSG": self._recall,
            "ROOM_BLOCK_MSG": self._ban,
            "POPULARITY_RED_POCKET_NEW": self._red_pocket,
            "POPULARITY_RED_POCKET_V2_NEW": self._red_pocket,
            "LOG_IN_NOTICE": lambda _m: Outcome(Status.NOTICE, note="login_notice"),
            "LIVE": lambda _m: Outcome(Status.NOTICE, note="live"),
            "PREPARING": lambda _m: Outcome(Status.NOTICE, note="preparing"),
        }

    @staticmethod
    def command_name(msg: Mapping[str, Any]) -> str:
        cmd = msg.get("cmd")
        if not isinstance(cmd, str) or not cmd:
            raise MalformedCommand("no 'cmd' string")
        return cmd.split(":", 1)[0]  # "DANMU_MSG:4:0:2:2:2:0" is a DANMU_MSG

    def translate(self, msg: Any) -> Outcome:
        """Raises MalformedCommand when a known command does not have the expected shape."""
        if not isinstance(msg, Mapping):
            raise MalformedCommand("a command must be a JSON object")
        cmd = self.command_name(msg)
        handler = self._handlers.get(cmd)
        if handler is None:
            return Outcome(Status.IGNORED if cmd in NOISE else Status.UNKNOWN, note=cmd)
        try:
            return handler(msg)
        except MalformedCommand:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise MalformedCommand(f"{cmd}: {type(exc).__name__}: {exc}") from None

    def _chat_event(self, kind: Kind, user: User, **fields: Any) -> ChatEvent:
        if self.masked_names and _MASKED.search(user.name):
            # Read as the neutral word (speech.anonymous), never as "用户***".
            user = dataclasses.replace(user, name="")
        return ChatEvent(PLATFORM, self.room, kind, user, **fields)

    def _event(self, kind: Kind, user: User, **fields: Any) -> Outcome:
        return Outcome(Status.EVENT, (self._chat_event(kind, user, **fields),))

    # -- danmaku -------------------------------------------------------------------------------
    def _danmu(self, msg: Mapping[str, Any]) -> Outcome:
        info = msg["info"]
        meta, text, who = info[0], info[1], info[2]
        if not isinstance(text, str) or not isinstance(who, list) or not isinstance(meta, list):
            raise MalformedCommand("DANMU_MSG: info has the wrong shape")
        if dm.is_automatic(meta) and not self.lottery:
            return Outcome(Status.IGNORED, note="DANMU_MSG lottery")
        medal = info[3] if len(info) > 3 and isinstance(info[3], list) else []
        guard = _int(info[7]) if len(info) > 7 else 0
        mode_info = _map(meta[15]) if len(meta) > 15 else {}
        extra = dm.extra(mode_info.get("extra"))
        if dm.is_advanced(meta, extra):  # its text is a JSON array around the words
            text = dm.advanced_words(text)
            if not text:
                return Outcome(Status.IGNORED, note="DANMU_MSG advanced without words")
        sticker = (len(meta) > 12 and _int(meta[12]) == 1) or (
            len(meta) > 13 and isinstance(meta[13], Mapping) and bool(meta[13])
        )
        # Which id RECALL_DANMU_MSG's target_id names is not documented: remember them all.
        ids = [_str(extra.get(k) or "") for k in ("dmid", "id_str")]
        ids.append(_str(meta[5] or "") if len(meta) > 5 and not isinstance(meta[5], bool) else "")
        # dm_v2 (base64 protobuf) repeats the danmaku; it fills what the JSON leaves out.
        v2 = dm.dm_v2(msg.get("dm_v2"))
        ids.append(v2.id_str)
        raw_id = next((i for i in ids if i), "")
        for alias in ids:
            if alias:
                self._ids[alias] = raw_id
        while len(self._ids) > self.memory:
            self._ids.popitem(last=False)
        uid = _str(who[0])
        # Without a login the uid is 0 for everyone; the sender's hash (info[0][7]) still
        # tells users apart, so a per-user rate limit or dedupe does not lump them together.
        user_hash = _str(meta[7]) if len(meta) > 7 and isinstance(meta[7], str) else ""
        hashed = f"hash:{user_hash}" if user_hash else ""
        if uid in ("", "0"):
            uid = v2.uid or hashed
        # A mute given from a line that only had the hash still names this user once a
        # uid is known (logged in, or dm_v2 carries it).
        alt_ids = (hashed,) if hashed and hashed != uid else ()
        user = User(
            id=uid,
            name=_str(who[1]) or v2.name,
            guard_level=guard or (_int(medal[10]) if len(medal) > 10 else 0),
            medal_level=_int(medal[0]) if medal else 0,
            medal_name=_str(medal[1]) if len(medal) > 1 else "",
            is_moderator=len(who) > 2 and _int(who[2]) == 1,
            alt_ids=alt_ids,
        )
        reply_to = _str(extra.get("reply_uname") or "")
        return self._event(
            Kind.DANMAKU, user, text=text or v2.content, raw_id=raw_id, reply_to=reply_to,
            sticker=sticker,
        )  # fmt: skip

    def _mirror(self, msg: Mapping[str, Any]) -> Outcome:
        if not self.mirror:  # another room's danmaku: not this stream's chat unless asked
            return Outcome(Status.IGNORED, note="DANMU_MSG_MIRROR")
        return self._danmu(msg)

    def _recall(self, msg: Mapping[str, Any]) -> Outcome:
        target = _str(_data(msg).get("target_id"))
        if not target:
            raise MalformedCommand("RECALL_DANMU_MSG without target_id")
        ids = tuple(dict.fromkeys((self._ids.get(target, target), target)))
        return Outcome(Status.RETRACTION, (Retraction(PLATFORM, raw_ids=ids),))

    def _ban(self, msg: Mapping[str, Any]) -> Outcome:
        """A moderator's or the streamer's ban: that viewer's queued lines go. Without a login
        a viewer's danmaku carry the hash of the uid (crc32 in hex), so that id goes too."""
        data = _map(msg.get("data"))
        uid = _str(data.get("uid") or msg.get("uid"))
        if not uid or uid == "0":
            raise MalformedCommand("ROOM_BLOCK_MSG without uid")
        crc = zlib.crc32(uid.encode())
        ids = dict.fromkeys((uid, f"hash:{crc:x}", f"hash:{crc:08x}"))  # unpadded, padded
        return Outcome(
            Status.RETRACTION, tuple(Retraction(PLATFORM, user_id=i, reason="ban") for i in ids)
        )

    def _red_pocket(self, msg: Mapping[str, Any]) -> Outcome:
        """A red envelope (人气红包): a paid gift the room then draws lots for. V1 and V2 can
        both announce one lot."""
        data = _data(msg)
        lot = _str(data.get("lot_id"))
        if lot and self.recent.check_and_add(f"red_pocket:{lot}"):
            return Outcome(Status.DUPLICATE, note=f"red pocket {lot}")
        count = max(1, _int(data.get("num"), 1))
        return self._event(
            Kind.GIFT, _gift_user(data, "uname"),
            amount=_int(data.get("price")) * count / BATTERY_PER_CNY,
            gift_name=_str(data.get("gift_name")) or "红包", gift_count=count,
            raw_id=f"red_pocket:{lot}" if lot else "",
        )  # fmt: skip

    # -- super chat ----------------------------------------------------------------------------
    def _super_chat(self, msg: Mapping[str, Any]) -> Outcome:
        data = _data(msg)
        sc_id = _str(data["id"])
        if self.recent.check_and_add(f"sc:{sc_id}"):
            return Outcome(Status.DUPLICATE, note=f"super chat {sc_id}")
        info, medal = _map(data.get("user_info")), _map(data.get("medal_info"))
        user = User(
            id=_str(data.get("uid")),
            name=_str(info.get("uname")),
            guard_level=_int(info.get("guard_level")),
            medal_level=_int(medal.get("medal_level")),
            medal_name=_str(medal.get("medal_name")),
            is_moderator=_int(info.get("manager")) == 1,
        )
        return self._event(
            Kind.SUPER_CHAT,
            user,
            text=_str(data.get("message")),
            amount=float(_int(data.get("price"))),
            gift_name="醒目留言",
            raw_id=sc_id,
        )

    def _super_chat_delete(self, msg: Mapping[str, Any]) -> Outcome:
        ids = _data(msg).get("ids")
        if not isinstance(ids, list) or not ids:
            raise MalformedCommand("SUPER_CHAT_MESSAGE_DELETE without ids")
        return Outcome(
            Status.RETRACTION, (Retraction(PLATFORM, raw_ids=tuple(_str(i) for i in ids)),)
        )

    # -- gifts ---------------------------------------------------------------------------------
    def _gift(self, msg: Mapping[str, Any]) -> Outcome:
        data = _data(msg)
        combo = _str(data.get("batch_combo_id"))
        if combo:
            self.recent.check_and_add(f"combo:{combo}")
        return Outcome(Status.EVENT, (self._gift_event(
            _gift_user(data, "uname"), _str(data.get("giftName")), _int(data.get("num"), 1),
            _int(data.get("price")), _int(data.get("total_coin")),
            _str(data.get("coin_type", "gold")), _str(data.get("tid")),
        ),))  # fmt: skip

    def _gift_v2(self, msg: Mapping[str, Any]) -> Outcome:
        """SEND_GIFT_V2 (2026-08): data.pb, one sender and a list of gifts. Each gift's tid is
        SEND_GIFT's, so the connector's id dedupe drops the copy when both arrive."""
        try:
            raw = base64.b64decode(_str(_data(msg)["pb"]), validate=True)
            m = pb.message(raw)
            medal = pb.sub(m.get(8))
            gifts = [pb.message(v) for n, v in pb.fields(raw) if n == 10 and isinstance(v, bytes)]
        except (binascii.Error, pb.WireError) as exc:
            raise MalformedCommand(f"SEND_GIFT_V2: bad pb: {exc}") from None
        if not gifts:
            raise MalformedCommand("SEND_GIFT_V2 without gifts")
        user = User(
            id=str(pb.integer(m.get(1))),
            name=pb.text(m.get(2)),
            guard_level=pb.integer(m.get(5)),
            medal_level=pb.integer(medal.get(5)),
            medal_name=pb.text(medal.get(6)),
        )
        items = tuple(self._gift_v2_item(user, g) for g in gifts)
        return Outcome(Status.EVENT, items)

    def _gift_v2_item(self, user: User, g: dict[int, pb.Value]) -> ChatEvent:
        name, num, price = pb.text(g.get(2)), pb.integer(g.get(3)), pb.integer(g.get(5))
        total, coin, tid = pb.integer(g.get(7)), pb.text(g.get(8)) or "gold", pb.text(g.get(9))
        # V2 carries no batch combo id: remember the sender and gift, so the COMBO_SEND that
        # sums these gifts up is recognised as a repeat (SEND_GIFT's batch id does it for v1).
        self.recent.check_and_add(f"v2gift:{user.id}:{name}")
        return self._gift_event(user, name, num, price, total, coin, tid)

    def _gift_event(
        self, user: User, name: str, num: int, price: int, total_coin: int, coin: str, tid: str
    ) -> ChatEvent:
        count = max(1, num)
        total = (total_coin or price * count) if coin == "gold" else 0  # silver gifts are free
        return self._chat_event(
            Kind.GIFT,
            user,
            amount=total / GOLD_PER_CNY,
            gift_name=name,
            gift_count=count,
            raw_id=tid,
        )

    def _combo(self, msg: Mapping[str, Any]) -> Outcome:
        """A combo summary. Its gifts normally came as SEND_GIFT already (same batch id)."""
        data = _data(msg)
        combo = _str(data.get("batch_combo_id"))
        if combo and self.recent.check_and_add(f"combo:{combo}"):
            return Outcome(Status.DUPLICATE, note=f"combo {combo}")
        v2 = f"v2gift:{_str(data.get('uid'))}:{_str(data.get('gift_name'))}"
        if v2 in self.recent and self.recent.check_and_add(v2, self.combo_window_s):
            return Outcome(Status.DUPLICATE, note=f"combo of SEND_GIFT_V2 {v2}")
        count = max(1, _int(data.get("total_num") or data.get("combo_num"), 1))
        return self._event(
            Kind.GIFT,
            _gift_user(data, "uname"),
            amount=_int(data.get("combo_total_coin")) / GOLD_PER_CNY,
            gift_name=_str(data.get("gift_name")),
            gift_count=count,
            raw_id=combo,
        )

    # -- guard (大航海) -------------------------------------------------------------------------
    def _guard(
        self, uid: str, name: str, level: int, months: int, price: int, role: str
    ) -> Outcome:
        # GUARD_BUY and USER_TOAST_MSG(_V2) describe one purchase; their ids differ.
        if self.recent.check_and_add(f"guard:{uid}:{level}", self.guard_window_s):
            return Outcome(Status.DUPLICATE, note=f"guard {uid}")
        months = max(1, months)
        return self._event(
            Kind.GUARD,
            User(id=uid, name=name, guard_level=level),
            amount=price * months / GOLD_PER_CNY,
            gift_name=role or _ROLE.get(level, ""),
            gift_count=months,
        )

    def _guard_flat(self, msg: Mapping[str, Any], role_key: str) -> Outcome:
        """GUARD_BUY and USER_TOAST_MSG: the same flat fields, the role under its own key."""
        d = _data(msg)
        return self._guard(
            _str(d["uid"]),
            _str(d.get("username")),
            _int(d.get("guard_level")),
            _int(d.get("num"), 1),
            _int(d.get("price")),
            _str(d.get(role_key)),
        )

    def _user_toast_v2(self, msg: Mapping[str, Any]) -> Outcome:
        d = _data(msg)
        sender, guard, pay = (_map(d.get(k)) for k in ("sender_uinfo", "guard_info", "pay_info"))
        return self._guard(
            _str(sender["uid"]),
            _str(_map(sender.get("base")).get("name")),
            _int(guard.get("guard_level")),
            _int(pay.get("num"), 1),
            _int(pay.get("price")),
            _str(guard.get("role_name")),
        )

    # -- enter / follow / share ----------------------------------------------------------------
    def _interact(self, msg: Mapping[str, Any]) -> Outcome:
        d = _data(msg)
        medal = _map(d.get("fans_medal"))
        return self._interaction(
            _int(d.get("msg_type")),
            _str(d["uid"]),
            _str(d.get("uname")),
            _int(medal.get("guard_level")),
            _int(medal.get("medal_level")),
            _str(medal.get("medal_name")),
        )

    def _interact_v2(self, msg: Mapping[str, Any]) -> Outcome:
        # data.pb: base64 protobuf; field numbers as the web client's schema has them.
        try:
            raw = base64.b64decode(_str(_data(msg)["pb"]), validate=True)
            m = pb.message(raw)
            medal = pb.sub(m.get(9))
        except (binascii.Error, pb.WireError) as exc:
            raise MalformedCommand(f"INTERACT_WORD_V2: bad pb: {exc}") from None
        return self._interaction(
            pb.integer(m.get(5)),
            str(pb.integer(m.get(1))),
            pb.text(m.get(2)),
            pb.integer(medal.get(9)),
            pb.integer(medal.get(2)),
            pb.text(medal.get(3)),
        )

    def _interaction(
        self, msg_type: int, uid: str, name: str, guard: int, medal_level: int, medal_name: str
    ) -> Outcome:
        kind_text = INTERACT_KIND.get(msg_type)
        if kind_text is None:
            return Outcome(Status.IGNORED, note=f"INTERACT_WORD type {msg_type}")
        kind, text = kind_text
        user = User(uid, name, guard_level=guard, medal_level=medal_level, medal_name=medal_name)
        return self._event(kind, user, text=text)


_MASKED = re.compile(r"\*{3}")  # how the service masks a name without a login: "用户***"
