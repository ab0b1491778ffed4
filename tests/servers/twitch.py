"""A local Twitch chat server: IRC over WebSocket as irc-ws.chat.twitch.tv speaks it (CAP ACK,
the 001-004/375/372/376 welcome, JOIN echo with 353/366, ROOMSTATE, PING/PONG, RECONNECT)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from tests.servers.util import serve

HOST = "tmi.twitch.tv"


@dataclass
class Client:
    request: web.Request
    ws: web.WebSocketResponse
    nick: str = ""
    caps: list[str] = field(default_factory=list)
    channel: str = ""


@dataclass
class TwitchServer:
    welcome: bool = True  # False: never answers the login
    reconnect_on_join: bool = False  # True: a hostile server, RECONNECT right after every JOIN
    host: str = "127.0.0.1"
    port: int = 0
    received: list[str] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    pongs: list[str] = field(default_factory=list)
    connections: int = 0
    _clients: list[Client] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _joined: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> TwitchServer:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner, self.port = await serve(app, self.host, self.port)
        return self

    async def kill(self) -> None:
        for c in self._clients:
            if c.request.transport is not None:
                c.request.transport.abort()
        self._clients.clear()
        self._joined.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    stop = kill

    async def wait_joined(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._joined.wait(), timeout)
        self._joined.clear()

    async def send(self, *lines: str) -> None:
        """Lines to every joined client, in one WebSocket message (as Twitch batches them)."""
        payload = "".join(line + "\r\n" for line in lines)
        for c in self._clients:
            if c.channel and not c.ws.closed:
                await c.ws.send_str(payload)

    async def send_raw(self, payload: str | bytes) -> None:
        for c in self._clients:
            if c.channel and not c.ws.closed:
                await (
                    c.ws.send_bytes(payload)
                    if isinstance(payload, bytes)
                    else c.ws.send_str(payload)
                )

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client = Client(request, ws)
        self._clients.append(client)
        self.connections += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                for line in msg.data.split("\r\n"):
                    if line:
                        await self._line(client, line)
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._clients.remove(client)
        return ws

    async def _line(self, c: Client, line: str) -> None:
        self.received.append(line)
        command, _, rest = line.partition(" ")
        out: list[str] = []
        if command == "CAP" and rest.startswith("REQ"):
            c.caps = rest.partition(":")[2].split()
            out.append(f":{HOST} CAP * ACK :{' '.join(c.caps)}")
        elif command == "NICK":
            c.nick = rest.strip()
            if self.welcome:
                out += [f":{HOST} {n:03d} {c.nick} :{t}" for n, t in (
                    (1, "Welcome, GLHF!"), (2, f"Your host is {HOST}"), (3, "This server is rather new"),
                    (4, "-"), (375, "-"), (372, "You are in a maze of twisty passages."), (376, ">"),
                )]  # fmt: skip
        elif command == "JOIN" and self.welcome and c.nick:
            c.channel = rest.strip()
            self.joins.append(c.channel)
            who = f"{c.nick}!{c.nick}@{c.nick}.{HOST}"
            out += [
                f":{who} JOIN {c.channel}",
                f":{c.nick}.{HOST} 353 {c.nick} = {c.channel} :{c.nick}",
                f":{c.nick}.{HOST} 366 {c.nick} {c.channel} :End of /NAMES list",
                f"@emote-only=0;followers-only=-1;r9k=0;room-id=12826;slow=0;subs-only=0 :{HOST} ROOMSTATE {c.channel}",
            ]
            self._joined.set()
        elif command == "PING":
            out.append(f":{HOST} PONG {HOST} :{rest.partition(':')[2]}")
        elif command == "PONG":
            self.pongs.append(rest)
        if out:
            await c.ws.send_str("".join(x + "\r\n" for x in out))
        if command == "JOIN" and self.reconnect_on_join:
            await c.ws.send_str(f":{HOST} RECONNECT\r\n")
