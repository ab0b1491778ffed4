"""Reading a WebSocket inside a ``SessionConnector`` session."""

from __future__ import annotations

import re
from typing import Any, cast

import aiohttp

from .session import SessionConnector, SessionEnded, short

_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


async def receive(ws: aiohttp.ClientWebSocketResponse[bool], timeout: float) -> aiohttp.WSMessage:
    """The next data message (text or binary); ``SessionEnded`` once the socket is closed or
    failed, ``asyncio.TimeoutError`` after ``timeout`` seconds of silence."""
    msg = await ws.receive(timeout=timeout)
    if msg.type in _CLOSED:
        raise SessionEnded(f"closed by server ({ws.close_code})")
    if msg.type == aiohttp.WSMsgType.ERROR:
        raise SessionEnded(f"websocket error: {short(ws.exception())}")
    return cast(aiohttp.WSMessage, msg)  # aiohttp types it by decode mode; we read type, data


async def receive_frame(
    connector: SessionConnector,
    ws: aiohttp.ClientWebSocketResponse[bool],
    timeout: float,
    want: aiohttp.WSMsgType,
) -> Any:
    """The data of the next message when it is of the kind the platform sends (``want``: TEXT
    or BINARY), counted as a frame; another kind is counted as malformed and gives None."""
    msg = await receive(ws, timeout)
    connector.counters["frames"] += 1
    if msg.type != want:
        connector.malformed(f"{msg.type.name} frame where {want.name.lower()} was expected")
        return None
    return msg.data


def websocket_url(value: str) -> str:
    """An endpoint option's check: a ws:// or wss:// URL (a relay, a local test server)."""
    if not re.match(r"^wss?://", value):
        raise ValueError(f"endpoint must start with ws:// or wss://, got {value!r}")
    return value
