"""The ``bilibili`` connector: our own aiohttp WebSocket client for the live danmaku server.

``LiveSocketConnector`` is the session both Bilibili connectors share on the core skeleton: the
binary protocol (auth, heartbeats, reads) on one of the servers a ``Target`` names. Subclasses
say where to connect and how to authenticate (``_target``; the web auth packet, or the open
platform's auth body as is) and map the commands. The web connector's HTTP side is ``api.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any, Protocol

import aiohttp
from pydantic import Field, field_validator

from ishowtts.connectors import (
    AuthFailed,
    ConnectorContext,
    GiveUp,
    Outcome,
    Recent,
    SessionConnector,
    SessionEnded,
    SessionOptions,
    receive_frame,
    short,
    websocket_url,
)

from . import protocol as p
from .api import BROWSER_HEADERS, Credentials, RiskControl, RoomNotFound, Target, WebApi
from .commands import CommandMapper, MalformedCommand

MAX_OVERSIZED = 3  # frames past the protocol bounds a session may send before it is ended


class SocketOptions(SessionOptions):
    """What every connection to the live danmaku server needs (web and open platform)."""

    heartbeat_s: float = Field(30.0, gt=0)
    auth_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(70.0, gt=0)  # silence (not even a heartbeat reply) → reconnect
    max_auth_failures: int | None = Field(5, ge=1)  # refusals in a row, then FAILED
    mirror: bool = False  # read danmaku mirrored from other rooms (DANMU_MSG_MIRROR)
    lottery_danmaku: bool = False  # read the lines a lottery or gift storm sends for viewers


class BilibiliOptions(SocketOptions):
    room: int | str  # the id in the room's URL (short ids are resolved) or the URL itself
    endpoint: str | None = None  # ws(s):// URL override (relay, tests): then no HTTP call at all
    uid: int = Field(0, ge=0)  # with endpoint: the uid sent in the auth packet
    token: str = Field("", repr=False)  # with endpoint: the auth key
    # Names of environment variables holding the cookies; their values are never logged.
    sessdata_env: str = "BILIBILI_SESSDATA"
    bili_jct_env: str = "BILIBILI_BILI_JCT"
    buvid3_env: str = "BILIBILI_BUVID3"
    buvid4_env: str = "BILIBILI_BUVID4"
    dedeuserid_env: str = "BILIBILI_DEDEUSERID"
    # The HTTP side's hosts (a local server in tests).
    live_api: str = "https://api.live.bilibili.com"
    main_api: str = "https://api.bilibili.com"
    risk_backoff_s: float = Field(60.0, gt=0)  # at least this long after -352/-412

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
        return None if value is None else websocket_url(value)


class Mapper(Protocol):
    """What the socket session needs from a command mapper (web and open platform ones)."""

    room: str
    recent: Recent

    def translate(self, msg: Any) -> Outcome: ...


class LiveSocketConnector(SessionConnector):
    platform = "bilibili"
    Options: type[SocketOptions] = SocketOptions

    def __init__(self, name: str, options: SocketOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: SocketOptions = options
        self.room = ""
        self.mapper: Mapper = CommandMapper("", memory=options.dedupe_memory)
        self.popularity = 0
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None  # so a side task can end it
        self._oversized = 0  # frames past the protocol's bounds in this session

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(headers=BROWSER_HEADERS)

    async def _target(self, http: aiohttp.ClientSession) -> Target:
        raise NotImplementedError

    def _auth_packet(self, target: Target) -> bytes:
        if target.auth_body:
            return target.auth_body
        auth = {
            "uid": target.uid,
            "roomid": target.room_id,
            "protover": 3,
            "buvid": target.buvid,
            "platform": "web",
            "type": 2,
            "key": target.token,
        }
        return json.dumps(auth).encode()

    async def _connect(
        self, http: aiohttp.ClientSession, target: Target
    ) -> aiohttp.ClientWebSocketResponse[bool]:
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
        self._oversized = 0
        target = await self._target(http)  # a fresh token and server list for every attempt
        ws = await asyncio.wait_for(self._connect(http, target), o.connect_timeout_s)
        loop = asyncio.get_running_loop()
        self._ws = ws
        try:
            await ws.send_bytes(p.encode(self._auth_packet(target), p.Op.AUTH))
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
            self._ws = None
            await ws.close()

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        beat = p.heartbeat()
        while True:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(beat)
                self.counters["heartbeats_sent"] += 1
            await asyncio.sleep(self.options.heartbeat_s)

    # -- frames --------------------------------------------------------------------------------
    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse[bool], authed: bool, timeout: float
    ) -> bool:
        """Reads one WebSocket message; True when it held the auth reply saying yes."""
        data = await receive_frame(self, ws, timeout, aiohttp.WSMsgType.BINARY)
        if data is None:
            return False
        try:
            packets = p.decode(data)
        except p.ProtocolError as exc:
            # A frame's cost is bounded (protocol.py), so one bomb keeps the session: reconnecting
            # would lose chat. A server that keeps sending them is hostile or broken: its session
            # ends and the backoff applies, so it cannot keep the loop busy inflating.
            packets = exc.packets
            self.malformed(exc.reason)
            if exc.oversized:
                self.counters["oversized"] += 1
                self._oversized += 1
                if self._oversized >= MAX_OVERSIZED:
                    raise SessionEnded(
                        f"{self._oversized} oversized frames in one session"
                    ) from None
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
            except (ValueError, RecursionError):  # a hostile server's "[[[[...": refused
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
        # JSONDecodeError, UnicodeError and 5,000-digit numbers are ValueErrors; nesting past the
        # stack is a RecursionError. Either costs this command, never the frame or the session.
        except (ValueError, RecursionError, MalformedCommand) as exc:
            self.malformed(str(exc))
            return
        await self.deliver(outcome)

    def on_notice(self, note: str) -> None:
        super().on_notice(note)
        self.log.info("bilibili_live_status", status=note, room=self.room)


class BilibiliConnector(LiveSocketConnector):
    """``type: bilibili``: the web client's path (no app, any room, names need a login)."""

    Options = BilibiliOptions

    def __init__(self, name: str, options: BilibiliOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: BilibiliOptions = options
        self.room = str(options.room)
        self.creds = Credentials.from_env(
            options.sessdata_env,
            options.bili_jct_env,
            options.buvid3_env,
            options.buvid4_env,
            options.dedeuserid_env,
        )
        self.mapper = CommandMapper(
            self.room,
            memory=options.dedupe_memory,
            mirror=options.mirror,
            masked_names=not self.creds.logged_in,
            lottery=options.lottery_danmaku,
        )
        self._warned_login = False
        self._risk_streak = 0

    async def _target(self, http: aiohttp.ClientSession) -> Target:
        o = self.options
        if not self.creds.logged_in and not self._warned_login:
            self._warn_masked()
        if o.endpoint:
            return Target(int(o.room), (o.endpoint,), o.token, o.uid, self.creds.buvid3)
        api = WebApi(http, self.creds, o.main_api, o.live_api)
        try:
            # The HTTP side must not hang a reconnect loop forever.
            target = await asyncio.wait_for(api.target(int(o.room)), 3 * o.connect_timeout_s)
        except RoomNotFound as exc:
            raise GiveUp(str(exc)) from exc
        except RiskControl as exc:
            self._risk_streak += 1
            self.counters["risk_control"] += 1
            wait = o.risk_backoff_s * min(self._risk_streak, 4)
            self.wait_at_least(wait)
            if self._risk_streak == 1:  # one line per streak, not one per retry
                self.log.warning(
                    "bilibili_risk_control",
                    error=str(exc),
                    retry_in_s=wait,
                    hint="the service's risk control refused the HTTP side: set the cookies of a "
                    f"logged-in browser (${o.sessdata_env}, ${o.buvid3_env}, ${o.buvid4_env}) "
                    "or wait; retrying slowly",
                )
            raise SessionEnded(str(exc)) from None
        if self._risk_streak:
            self.log.info("bilibili_risk_control_cleared", after=self._risk_streak)
            self._risk_streak = 0
        self.log.info(
            "bilibili_room_resolved",
            room=o.room,
            room_id=target.room_id,
            servers=len(target.urls),
            logged_in=self.creds.logged_in,
        )
        return target

    def _warn_masked(self) -> None:
        self._warned_login = True
        self.log.warning(
            "bilibili_names_masked",
            hint="not logged in: the service masks user names, so they are read as "
            f"speech.anonymous; set the SESSDATA cookie in ${self.options.sessdata_env}",
        )

    def on_notice(self, note: str) -> None:
        if note == "login_notice":
            self.counters[f"notice:{note}"] += 1
            if not self._warned_login:
                self._warn_masked()
            return
        super().on_notice(note)
