"""The Bilibili mapper and codec on real recorded commands (tests/servers/bilibili_real.py says
where each is from): advanced danmaku read by their words, lottery lines not read, bans
retracting, red envelopes paid, heartbeat replies as the server really frames them."""

from __future__ import annotations

import copy
import struct
import zlib

from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.bilibili import protocol as p
from ishowtts_plugins.bilibili.commands import CommandMapper
from tests.servers import bilibili_real as real
from tests.servers import bilibili_samples as s


def test_advanced_danmaku_reads_the_words_not_the_array() -> None:
    out = CommandMapper("1").translate(real.ADVANCED)
    (e,) = out.items
    assert isinstance(e, ChatEvent) and e.text == "哈哈哈哈"
    # One whose array holds no words is not read at all (never the array).
    empty = copy.deepcopy(real.ADVANCED)
    empty["info"][1] = '[1.0,0.0,"0.8-0.5",10.0]'
    assert CommandMapper("1").translate(empty).status == "ignored"
    # An ordinary danmaku that happens to look like JSON is read as typed.
    plain = s.danmu('["a","b"]')
    (p_event,) = CommandMapper("1").translate(plain).items
    assert isinstance(p_event, ChatEvent) and p_event.text == '["a","b"]'


def test_lottery_danmaku_are_not_read_unless_asked() -> None:
    for cmd in (real.LOTTERY, real.LIMITED):
        out = CommandMapper("1").translate(cmd)
        assert (out.status, out.note) == ("ignored", "DANMU_MSG lottery")
    (e,) = CommandMapper("1", lottery=True).translate(real.LIMITED).items
    assert isinstance(e, ChatEvent) and e.text == "九三阅兵，为祖国打call"


def test_ban_retracts_the_viewers_queued_lines_by_uid_and_hash() -> None:
    out = CommandMapper("1").translate(real.BAN)
    assert out.status == "retraction"
    ids = [r.user_id for r in out.items if isinstance(r, Retraction)]
    crc = zlib.crc32(b"9999999999")
    assert ids == ["9999999999", f"hash:{crc:x}"] + ([f"hash:{crc:08x}"] if crc < 1 << 28 else [])
    assert all(isinstance(r, Retraction) and r.reason == "ban" for r in out.items)
    # A danmaku sent without a login carries the uid's hash only: the ban still takes it back.
    anon = s.danmu("spam", uid=0)
    anon["info"][0][7] = f"{zlib.crc32(b'27897180'):x}"
    (queued,) = CommandMapper("1").translate(anon).items
    ban = CommandMapper("1").translate(real.BAN_OPERATOR).items
    assert isinstance(queued, ChatEvent)
    assert any(isinstance(r, Retraction) and r.matches(queued) for r in ban)
    (top,) = CommandMapper("1").translate(real.BAN_TOP_LEVEL).items[:1]
    assert isinstance(top, Retraction) and top.user_id == "12482716"


def test_red_envelope_is_a_paid_gift_once() -> None:
    m = CommandMapper("1")
    (e,) = m.translate(real.RED_POCKET_V2).items
    assert isinstance(e, ChatEvent)
    assert (e.kind, e.amount, e.gift_name, e.gift_count) == (Kind.GIFT, 2.0, "红包", 1)
    v1 = {**real.RED_POCKET_V2, "cmd": "POPULARITY_RED_POCKET_NEW"}
    assert m.translate(v1).status == "duplicate"  # the same lot announced twice


def test_heartbeat_reply_with_the_echoed_body_is_not_malformed() -> None:
    # As the live server frames it: the stated length covers the popularity only, and our
    # heartbeat body follows (blivedm's ws_base.py notes and reads it this way).
    frame = struct.pack(">IHHII", 20, 16, 1, 3, 1) + struct.pack(">I", 4242) + p.HEARTBEAT_BODY
    (packet,) = p.decode(frame)
    assert packet.op == p.Op.HEARTBEAT_REPLY and p.popularity(packet.body) == 4242
