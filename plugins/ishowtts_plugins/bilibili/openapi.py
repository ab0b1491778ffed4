"""The Bilibili live open platform (直播开放平台) HTTP side: app start, heartbeat and end.

Every request is a JSON POST signed as the platform documents it: the ``x-bili-*`` headers
(access key id, MD5 of the body, method, nonce, version, timestamp), sorted by name, joined as
``name:value`` lines, HMAC-SHA256 with the access key secret → ``Authorization``. Answers are
``{"code": 0, "message": ..., "request_id": ..., "data": {...}}``; a non-zero code becomes
``OpenPlatformError``, which says whether retrying can help and what the operator should do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .api import ApiError, read_json

BASE = "https://live-open.biliapi.com"
SIGNED = (
    "x-bili-accesskeyid",
    "x-bili-content-md5",
    "x-bili-signature-method",
    "x-bili-signature-nonce",
    "x-bili-signature-version",
    "x-bili-timestamp",
)

# What the operator must do, per code the platform answers; absent codes are retried.
FATAL = {
    4000: "the request was refused as malformed (report a bug)",
    4001: "the access key id is not valid: check the app's key in the developer console",
    4002: "the signature is wrong: check the access key secret",
    4005: "the signature method was refused (report a bug)",
    4006: "the signature version was refused (report a bug)",
    4007: "this machine's IP is not on the app's whitelist: add it in the developer console",
    4008: "the app has no permission for this interface: check it in the developer console",
    4010: "the interface does not exist (report a bug)",
    4011: "the content type was refused (report a bug)",
    4012: "the body's MD5 did not match (report a bug)",
    4013: "the accept header was refused (report a bug)",
    5003: "the app is misconfigured on the platform's side: contact Bilibili",
    5004: "this room is not on the app's whitelist: ask Bilibili to allow the room, or use the "
    "`bilibili` connector",
    5005: "this room is on the app's blacklist: contact Bilibili",
    7007: "the 身份码 (auth code) is wrong: the streamer copies it again from the live centre",
    8002: "the app id has no access to this project: check app_id",
}
HINTS = {
    4003: "the request's timestamp was refused: is this machine's clock right (NTP)?",
    4004: "a nonce was reused: retrying with a new one",
    4009: "too many requests: slowing down",
    7001: "the last session is still being settled: retrying in 10 s or more",
    7002: "the room already runs a session of this app (another copy of this daemon?); it ends "
    "by itself once its heartbeats stop",
    7003: "the session expired (missed heartbeats): starting a new one",
}
RETRY_AFTER = {7001: 10.0, 7002: 30.0, 4009: 10.0}  # seconds, at least
# WebSocket servers of one session tried, at most: the platform names 2-4; a start answer naming
# thousands would make every reconnect try (and log) each one.
MAX_SERVERS = 8


class OpenPlatformError(Exception):
    def __init__(self, code: int, message: str, request_id: str = "", path: str = "") -> None:
        self.code, self.message, self.request_id, self.path = code, message, request_id, path
        self.fatal = code in FATAL
        self.hint = FATAL.get(code) or HINTS.get(code, "retrying")
        self.retry_after = RETRY_AFTER.get(code, 0.0)
        super().__init__(f"{path}: code {code} ({message[:80]}): {self.hint}")


@dataclass(frozen=True, slots=True)
class AppSession:
    """What /v2/app/start gives: a session (game) id, the WebSocket servers and auth body."""

    game_id: str
    urls: tuple[str, ...]
    auth_body: bytes = field(repr=False)
    room_id: int = 0
    anchor_open_id: str = ""
    anchor_name: str = ""


def sign(
    body: bytes, key_id: str, secret: str, nonce: str | None = None, ts: int | None = None
) -> dict[str, str]:
    """The headers of one signed request."""
    signed = dict(
        zip(
            SIGNED,
            (
                key_id,
                hashlib.md5(body).hexdigest(),
                "HMAC-SHA256",
                nonce or uuid.uuid4().hex,
                "1.0",
                str(int(time.time()) if ts is None else ts),
            ),
            strict=True,
        )
    )
    text = "\n".join(f"{k}:{signed[k]}" for k in sorted(signed))
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    return {
        **signed,
        "Authorization": digest,
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


class OpenPlatform:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        key_id: str,
        secret: str,
        base: str = BASE,
        timeout_s: float = 10.0,
    ) -> None:
        self.http, self.base = http, base.rstrip("/")
        self._key_id, self._secret = key_id, secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = sign(body, self._key_id, self._secret)
        async with self.http.post(
            self.base + path, data=body, headers=headers, timeout=self._timeout
        ) as resp:
            if resp.status >= 500 or resp.status == 429:
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message=resp.reason or ""
                )
            try:
                answer = await read_json(resp, path)
            except ApiError as exc:
                raise OpenPlatformError(-1, str(exc), path=path) from None
        if not isinstance(answer, dict):
            raise OpenPlatformError(-1, "answer is not a JSON object", path=path)
        code = answer.get("code", -1)
        if isinstance(code, bool) or not isinstance(code, int):
            raise OpenPlatformError(-1, f"answer's code is not an integer: {code!r:.40}", path=path)
        if code != 0:
            rid = str(answer.get("request_id", ""))
            raise OpenPlatformError(code, str(answer.get("message", "")), rid, path)
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    async def start(self, auth_code: str, app_id: int) -> AppSession:
        data = await self.call("/v2/app/start", {"code": auth_code, "app_id": app_id})
        try:
            game = data["game_info"]["game_id"]
            ws = data["websocket_info"]
            links = ws["wss_link"]
            auth_body = ws["auth_body"]
            anchor = data.get("anchor_info") or {}
            if not isinstance(links, list) or not isinstance(auth_body, str):
                raise TypeError("no servers or no auth body")
            urls = [u for u in links if isinstance(u, str) and u.startswith(("wss://", "ws://"))]
            if not urls:
                raise TypeError("no WebSocket server named")
            return AppSession(
                game_id=str(game),
                urls=tuple(urls[:MAX_SERVERS]),
                auth_body=auth_body.encode(),
                room_id=int(anchor.get("room_id") or 0),
                anchor_open_id=str(anchor.get("open_id", "")),
                anchor_name=str(anchor.get("uname", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"unexpected start answer: {exc}"
            raise OpenPlatformError(-2, msg, path="/v2/app/start") from None

    async def heartbeat(self, game_id: str) -> None:
        await self.call("/v2/app/heartbeat", {"game_id": game_id})

    async def end(self, app_id: int, game_id: str) -> None:
        try:
            await self.call("/v2/app/end", {"app_id": app_id, "game_id": game_id})
        except OpenPlatformError as exc:
            if exc.code not in (7000, 7003):  # already over: that is what we wanted
                raise
