"""Just enough of the protobuf wire format to read the ``*_V2`` commands, whose JSON carries a
base64 ``pb`` field. No schema: fields come back by number, unknown ones skipped properly."""

from __future__ import annotations

from collections.abc import Iterator

Value = int | bytes


class WireError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf: bytes) -> Iterator[tuple[int, Value]]:
    """(field number, value) pairs: varints and fixed as int, length-delimited as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Value
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise WireError("truncated fixed field")
            value = int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise WireError("truncated length-delimited field")
            value = bytes(buf[pos : pos + size])
            pos += size
        else:
            raise WireError(f"unsupported wire type {wire}")
        yield number, value


def message(buf: bytes) -> dict[int, Value]:
    """Last value wins per field (protobuf's rule for non-repeated fields)."""
    return dict(fields(buf))


def sub(value: Value | None) -> dict[int, Value]:
    """An embedded message field (empty when absent or not length-delimited)."""
    return message(value) if isinstance(value, bytes) else {}


def text(value: Value | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def integer(value: Value | None) -> int:
    return value if isinstance(value, int) else 0


# Encoding, for tests and local servers that must produce real-looking V2 payloads.
def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode(pairs: list[tuple[int, int | str | bytes]]) -> bytes:
    out = bytearray()
    for number, value in pairs:
        if isinstance(value, int):
            out += _enc_varint(number << 3) + _enc_varint(value)
        else:
            raw = value.encode() if isinstance(value, str) else value
            out += _enc_varint(number << 3 | 2) + _enc_varint(len(raw)) + raw
    return bytes(out)
