"""Byte-level tests of the Bilibili packet codec, against the independent test-server packer."""

from __future__ import annotations

import json
import random
import struct
import zlib

import brotli
import pytest

from ishowtts_plugins.bilibili import protobuf
from ishowtts_plugins.bilibili import protocol as p
from tests.servers.bilibili import notice_frame, pack, unpack_one


def test_heartbeat_bytes_match_the_web_client() -> None:
    # Length 31, header 16, protover 1, op 2, seq 1, then "[object Object]".
    expected = bytes.fromhex("0000001f 0010 0001 00000002 00000001".replace(" ", ""))
    assert p.heartbeat() == expected + b"[object Object]"


def test_auth_packet_round_trip_through_the_server_unpacker() -> None:
    body = json.dumps({"uid": 0, "roomid": 5, "protover": 3, "key": "k"}).encode()
    frame = p.encode(body, p.Op.AUTH)
    assert unpack_one(frame) == (1, 7, 1, body)
    assert p.decode(frame) == [p.Packet(p.Op.AUTH, p.Ver.INT, body, 1)]


@pytest.mark.parametrize("ver", [0, 2, 3])
def test_notice_frames_of_every_protover(ver: int) -> None:
    commands = [{"cmd": "DANMU_MSG", "n": i, "text": "弹幕" * i} for i in range(5)]
    packets = p.decode(notice_frame(commands, ver))
    assert [json.loads(x.body) for x in packets] == commands
    assert all(x.op == p.Op.NOTICE and x.ver == 0 for x in packets)


def test_our_compressor_is_read_by_plain_zlib_and_brotli() -> None:
    inner = [p.Packet(5, 0, b'{"cmd":"A"}', 0), p.Packet(5, 0, b'{"cmd":"B"}', 0)]
    z, b = p.compress(inner, p.Ver.ZLIB), p.compress(inner, p.Ver.BROTLI)
    raw = b"".join(p.encode_packet(x) for x in inner)
    assert zlib.decompress(unpack_one(z)[3]) == raw
    assert brotli.decompress(unpack_one(b)[3]) == raw
    assert p.decode(z) == p.decode(b) == inner


def test_one_frame_several_packets_mixed() -> None:
    frame = (
        pack(struct.pack(">I", 777), 3, 1)
        + pack(b'{"code":0}', 8, 1)
        + notice_frame([{"cmd": "X"}, {"cmd": "Y"}], 2)
        + notice_frame([{"cmd": "Z"}], 0)
    )
    packets = p.decode(frame)
    assert [x.op for x in packets] == [3, 8, 5, 5, 5]
    assert p.popularity(packets[0].body) == 777
    assert [json.loads(x.body)["cmd"] for x in packets[2:]] == ["X", "Y", "Z"]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty frame"),
        (b"\x00" * 10, "truncated header"),
        (struct.pack(">IHHII", 100, 16, 0, 5, 0) + b"{}", "overruns"),
        (struct.pack(">IHHII", 8, 16, 0, 5, 0), "bad lengths"),
        (pack(b"not zlib", 5, 2), "bad compressed body"),
        (pack(zlib.compress(b"x" * 40)[:-6], 5, 2), "truncated"),
        (pack(b"{}", 5, 9), "unknown protover"),
    ],
)
def test_malformed_frames_raise_protocol_error(frame: bytes, reason: str) -> None:
    with pytest.raises(p.ProtocolError, match=reason):
        p.decode(frame)


def test_partial_packets_survive_a_broken_tail() -> None:
    good = notice_frame([{"cmd": "A"}], 0)
    with pytest.raises(p.ProtocolError) as info:
        p.decode(good + b"\x00\x00\x00")
    assert [json.loads(x.body) for x in info.value.packets] == [{"cmd": "A"}]


def test_nesting_and_size_are_bounded() -> None:
    level2 = notice_frame([{"cmd": "deep"}], 2)
    level3 = pack(zlib.compress(pack(zlib.compress(level2), 5, 2)), 5, 2)
    with pytest.raises(p.ProtocolError, match="nested"):
        p.decode(level3)
    bomb = pack(zlib.compress(b"\x00" * (p.MAX_INFLATED + 1024)), 5, 2)
    with pytest.raises(p.ProtocolError, match="inflates"):
        p.decode(bomb)


@pytest.mark.parametrize("ver", [2, 3])
def test_nested_bomb_is_bounded_by_the_whole_frame(ver: int) -> None:
    """Each compressed body had its own allowance, so a compressed packet holding compressed
    packets multiplied it: a tiny frame could inflate to 4096 x 16 MiB. The allowance is now the
    frame's, shared by every body in it however deep."""
    squeeze = zlib.compress if ver == 2 else brotli.compress
    # One packet that inflates to just over a quarter of the allowance...
    quarter = pack(squeeze(pack(b"\x00" * (p.MAX_INFLATED // 4 + 1), 3, 1)), 5, ver)
    # ...four times in one compressed body: within every per-body limit, over the frame's.
    frame = pack(squeeze(quarter * 4), 5, ver)
    assert len(frame) < 200_000
    with pytest.raises(p.ProtocolError, match="in all") as info:
        p.decode(frame)
    assert sum(len(x.body) for x in info.value.packets) <= p.MAX_INFLATED
    # Compressed packets count toward the packet limit too, not only the plain ones.
    empty = pack(squeeze(pack(b"{}", 5, 0)), 5, ver)
    with pytest.raises(p.ProtocolError, match="packets in one frame"):
        p.decode(pack(squeeze(empty * (p.MAX_PACKETS // 2 + 1)), 5, ver))


def test_ten_thousand_mutated_frames_only_ever_raise_protocol_error() -> None:
    rng = random.Random(3)
    seeds = [notice_frame([{"cmd": "DANMU_MSG", "i": i}], v) for i, v in enumerate((0, 2, 3))]
    seeds.append(pack(struct.pack(">I", 1), 3, 1))
    ok = bad = 0
    for _ in range(10_000):
        frame = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.5 and frame:
                frame[rng.randrange(len(frame))] = rng.randrange(256)
            elif op < 0.75:
                frame = frame[: rng.randrange(len(frame) + 1)]
            else:
                frame += rng.randbytes(rng.randint(1, 20))
        try:
            p.decode(bytes(frame))
            ok += 1
        except p.ProtocolError:
            bad += 1
    assert ok + bad == 10_000 and bad > 5_000


def test_protobuf_wire_round_trip_and_errors() -> None:
    blob = protobuf.encode([(1, 300), (2, "名字"), (9, protobuf.encode([(2, 7)]))])
    m = protobuf.message(blob)
    assert m[1] == 300 and protobuf.text(m[2]) == "名字"
    assert protobuf.message(m[9]) == {2: 7}
    # A fixed64 and a fixed32 field are skipped correctly, not misread.
    mixed = bytes([0x19]) + (5).to_bytes(8, "little") + bytes([0x25]) + b"\x01\x00\x00\x00"
    assert protobuf.message(mixed + protobuf.encode([(5, 2)])) == {3: 5, 4: 1, 5: 2}
    for broken in (b"\x0a\x05ab", b"\x08", b"\x0b", b"\x00\x01"):
        with pytest.raises(protobuf.WireError):
            protobuf.message(broken)
