"""Reading a WebSocket inside a ``SessionConnector`` session."""

from __future__ import annotations

from typing import cast

import aiohttp

from .session import SessionEnded, short

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
