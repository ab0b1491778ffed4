"""Bilibili live danmaku packet codec (the WebSocket payload of ``wss://.../sub``).

Every packet starts with a 16-byte big-endian header: total length (u32), header length (u16,
always 16), protocol version (u16), operation (u32), sequence (u32). A WebSocket message holds
one or more packets back to back. Notices (op 5) with protover 2 (zlib) or 3 (brotli) carry a
compressed body that is itself a run of packets: decoding is recursive, bounded in depth, and
bounded per WebSocket message in decompressed bytes and packet count, all levels together (a
compressed packet may hold compressed packets: per-body limits would multiply), so a hostile or
broken frame costs little. The bytes after a heartbeat reply that do not start a packet are our
heartbeat echoed back (the server leaves them out of the stated length): not malformed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import brotli

HEADER = struct.Struct(">IHHII")
HEADER_LEN = HEADER.size  # 16

MAX_DEPTH = 2  # a compressed body holds plain packets; one more level is tolerated
# Per WebSocket message, every compressed body in it together (and the message itself). Real
# frames inflate to tens of KiB; a frame inflating this far costs ~50 ms of CPU (16 MiB: 180 ms).
MAX_INFLATED = 4 * 1024 * 1024
MAX_PACKETS = 4096  # per WebSocket message, compressed and nested ones included


class Op(IntEnum):
    HEARTBEAT = 2
    HEARTBEAT_REPLY = 3  # body: popularity, u32
    NOTICE = 5  # body: JSON command (or compressed packets)
    AUTH = 7
    AUTH_REPLY = 8  # body: {"code": 0} on success


class Ver(IntEnum):
    JSON = 0  # plain JSON body
    INT = 1  # heartbeat, auth and their replies
    ZLIB = 2  # body is zlib-compressed packets
    BROTLI = 3  # body is brotli-compressed packets


class ProtocolError(ValueError):
    """A frame that does not follow the protocol. ``packets``: those decoded before the fault;
    ``oversized``: the frame went past a size or count bound (a bomb, not just garbage)."""

    def __init__(
        self, reason: str, packets: list[Packet] | None = None, oversized: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.packets = packets or []
        self.oversized = oversized


@dataclass(slots=True)
class _Budget:
    """What one WebSocket message may still cost, shared by every level of it."""

    inflated: int = MAX_INFLATED
    packets: int = MAX_PACKETS


@dataclass(frozen=True, slots=True)
class Packet:
    op: int
    ver: int
    body: bytes
    seq: int = 1


def encode(body: bytes, op: int, ver: int = Ver.INT, seq: int = 1) -> bytes:
    return HEADER.pack(HEADER_LEN + len(body), HEADER_LEN, ver, op, seq) + body


def encode_packet(packet: Packet) -> bytes:
    return encode(packet.body, packet.op, packet.ver, packet.seq)


def compress(packets: list[Packet], ver: int, op: int = Op.NOTICE) -> bytes:
    """Several packets in one compressed outer packet, as the server sends notices."""
    inner = b"".join(encode_packet(p) for p in packets)
    if ver == Ver.ZLIB:
        body = zlib.compress(inner)
    elif ver == Ver.BROTLI:
        body = brotli.compress(inner)
    else:
        raise ValueError(f"protover {ver} is not a compressed version")
    return encode(body, op, ver, 0)


def decode(data: bytes) -> list[Packet]:
    """All plain packets of one WebSocket message, compressed bodies opened. Raises
    ProtocolError (carrying what was decoded before the fault) on anything malformed."""
    out: list[Packet] = []
    try:
        _walk(memoryview(data), 0, out, _Budget())
    except ProtocolError as exc:
        exc.packets = out
        raise
    return out


def _walk(data: memoryview, depth: int, out: list[Packet], budget: _Budget) -> None:
    if len(data) == 0:
        raise ProtocolError("empty body" if depth else "empty frame")
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER_LEN:
            raise ProtocolError(f"truncated header: {len(data) - offset} bytes")
        length, header_len, ver, op, seq = HEADER.unpack_from(data, offset)
        if header_len < HEADER_LEN or length < header_len:
            raise ProtocolError(f"bad lengths: packet {length}, header {header_len}")
        if offset + length > len(data):
            raise ProtocolError(f"packet of {length} bytes overruns the frame")
        body = data[offset + header_len : offset + length]
        offset += length
        budget.packets -= 1
        if budget.packets < 0:
            raise ProtocolError(f"more than {MAX_PACKETS} packets in one frame", oversized=True)
        if ver in (Ver.ZLIB, Ver.BROTLI) and op == Op.NOTICE:
            if depth >= MAX_DEPTH:
                raise ProtocolError("compressed packets nested too deep", oversized=True)
            inner = _inflate(bytes(body), ver, budget.inflated)
            budget.inflated -= len(inner)
            _walk(memoryview(inner), depth + 1, out, budget)
        elif ver in (Ver.JSON, Ver.INT):
            out.append(Packet(op, ver, bytes(body), seq))
            if op == Op.HEARTBEAT_REPLY and not _packet_at(data, offset):
                # The server echoes our heartbeat's body after the popularity but leaves it out
                # of the length it states (blivedm notes this): those bytes end the frame.
                return
        else:
            raise ProtocolError(f"unknown protover {ver} (op {op})")


def _packet_at(data: memoryview, offset: int) -> bool:
    """Whether a well-formed packet header starts at ``offset``."""
    if len(data) - offset < HEADER_LEN:
        return False
    length, header_len, _ver, _op, _seq = HEADER.unpack_from(data, offset)
    return header_len == HEADER_LEN and header_len <= length <= len(data) - offset


def _inflate(body: bytes, ver: int, limit: int) -> bytes:
    """At most ``limit`` bytes out: what the frame has left, never a fresh allowance."""
    too_far = f"frame inflates past {MAX_INFLATED} bytes in all"
    if limit <= 0:
        raise ProtocolError(too_far, oversized=True)
    try:
        if ver == Ver.ZLIB:
            z = zlib.decompressobj()
            out = z.decompress(body, limit)
            if z.unconsumed_tail:
                raise ProtocolError(too_far, oversized=True)
            if not z.eof:
                raise ProtocolError("zlib body is truncated")
            return out
        b = brotli.Decompressor()
        # The limit is soft (it stops after the block that reaches it): checked again here.
        out = b.process(body, output_buffer_limit=limit)
        if len(out) > limit or (len(out) == limit and not b.is_finished()):
            raise ProtocolError(too_far, oversized=True)
        if not b.is_finished():
            raise ProtocolError("brotli body is truncated")
        return out
    except (zlib.error, brotli.error) as exc:
        raise ProtocolError(f"bad compressed body: {exc}") from None


def popularity(body: bytes) -> int:
    if len(body) < 4:
        raise ProtocolError(f"heartbeat reply of {len(body)} bytes")
    return int.from_bytes(body[:4], "big")


# What the web client sends as a heartbeat body (the servers ignore it; kept for fidelity).
HEARTBEAT_BODY = b"[object Object]"


def heartbeat() -> bytes:
    return encode(HEARTBEAT_BODY, Op.HEARTBEAT, Ver.INT)
