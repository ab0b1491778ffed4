"""Douyu's chat wire format: length-prefixed packets carrying STT text.

A packet is little-endian: length (u32), the same length again (u32), message type (u16: 689
client to server, 690 server to client), encryption (u8, 0) and a reserved byte (u8, 0), then
the body, UTF-8 STT ending in a NUL. The length counts everything after the first length field.
A WebSocket message holds one or more packets; ``Framer`` also carries a packet split across
messages over to the next, within ``MAX_PACKET`` bytes, so a hostile length cannot make it
buffer without end.

STT ("serialized text") is ``key@=value/`` pairs; inside a key or value ``@`` is written ``@A``
and ``/`` is ``@S``. A value that is itself STT (an object, or a list of items each ending in
``/``) is escaped once more, so one level is unescaped on demand: ``loads`` gives the top level
as strings, and ``loads``/``items`` read a nested value when a mapper wants it.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("<IIHBB")
CLIENT_TYPE = 689
SERVER_TYPE = 690
MAX_PACKET = 256 * 1024  # real packets are a few KiB (a gift broadcast with its effects)
MAX_FIELDS = 512  # keys in one message


class FrameError(ValueError):
    """Bytes that are not Douyu packets: the buffered rest is dropped. ``bodies``: those
    decoded before the fault."""

    def __init__(self, reason: str, bodies: list[str]) -> None:
        super().__init__(reason)
        self.bodies = bodies


def encode(body: str, kind: int = CLIENT_TYPE) -> bytes:
    data = body.encode() + b"\0"
    length = HEADER.size - 4 + len(data)
    return HEADER.pack(length, length, kind, 0, 0) + data


class Framer:
    """Splits received bytes into packet bodies (text), keeping an incomplete tail."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        """The bodies completed by ``data``; FrameError (after which the buffer is empty) on a
        header that cannot be Douyu's."""
        buf = self._buffer + data
        self._buffer = b""
        bodies: list[str] = []
        offset = 0
        while len(buf) - offset >= HEADER.size:
            length, again, kind, _enc, _res = HEADER.unpack_from(buf, offset)
            if length != again or not HEADER.size - 4 < length <= MAX_PACKET:
                raise FrameError(f"bad packet lengths {length}/{again}", bodies)
            if kind not in (SERVER_TYPE, CLIENT_TYPE):
                raise FrameError(f"unknown message type {kind}", bodies)
            end = offset + 4 + length
            if end > len(buf):
                break
            body = buf[offset + HEADER.size : end]
            offset = end
            bodies.append(body.rstrip(b"\0").decode("utf-8", "replace"))
        self._buffer = buf[offset:]
        return bodies


def escape(text: str) -> str:
    return text.replace("@", "@A").replace("/", "@S")


def unescape(text: str) -> str:
    return text.replace("@S", "/").replace("@A", "@")


def dumps(fields: dict[str, str]) -> str:
    return "".join(f"{escape(k)}@={escape(v)}/" for k, v in fields.items())


def loads(text: str) -> dict[str, str]:
    """One STT object, its values unescaped one level (nested STT stays text). Pieces without
    ``@=`` are skipped; at most ``MAX_FIELDS`` keys."""
    out: dict[str, str] = {}
    for piece in text.split("/"):
        key, sep, value = piece.partition("@=")
        if not sep:
            continue
        if len(out) >= MAX_FIELDS:
            break
        out[unescape(key)] = unescape(value)
    return out


def items(text: str) -> list[str]:
    """A nested list's items (each still escaped once, as ``loads`` wants them)."""
    return [unescape(piece) for piece in text.split("/") if piece][:MAX_FIELDS]
