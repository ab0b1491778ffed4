"""Douyu's framing and STT, and the mapper on real recorded messages (tests/servers/douyu_real.py
says where each is from)."""

from __future__ import annotations

import struct

import pytest

from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.douyu import stt
from ishowtts_plugins.douyu.client import parse_gift_list
from ishowtts_plugins.douyu.commands import DouyuMapper, GiftPrice, MalformedMessage
from tests.servers import douyu as server
from tests.servers import douyu_real as real


def test_packets_are_length_prefixed_little_endian_with_a_nul() -> None:
    frame = stt.encode("type@=mrkl/")
    assert frame == struct.pack("<IIHBB", 20, 20, 689, 0, 0) + b"type@=mrkl/\0"
    assert server.bodies(stt.encode("txt@=弹幕/")) == [(689, "txt@=弹幕/")]


def test_framer_splits_joins_and_bounds() -> None:
    f = stt.Framer()
    both = server.packet("a@=1/") + server.packet("b@=2/")
    assert f.feed(both[:7]) == []  # a header cut in two
    assert f.feed(both[7:30]) == ["a@=1/"]
    assert f.feed(both[30:]) == ["b@=2/"]
    huge = struct.pack("<IIHBB", 1 << 30, 1 << 30, 690, 0, 0)
    with pytest.raises(stt.FrameError) as err:
        f.feed(server.packet("c@=3/") + huge)
    assert err.value.bodies == ["c@=3/"]
    assert f.feed(server.packet("d@=4/")) == ["d@=4/"]  # the bad tail was dropped
    with pytest.raises(stt.FrameError):
        f.feed(struct.pack("<IIHBB", 20, 21, 690, 0, 0) + b"x" * 16)
    with pytest.raises(stt.FrameError):
        f.feed(server.packet("e@=5/", kind=700))


def test_stt_escapes_and_nests() -> None:
    fields = stt.loads("type@=chatmsg/txt@=https:@S@Sexample.com@S@A=x/nn@=a@Ab/")
    assert fields == {"type": "chatmsg", "txt": "https://example.com/@=x", "nn": "a@b"}
    assert stt.loads(stt.dumps({"type": "x", "txt": "a/b@c"})) == {"type": "x", "txt": "a/b@c"}
    nested = stt.loads(real.GIFT_824)["el"]
    assert [stt.loads(i) for i in stt.items(nested)] == [
        {"eid": "1500000113", "etp": "1", "sc": "1", "ef": "0"}
    ]
    assert len(stt.loads("k@=v/" * 10_000)) == 1  # one key, however often
    assert len(stt.loads("".join(f"k{i}@=v/" for i in range(10_000)))) == stt.MAX_FIELDS


def one(m: DouyuMapper, body: str) -> ChatEvent:
    out = m.translate(stt.loads(body))
    assert out.status == "event", out
    (e,) = out.items
    assert isinstance(e, ChatEvent)
    return e


def test_chat_with_its_id_noble_and_roles() -> None:
    e = one(DouyuMapper("7750753"), real.CHAT)
    assert (e.kind, e.text, e.raw_id) == (
        Kind.DANMAKU, "冷门歌手哎，声音独特哎", "044c3bf3074b483275a44e0000000000",
    )  # fmt: skip
    assert (e.user.id, e.user.name, e.user.guard_level, e.platform) == (
        "549977", "一闪一闪亮品品", 7, "douyu",
    )  # fmt: skip
    admin = one(DouyuMapper("4624967"), real.SUPER_ADMIN_CHAT)
    assert admin.user.is_moderator and not e.user.is_moderator
    # Another room's chat relayed here is not this room's.
    assert DouyuMapper("1").translate(stt.loads(real.CHAT)).status == "ignored"


def test_gifts_are_priced_from_the_room_gift_list() -> None:
    prices = parse_gift_list({"data": {"giftList": [
        {"id": 20595, "name": "粉丝荧光棒", "priceInfo": {"price": 10, "priceType": 1}},
        {"id": 824, "name": "荧光棒", "priceInfo": {"price": 0, "priceType": 1}},
        {"id": 20003, "name": "飞机", "priceInfo": {"price": 10000, "priceType": 2}},
        {"id": 1, "name": None}, "junk",
    ]}})  # fmt: skip
    assert prices["20003"] == GiftPrice("飞机", 10000) and prices["20595"].fen == 0
    assert "1" not in prices
    m = DouyuMapper("252802", prices.get)
    glow = one(m, real.GIFT_824)
    assert (glow.kind, glow.gift_name, glow.gift_count, glow.amount) == (
        Kind.GIFT,
        "荧光棒",
        30,
        0.0,
    )
    assert (glow.user.medal_name, glow.user.medal_level) == ("莉卡", 11)
    plane = real.GIFT_824.replace("gfid@=824", "gfid@=20003").replace("gfcnt@=30", "gfcnt@=2")
    assert one(m, plane).amount == 200.0
    unknown = one(DouyuMapper("673305"), real.GIFT_20595)
    assert (unknown.gift_name, unknown.amount) == ("礼物", 0.0)  # not in the list: unpriced


def test_super_danmu_is_a_paid_super_chat_and_pandora_is_not() -> None:
    e = one(DouyuMapper("1"), real.SUPER_DANMU)
    assert (e.kind, e.amount, e.text, e.user.name, e.user.id) == (
        Kind.SUPER_CHAT, 30.0, "加油", "付费观众", "77",
    )  # fmt: skip
    assert DouyuMapper("1").translate(stt.loads(real.PANDORA)).status == "ignored"
    no_price = real.SUPER_DANMU.replace("cprice@=3000", "cprice@=0")
    with pytest.raises(MalformedMessage):
        DouyuMapper("1").translate(stt.loads(no_price))


def test_nobles_and_diamond_fans_bought_here_are_guards() -> None:
    renewed = one(DouyuMapper("8780046"), real.NOBLE_RENEWED)
    assert (renewed.kind, renewed.gift_name, renewed.user.name) == (
        Kind.GUARD,
        "续费国王",
        "卡卡罗特u丶",
    )
    assert one(DouyuMapper("7034970"), real.NOBLE_OPENED).gift_name == "开通公爵"
    # Broadcast to every room: only the room it was bought in reads it.
    assert DouyuMapper("1").translate(stt.loads(real.NOBLE_OPENED)).status == "ignored"
    fan = one(DouyuMapper("5189167"), real.DIAMOND_FAN)
    assert (fan.kind, fan.gift_name, fan.user.name) == (Kind.GUARD, "开通钻粉", "nt五香蛋")
    assert one(DouyuMapper("5189167"), real.DIAMOND_RENEWED).gift_name == "续费钻粉"
    assert DouyuMapper("312212").translate(stt.loads(real.BADGE_UP)).status == "ignored"


def test_ban_retracts_the_viewers_lines() -> None:
    out = DouyuMapper("2020877").translate(stt.loads(real.BAN))
    (r,) = out.items
    assert isinstance(r, Retraction) and (r.user_id, r.reason) == ("181267795", "ban")
    failed = real.BAN.replace("ret@=0", "ret@=1")
    assert DouyuMapper("2020877").translate(stt.loads(failed)).status == "ignored"


def test_unknown_and_malformed() -> None:
    m = DouyuMapper("1")
    assert m.translate({"type": "brand_new"}).status == "unknown"
    assert m.translate({"type": "spbc"}).status == "ignored"
    with pytest.raises(MalformedMessage):
        m.translate({"txt": "no type"})
    with pytest.raises(MalformedMessage):
        m.translate(stt.loads("type@=dgb/rid@=1/gfcnt@=" + "9" * 5000 + "/"))
