"""Every Bilibili command the connector reads, replayed as real-looking JSON."""

from __future__ import annotations

from typing import Any

import pytest

from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.bilibili.commands import CommandMapper, MalformedCommand, Recent
from tests.servers import bilibili_samples as s


def one(mapper: CommandMapper, cmd: dict[str, Any]) -> ChatEvent:
    out = mapper.translate(cmd)
    assert out.status == "event", out
    (event,) = out.items
    assert isinstance(event, ChatEvent)
    return event


def test_danmaku_fields() -> None:
    m = CommandMapper("21452505")
    e = one(m, s.danmu("晚上好", uid=42, name="alice", guard=3, admin=1, reply_to="bob"))
    assert (e.kind, e.text, e.user.id, e.user.name) == (Kind.DANMAKU, "晚上好", "42", "alice")
    assert (e.user.guard_level, e.user.medal_level, e.user.medal_name) == (3, 21, "粉丝团")
    assert e.user.is_moderator and e.reply_to == "bob" and not e.sticker
    assert e.raw_id == "1700000000000000001" and e.platform == "bilibili" and e.room == "21452505"
    sticker = one(m, s.danmu("[dog]", medal=None, sticker=True))
    assert sticker.sticker and sticker.user.medal_level == 0


def test_danmaku_with_suffixed_cmd_and_old_short_info() -> None:
    cmd = {"cmd": "DANMU_MSG:4:0:2:2:2:0", "info": [[0, 1, 25], "old style", [7, "bob"]]}
    e = one(CommandMapper("1"), cmd)
    assert (e.text, e.user.id, e.raw_id, e.user.guard_level) == ("old style", "7", "", 0)


def test_super_chat_and_its_japanese_copy_once() -> None:
    m = CommandMapper("1")
    e = one(m, s.super_chat(sc_id=55, price=50))
    assert (e.kind, e.amount, e.raw_id, e.text) == (Kind.SUPER_CHAT, 50.0, "55", "主播唱一首晴天吧")
    assert e.user.guard_level == 3 and e.user.name == "氪金大佬"
    assert m.translate(s.super_chat(sc_id=55, price=50, jpn=True)).status == "duplicate"
    # The JPN copy can come first: then the plain one is the duplicate.
    assert one(m, s.super_chat(sc_id=56, jpn=True)).raw_id == "56"
    assert m.translate(s.super_chat(sc_id=56)).status == "duplicate"


def test_super_chat_delete_and_recall_are_retractions() -> None:
    m = CommandMapper("1")
    (r,) = m.translate(s.super_chat_delete(55, 56)).items
    assert isinstance(r, Retraction) and r.raw_ids == ("55", "56")
    (r,) = m.translate(s.recall(1_700_000_000_000_000_001)).items
    assert isinstance(r, Retraction) and r.raw_ids == ("1700000000000000001",)


@pytest.mark.parametrize("which", ["dmid", "id_str", "rnd"])
def test_recall_by_any_id_of_the_danmaku_names_its_raw_id(which: str) -> None:
    m = CommandMapper("1")
    msg = s.danmu("oops", dmid=1_700_000_000_000_000_042)
    event = one(m, msg)
    target = {
        "dmid": 1_700_000_000_000_000_042,
        "id_str": f"{1_700_000_000_000_000_042:x}",
        "rnd": msg["info"][0][5],
    }[which]
    (r,) = m.translate(s.recall(target)).items
    assert event.raw_id in r.raw_ids


def test_gifts_in_cny_silver_free_and_combo_not_counted_twice() -> None:
    m = CommandMapper("1")
    g = one(m, s.send_gift(name="小电视飞船", price=1_245_000, num=2, combo="c1"))
    assert (g.kind, g.gift_name, g.gift_count, g.amount) == (Kind.GIFT, "小电视飞船", 2, 2490.0)
    assert one(m, s.send_gift(name="辣条", price=100, num=9, coin="silver", combo="")).amount == 0
    assert m.translate(s.combo_send("c1", total=2, coin=2_490_000)).status == "duplicate"
    c = one(m, s.combo_send("c2", total=10, coin=1000))
    assert (c.gift_name, c.gift_count, c.amount, c.user.name) == ("小花花", 10, 1.0, "连击王")


def test_guard_buy_and_toast_are_one_event() -> None:
    m = CommandMapper("1")
    g = one(m, s.guard_buy(uid=6006, level=3, num=2))
    assert (g.kind, g.gift_name, g.gift_count, g.amount) == (Kind.GUARD, "舰长", 2, 396.0)
    assert g.user.guard_level == 3
    assert m.translate(s.user_toast(uid=6006, level=3, num=2)).status == "duplicate"
    v2 = one(m, s.user_toast_v2(uid=7007, level=2))
    assert (v2.user.name, v2.gift_name, v2.amount) == ("提督大人", "提督", 1998.0)
    assert m.translate(s.guard_buy(uid=7007, level=2)).status == "duplicate"


def test_guard_dedupe_forgets_after_its_window() -> None:
    now = [0.0]
    m = CommandMapper("1", guard_window_s=60, clock=lambda: now[0])
    one(m, s.guard_buy(uid=1))
    now[0] = 61.0  # a renewal a minute later is a new purchase
    one(m, s.user_toast(uid=1))


@pytest.mark.parametrize(
    ("msg_type", "kind", "text"),
    [(1, Kind.ENTER, ""), (2, Kind.FOLLOW, ""), (3, Kind.SHARE, ""), (5, Kind.FOLLOW, "")],
)
def test_interact_word_and_v2(msg_type: int, kind: Kind, text: str) -> None:
    m = CommandMapper("1")
    e = one(m, s.interact(msg_type, uid=8, name="路人"))
    assert (e.kind, e.text, e.user.id, e.user.name, e.user.medal_level) == (
        kind,
        text,
        "8",
        "路人",
        4,
    )
    v2 = one(m, s.interact_v2(msg_type, uid=9, name="新观众"))
    assert (v2.kind, v2.text, v2.user.id, v2.user.name) == (kind, text, "9", "新观众")
    assert (v2.user.medal_level, v2.user.medal_name, v2.user.guard_level) == (6, "粉丝团", 3)


def test_notices_noise_and_unknown() -> None:
    m = CommandMapper("1")
    assert m.translate(s.LOG_IN_NOTICE).note == "login_notice"
    assert (m.translate(s.LIVE).status, m.translate(s.LIVE).note) == ("notice", "live")
    assert m.translate(s.PREPARING).note == "preparing"
    assert m.translate(s.WATCHED).status == "ignored"
    out = m.translate(s.NEW_CMD)
    assert (out.status, out.note) == ("unknown", "SOMETHING_NEW_FROM_2030")
    assert m.translate(s.interact(99)).status == "ignored"


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        {"no": "cmd"},
        {"cmd": 5},
        {"cmd": "DANMU_MSG", "info": 5},
        {"cmd": "DANMU_MSG", "info": [[0], {"x": 1}, [1, "a"]]},
        {"cmd": "DANMU_MSG"},
        {"cmd": "SUPER_CHAT_MESSAGE", "data": {"price": 1}},
        {"cmd": "SUPER_CHAT_MESSAGE", "data": {"id": 1, "price": "lots"}},
        {"cmd": "SEND_GIFT", "data": []},
        {"cmd": "GUARD_BUY", "data": {"uid": {"a": 1}}},
        {"cmd": "INTERACT_WORD_V2", "data": {"pb": "@@not base64@@"}},
        {"cmd": "INTERACT_WORD_V2", "data": {"pb": "CA=="}},
        {"cmd": "RECALL_DANMU_MSG", "data": {}},
        {"cmd": "SUPER_CHAT_MESSAGE_DELETE", "data": {"ids": "1"}},
        {"cmd": "USER_TOAST_MSG_V2", "data": {"sender_uinfo": 3}},
    ],
)
def test_malformed_commands_raise_a_clear_error(cmd: Any) -> None:
    with pytest.raises(MalformedCommand):
        CommandMapper("1").translate(cmd)


def test_recent_memory_is_bounded() -> None:
    r = Recent(size=100)
    for i in range(1000):
        assert not r.check_and_add(str(i))
    assert len(r) == 100 and "999" in r and "0" not in r
    assert r.check_and_add("999")


def test_dm_v2_fills_what_the_json_lacks() -> None:
    m = CommandMapper("1")
    msg = {**s.danmu("", uid=0, name="", dmid=0), "dm_v2": s.dm_v2("abc", "内容", 4242, "真名")}
    msg["info"][0][15]["extra"] = "{}"
    msg["info"][0][5] = ""
    e = m.translate(msg).items[0]
    assert isinstance(e, ChatEvent)
    assert (e.user.id, e.user.name, e.text, e.raw_id) == ("4242", "真名", "内容", "abc")
    # A broken dm_v2 leaves the JSON as it is.
    ok = m.translate({**s.danmu("hi", dmid=5), "dm_v2": "%%%"}).items[0]
    assert isinstance(ok, ChatEvent) and ok.text == "hi"


def test_send_gift_v2_bad_pb_is_malformed_and_names_unmasked_when_logged_in() -> None:
    with pytest.raises(MalformedCommand):
        CommandMapper("1").translate({"cmd": "SEND_GIFT_V2", "data": {"pb": "not base64!"}})
    e = CommandMapper("1").translate(s.danmu("x", name="用户***")).items[0]
    assert isinstance(e, ChatEvent) and e.user.name == "用户***"  # only masked without a login
    e = CommandMapper("1", masked_names=True).translate(s.danmu("x", name="用户***")).items[0]
    assert isinstance(e, ChatEvent) and e.user.name == ""


def test_anonymous_senders_are_told_apart_by_their_hash() -> None:
    m = CommandMapper("1", masked_names=True)
    ids = []
    for dmid, user_hash in ((1, "aaaa1111"), (2, "bbbb2222")):
        msg = s.danmu("x", uid=0, name="用户***", dmid=dmid)
        msg["info"][0][7] = user_hash
        e = m.translate(msg).items[0]
        assert isinstance(e, ChatEvent) and e.user.name == ""
        ids.append(e.user.id)
    assert ids == ["hash:aaaa1111", "hash:bbbb2222"]
    # With a uid known the hash stays one of the user's ids: a mute given from an anonymous
    # line still names them.
    msg = s.danmu("x", uid=1001, dmid=3)
    msg["info"][0][7] = "aaaa1111"
    e = m.translate(msg).items[0]
    assert isinstance(e, ChatEvent) and e.user.id == "1001"
    assert e.user.alt_ids == ("hash:aaaa1111",)


def test_combo_after_send_gift_v2_is_a_repeat() -> None:
    now = [0.0]
    m = CommandMapper("1", clock=lambda: now[0])
    first = m.translate(s.send_gift_v2([("小花花", 1, 100, "t9")], uid=5005))
    assert first.status == "event" and len(first.items) == 1
    assert m.translate(s.combo_send("", total=10)).status == "duplicate"
    now[0] = 1000.0  # long after: a combo of its own
    assert m.translate(s.combo_send("", total=10)).status == "event"
    other = CommandMapper("1").translate(s.combo_send("", total=10))
    assert other.status == "event"  # no V2 gift before it: read
