"""A local Social Stream Ninja relay, as io.socialstream.ninja behaves for its own clients (the
fake relay in SSN's scripts/playwright-private-bot-ssapp-e2e.cjs mirrors it): a client joins a
room with ``{"join": <session>, "out": N, "in": M}``; what a client of that room publishes on
channel N reaches every other client of the room listening on ``in == N``. The extension
publishes chat on channel 4. ``publish`` plays the extension; its messages are SSN's real
shapes (``SAMPLES``, built as SSN's ``sources/*.js`` build them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.servers.util import serve

SESSION = "Xk3pQ9testsession"

# As SSN's sources fill them in (field names and value styles from sources/*.js).
SAMPLES: dict[str, dict[str, Any]] = {
    "tiktok_chat": {
        "chatname": "lily🌸", "chatbadges": [], "backgroundColor": "", "textColor": "",
        "chatmessage": "hello from tiktok <img src=\"https://p16.tiktokcdn.com/e.png\" alt=\"[smile]\" class=\"regular-emote\">",
        "chatimg": "https://p16-sign.tiktokcdn-us.com/avatar.jpeg", "hasDonation": "",
        "membership": "", "contentimg": "", "textonly": False, "type": "tiktok",
        "userid": "7012345678901234567", "id": 1201,
    },
    "tiktok_gift": {
        "chatname": "bigfan", "hasDonation": "5 roses", "membership": "",
        "chatmessage": "sent <img src=\"https://p16-webcast.tiktokcdn.com/img/maliva/webcast-va/rose~tplv-obj.png\">×5",
        "type": "tiktok", "event": "gift", "userid": "6999", "id": 1202, "textonly": False,
    },
    "tiktok_coins": {
        "chatname": "whale", "chatmessage": "", "hasDonation": "500 coins", "membership": "",
        "type": "tiktok", "userid": "7001", "id": 1203, "textonly": False,
    },
    "youtube_superchat": {
        "chatname": "Alice &amp; Bob", "chatmessage": "love the stream!", "hasDonation": "CA$5.00",
        "membership": "", "subtitle": "", "title": "DONATION", "type": "youtube",
        "textonly": False, "id": 1204,
    },
    "youtube_gift_members": {
        "chatname": "Gifter", "chatmessage": "Gifted 5 Channel memberships", "hasDonation": "",
        "membership": "gift_giver", "subtitle": "5 memberships", "type": "youtube",
        "event": "giftpurchase", "textonly": False, "id": 1205,
    },
    "kick_member_chat": {
        "chatname": "kicker", "chatmessage": "first time here", "hasDonation": "",
        "membership": "Subscriber", "type": "kick", "moderator": True, "userid": "88",
        "textonly": True, "id": 1206,
    },
    "twitch_bits": {
        "chatname": "cheery", "chatmessage": "Cheer100 take my bits", "hasDonation": "100 bits",
        "membership": "", "type": "twitch", "textonly": True, "id": 1207,
    },
    "facebook_follow": {
        "chatname": "Fb Friend", "chatmessage": "followed", "event": "new_follower",
        "type": "facebook", "hasDonation": "", "membership": "", "id": 1208,
    },
    "kofi_donation": {
        "chatname": "Supporter", "chatmessage": "for the coffee", "hasDonation": "€3 EUR",
        "type": "kofi", "event": "donation", "id": 1209,
    },
    "bot_line": {
        "chatname": "Nightbot", "chatmessage": "Follow the socials!", "bot": True,
        "type": "twitch", "id": 1210,
    },
    "private_line": {
        "chatname": "stranger", "chatmessage": "my address is ...", "private": True,
        "type": "kick", "id": 1211,
    },
    "viewer_update": {"type": "youtube", "event": "viewer_update", "meta": 57},
    "action": {"action": "clearOverlay"},
    "delete": {"deleteMessage": 1201},
    "block": {"blockUser": {"chatname": "kicker", "type": "kick"}},
    "timeout": {"timeoutUser": {"username": "bigfan", "type": "tiktok", "duration": 60}},
}  # fmt: skip


@dataclass
class SsnRelay:
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    joins: list[dict[str, Any]] = field(default_factory=list)
    close_after_join: bool = False  # a relay that drops every socket as it joins
    _rooms: dict[web.WebSocketResponse, tuple[str, int]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _joined: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> SsnRelay:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner, self.port = await serve(app, self.host, self.port)
        return self

    async def stop(self) -> None:
        for ws in list(self._rooms):
            await ws.close()
        self._rooms.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_joined(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._joined.wait(), timeout)
        self._joined.clear()

    async def publish(
        self, *messages: dict[str, Any], session: str = SESSION, out: int = 4
    ) -> None:
        """Messages as SSN's extension publishes them (one text frame each)."""
        for message in messages:
            await self.send_raw(json.dumps(message), session, out)

    async def send_raw(self, frame: str | bytes, session: str = SESSION, out: int = 4) -> None:
        for ws, (room, listens) in list(self._rooms.items()):
            if room == session and listens == out and not ws.closed:
                with contextlib.suppress(ConnectionError):  # a client that hung up on it
                    await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, compress=True)  # permessage-deflate, as offered
        await ws.prepare(request)
        self.connections += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                with contextlib.suppress(ValueError):
                    data = json.loads(msg.data)
                    if isinstance(data, dict) and "join" in data:
                        self.joins.append(data)
                        self._rooms[ws] = (str(data["join"]), int(data.get("in", 1)))
                        self._joined.set()
                        if self.close_after_join:
                            await ws.close()
        finally:
            self._rooms.pop(ws, None)
        return ws
