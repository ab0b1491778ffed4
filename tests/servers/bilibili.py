"""A local Bilibili live danmaku server, byte for byte: the 16-byte big-endian header, op 7 auth
answered by op 8, op 2 heartbeats answered by op 3 (popularity), notices as protover 0 JSON or
protover 2 (zlib) / 3 (brotli) bodies holding several packets.

Deliberately independent of the connector's codec (plain ``struct`` here) so a shared bug
cannot hide itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import brotli
from aiohttp import WSMsgType, web

HDR = ">IHHII"


def pack(body: bytes, op: int, ver: int, seq: int = 1) -> bytes:
    return struct.pack(HDR, 16 + len(body), 16, ver, op, seq) + body


def unpack_one(data: bytes) -> tuple[int, int, int, bytes]:
    length, hlen, ver, op, seq = struct.unpack(HDR, data[:16])
    assert length == len(data) and hlen == 16, (length, len(data), hlen)
    return ver, op, seq, data[16:]


def notice_frame(commands: list[dict[str, Any]], ver: int) -> bytes:
    """One WebSocket message carrying ``commands`` the way the live server does."""
    inner = [pack(json.dumps(c, ensure_ascii=False).encode(), 5, 0, 0) for c in commands]
    if ver == 0:
        return b"".join(inner)
    if ver == 2:
        return pack(zlib.compress(b"".join(inner)), 5, 2, 0)
    if ver == 3:
        return pack(brotli.compress(b"".join(inner)), 5, 3, 0)
    raise ValueError(ver)


@dataclass
class Conn:
    request: web.Request
    ws: web.WebSocketResponse
    auth: dict[str, Any] | None = None
    heartbeats: int = 0


@dataclass
class BiliServer:
    """``auth``: "ok" answers op 8 code 0, "refuse" code -101, "silent" never answers."""

    auth: str = "ok"
    popularity: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    auths: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0
    connections: int = 0
    bad_client_packets: list[str] = field(default_factory=list)
    _conns: list[Conn] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _authed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/sub"

    async def start(self) -> BiliServer:
        app = web.Application()
        app.router.add_get("/sub", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def kill(self) -> None:
        """Drop every connection without a close frame, as a crash would, and stop listening."""
        for conn in self._conns:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        self._conns.clear()
        self._authed.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def stop(self) -> None:
        await self.kill()

    async def wait_authed(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._authed.wait(), timeout)

    def live(self) -> list[Conn]:
        return [c for c in self._conns if c.auth is not None and not c.ws.closed]

    async def send_frame(self, frame: bytes | str) -> None:
        for conn in self.live():
            if isinstance(frame, str):
                await conn.ws.send_str(frame)
            else:
                await conn.ws.send_bytes(frame)

    async def push(self, commands: list[dict[str, Any]], ver: int = 3) -> None:
        await self.send_frame(notice_frame(commands, ver))

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Conn(request, ws)
        self._conns.append(conn)
        self.connections += 1
        try:
            # The real server closes a connection that does not authenticate within ~5 s.
            first = await ws.receive(timeout=5.0)
            if first.type != WSMsgType.BINARY:
                return ws
            ver, op, _seq, body = unpack_one(first.data)
            if op != 7 or ver != 1:
                self.bad_client_packets.append(f"first packet op {op} ver {ver}")
                return ws
            auth = json.loads(body)
            for key in ("uid", "roomid", "protover", "platform", "type", "key", "buvid"):
                if key not in auth:
                    self.bad_client_packets.append(f"auth without {key}")
            self.auths.append(auth)
            if self.auth == "ok":
                conn.auth = auth
                await ws.send_bytes(pack(b'{"code":0}', 8, 1))
                self._authed.set()
            elif self.auth == "refuse":
                await ws.send_bytes(pack(b'{"code":-101}', 8, 1))
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                ver, op, _seq, body = unpack_one(msg.data)
                if op == 2 and ver == 1:
                    conn.heartbeats += 1
                    self.heartbeats += 1
                    await ws.send_bytes(pack(struct.pack(">I", self.popularity), 3, 1))
                else:
                    self.bad_client_packets.append(f"op {op} ver {ver}")
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                self._conns.remove(conn)
        return ws
