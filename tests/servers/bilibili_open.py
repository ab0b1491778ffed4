"""A local Bilibili live open platform: the signed HTTP API (``/v2/app/start``, ``heartbeat``,
``end``) and the WebSocket it names (the live danmaku protocol, authenticated by the session's
auth body). Like the real one it refuses a bad signature, a reused nonce, a stale timestamp or a
wrong 身份码, ends a session whose heartbeats stop (``LIVE_OPEN_PLATFORM_INTERACTION_END`` on
its sockets, then 7003 to its heartbeats) and answers 7002 while the room has a session.

The signature check is written here from the platform's description, independently of the
connector's signing code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.servers.util import serve

from . import bilibili_samples as s
from .bilibili import notice_frame, pack, unpack_one

KEY_ID, SECRET, AUTH_CODE, APP_ID = "test-key-id", "test-secret-0123", "ABCDEFGH12345", 1_700_000


@dataclass
class Game:
    game_id: str
    auth_body: str
    last_beat: float
    beats: int = 0
    ended: bool = False


@dataclass
class Sock:
    request: web.Request
    ws: web.WebSocketResponse
    game: Game | None = None


@dataclass
class OpenServer:
    heartbeat_timeout_s: float = 60.0
    whitelisted: bool = True  # False: 5004 for this room
    start_codes: list[int] = field(default_factory=list)  # answered (then removed) to starts
    refuse_sockets: int = 0  # the next socket auths refused (code -101)
    dead_games: int = 0  # the first games name only a dead server
    heartbeat_codes: list[Any] = field(default_factory=list)  # "code"s answered to heartbeats
    extra_links: int = 0  # dead servers named before the live one
    end_at_auth: bool = False  # INTERACTION_END on every socket right after its auth
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why a request was refused
    games: list[Game] = field(default_factory=list)
    socket_heartbeats: int = 0
    auths: list[str] = field(default_factory=list)
    _socks: list[Sock] = field(default_factory=list)
    _nonces: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _watch: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def live_game(self) -> Game | None:
        return next((g for g in self.games if not g.ended), None)

    def paths(self) -> list[str]:
        return [p for p, _ in self.calls]

    async def start(self) -> OpenServer:
        app = web.Application()
        app.router.add_post("/v2/app/{what}", self._api)
        app.router.add_get("/sub", self._socket)
        self._runner, self.port = await serve(app, self.host, self.port)
        self._watch = asyncio.create_task(self._watchdog())
        return self

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.drop_sockets()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def drop_sockets(self) -> None:
        """Cut every socket without a close frame, as a network fault would."""
        for sock in self._socks:
            if sock.request.transport is not None:
                sock.request.transport.abort()
        self._socks.clear()

    # -- the HTTP side -------------------------------------------------------------------------
    def _check_signature(self, request: web.Request, body: bytes) -> str | None:
        h = request.headers
        names = sorted(k.lower() for k in h if k.lower().startswith("x-bili-"))
        expected = [
            "x-bili-accesskeyid", "x-bili-content-md5", "x-bili-signature-method",
            "x-bili-signature-nonce", "x-bili-signature-version", "x-bili-timestamp",
        ]  # fmt: skip
        if names != expected:
            return f"signed headers {names}"
        if h["x-bili-accesskeyid"] != KEY_ID:
            return "4001"
        if h["x-bili-content-md5"] != hashlib.md5(body).hexdigest():
            return "4012"
        if abs(int(h["x-bili-timestamp"]) - time.time()) > 600:
            return "4003"
        if h["x-bili-signature-method"] != "HMAC-SHA256" or h["x-bili-signature-version"] != "1.0":
            return "4005"
        if h["x-bili-signature-nonce"] in self._nonces:
            return "4004"
        self._nonces.add(h["x-bili-signature-nonce"])
        canonical = "\n".join(f"{k}:{h[k]}" for k in expected)
        digest = hmac.new(SECRET.encode(), canonical.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(digest, h.get("Authorization", "")):
            return "4002"
        if h.get("Content-Type", "").split(";")[0] != "application/json":
            return "4011"
        return None

    @staticmethod
    def _answer(code: int, data: Any = None) -> web.Response:
        body = {"code": code, "message": "ok" if code == 0 else f"error {code}",
                "request_id": "req-1", "data": data if data is not None else {}}  # fmt: skip
        return web.json_response(body)

    async def _api(self, request: web.Request) -> web.Response:
        what = request.match_info["what"]
        body = await request.read()
        refusal = self._check_signature(request, body)
        payload = json.loads(body) if body else {}
        self.calls.append((what, payload))
        if refusal is not None:
            self.refused.append(refusal)
            return self._answer(int(refusal) if refusal.isdigit() else 4000)
        if what == "start":
            return await self._start(payload)
        if what == "heartbeat":
            game = next((g for g in self.games if g.game_id == payload.get("game_id")), None)
            if game is None or game.ended:
                return self._answer(7003)
            game.last_beat, game.beats = time.monotonic(), game.beats + 1
            if self.heartbeat_codes:  # a broken answer: the beat counts, the code is junk
                body = {"code": self.heartbeat_codes.pop(0), "message": "?", "data": {}}
                return web.json_response(body)
            return self._answer(0)
        if what == "end":
            game = next((g for g in self.games if g.game_id == payload.get("game_id")), None)
            if game is None or game.ended or payload.get("app_id") != APP_ID:
                return self._answer(7000)
            await self._end(game, notify=False)
            return self._answer(0)
        return self._answer(4010)

    async def _start(self, payload: dict[str, Any]) -> web.Response:
        if self.start_codes:
            return self._answer(self.start_codes.pop(0))
        if payload.get("app_id") != APP_ID:
            return self._answer(8002)
        if payload.get("code") != AUTH_CODE:
            return self._answer(7007)
        if not self.whitelisted:
            return self._answer(5004)
        if self.live_game() is not None:
            return self._answer(7002)
        n = next(self._ids)
        game = Game(
            f"game-{n}", json.dumps({"key": f"k{n}", "roomid": s.OPEN_ROOM}), time.monotonic()
        )
        self.games.append(game)
        return self._answer(0, {
            "game_info": {"game_id": game.game_id},
            "websocket_info": {"auth_body": game.auth_body, "wss_link": [
                f"ws://{self.host}:9/sub"] * (1 + self.extra_links) + ([] if n <= self.dead_games
                else [f"ws://{self.host}:{self.port}/sub"])},
            "anchor_info": {**s.ANCHOR, "room_id": s.OPEN_ROOM},
        })  # fmt: skip

    async def _end(self, game: Game, notify: bool) -> None:
        game.ended = True
        for sock in [x for x in self._socks if x.game is game]:
            if notify:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await sock.ws.send_bytes(
                        notice_frame([s.open_interaction_end(game.game_id)], 0)
                    )
            await sock.ws.close()

    async def end_now(self) -> None:
        """The platform ends the live session (as it does when heartbeats stop)."""
        game = self.live_game()
        assert game is not None
        await self._end(game, notify=True)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            for game in self.games:
                if not game.ended and time.monotonic() - game.last_beat > self.heartbeat_timeout_s:
                    await self._end(game, notify=True)

    # -- the WebSocket -------------------------------------------------------------------------
    def live(self) -> list[Sock]:
        return [x for x in self._socks if x.game is not None and not x.ws.closed]

    async def push(self, commands: list[dict[str, Any]], ver: int = 3) -> None:
        for sock in self.live():
            await sock.ws.send_bytes(notice_frame(commands, ver))

    async def wait_live(self, n: int = 1, timeout: float = 5.0) -> None:
        """Until ``n`` socket authentications in all, and one socket live now."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.live() or len(self.auths) < n:
            if loop.time() > deadline:
                raise AssertionError("no authenticated socket")
            await asyncio.sleep(0.005)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        sock = Sock(request, ws)
        self._socks.append(sock)
        try:
            first = await ws.receive(timeout=5.0)
            if first.type != WSMsgType.BINARY:
                return ws
            _ver, op, _seq, body = unpack_one(first.data)
            game = next((g for g in self.games if g.auth_body.encode() == body), None)
            if self.refuse_sockets:
                self.refuse_sockets -= 1
                game = None
            if op != 7 or game is None or game.ended:
                self.refused.append("socket auth")
                await ws.send_bytes(pack(b'{"code":-101}', 8, 1))
                return ws
            self.auths.append(game.game_id)
            sock.game = game
            await ws.send_bytes(pack(b'{"code":0}', 8, 1))
            if self.end_at_auth:
                await self._end(game, notify=True)
                return ws
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and unpack_one(msg.data)[1] == 2:
                    self.socket_heartbeats += 1
                    await ws.send_bytes(pack(struct.pack(">I", 1), 3, 1))
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._socks.remove(sock)
        return ws
