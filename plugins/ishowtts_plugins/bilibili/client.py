"""The ``bilibili`` connector: our own aiohttp WebSocket client for the live danmaku server.

bilibili-api-python's ``LiveDanmaku`` is not used for the connection: it gives up after a close
or a refused connection, cannot read zlib (protover 2) bodies, hard-codes ``wss://`` (no relay or
local server), reuses one token and server list for all its retries, and polls the web
heartbeat API every 60 s. The library still does the HTTP work it is good at (api.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import aiohttp
from pydantic import Field, field_validator

from ishowtts.connectors import (
    AuthFailed,
    ConnectorContext,
    GiveUp,
    SessionConnector,
    SessionEnded,
    SessionOptions,
)
from ishowtts.connectors.session import short
from ishowtts.connectors.websocket import receive

from . import protocol as p
from .api import Credentials, RoomNotFound, Target, fetch_target
from .commands import CommandMapper, MalformedCommand

HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Origin": "https://live.bilibili.com",
}


class BilibiliOptions(SessionOptions):
    room: int | str  # the id in the room's URL (short ids are resolved) or the URL itself
    endpoint: str | None = None  # ws(s):// URL override (relay, tests): then no HTTP call at all
    uid: int = Field(0, ge=0)  # with endpoint: the uid sent in the auth packet
    token: str = Field("", repr=False)  # with endpoint: the auth key
    # Names of environment variables holding the cookies; their values are never logged.
    sessdata_env: str = "BILIBILI_SESSDATA"
    bili_jct_env: str = "BILIBILI_BILI_JCT"
    buvid3_env: str = "BILIBILI_BUVID3"
    dedeuserid_env: str = "BILIBILI_DEDEUSERID"
    heartbeat_s: float = Field(30.0, gt=0)
    auth_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(70.0, gt=0)  # silence (not even a heartbeat reply) → reconnect
    max_auth_failures: int | None = Field(5, ge=1)  # refusals in a row, then FAILED

    @field_validator("room")
    @classmethod
    def _room(cls, value: int | str) -> int:
        if isinstance(value, int):
            if value <= 0:
                raise ValueError("room must be a positive room id")
            return value
        m = re.search(r"(\d+)\s*/?\s*(?:\?.*)?$", value.strip())
        if not m or int(m.group(1)) <= 0:
            raise ValueError(f"expected a room id or a live.bilibili.com URL, got {value!r}")
        return int(m.group(1))

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^wss?://", value):
            raise ValueError(f"endpoint must start with ws:// or wss://, got {value!r}")
        return value


class BilibiliConnector(SessionConnector):
    platform = "bilibili"
    Options = BilibiliOptions

    def __init__(self, name: str, options: BilibiliOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: BilibiliOptions = options
        self.room = str(options.room)
        self.mapper = CommandMapper(self.room, memory=options.dedupe_memory)
        self.popularity = 0
        self._warned_login = False

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(headers=HEADERS)

    async def _target(self) -> Target:
        o = self.options
        if o.endpoint:
            buvid = Credentials.from_env("", "", o.buvid3_env, "").buvid3
            return Target(int(o.room), (o.endpoint,), o.token, o.uid, buvid)
        creds = Credentials.from_env(o.sessdata_env, o.bili_jct_env, o.buvid3_env, o.dedeuserid_env)
        # The HTTP side must not hang a reconnect loop forever.
        try:
            target = await asyncio.wait_for(
                fetch_target(int(o.room), creds), 3 * o.connect_timeout_s
            )
        except RoomNotFound as exc:
            raise GiveUp(str(exc)) from exc
        self.log.info(
            "bilibili_room_resolved", room=o.room, room_id=target.room_id,
            servers=len(target.urls), logged_in=creds.logged_in,
        )  # fmt: skip
        return target

    async def _connect(
        self, http: aiohttp.ClientSession, target: Target
    ) -> aiohttp.ClientWebSocketResponse:
        last: BaseException | None = None
        for url in target.urls:
            try:
                return await http.ws_connect(
                    url,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                    autoping=True,
                    max_msg_size=p.MAX_INFLATED,
                )
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                last = exc
                self.log.info("bilibili_server_unreachable", url=url, error=short(exc))
        raise SessionEnded(f"no server reachable: {short(last)}")

    async def session(self, http: aiohttp.ClientSession) -> None:
        o = self.options
        target = await self._target()  # a fresh token and server list for every attempt
        ws = await asyncio.wait_for(self._connect(http, target), o.connect_timeout_s)
        loop = asyncio.get_running_loop()
        try:
            auth = {
                "uid": target.uid, "roomid": target.room_id, "protover": 3,
                "buvid": target.buvid, "platform": "web", "type": 2, "key": target.token,
            }  # fmt: skip
            await ws.send_bytes(p.encode(json.dumps(auth).encode(), p.Op.AUTH))
            deadline = loop.time() + o.auth_timeout_s
            try:
                while not await self._read(ws, False, max(0.001, deadline - loop.time())):
                    if loop.time() >= deadline:
                        raise asyncio.TimeoutError
            except asyncio.TimeoutError:
                raise AuthFailed(f"no auth reply within {o.auth_timeout_s} s", False) from None
            self.connected(room_id=target.room_id)
            async with self.alongside(self._heartbeat(ws), "heartbeat"):
                while True:
                    try:
                        await self._read(ws, True, o.read_timeout_s)
                    except asyncio.TimeoutError:
                        raise SessionEnded(f"silent for {o.read_timeout_s} s") from None
        finally:
            await ws.close()

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        beat = p.heartbeat()
        while True:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(beat)
                self.counters["heartbeats_sent"] += 1
            await asyncio.sleep(self.options.heartbeat_s)

    # -- frames --------------------------------------------------------------------------------
    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, authed: bool, timeout: float
    ) -> bool:
        """Reads one WebSocket message; True when it held the auth reply saying yes."""
        msg = await receive(ws, timeout)
        self.counters["frames"] += 1
        if msg.type != aiohttp.WSMsgType.BINARY:
            self.malformed(f"{msg.type.name} frame where binary was expected")
            return False
        try:
            packets = p.decode(msg.data)
        except p.ProtocolError as exc:
            packets = exc.packets
            self.malformed(exc.reason)
        ok = False
        for packet in packets:
            ok = await self._packet(packet, authed) or ok
        return ok

    async def _packet(self, packet: p.Packet, authed: bool) -> bool:
        self.counters["packets"] += 1
        if packet.op == p.Op.NOTICE:
            await self._notice(packet.body)
        elif packet.op == p.Op.HEARTBEAT_REPLY:
            self.counters["heartbeat_replies"] += 1
            try:
                self.popularity = p.popularity(packet.body)
            except p.ProtocolError as exc:
                self.malformed(exc.reason)
        elif packet.op == p.Op.AUTH_REPLY:
            try:
                reply = json.loads(packet.body)
                code = reply.get("code") if isinstance(reply, dict) else None
            except ValueError:
                code = None
            if code != 0:
                raise AuthFailed(f"auth refused: {packet.body[:80]!r}", True)
            return not authed
        else:
            self.counters[f"op:{packet.op}"] += 1
        return False

    async def _notice(self, body: bytes) -> None:
        try:
            outcome = self.mapper.translate(json.loads(body))
        except (ValueError, MalformedCommand) as exc:  # JSONDecodeError and UnicodeError too
            self.malformed(str(exc))
            return
        await self.deliver(outcome)

    def on_notice(self, note: str) -> None:
        super().on_notice(note)
        if note == "login_notice":
            if not self._warned_login:
                self._warned_login = True
                self.log.warning(
                    "bilibili_names_masked",
                    hint="not logged in: the server masks user names; set the SESSDATA "
                    f"cookie in ${self.options.sessdata_env}",
                )
        else:
            self.log.info("bilibili_live_status", status=note, room=self.room)
