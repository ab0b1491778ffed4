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
from typing import Any

import aiohttp
from pydantic import Field, field_validator

from ishowtts.confload import Section
from ishowtts.connectors import Backoff, BaseConnector, ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Retraction

from . import protocol as p
from .api import Credentials, RoomNotFound, Target, fetch_target
from .commands import CommandMapper, MalformedCommand

HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Origin": "https://live.bilibili.com",
}


class BilibiliOptions(Section):
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
    connect_timeout_s: float = Field(10.0, gt=0)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    max_auth_failures: int = Field(5, ge=1)  # refusals in a row, then FAILED (needs the operator)
    dedupe_memory: int = Field(4096, ge=16)  # ids remembered to drop repeats

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


class AuthFailed(Exception):
    def __init__(self, reason: str, refused: bool) -> None:
        super().__init__(reason)
        self.refused = refused  # the server said no (vs. said nothing): counts toward FAILED


class SessionEnded(Exception):
    pass


class BilibiliConnector(BaseConnector):
    platform = "bilibili"
    Options = BilibiliOptions

    def __init__(self, name: str, options: BilibiliOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: BilibiliOptions = options
        self.room = str(options.room)
        self.mapper = CommandMapper(self.room, memory=options.dedupe_memory)
        self.backoff = Backoff(options.backoff_initial_s, options.backoff_max_s)
        self.popularity = 0
        self._warned_login = False
        self._auth_failures = 0

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        o = self.options
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            first = True
            while True:
                self.set_state(ConnectorState.CONNECTING if first else ConnectorState.RECONNECTING)
                first = False
                try:
                    target = await self._target()
                    await self._session(http, target)
                except RoomNotFound as exc:
                    self.set_state(ConnectorState.FAILED, error=str(exc))
                    return
                except AuthFailed as exc:
                    self.counters["auth_failures"] += 1
                    self._auth_failures += exc.refused
                    self.log.warning("bilibili_auth_failed", error=str(exc))
                    if self._auth_failures >= o.max_auth_failures:
                        self.set_state(
                            ConnectorState.FAILED, error=f"auth refused {self._auth_failures}x"
                        )
                        return
                except (SessionEnded, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                    self.log.info("bilibili_disconnected", error=_short(exc))
                except Exception as exc:  # the HTTP side can raise anything; keep trying
                    self.log.warning("bilibili_error", error=_short(exc))
                self.counters["reconnects"] += 1
                self.set_state(ConnectorState.RECONNECTING)
                delay = self.backoff.next_delay()
                self.log.info("bilibili_reconnect_in", seconds=round(delay, 2))
                await asyncio.sleep(delay)

    async def _target(self) -> Target:
        o = self.options
        if o.endpoint:
            buvid = Credentials.from_env("", "", o.buvid3_env, "").buvid3
            return Target(int(o.room), (o.endpoint,), o.token, o.uid, buvid)
        creds = Credentials.from_env(o.sessdata_env, o.bili_jct_env, o.buvid3_env, o.dedeuserid_env)
        # The HTTP side must not hang a reconnect loop forever.
        target = await asyncio.wait_for(fetch_target(int(o.room), creds), 3 * o.connect_timeout_s)
        self.log.info(
            "bilibili_room_resolved", room=o.room, room_id=target.room_id,
            servers=len(target.urls), logged_in=creds.logged_in,
        )  # fmt: skip
        return target

    async def _connect(self, http: aiohttp.ClientSession, target: Target) -> Any:
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
                self.log.info("bilibili_server_unreachable", url=url, error=_short(exc))
        raise SessionEnded(f"no server reachable: {_short(last)}")

    async def _session(self, http: aiohttp.ClientSession, target: Target) -> None:
        o = self.options
        ws = await asyncio.wait_for(self._connect(http, target), o.connect_timeout_s)
        heart: asyncio.Task[None] | None = None
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
            self._auth_failures = 0
            self.backoff.reset()
            self.set_state(ConnectorState.CONNECTED, room_id=target.room_id)
            heart = asyncio.create_task(self._heartbeat(ws), name=f"heartbeat:{self.name}")
            while True:
                try:
                    await self._read(ws, True, o.read_timeout_s)
                except asyncio.TimeoutError:
                    raise SessionEnded(f"silent for {o.read_timeout_s} s") from None
        finally:
            if heart is not None:
                heart.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heart
            await ws.close()

    async def _heartbeat(self, ws: Any) -> None:
        beat = p.heartbeat()
        while True:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(beat)
                self.counters["heartbeats_sent"] += 1
            await asyncio.sleep(self.options.heartbeat_s)

    # -- frames --------------------------------------------------------------------------------
    async def _read(self, ws: Any, authed: bool, timeout: float) -> bool:
        """Reads one WebSocket message; True when it held the auth reply saying yes."""
        msg = await ws.receive(timeout=timeout)
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            raise SessionEnded(f"closed by server ({ws.close_code})")
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise SessionEnded(f"websocket error: {_short(ws.exception())}")
        self.counters["frames"] += 1
        if msg.type != aiohttp.WSMsgType.BINARY:
            self._malformed(f"{msg.type.name} frame where binary was expected")
            return False
        try:
            packets = p.decode(msg.data)
        except p.ProtocolError as exc:
            packets = exc.packets
            self._malformed(exc.reason)
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
                self._malformed(exc.reason)
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
            msg = json.loads(body)
            outcome = self.mapper.translate(msg)
        except (ValueError, MalformedCommand) as exc:  # JSONDecodeError and UnicodeError too
            self._malformed(str(exc)[:200])
            return
        status = outcome.status
        if status == "unknown":
            self.counters["unknown"] += 1
            self.counters[f"unknown:{outcome.note[:64]}"] += 1
        elif status == "notice":
            self._notice_status(outcome.note)
        else:
            self.counters[status] += 1
        for item in outcome.items:
            if isinstance(item, ChatEvent):
                # Relays and replaying servers can send a message twice; ids say so.
                if item.raw_id and self.mapper.recent.check_and_add(
                    f"id:{item.kind}:{item.raw_id}"
                ):
                    self.counters["duplicate"] += 1
                    continue
                self.counters["events"] += 1
                self.counters[f"kind:{item.kind}"] += 1
            elif isinstance(item, Retraction):
                self.counters["retractions"] += 1
            await self.emit(item)

    def _notice_status(self, note: str) -> None:
        self.counters[f"notice:{note}"] += 1
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

    def _malformed(self, reason: str) -> None:
        n = self.counters["malformed"] = self.counters["malformed"] + 1
        # Logged, but a flood must not flood the log: the first few, then every 1000th.
        if n <= 10 or n % 1000 == 0:
            self.log.warning("bilibili_malformed_frame", reason=reason, malformed_total=n)


def _short(exc: BaseException | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown"
    return text if len(text) <= 200 else text[:197] + "..."
