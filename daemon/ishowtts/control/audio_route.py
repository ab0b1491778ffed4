"""``GET /audio``: the WebSocket a browser source listens on (what flows: ``audio_fanout.py``).

A browser cannot put an Authorization header on a WebSocket, so the page sends the token as
its first message, ``{"token": "..."}``, within ``AUTH_TIMEOUT_S``. The token never travels in
a URL (the page reads it from its address's ``#token=`` fragment, which browsers never send),
so no access log or proxy sees it. The API's browser guard (Origin, loopback Host) has run
before. Afterwards the page sends only acknowledgements, ``{"ack": frames received}``;
anything else is counted and skipped. Close codes tell the page what to do next.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import structlog
from aiohttp import WSMsgType, web

from ..tasks import cancel_and_wait
from .audio_fanout import AudioFanout, Listener, ListenersFull
from .http import AUDIO_PATH, error, token_ok

log = structlog.get_logger("ishowtts.control.audio")

AUTH_TIMEOUT_S = 5.0  # to send the token after connecting
SEND_TIMEOUT_S = 2.0  # to take one message (kernel buffers full that long: the peer is gone)
CLOSE_TIMEOUT_S = 1.0  # to answer our close
MAX_MESSAGE = 1024  # bytes a page may send in one message: its token, an ack
WRITER_LIMIT = 16384  # bytes buffered in the process before a send waits for the socket

# Close codes (4000-4999: the application's own): the page signs in again after UNAUTHORIZED,
# retries slowly after FULL, and reconnects at once after the others.
UNAUTHORIZED, FULL, BEHIND, GOING_AWAY, NORMAL = 4401, 4429, 4408, 1001, 1000
CODES = {
    "fell behind": BEHIND, "send timed out": BEHIND, "shutdown": GOING_AWAY,
    "token changed": UNAUTHORIZED,  # authenticated once, at connect: sign in again
}  # fmt: skip


def ack_of(text: str) -> int | None:
    """The frame count of a page's ``{"ack": n}``; None for anything else."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # "[[[[..." within MAX_MESSAGE nests past the stack
        return None
    ack = data.get("ack") if isinstance(data, dict) else None
    return ack if type(ack) is int and 0 <= ack < 1 << 53 else None


class AudioRoute:
    def __init__(self, fanout: AudioFanout, token: Callable[[], bytes | None]) -> None:
        self.fanout = fanout
        self._token = token  # the API's current token (a reload may change it)
        self.unauthorized = 0
        self.malformed = 0  # messages from pages that were neither an ack nor a close

    def install(self, app: web.Application) -> None:
        app.router.add_get(AUDIO_PATH, self.handle)
        app.on_shutdown.append(self._close)

    async def _close(self, app: web.Application) -> None:
        self.fanout.close()  # every stream ends, so shutdown does not wait on them

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE,
            compress=False,  # PCM barely compresses; deflate would cost CPU per listener
            writer_limit=WRITER_LIMIT,
            timeout=CLOSE_TIMEOUT_S,
        )
        if not ws.can_prepare(request).ok:
            return error(426, "upgrade required", f"{AUDIO_PATH} is a WebSocket")
        await ws.prepare(request)
        code, why = await self._serve(ws, request.remote or "?")
        try:
            await asyncio.wait_for(ws.close(code=code, message=why.encode()), 2 * CLOSE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            if request.transport is not None:  # it does not even take our close: cut it
                request.transport.abort()
        return ws

    async def _serve(self, ws: web.WebSocketResponse, peer: str) -> tuple[int, str]:
        if not await self._authenticated(ws):
            self.unauthorized += 1
            log.warning("api_unauthorized", path=AUDIO_PATH, peer=peer)
            return UNAUTHORIZED, "unauthorized"
        try:
            listener = self.fanout.add(peer)
        except ListenersFull as exc:
            log.warning("audio_listener_refused", peer=peer, why=str(exc))
            return FULL, str(exc)[:100]
        reader = asyncio.create_task(self._read(ws, listener))
        try:
            await ws.send_str(self.fanout.hello())
            await self._send(ws, listener)
        except asyncio.TimeoutError:
            self.fanout.drop(listener, "send timed out")
        except ConnectionError:
            listener.stop("closed")
        finally:
            await cancel_and_wait(reader)
            self.fanout.remove(listener)
        why = listener.gone or "closed"
        return CODES.get(why, NORMAL), why

    async def _authenticated(self, ws: web.WebSocketResponse) -> bool:
        try:
            msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
        except asyncio.TimeoutError:
            return False
        if msg.type is not WSMsgType.TEXT:
            return False
        token = self._token()
        if token is None:  # loopback without a token: the guard has checked the Host
            return True
        try:
            sent = json.loads(msg.data)
        except (ValueError, RecursionError):
            return False
        credential = sent.get("token") if isinstance(sent, dict) else None
        return isinstance(credential, str) and token_ok(credential, token)

    async def _send(self, ws: web.WebSocketResponse, listener: Listener) -> None:
        while listener.gone is None:
            await listener.wake.wait()
            listener.wake.clear()
            while listener.out and listener.gone is None:
                item = listener.out.popleft()
                if isinstance(item, bytes):
                    await asyncio.wait_for(ws.send_bytes(item), SEND_TIMEOUT_S)
                else:
                    await asyncio.wait_for(ws.send_str(item), SEND_TIMEOUT_S)

    async def _read(self, ws: web.WebSocketResponse, listener: Listener) -> None:
        async for msg in ws:  # ends when the page closes or breaks the protocol
            ack = ack_of(msg.data) if msg.type is WSMsgType.TEXT else None
            if ack is None:
                self.malformed += 1
                continue
            listener.ack(ack)
        listener.stop("closed")
