"""The ``twitch`` connector: anonymous read of a channel's chat over IRC-over-WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from typing import Any

import aiohttp
from pydantic import Field, field_validator

from ishowtts.confload import Section
from ishowtts.connectors import Backoff, BaseConnector, ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Retraction

from . import irc
from .commands import MalformedMessage, MessageMapper

DEFAULT_ENDPOINT = "wss://irc-ws.chat.twitch.tv:443"


class TwitchOptions(Section):
    channel: str  # the channel's login ("#" optional), or its twitch.tv URL
    endpoint: str = DEFAULT_ENDPOINT
    nick: str | None = None  # default: an anonymous justinfanNNNNN
    ping_s: float = Field(60.0, gt=0)  # our own PING; the server's come every ~5 minutes
    auth_timeout_s: float = Field(10.0, gt=0)  # for the welcome (001) and our JOIN echo
    read_timeout_s: float = Field(150.0, gt=0)  # silence, not even a PONG → reconnect
    connect_timeout_s: float = Field(10.0, gt=0)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    dedupe_memory: int = Field(4096, ge=16)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        name = value.strip().rstrip("/").rsplit("/", 1)[-1].lstrip("#").lower()
        if not re.fullmatch(r"[a-z0-9_]{1,25}", name):
            raise ValueError(f"expected a Twitch login like 'shroud', got {value!r}")
        return name

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.match(r"^wss?://", value):
            raise ValueError(f"endpoint must start with ws:// or wss://, got {value!r}")
        return value


class SessionEnded(Exception):
    pass


class Reconnect(Exception):
    """The server asked us to reconnect (RECONNECT): do it now, no backoff."""


class AuthFailed(Exception):
    pass


class TwitchConnector(BaseConnector):
    platform = "twitch"
    Options = TwitchOptions

    def __init__(self, name: str, options: TwitchOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: TwitchOptions = options
        self.mapper = MessageMapper(options.channel, memory=options.dedupe_memory)
        self.backoff = Backoff(options.backoff_initial_s, options.backoff_max_s)

    async def run(self) -> None:
        first = True
        async with aiohttp.ClientSession() as http:
            while True:
                self.set_state(ConnectorState.CONNECTING if first else ConnectorState.RECONNECTING)
                first = False
                delay: float | None = None
                try:
                    await self._session(http)
                except Reconnect:
                    delay = 0.0
                    self.log.info("twitch_reconnect_requested")
                except AuthFailed as exc:
                    self.counters["auth_failures"] += 1
                    self.log.warning("twitch_auth_failed", error=str(exc))
                except (SessionEnded, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                    self.log.info("twitch_disconnected", error=f"{type(exc).__name__}: {exc}"[:200])
                self.counters["reconnects"] += 1
                self.set_state(ConnectorState.RECONNECTING)
                delay = self.backoff.next_delay() if delay is None else delay
                self.log.info("twitch_reconnect_in", seconds=round(delay, 2))
                await asyncio.sleep(delay)

    async def _session(self, http: aiohttp.ClientSession) -> None:
        o = self.options
        ws = await asyncio.wait_for(http.ws_connect(o.endpoint, autoping=True), o.connect_timeout_s)
        nick = o.nick or f"justinfan{random.randint(10000, 99999)}"
        pinger: asyncio.Task[None] | None = None
        try:
            # Anonymous login: any PASS, a justinfan nick; tags + commands give ids and USERNOTICE.
            await ws.send_str("CAP REQ :twitch.tv/tags twitch.tv/commands")
            await ws.send_str("PASS SCHMOOPIIE")
            await ws.send_str(f"NICK {nick}")
            await ws.send_str(f"JOIN #{o.channel}")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + o.auth_timeout_s
            joined = False
            while not joined:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise AuthFailed(f"not welcomed and joined within {o.auth_timeout_s} s")
                try:
                    joined = await self._read(ws, nick, remaining)
                except asyncio.TimeoutError:
                    raise AuthFailed(
                        f"not welcomed and joined within {o.auth_timeout_s} s"
                    ) from None
            self.backoff.reset()
            self.set_state(ConnectorState.CONNECTED, channel=o.channel)
            pinger = asyncio.create_task(self._ping(ws), name=f"ping:{self.name}")
            while True:
                try:
                    await self._read(ws, nick, o.read_timeout_s)
                except asyncio.TimeoutError:
                    raise SessionEnded(f"silent for {o.read_timeout_s} s") from None
        finally:
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger
            await ws.close()

    async def _ping(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.options.ping_s)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str("PING :ishowtts")
                self.counters["pings_sent"] += 1

    async def _read(self, ws: Any, nick: str, timeout: float) -> bool:
        """One WebSocket message; True if it held our JOIN echo (we are in the channel)."""
        msg = await ws.receive(timeout=timeout)
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            raise SessionEnded(f"closed by server ({ws.close_code})")
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise SessionEnded(f"websocket error: {ws.exception()!r}")
        self.counters["frames"] += 1
        if msg.type != aiohttp.WSMsgType.TEXT:
            self._malformed(f"{msg.type.name} frame where IRC text was expected")
            return False
        joined = False
        for line in irc.lines(msg.data):
            self.counters["lines"] += 1
            try:
                m = irc.parse(line)
            except irc.IrcError as exc:
                self._malformed(str(exc))
                continue
            joined = await self._message(ws, m, nick) or joined
        return joined

    async def _message(self, ws: Any, m: irc.Message, nick: str) -> bool:
        if m.command == "PING":
            await ws.send_str(f"PONG :{m.trailing or 'tmi.twitch.tv'}")
            self.counters["pongs_sent"] += 1
            return False
        if m.command == "RECONNECT":
            raise Reconnect()
        if m.command == "NOTICE" and "authentication failed" in m.trailing.lower():
            raise AuthFailed(m.trailing)
        if m.command == "JOIN" and m.nick == nick:
            return True
        if m.command == "NOTICE":
            self.counters[f"notice:{m.tags.get('msg-id', '')[:64]}"] += 1
            self.log.info("twitch_notice", msg_id=m.tags.get("msg-id", ""), text=m.trailing[:200])
            return False
        try:
            outcome = self.mapper.translate(m)
        except MalformedMessage as exc:
            self._malformed(str(exc))
            return False
        if outcome.status == "unknown":
            self.counters["unknown"] += 1
            self.counters[f"unknown:{outcome.note[:64]}"] += 1
        else:
            self.counters[outcome.status] += 1
        for item in outcome.items:
            if isinstance(item, ChatEvent):
                if item.raw_id and self.mapper.recent.check_and_add(f"id:{item.raw_id}"):
                    self.counters["duplicate"] += 1
                    continue
                self.counters["events"] += 1
                self.counters[f"kind:{item.kind}"] += 1
            elif isinstance(item, Retraction):
                self.counters["retractions"] += 1
            await self.emit(item)
        return False

    def _malformed(self, reason: str) -> None:
        n = self.counters["malformed"] = self.counters["malformed"] + 1
        if n <= 10 or n % 1000 == 0:
            self.log.warning("twitch_malformed", reason=reason[:200], malformed_total=n)
