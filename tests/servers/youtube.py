"""A local YouTube Data API v3 for the youtube connector: ``videos.list`` (liveStreamingDetails),
``playlistItems.list`` (a channel's uploads), ``liveChatMessages.list`` (pages, page tokens,
pollingIntervalMillis) and ``liveChatMessages.streamList`` (a JSON array of list responses
sent as they come, the array left open), the key checked in ``X-Goog-Api-Key``, errors in the
API's shape (``{"error": {"code", "message", "errors": [{"reason"}]}}``). Items are the API's
``liveChatMessage`` resources (``ITEMS``, shaped as its reference documents them)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.servers.util import serve

KEY = "AIzaTestKey-0123456789abcdefghijklmno"
VIDEO = "dQw4w9WgXcQ"
CHANNEL = "UCabcdefghijklmnopqrstuv"
OLD = "oldstream01"  # an earlier upload of the channel: a finished stream
CHAT = "Cg0KC2RRdzR3OVdnWGNRKicKGFVDYWJjZGVmZ2hpamtsbW5vcHFyc3R1dhILZFF3NHc5V2dYY1E"

ALICE = {"channelId": "UCalice000000000000000000", "displayName": "Alice",
         "isChatModerator": False, "isChatOwner": False, "isChatSponsor": False,
         "isVerified": False, "channelUrl": "http://www.youtube.com/channel/UCalice"}  # fmt: skip
MOD = {**ALICE, "channelId": "UCmod00000000000000000000", "displayName": "Mod",
       "isChatModerator": True, "isChatSponsor": True}  # fmt: skip


def item(
    mid: str, kind: str, author: dict[str, Any] | None = ALICE, **details: Any
) -> dict[str, Any]:
    snippet: dict[str, Any] = {
        "type": kind, "liveChatId": CHAT, "publishedAt": "2026-12-04T15:00:00.000000+00:00",
        "hasDisplayContent": True, **details,
    }  # fmt: skip
    if author is not None:
        snippet["authorChannelId"] = author["channelId"]
    out: dict[str, Any] = {"kind": "youtube#liveChatMessage", "etag": "e", "id": mid,
                           "snippet": snippet}  # fmt: skip
    if author is not None:
        out["authorDetails"] = author
    return out


ITEMS = {
    "text": item("m1", "textMessageEvent", displayMessage="hello youtube",
                 textMessageDetails={"messageText": "hello youtube"}),
    "superchat": item("m2", "superChatEvent", displayMessage="€5.00 from Alice: gg",
                      superChatDetails={"amountMicros": "5000000", "currency": "EUR",
                                        "amountDisplayString": "€5.00", "userComment": "gg",
                                        "tier": 2}),
    "sticker": item("m3", "superStickerEvent",
                    superStickerDetails={"amountMicros": "2000000", "currency": "USD",
                                         "amountDisplayString": "$2.00", "tier": 1,
                                         "superStickerMetadata": {"stickerId": "s1",
                                                                  "altText": "Happy cat",
                                                                  "language": "en"}}),
    "member": item("m4", "newSponsorEvent",
                   newSponsorDetails={"memberLevelName": "Fan club", "isUpgrade": False}),
    "milestone": item("m5", "memberMilestoneChatEvent",
                      memberMilestoneChatDetails={"memberLevelName": "Fan club",
                                                  "memberMonth": 12, "userComment": "a year!"}),
    "gifting": item("m6", "membershipGiftingEvent", MOD,
                    membershipGiftingDetails={"giftMembershipsCount": 5,
                                              "giftMembershipsLevelName": "Fan club"}),
    "received": item("m7", "giftMembershipReceivedEvent",
                     giftMembershipReceivedDetails={"memberLevelName": "Fan club",
                                                    "gifterChannelId": MOD["channelId"]}),
    "deleted": item("m8", "messageDeletedEvent", MOD,
                    messageDeletedDetails={"deletedMessageId": "m1"}),
    "banned": item("m9", "userBannedEvent", MOD,
                   userBannedDetails={"bannedUserDetails": {"channelId": ALICE["channelId"],
                                                            "displayName": "Alice"},
                                      "banType": "temporary", "banDurationSeconds": 300}),
    "poll": item("m10", "pollEvent", MOD, pollDetails={"metadata": {"questionText": "?"}}),
    "ended": item("m11", "chatEndedEvent", None),
}  # fmt: skip


@dataclass
class YoutubeApi:
    host: str = "127.0.0.1"
    port: int = 0
    live: bool = True  # the video has an active live chat
    ended: bool = False  # ...or it has ended
    channel_live: bool = True
    stream_available: bool = True
    error: tuple[int, str] | None = None  # the next chat request's error (status, reason)
    polling_ms: int = 100
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    keys_in_query: int = 0
    pages: list[list[dict[str, Any]]] = field(default_factory=list)  # served in order
    _streams: list[web.StreamResponse] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _stream_open: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> YoutubeApi:
        app = web.Application()
        app.router.add_get("/youtube/v3/videos", self._videos)
        app.router.add_get("/youtube/v3/playlistItems", self._uploads)
        app.router.add_get("/youtube/v3/liveChat/messages", self._list)
        app.router.add_get("/youtube/v3/liveChat/messages/stream", self._stream)
        self._runner, self.port = await serve(app, self.host, self.port)
        return self

    async def stop(self) -> None:
        for resp in self._streams:
            if resp.task is not None:
                resp.task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_stream(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._stream_open.wait(), timeout)
        self._stream_open.clear()

    async def push(self, *items: dict[str, Any], raw: bytes | None = None, **page: Any) -> None:
        """One list response to every open stream."""
        body = {"kind": "youtube#liveChatMessageListResponse", "nextPageToken": f"t{len(self.requests)}",
                "pollingIntervalMillis": self.polling_ms, "items": list(items), **page}  # fmt: skip
        data = raw if raw is not None else b",\n" + json.dumps(body).encode()
        for resp in list(self._streams):
            try:
                await resp.write(data)
            except (ConnectionError, RuntimeError):
                self._streams.remove(resp)

    def _api_error(self, status: int, reason: str) -> web.Response:
        body = {"error": {"code": status, "message": f"test {reason}",
                          "errors": [{"message": "x", "domain": "youtube.liveChat",
                                      "reason": reason}]}}  # fmt: skip
        return web.json_response(body, status=status)

    def _check(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.path, dict(request.query)))
        if "key" in request.query:
            self.keys_in_query += 1
        if request.headers.get("X-Goog-Api-Key") != KEY:
            return self._api_error(400, "keyInvalid")
        if self.error is not None and "liveChat" in request.path:
            status, reason = self.error
            self.error = None
            return self._api_error(status, reason)
        return None

    async def _videos(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        ids = request.query.get("id", "").split(",")
        items = [self._video(v) for v in ids if v in (VIDEO, OLD)]
        return web.json_response({"kind": "youtube#videoListResponse", "items": items})

    def _video(self, video: str) -> dict[str, Any]:
        details: dict[str, Any] = {"actualStartTime": "2026-12-04T14:00:00Z"}
        if video == OLD or (self.ended and not self.live):
            details["actualEndTime"] = "2026-12-04T15:00:00Z"
        elif self.live:
            details["activeLiveChatId"] = CHAT
        else:
            details = {"scheduledStartTime": "2026-12-05T14:00:00Z"}
        return {"kind": "youtube#video", "id": video, "liveStreamingDetails": details}

    async def _uploads(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        if request.query.get("playlistId") != "UU" + CHANNEL[2:]:
            return self._api_error(404, "playlistNotFound")
        videos = [VIDEO, OLD] if self.channel_live else [OLD]
        items = [{"kind": "youtube#playlistItem", "contentDetails": {"videoId": v}} for v in videos]
        return web.json_response({"kind": "youtube#playlistItemListResponse", "items": items})

    async def _list(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        if request.query.get("liveChatId") != CHAT:
            return self._api_error(404, "liveChatNotFound")
        items = self.pages.pop(0) if self.pages else []
        body = {"kind": "youtube#liveChatMessageListResponse",
                "nextPageToken": f"t{len(self.requests)}",
                "pollingIntervalMillis": self.polling_ms, "items": items}  # fmt: skip
        return web.json_response(body)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._check(request)) is not None:
            return refused
        if not self.stream_available:
            return web.Response(status=404, text="Not Found")
        if request.query.get("liveChatId") != CHAT:
            return self._api_error(404, "liveChatNotFound")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        first = {"kind": "youtube#liveChatMessageListResponse", "nextPageToken": "t0",
                 "items": self.pages.pop(0) if self.pages else []}  # fmt: skip
        await resp.write(b"[" + json.dumps(first).encode())
        self._streams.append(resp)
        self._stream_open.set()
        try:
            # Open until the client leaves (aiohttp has no event for that).
            while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            if resp in self._streams:
                self._streams.remove(resp)
        return resp
