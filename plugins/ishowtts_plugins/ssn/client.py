"""The ``ssn`` connector: the chat Social Stream Ninja relays, over its WebSocket server.

SSN's extension or app (with "send messages to the API server" on) publishes every chat message
to channel 4 of the session's room on ``wss://io.socialstream.ninja``; a listener sends
``{"join": <session>, "out": 3, "in": 4}`` once connected, as SSN's own dock does, and receives
them as JSON text frames. The session id is the room's only key, so it is read from the
environment (``session_env``), sent only inside that frame (never in the URL, which error
messages quote) and never logged. The relay drops idle sockets after a minute or so: the
session skeleton reconnects.
"""

from __future__ import annotations

import asyncio
import json
import os
import re

import aiohttp
from pydantic import Field, field_validator

from ishowtts.connectors import (
    ConnectorContext,
    GiveUp,
    SessionConnector,
    SessionEnded,
    SessionOptions,
    receive_frame,
    websocket_url,
)

from .messages import PLATFORM, SOURCE, MalformedMessage, SsnMapper

DEFAULT_ENDPOINT = "wss://io.socialstream.ninja"
MAX_FRAME = 256 * 1024  # a message with an inline avatar (under ~55 KB) fits
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class SsnOptions(SessionOptions):
    session_env: str = "SSN_SESSION"  # the variable holding SSN's session id (never logged)
    endpoint: str = DEFAULT_ENDPOINT  # the relay; SSN's local server: ws://127.0.0.1:3000
    in_channel: int = Field(4, ge=1, le=9)  # where SSN publishes chat ("server2")
    out_channel: int = Field(3, ge=1, le=9)  # where a dock would answer (nothing is sent)
    sources: list[str] = Field([], max_length=200)  # read only these sites; []: all
    read_bots: bool = False  # SSN flags the host's and bots' lines (bot: true)
    read_private: bool = False  # direct messages (private: true) are not read aloud
    heartbeat_s: float = Field(30.0, gt=0)  # WebSocket pings; no pong closes the session
    read_timeout_s: float = Field(300.0, gt=0)  # silence (a quiet room is normal) → reconnect

    _endpoint = field_validator("endpoint")(websocket_url)

    @field_validator("sources")
    @classmethod
    def _sources(cls, sources: list[str]) -> list[str]:
        for source in sources:
            if not SOURCE.match(source):
                raise ValueError(f"a site is SSN's lower-case type (tiktok, kick...): {source!r}")
        return sources


class SsnConnector(SessionConnector):
    platform = PLATFORM
    Options = SsnOptions

    def __init__(self, name: str, options: SsnOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: SsnOptions = options
        self.mapper = SsnMapper(options.sources, options.read_bots, options.read_private)

    def _session_id(self) -> str:
        session = os.environ.get(self.options.session_env, "").strip()
        if not session:
            raise GiveUp(f"set ${self.options.session_env} to the Social Stream Ninja session id")
        if not SESSION_ID.match(session):
            raise GiveUp(f"${self.options.session_env} is not a session id (letters, digits)")
        return session

    async def session(self, http: aiohttp.ClientSession) -> None:
        o = self.options
        join = {"join": self._session_id(), "out": o.out_channel, "in": o.in_channel}
        ws = await asyncio.wait_for(
            http.ws_connect(o.endpoint, heartbeat=o.heartbeat_s, max_msg_size=MAX_FRAME),
            o.connect_timeout_s,
        )
        try:
            await ws.send_str(json.dumps(join))
            self.connected(relay=o.endpoint, channel=o.in_channel)
            while True:
                try:
                    data = await receive_frame(self, ws, o.read_timeout_s, aiohttp.WSMsgType.TEXT)
                except asyncio.TimeoutError:
                    raise SessionEnded(f"silent for {o.read_timeout_s} s") from None
                if data is not None:
                    await self._message(data)
        finally:
            await ws.close()

    async def _message(self, text: str) -> None:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.malformed(f"not JSON: {str(exc)[:80]}")
            return
        try:
            outcome = self.mapper.translate(data)
        except MalformedMessage as exc:
            self.malformed(str(exc))
            return
        await self.deliver(outcome)
