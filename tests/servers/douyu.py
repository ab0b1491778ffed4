"""A local Douyu danmaku server, byte for byte: little-endian length-prefixed packets (length
twice, type 689 from the client and 690 to it, two zero bytes, STT text ending in NUL),
``loginreq`` answered by ``loginres``, ``joingroup`` with gid -9999 joining the room, ``mrkl``
heartbeats answered in kind. It also serves the room's gift list as gift.douyucdn.cn does.

Deliberately independent of the connector's codec (plain ``struct`` and string handling here)
so a shared bug cannot hide itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.servers.util import serve


def packet(body: str, kind: int = 690) -> bytes:
    data = body.encode() + b"\0"
    n = 8 + len(data)
    return struct.pack("<IIHBB", n, n, kind, 0, 0) + data


def bodies(frame: bytes) -> list[tuple[int, str]]:
    """(type, body) of each packet a client sent; AssertionError on anything else."""
    out, i = [], 0
    while i < len(frame):
        n, again, kind, enc, res = struct.unpack_from("<IIHBB", frame, i)
        assert n == again and enc == 0 and res == 0, (n, again, enc, res)
        data = frame[i + 12 : i + 4 + n]
        assert data.endswith(b"\0"), data[-10:]
        out.append((kind, data[:-1].decode()))
        i += 4 + n
    return out


def field_of(body: str, key: str) -> str:
    for piece in body.split("/"):
        k, _, v = piece.partition("@=")
        if k == key:
            return v.replace("@S", "/").replace("@A", "@")
    return ""


@dataclass
class DouyuServer:
    """``login``: "ok" answers loginres, "silent" never does, "error" answers an error."""

    room: str = "9999"
    login: str = "ok"
    gifts: list[dict[str, Any]] = field(default_factory=list)
    gift_status: int = 200
    host: str = "127.0.0.1"
    port: int = 0
    received: list[str] = field(default_factory=list)
    bad_client_packets: list[str] = field(default_factory=list)
    heartbeats: int = 0
    connections: int = 0
    gift_list_calls: int = 0
    _clients: list[tuple[web.Request, web.WebSocketResponse]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _joined: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @property
    def gift_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/gift/v2/web/list"

    async def start(self) -> DouyuServer:
        app = web.Application()
        app.router.add_get("/", self._handle)
        app.router.add_get("/api/gift/v2/web/list", self._gift_list)
        self._runner, self.port = await serve(app, self.host, self.port)
        return self

    async def stop(self) -> None:
        for request, _ws in self._clients:
            if request.transport is not None:
                request.transport.abort()
        self._clients.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_joined(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._joined.wait(), timeout)
        self._joined.clear()

    async def send(self, *messages: str) -> None:
        """Messages to every joined client, in one WebSocket message."""
        await self.send_raw(b"".join(packet(m) for m in messages))

    async def send_raw(self, frame: bytes | str) -> None:
        for _request, ws in self._clients:
            if not ws.closed:
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))

    async def _gift_list(self, request: web.Request) -> web.Response:
        self.gift_list_calls += 1
        if request.query.get("rid") != self.room:
            return web.json_response({"error": 1, "msg": "rid"}, status=400)
        answer = {"error": 0, "msg": "success", "data": {"giftList": self.gifts}}
        return web.json_response(answer, status=self.gift_status)

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self._clients.append((request, ws))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    self.bad_client_packets.append(f"{msg.type.name} frame")
                    continue
                for kind, body in bodies(msg.data):
                    if kind != 689:
                        self.bad_client_packets.append(f"type {kind}")
                    self.received.append(body)
                    await self._answer(ws, body)
        except (AssertionError, struct.error) as exc:
            self.bad_client_packets.append(repr(exc))
        finally:
            with contextlib.suppress(ValueError):
                self._clients.remove((request, ws))
        return ws

    async def _answer(self, ws: web.WebSocketResponse, body: str) -> None:
        kind = field_of(body, "type")
        if kind == "loginreq":
            if field_of(body, "roomid") != self.room:
                self.bad_client_packets.append(f"loginreq for {field_of(body, 'roomid')}")
            if self.login == "ok":
                await ws.send_bytes(packet("type@=loginres/userid@=0/roomgroup@=0/pg@=0/"))
            elif self.login == "error":
                await ws.send_bytes(packet("type@=error/code@=51/"))
        elif kind == "joingroup":
            if field_of(body, "rid") != self.room or field_of(body, "gid") != "-9999":
                self.bad_client_packets.append(f"joingroup {body}")
            self._joined.set()
        elif kind == "mrkl":
            self.heartbeats += 1
            await ws.send_bytes(packet("type@=mrkl/"))
        else:
            self.bad_client_packets.append(f"unexpected {body[:60]}")
