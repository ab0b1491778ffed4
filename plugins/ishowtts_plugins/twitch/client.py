"""The ``twitch`` connector: anonymous read of a channel's chat over IRC-over-WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re

import aiohttp
from pydantic import Field, field_validator

from ishowtts.connectors import (
    AuthFailed,
    ConnectorContext,
    ReconnectNow,
    SessionConnector,
    SessionEnded,
    SessionOptions,
    receive_frame,
    websocket_url,
)

from . import irc
from .commands import MalformedMessage, MessageMapper

DEFAULT_ENDPOINT = "wss://irc-ws.chat.twitch.tv:443"


class TwitchOptions(SessionOptions):
    channel: str  # the channel's login ("#" optional), or its twitch.tv URL
    endpoint: str = DEFAULT_ENDPOINT
    nick: str | None = None  # default: an anonymous justinfanNNNNN
    ping_s: float = Field(60.0, gt=0)  # our own PING; the server's come every ~5 minutes
    auth_timeout_s: float = Field(10.0, gt=0)  # for the welcome (001) and our JOIN echo
    read_timeout_s: float = Field(150.0, gt=0)  # silence, not even a PONG → reconnect

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        name = value.strip().rstrip("/").rsplit("/", 1)[-1].lstrip("#").lower()
        if not re.fullmatch(r"[a-z0-9_]{1,25}", name):
            raise ValueError(f"expected a Twitch login like 'shroud', got {value!r}")
        return name

    _endpoint = field_validator("endpoint")(websocket_url)


class TwitchConnector(SessionConnector):
    platform = "twitch"
    Options = TwitchOptions

    def __init__(self, name: str, options: TwitchOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: TwitchOptions = options
        self.mapper = MessageMapper(options.channel, memory=options.dedupe_memory)

    async def session(self, http: aiohttp.ClientSession) -> None:
        o = self.options
        ws = await asyncio.wait_for(http.ws_connect(o.endpoint, autoping=True), o.connect_timeout_s)
        nick = o.nick or f"justinfan{random.randint(10000, 99999)}"
        try:
            # Anonymous login: any PASS, a justinfan nick; tags + commands give ids and USERNOTICE.
            await ws.send_str("CAP REQ :twitch.tv/tags twitch.tv/commands")
            await ws.send_str("PASS SCHMOOPIIE")
            await ws.send_str(f"NICK {nick}")
            await ws.send_str(f"JOIN #{o.channel}")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + o.auth_timeout_s
            late = f"not welcomed and joined within {o.auth_timeout_s} s"
            joined = False
            while not joined:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise AuthFailed(late, refused=False)
                try:
                    joined = await self._read(ws, nick, remaining)
                except asyncio.TimeoutError:
                    raise AuthFailed(late, refused=False) from None
            self.connected(channel=o.channel)
            async with self.alongside(self._ping(ws), "ping"):
                while True:
                    try:
                        await self._read(ws, nick, o.read_timeout_s)
                    except asyncio.TimeoutError:
                        raise SessionEnded(f"silent for {o.read_timeout_s} s") from None
        finally:
            await ws.close()

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        while True:
            await asyncio.sleep(self.options.ping_s)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str("PING :ishowtts")
                self.counters["pings_sent"] += 1

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse[bool], nick: str, timeout: float
    ) -> bool:
        """One WebSocket message; True if it held our JOIN echo (we are in the channel)."""
        data = await receive_frame(self, ws, timeout, aiohttp.WSMsgType.TEXT)
        if data is None:
            return False
        joined = False
        for line in irc.lines(data):
            self.counters["lines"] += 1
            try:
                m = irc.parse(line)
            except irc.IrcError as exc:
                self.malformed(str(exc))
                continue
            joined = await self._message(ws, m, nick) or joined
        return joined

    async def _message(
        self, ws: aiohttp.ClientWebSocketResponse[bool], m: irc.Message, nick: str
    ) -> bool:
        if m.command == "PING":
            await ws.send_str(f"PONG :{m.trailing or 'tmi.twitch.tv'}")
            self.counters["pongs_sent"] += 1
            return False
        if m.command == "RECONNECT":
            raise ReconnectNow()
        if m.command == "NOTICE" and "authentication failed" in m.trailing.lower():
            raise AuthFailed(m.trailing, refused=True)
        if m.command == "JOIN" and m.nick == nick:
            return True
        if m.command == "NOTICE":
            key = f"notice:{m.tags.get('msg-id', '')[:64]}"
            self.counters[key] += 1
            if self.counters[key] == 1:  # each kind once: a flood of notices is counted, not logged
                self.log.info("twitch_notice", msg_id=key[7:], text=m.trailing[:200])
            return False
        try:
            outcome = self.mapper.translate(m)
        except MalformedMessage as exc:
            self.malformed(str(exc))
            return False
        await self.deliver(outcome)
        return False
