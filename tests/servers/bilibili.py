"""A local Bilibili live danmaku server, byte for byte: the 16-byte big-endian header, op 7 auth
answered by op 8, op 2 heartbeats answered by op 3 (popularity), notices as protover 0 JSON or
protover 2 (zlib) / 3 (brotli) bodies holding several packets.

It also answers the web HTTP side as the service did in 2026: ``finger/spi`` (buvid3/buvid4),
``nav`` (the WBI keys), ``room_init`` and a WBI-signed ``getDanmuInfo`` that answers -352 to a
request without a current browser User-Agent, the buvid cookies or a good signature, and the
risk-control codes queued in ``risk`` (-352, -412) to the next calls.

Deliberately independent of the connector's codec (plain ``struct`` here) so a shared bug
cannot hide itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import struct
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Any

import brotli
from aiohttp import WSMsgType, web

from tests.servers.util import serve

HDR = ">IHHII"
IMG_KEY, SUB_KEY = "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45"
# The WBI key permutation, as the web client's script has it.
MIXIN = [46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42,
         19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51,
         30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52]  # fmt: skip


def wbi_ok(query: str) -> bool:
    """Checks w_rid the way the service does: md5 of the other parameters, sorted and encoded,
    followed by the mixin key."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    given = dict(pairs).get("w_rid", "")
    rest = sorted((k, v) for k, v in pairs if k != "w_rid")
    key = "".join((IMG_KEY + SUB_KEY)[i] for i in MIXIN)[:32]
    expected = hashlib.md5((urllib.parse.urlencode(rest) + key).encode()).hexdigest()
    wts = int(dict(pairs).get("wts", "0") or 0)
    return given == expected and abs(wts - time.time()) < 600


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
    """``auth``: "ok" answers op 8 code 0, "refuse" code -101, "deep" an answer nested
    5,000 levels deep, "silent" never answers."""

    auth: str = "ok"
    popularity: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    auths: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0
    connections: int = 0
    bad_client_packets: list[str] = field(default_factory=list)
    risk: list[int] = field(default_factory=list)  # codes for the next getDanmuInfo calls
    room_exists: bool = True
    nav_padding: int = 0  # bytes of filler in the next nav answer (an oversized answer)
    http_calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # path, headers
    http_refusals: list[str] = field(default_factory=list)
    tokens: int = 0
    _conns: list[Conn] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _authed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/sub"

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> BiliServer:
        app = web.Application()
        app.router.add_get("/sub", self._handle)
        app.router.add_get("/x/frontend/finger/spi", self._spi)
        app.router.add_get("/x/web-interface/nav", self._nav)
        app.router.add_get("/room/v1/Room/room_init", self._room_init)
        app.router.add_get("/xlive/web-room/v1/index/getDanmuInfo", self._danmu_info)
        self._runner, self.port = await serve(app, self.host, self.port)
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
            elif self.auth == "deep":  # a hostile server: nesting past json's recursion limit
                await ws.send_bytes(pack(b"[" * 5000, 8, 1))
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                ver, op, _seq, body = unpack_one(msg.data)
                if op == 2 and ver == 1:
                    conn.heartbeats += 1
                    self.heartbeats += 1
                    # As the real server does: our heartbeat's body echoed after the
                    # popularity, outside the length the header states.
                    reply = pack(struct.pack(">I", self.popularity), 3, 1) + body
                    await ws.send_bytes(reply)
                else:
                    self.bad_client_packets.append(f"op {op} ver {ver}")
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                self._conns.remove(conn)
        return ws

    # -- the HTTP side -------------------------------------------------------------------------
    def _browser_refusal(self, request: web.Request) -> str | None:
        ua = request.headers.get("User-Agent", "")
        m = re.search(r"Chrome/(\d+)", ua)
        if not ua.startswith("Mozilla/5.0") or not m or int(m.group(1)) < 130:
            return f"old or missing User-Agent {ua[:40]!r}"
        cookies = request.cookies
        if request.path != "/x/frontend/finger/spi" and not (
            cookies.get("buvid3") and cookies.get("buvid4")
        ):
            return "no buvid3/buvid4 cookie"
        return None

    @staticmethod
    def _json(code: int, data: Any = None, message: str = "0") -> web.Response:
        return web.json_response({"code": code, "message": message, "ttl": 1, "data": data})

    def _record(self, request: web.Request) -> str | None:
        self.http_calls.append((request.path, dict(request.headers)))
        refusal = self._browser_refusal(request)
        if refusal is not None:
            self.http_refusals.append(f"{request.path}: {refusal}")
        return refusal

    async def _spi(self, request: web.Request) -> web.Response:
        if self._record(request):
            return self._json(-352, message="-352")
        return self._json(0, {"b_3": "B3-FROM-SPI-infoc", "b_4": "B4-FROM-SPI"})

    async def _nav(self, request: web.Request) -> web.Response:
        if self._record(request):
            return self._json(-352, message="-352")
        wbi = {"img_url": f"https://i0.hdslb.com/bfs/wbi/{IMG_KEY}.png",
               "sub_url": f"https://i0.hdslb.com/bfs/wbi/{SUB_KEY}.png"}  # fmt: skip
        data = {"isLogin": False, "wbi_img": wbi}
        if self.nav_padding:
            data["pad"], self.nav_padding = "x" * self.nav_padding, 0
        return self._json(-101, data, "账号未登录")

    async def _room_init(self, request: web.Request) -> web.Response:
        if self._record(request):
            return self._json(-352, message="-352")
        if not self.room_exists:
            return self._json(60004, message="直播间不存在")
        return self._json(0, {"room_id": 21452505, "short_id": int(request.query["id"])})

    async def _danmu_info(self, request: web.Request) -> web.Response:
        refusal = self._record(request)
        if refusal is None and not wbi_ok(request.query_string):
            refusal = "bad WBI signature"
            self.http_refusals.append(refusal)
        if refusal is not None:
            return self._json(-352, message="-352")
        if self.risk:
            code = self.risk.pop(0)
            if code == -412:
                return web.Response(status=412, text="blocked")
            return self._json(code, message=str(code))
        self.tokens += 1
        hosts = [
            {"host": "127.0.0.1", "port": 9, "wss_port": 9, "ws_port": 9},
            {"host": self.host, "port": self.port, "wss_port": 443, "ws_port": self.port},
        ]
        return self._json(0, {"token": f"token-{self.tokens}", "host_list": hosts})
