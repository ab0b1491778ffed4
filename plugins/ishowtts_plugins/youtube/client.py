"""The ``youtube`` connector: a live stream's chat through the official YouTube Data API v3.

A session finds the live chat (``videos.list`` of the video for its ``activeLiveChatId``; for a
channel, the live one among its latest uploads), then reads it with
``liveChatMessages.streamList`` (one long response: cheap in quota), or with
``liveChatMessages.list`` polled at the interval the API asks for when the stream is not
available. The messages already in the chat when a session starts are not read (a restart
must not read the last minutes again); after a reconnect the page token continues the chat.

Each API error is one line with its own retry: ``quotaExceeded`` waits for the daily reset
(midnight, Pacific time), ``rateLimitExceeded`` backs off, ``liveChatEnded`` / a finished
stream finishes a video's connector (a channel's waits for its next broadcast), ``forbidden``
/ ``liveChatDisabled`` / a refused key need the operator. The API key comes from the environment
(``api_key_env``) and travels in a header, never in a URL or a log line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from typing import Any, NoReturn

import aiohttp
from pydantic import Field, field_validator, model_validator

from ishowtts.connectors import (
    AnswerError,
    ConnectorContext,
    Finished,
    GiveUp,
    SessionConnector,
    SessionEnded,
    SessionOptions,
)

from . import api
from .api import ApiError
from .messages import PLATFORM, MalformedMessage, translate

DEFAULT_ENDPOINT = "https://youtube.googleapis.com"
PART = "id,snippet,authorDetails"
VIDEO_ID = re.compile(r"(?:v=|youtu\.be/|/live/|/shorts/|^)([A-Za-z0-9_-]{11})(?:[?&#/]|$)")
CHANNEL_ID = re.compile(r"(UC[A-Za-z0-9_-]{22})")
A_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")
LATEST = 10  # a channel's latest uploads looked at for its live video
NEEDS_OPERATOR = {
    "forbidden": "the chat is private or the key may not read it",
    "liveChatDisabled": "the stream's chat is turned off",
    "keyInvalid": "the API key is refused",
    "accessNotConfigured": "the YouTube Data API is not enabled for this key's project",
    "ipRefererBlocked": "the API key does not allow this machine",
    "playlistNotFound": "no such channel (its uploads list is not found)",
}
ENDED = frozenset({"liveChatEnded", "liveChatNotFound"})


class YoutubeOptions(SessionOptions):
    video: str = ""  # a live video's id or URL
    channel: str = ""  # or a channel id (UC...): its current live broadcast, whenever it has one
    api_key_env: str = "YOUTUBE_API_KEY"  # the variable holding the key (never logged)
    endpoint: str = DEFAULT_ENDPOINT
    stream: bool = True  # streamList; false: list polling only
    min_poll_s: float = Field(2.0, gt=0)  # polling never faster, whatever the API says
    channel_check_s: float = Field(120.0, ge=30)  # a channel not live: look again (2 units)
    read_timeout_s: float = Field(300.0, gt=0)  # the stream silent this long → a new session

    @field_validator("video")
    @classmethod
    def _video(cls, value: str) -> str:
        return _id_in(VIDEO_ID, value.strip(), "a YouTube video id or URL")

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return _id_in(CHANNEL_ID, value, "a channel id (UC + 22 characters)")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError(f"endpoint must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_source(self) -> YoutubeOptions:
        if bool(self.video) == bool(self.channel):
            raise ValueError("set one of video (a live video) or channel (a channel id)")
        return self


def _id_in(pattern: re.Pattern[str], value: str, what: str) -> str:
    """The id ``pattern`` finds in an option's value (a URL or the id itself); "" stays."""
    if not value:
        return value
    m = pattern.search(value)
    if m is None:
        raise ValueError(f"expected {what}, got {value!r}")
    return m.group(1)


def until_quota_reset(now: dt.datetime | None = None) -> float:
    """Seconds until the daily quota resets: midnight, Pacific time (UTC-8; -7 in summer)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        from zoneinfo import ZoneInfo

        pacific: dt.tzinfo = ZoneInfo("America/Los_Angeles")
    except Exception:  # no time zone data: standard time is at most an hour late
        pacific = dt.timezone(dt.timedelta(hours=-8))
    local = now.astimezone(pacific)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(60.0, (midnight - local).total_seconds())


class YoutubeConnector(SessionConnector):
    platform = PLATFORM
    Options = YoutubeOptions

    def __init__(self, name: str, options: YoutubeOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: YoutubeOptions = options
        self.chat_id = ""
        self.video = options.video
        self.page_token = ""  # where the chat was left: a reconnect continues there
        self.streaming = options.stream

    def _key(self) -> str:
        key = os.environ.get(self.options.api_key_env, "").strip()
        if not key:
            raise GiveUp(f"set ${self.options.api_key_env} to a YouTube Data API key")
        return key

    def _url(self, path: str) -> str:
        return f"{self.options.endpoint}/youtube/v3/{path}"

    async def session(self, http: aiohttp.ClientSession) -> None:
        key = self._key()
        try:
            if not self.chat_id:
                await self._find_chat(http, key)
            self.connected(video=self.video)
            if self.streaming:
                await self._stream(http, key)
            await self._poll(http, key)
        except ApiError as exc:
            self._api_error(exc)
        except AnswerError as exc:
            raise SessionEnded(f"bad answer: {exc}") from None

    # -- finding the chat ----------------------------------------------------------------------

    async def _find_chat(self, http: aiohttp.ClientSession, key: str) -> None:
        if self.options.channel:
            await self._channel_chat(http, key)
            return
        videos = await self._live_details(http, key, [self.video])
        if self.video not in videos:
            raise GiveUp(f"no video {self.video!r} (deleted, private, or a wrong id)")
        details = videos[self.video]
        if self._take_chat(self.video, details):
            return
        if details.get("actualEndTime") or not details:
            self._ended("the stream has ended" if details else "the video is not a live stream")
        self.wait_at_least(60.0)
        raise SessionEnded("the stream has not started yet")

    async def _channel_chat(self, http: aiohttp.ClientSession, key: str) -> None:
        """The channel's live video among its latest uploads: its uploads list (``UU`` and the
        channel id's tail) and those videos' details cost 1 quota unit each, where
        ``search.list`` would cost 100, so the channel can be watched all day."""
        uploads = "UU" + self.options.channel[2:]
        page = await api.get(
            http,
            self._url("playlistItems"),
            key,
            {"part": "contentDetails", "playlistId": uploads, "maxResults": str(LATEST)},
        )
        items = page.get("items")
        ids = []
        for item in items[:LATEST] if isinstance(items, list) else []:
            content = item.get("contentDetails") if isinstance(item, dict) else None
            video = content.get("videoId") if isinstance(content, dict) else None
            if isinstance(video, str) and A_VIDEO_ID.fullmatch(video):
                ids.append(video)
        for video, details in (await self._live_details(http, key, ids)).items() if ids else ():
            if self._take_chat(video, details):
                return
        self._wait_for_broadcast("the channel is not live")

    async def _live_details(
        self, http: aiohttp.ClientSession, key: str, ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Each found video's ``liveStreamingDetails`` ({} for a video that is no stream)."""
        params = {"part": "liveStreamingDetails", "id": ",".join(ids)}
        answer = await api.get(http, self._url("videos"), key, params)
        items = answer.get("items")
        out: dict[str, dict[str, Any]] = {}
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                details = item.get("liveStreamingDetails")
                out[item["id"][:32]] = details if isinstance(details, dict) else {}
        return out

    def _take_chat(self, video: str, details: dict[str, Any]) -> bool:
        chat = details.get("activeLiveChatId")
        if not isinstance(chat, str) or not chat:
            return False
        self.video, self.chat_id, self.page_token = video, chat[:256], ""
        self.log.info("youtube_live_chat", video=video)
        return True

    def _wait_for_broadcast(self, why: str) -> NoReturn:
        self.log.info("youtube_not_live", why=why, next_check_s=self.options.channel_check_s)
        self.wait_at_least(self.options.channel_check_s)
        raise SessionEnded(why)

    def _ended(self, why: str) -> NoReturn:
        """The chat is over: a video's connector stops; a channel's waits for the next one."""
        self.chat_id = ""
        self.log.info("youtube_chat_ended", video=self.video, why=why)
        if self.options.channel:
            self._wait_for_broadcast(why)
        raise Finished(why)

    # -- reading -------------------------------------------------------------------------------

    def _params(self) -> dict[str, str]:
        params = {"liveChatId": self.chat_id, "part": PART}
        if self.page_token:
            params["pageToken"] = self.page_token
        return params

    async def _stream(self, http: aiohttp.ClientSession, key: str) -> None:
        """streamList until it closes; returns only to fall back on polling."""
        timeout = aiohttp.ClientTimeout(sock_read=self.options.read_timeout_s)
        headers = {"X-Goog-Api-Key": key}
        url = self._url("liveChat/messages/stream")
        async with http.get(url, params=self._params(), headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                error = await api.error_of(resp)
                if resp.status in (404, 405, 501) and not error.reason:
                    self.streaming = False  # no streamList here: poll (one line says so)
                    self.log.warning("youtube_stream_unavailable", status=resp.status, use="list")
                    return
                raise error
            async for page in api.responses(resp):
                await self._page(page)
        raise SessionEnded("the stream closed")

    async def _poll(self, http: aiohttp.ClientSession, key: str) -> None:
        while True:
            page = await api.get(
                http, self._url("liveChat/messages"), key, {**self._params(), "maxResults": "2000"}
            )
            await self._page(page)
            wait = page.get("pollingIntervalMillis")
            wait_s = wait / 1000 if isinstance(wait, (int, float)) and 0 < wait < 600_000 else 5.0
            await asyncio.sleep(max(wait_s, self.options.min_poll_s))

    async def _page(self, page: Any) -> None:
        if not isinstance(page, dict):
            self.malformed("a response that is not an object")
            return
        first = not self.page_token
        token = page.get("nextPageToken")
        if isinstance(token, str) and token:
            self.page_token = token[:512]
        items = page.get("items")
        for item in items if isinstance(items, list) else []:
            if first:
                self.counters["history_skipped"] += 1  # in the chat before we came
                continue
            try:
                outcome = translate(item, self.video)
            except MalformedMessage as exc:
                self.malformed(str(exc))
                continue
            if outcome.note == "chat_ended":
                self._ended("the chat has ended")
            await self.deliver(outcome)
        if page.get("offlineAt"):
            self._ended("the stream went offline")

    # -- errors --------------------------------------------------------------------------------

    def _api_error(self, exc: ApiError) -> NoReturn:
        reason = exc.reason
        self.counters[f"api_error:{reason or exc.status}"] += 1
        if reason in ("quotaExceeded", "dailyLimitExceeded"):
            wait = until_quota_reset()
            self.log.error(
                "youtube_quota_exceeded",
                retry_in_s=round(wait),
                hint="the project's daily quota is spent; it resets at midnight Pacific time",
            )
            self.wait_at_least(wait)
            raise SessionEnded("quota exceeded")
        if reason in ("rateLimitExceeded", "userRateLimitExceeded") or exc.status == 429:
            self.log.warning("youtube_rate_limited", retry_in_s=30)
            self.wait_at_least(30.0)
            raise SessionEnded("rate limited")
        if reason in ENDED:
            self._ended("the live chat has ended" if reason == "liveChatEnded" else "no such chat")
        if reason in NEEDS_OPERATOR or exc.status in (400, 401, 403):
            raise GiveUp(f"{NEEDS_OPERATOR.get(reason, 'refused')} ({exc})")
        raise SessionEnded(str(exc))
