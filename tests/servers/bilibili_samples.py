"""Real-looking Bilibili live commands, shaped like what the web client receives (trimmed of
display-only fields). Ids, names and prices are made up."""

from __future__ import annotations

import base64
import json
from typing import Any

from ishowtts_plugins.bilibili import protobuf

ROOM = 21452505


def danmu(
    text: str,
    uid: int = 1001,
    name: str = "小明",
    dmid: int = 1_700_000_000_000_000_001,
    guard: int = 0,
    medal: tuple[int, str] | None = (21, "粉丝团"),
    admin: int = 0,
    reply_to: str = "",
    sticker: bool = False,
) -> dict[str, Any]:
    extra = {
        "send_from_me": False, "mode": 0, "color": 16777215, "dm_type": 1 if sticker else 0,
        "font_size": 25, "content": text, "dmid": dmid, "id_str": f"{dmid:x}",
        "reply_uname": reply_to, "reply_mid": 2002 if reply_to else 0,
        "emots": None, "show_reply": True,
    }  # fmt: skip
    emoticon = (
        {"emoticon_unique": "upower_[doge]", "url": "https://i0.hdslb.com/x.png",
         "width": 162, "height": 162, "in_player_area": 1, "bulge_display": 1}
        if sticker else "{}"
    )  # fmt: skip
    meta = [
        0, 1, 25, 16777215, 1_719_000_000_123, 1_719_000_000, 0, "c23b254e", 0, 0, 0, "", 1 if
        sticker else 0, emoticon, "{}",
        {"mode": 0, "show_player_type": 0, "extra": json.dumps(extra, ensure_ascii=False),
         "user": {"uid": uid, "base": {"name": name, "face": "https://i0.hdslb.com/f.jpg"}}},
        {"activity_identity": "", "activity_source": 0, "not_show": 0}, 0,
    ]  # fmt: skip
    medal_list = (
        [medal[0], medal[1], "主播", ROOM, 398668, "", 0, 6809855, 398668, 6850801, guard, 1, 7777]
        if medal else []
    )  # fmt: skip
    info = [
        meta, text, [uid, name, admin, 0, 0, 10000, 1, ""], medal_list,
        [12, 0, 6406234, ">50000", 0], ["", ""], 0, guard, None,
        {"ts": 1_719_000_000, "ct": "6B5F0AF6"}, 0, 0, None, None, 0, 105, [22], None,
    ]  # fmt: skip
    return {"cmd": "DANMU_MSG", "info": info, "dm_v2": ""}


def super_chat(sc_id: int = 9_100_001, price: int = 30, jpn: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(sc_id) if jpn else sc_id, "uid": "3003" if jpn else 3003, "price": price,
        "rate": 1000, "message": "主播唱一首晴天吧", "message_font_color": "#A3F6FF",
        "background_color": "#EDF5FF", "start_time": 1_719_000_100, "end_time": 1_719_000_160,
        "time": 60, "token": "A1B2C3", "trans_mark": 0, "ts": 1_719_000_100,
        "gift": {"gift_id": 12000, "gift_name": "醒目留言", "num": 1},
        "medal_info": {"anchor_roomid": ROOM, "anchor_uname": "主播", "medal_level": 12,
                       "medal_name": "粉丝团", "guard_level": 3, "icon_id": 0},
        "user_info": {"uname": "氪金大佬", "face": "https://i0.hdslb.com/f.jpg",
                      "guard_level": 3, "is_vip": 0, "manager": 0, "user_level": 20},
    }  # fmt: skip
    if jpn:
        data["message_jpn"] = "晴天を歌ってください"
    return {"cmd": "SUPER_CHAT_MESSAGE_JPN" if jpn else "SUPER_CHAT_MESSAGE", "data": data,
            "roomid": str(ROOM)}  # fmt: skip


def super_chat_delete(*ids: int) -> dict[str, Any]:
    return {"cmd": "SUPER_CHAT_MESSAGE_DELETE", "data": {"ids": list(ids)}, "roomid": ROOM}


def send_gift(
    name: str = "粉丝团灯牌", price: int = 1000, num: int = 1, coin: str = "gold",
    combo: str = "batch:gift:combo_id:4004:21452505:31164:1719000200.1234", tid: str = "1719000200112233445",
) -> dict[str, Any]:  # fmt: skip
    return {
        "cmd": "SEND_GIFT",
        "data": {
            "action": "投喂", "batch_combo_id": combo, "coin_type": coin, "giftId": 31164,
            "giftName": name, "giftType": 0, "guard_level": 0, "num": num, "price": price,
            "total_coin": price * num, "uid": 4004, "uname": "送礼的人", "tid": tid,
            "rnd": "1719000200", "timestamp": 1_719_000_200,
            "medal_info": {"medal_level": 5, "medal_name": "粉丝团", "guard_level": 0},
            "combo_send": None, "blind_gift": None,
        },
    }  # fmt: skip


def combo_send(combo: str, total: int = 10, coin: int = 1000) -> dict[str, Any]:
    return {
        "cmd": "COMBO_SEND",
        "data": {
            "action": "投喂", "batch_combo_id": combo, "batch_combo_num": total, "combo_id": combo,
            "combo_num": total, "combo_total_coin": coin, "gift_id": 31036, "gift_name": "小花花",
            "gift_num": 0, "total_num": total, "uid": 5005, "uname": "连击王",
            "medal_info": {"medal_level": 3, "medal_name": "粉丝团"}, "is_show": 1,
        },
    }  # fmt: skip


def guard_buy(uid: int = 6006, level: int = 3, num: int = 1) -> dict[str, Any]:
    return {
        "cmd": "GUARD_BUY",
        "data": {"uid": uid, "username": "上舰的人", "guard_level": level, "num": num,
                 "price": 198000, "gift_id": 10003, "gift_name": "舰长",
                 "start_time": 1_719_000_300, "end_time": 1_719_000_300},
    }  # fmt: skip


def user_toast(uid: int = 6006, level: int = 3, num: int = 1) -> dict[str, Any]:
    return {
        "cmd": "USER_TOAST_MSG",
        "data": {"uid": uid, "username": "上舰的人", "guard_level": level, "num": num,
                 "price": 198000, "role_name": "舰长", "unit": "月", "anchor_show": True,
                 "toast_msg": "<%上舰的人%> 开通了舰长", "payflow_id": "2406211234567890",
                 "start_time": 1_719_000_300, "end_time": 1_719_000_300, "effect_id": 397},
    }  # fmt: skip


def user_toast_v2(uid: int = 7007, level: int = 2) -> dict[str, Any]:
    return {
        "cmd": "USER_TOAST_MSG_V2",
        "data": {
            "sender_uinfo": {"uid": uid, "base": {"name": "提督大人", "face": "x.jpg"}},
            "guard_info": {"guard_level": level, "role_name": "提督", "room_guard_count": 88,
                           "start_time": 1_719_000_400, "end_time": 1_719_000_400},
            "pay_info": {"payflow_id": "2406219876543210", "price": 1998000, "num": 1,
                         "unit": "月"},
            "gift_info": {"gift_id": 10002}, "option": {"anchor_show": True},
        },
    }  # fmt: skip


def interact(msg_type: int, uid: int = 8008, name: str = "路人甲") -> dict[str, Any]:
    return {
        "cmd": "INTERACT_WORD",
        "data": {"uid": uid, "uname": name, "msg_type": msg_type, "roomid": ROOM,
                 "timestamp": 1_719_000_500, "score": 1_719_000_500_000,
                 "fans_medal": {"medal_level": 4, "medal_name": "粉丝团", "guard_level": 0,
                                "target_id": 7777},
                 "identities": [1], "is_spread": 0},
    }  # fmt: skip


def interact_v2(msg_type: int, uid: int = 9009, name: str = "新观众") -> dict[str, Any]:
    medal = protobuf.encode([(1, 7777), (2, 6), (3, "粉丝团"), (9, 3)])
    body = protobuf.encode(
        [(1, uid), (2, name), (3, "#00D1F1"), (4, 1), (5, msg_type), (6, ROOM),
         (7, 1_719_000_600), (8, 1_719_000_600_000), (9, medal), (10, 0)]
    )  # fmt: skip
    return {
        "cmd": "INTERACT_WORD_V2",
        "data": {"dmscore": 12, "pb": base64.b64encode(body).decode()},
    }


def recall(dmid: int) -> dict[str, Any]:
    return {"cmd": "RECALL_DANMU_MSG", "data": {"recall_type": 0, "target_id": dmid}}


LOG_IN_NOTICE = {
    "cmd": "LOG_IN_NOTICE",
    "data": {
        "notice_msg": "为保护用户隐私，未登录无法查看他人昵称",
        "image_web": "",
        "image_app": "",
    },
}
LIVE = {"cmd": "LIVE", "live_key": "512345678901234567", "voice_background": "",
        "sub_session_key": "512345678901234567sub_time:1719000000", "live_platform": "pc",
        "live_model": 0, "roomid": ROOM, "live_time": 1_719_000_000}  # fmt: skip
PREPARING = {"cmd": "PREPARING", "roomid": str(ROOM)}
WATCHED = {"cmd": "WATCHED_CHANGE", "data": {"num": 12345, "text_small": "1.2万"}}
NEW_CMD = {"cmd": "SOMETHING_NEW_FROM_2030", "data": {"x": 1}}


def dm_v2(id_str: str = "", content: str = "", uid: int = 0, name: str = "") -> str:
    """DANMU_MSG's base64 protobuf copy, laid out as a recorded one: 1 id_str, 6 content,
    20 user (1 uid, 2 name, 4 face, 11 medal: 1 level, 2 name)."""
    medal = protobuf.encode([(1, 20), (2, "粉丝团"), (4, 13081892)])
    user = protobuf.encode([(1, uid), (2, name), (4, "https://i1.hdslb.com/f.webp"), (11, medal)])
    body = protobuf.encode(
        [(1, id_str), (2, 1), (3, 25), (6, content), (7, 1_719_000_000), (20, user)]
    )
    return base64.b64encode(body).decode()


def danmu_mirror(text: str, dmid: int) -> dict[str, Any]:
    return {**danmu(text, dmid=dmid), "cmd": "DANMU_MSG_MIRROR"}


def send_gift_v2(
    gifts: list[tuple[str, int, int, str]], uid: int = 4004, name: str = "送礼的人"
) -> dict[str, Any]:
    """SEND_GIFT_V2: one sender, several gifts given as (name, num, unit price, tid)."""
    medal = protobuf.encode([(1, 7777), (4, ROOM), (5, 5), (6, "粉丝团")])
    items = [
        protobuf.encode([(1, 31164), (2, g), (3, n), (4, 0), (5, p), (7, p * n), (8, "gold"),
                         (9, tid), (10, 1_719_000_200), (12, "1719000200"), (18, "投喂")])
        for g, n, p, tid in gifts
    ]  # fmt: skip
    body = protobuf.encode(
        [(1, uid), (2, name), (3, "f.jpg"), (5, 0), (8, medal)] + [(10, i) for i in items]
    )
    return {"cmd": "SEND_GIFT_V2", "data": {"pb": base64.b64encode(body).decode()}}


# -- the open platform (LIVE_OPEN_PLATFORM_*), shaped like its documentation's examples --------
OPEN_ROOM = 22_334_455
ANCHOR = {"uid": 0, "open_id": "anchor-open-id", "union_id": "anchor-union", "uname": "主播",
          "uface": "a.jpg"}  # fmt: skip


def _open_user(open_id: str, name: str) -> dict[str, Any]:
    return {"open_id": open_id, "union_id": f"U-{open_id}", "uname": name, "uface": "f.jpg"}


def _medal() -> dict[str, Any]:
    return {"fans_medal_level": 7, "fans_medal_name": "粉丝团", "fans_medal_wearing_status": True}


def open_dm(
    text: str, msg_id: str, open_id: str = "o-alice", name: str = "爱丽丝"
) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_DM", "data": {
        **_open_user(open_id, name), **_medal(), "timestamp": 1_719_000_000, "room_id": OPEN_ROOM,
        "msg": text, "msg_id": msg_id, "guard_level": 0, "emoji_img_url": "", "dm_type": 0,
        "glory_level": 10, "reply_open_id": "", "reply_uname": "", "is_admin": 0,
    }}  # fmt: skip


def open_dm_mirror(text: str, msg_id: str) -> dict[str, Any]:
    return {**open_dm(text, msg_id), "cmd": "LIVE_OPEN_PLATFORM_DM_MIRROR"}


def open_gift(msg_id: str, num: int = 2, price: int = 1000, paid: bool = True) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_SEND_GIFT", "data": {
        **_open_user("o-bob", "鲍勃"), **_medal(), "room_id": OPEN_ROOM, "gift_id": 31164,
        "gift_name": "粉丝团灯牌", "gift_num": num, "price": price, "r_price": price,
        "paid": paid, "guard_level": 0, "timestamp": 1_719_000_100, "anchor_info": ANCHOR,
        "msg_id": msg_id, "gift_icon": "g.png", "combo_gift": False,
    }}  # fmt: skip


def open_super_chat(message_id: int, rmb: int = 30) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_SUPER_CHAT", "data": {
        **_open_user("o-carol", "卡罗尔"), **_medal(), "room_id": OPEN_ROOM,
        "message_id": message_id, "message": "唱首歌吧", "rmb": rmb, "timestamp": 1_719_000_200,
        "start_time": 1_719_000_200, "end_time": 1_719_000_260, "guard_level": 3,
        "msg_id": f"sc-{message_id}",
    }}  # fmt: skip


def open_super_chat_del(*message_ids: int) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_SUPER_CHAT_DEL", "data": {
        "room_id": OPEN_ROOM, "message_ids": list(message_ids), "msg_id": "del-1"}}  # fmt: skip


def open_guard(msg_id: str, level: int = 3, num: int = 1) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_GUARD", "data": {
        "user_info": _open_user("o-dave", "戴夫"), "guard_level": level, "guard_num": num,
        "guard_unit": "月", "price": 198000, **_medal(), "room_id": OPEN_ROOM, "msg_id": msg_id,
        "timestamp": 1_719_000_300,
    }}  # fmt: skip


def open_like(msg_id: str, count: int = 5) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_LIKE", "data": {
        **_open_user("o-erin", "艾琳"), **_medal(), "timestamp": 1_719_000_400,
        "room_id": OPEN_ROOM, "like_text": "为主播点赞了", "like_count": count, "msg_id": msg_id,
    }}  # fmt: skip


def open_enter(msg_id: str) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_LIVE_ROOM_ENTER", "data": {
        **_open_user("o-frank", "弗兰克"), "room_id": OPEN_ROOM, "timestamp": 1_719_000_500,
        "msg_id": msg_id,
    }}  # fmt: skip


def open_live(start: bool) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_LIVE_" + ("START" if start else "END"), "data": {
        "room_id": OPEN_ROOM, "open_id": ANCHOR["open_id"], "union_id": ANCHOR["union_id"],
        "timestamp": 1_719_000_000, "area_name": "单机游戏", "title": "测试直播",
        "msg_id": "live-" + str(start),
    }}  # fmt: skip


def open_interaction_end(game_id: str) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_INTERACTION_END",
            "data": {"game_id": game_id, "timestamp": 1_719_000_900}}  # fmt: skip
