"""The web HTTP side: credentials, room id resolution and the WBI-signed ``getDanmuInfo`` (token +
server list), with our own aiohttp calls so every request carries what the service has demanded
since 2025-26: a current browser User-Agent, ``buvid3``/``buvid4`` cookies and a WBI signature
(without them ``getDanmuInfo`` answers -352). Risk-control answers (-352, -412) become
``RiskControl``, which the connector reports once per streak and waits out with a long backoff.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ishowtts.connectors import AnswerError
from ishowtts.connectors import read_json as read_answer

# A current desktop Chrome: in 2026-04 the service began answering -352 to a correctly signed
# request whose User-Agent looked old or unlike a browser.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
BROWSER_HEADERS = {
    "User-Agent": USER_AGENT,
    "Origin": "https://live.bilibili.com",
    "Referer": "https://live.bilibili.com/",
    "Accept": "application/json, text/plain, */*",
    "Accept-Language": "zh-CN,zh;q=0.9",
}
MAIN_BASE = "https://api.bilibili.com"
LIVE_BASE = "https://api.live.bilibili.com"

# The fixed permutation that turns the two nav image keys into the WBI mixin key.
_MIXIN = (
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42, 19,
    29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4,
    22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52,
)  # fmt: skip
_WBI_DROP = str.maketrans("", "", "!'()*")
MAX_ANSWER = 1 << 20  # bytes of one HTTP answer read at most (a real one is a few KiB)
RISK_CODES = {-352: "risk control (-352)", -412: "request blocked (-412)"}
# Codes the live API answers for a room that is missing, locked or hidden.
_NO_ROOM = {60004, 60005, 19002000, 1002}


class RoomNotFound(Exception):
    """The room does not exist or is locked: retrying will not help."""


class ApiError(Exception):
    def __init__(self, code: int, message: str, url: str) -> None:
        super().__init__(f"{url.split('?')[0]}: code {code}: {message[:120]}")
        self.code = code


class RiskControl(ApiError):
    """-352 / -412: the service's risk control refused the request. Retrying at once makes it
    worse; the cookies (a logged-in SESSDATA, buvid3/buvid4 from a browser) or time help."""


@dataclass(frozen=True, slots=True)
class Credentials:
    sessdata: str = field(default="", repr=False)
    bili_jct: str = field(default="", repr=False)
    buvid3: str = field(default="", repr=False)
    buvid4: str = field(default="", repr=False)
    dedeuserid: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, *names: str) -> Credentials:
        return cls(*(os.environ.get(n, "") if n else "" for n in names))

    @property
    def logged_in(self) -> bool:
        return bool(self.sessdata)

    def cookies(self) -> dict[str, str]:
        pairs = {
            "SESSDATA": self.sessdata, "bili_jct": self.bili_jct, "buvid3": self.buvid3,
            "buvid4": self.buvid4, "DedeUserID": self.dedeuserid,
        }  # fmt: skip
        return {k: v for k, v in pairs.items() if v}


@dataclass(frozen=True, slots=True)
class Target:
    """Everything one connection attempt needs; fetched afresh before every attempt."""

    room_id: int  # the real (long) id
    urls: tuple[str, ...]
    token: str = field(repr=False)
    uid: int = 0
    buvid: str = field(default="", repr=False)
    auth_body: bytes = field(default=b"", repr=False)  # open platform: sent as is


def wbi_sign(params: dict[str, Any], img_key: str, sub_key: str, now: int | None = None) -> str:
    """The query string with ``wts`` and ``w_rid`` added, as the web client signs it."""
    raw = img_key + sub_key
    mixin = "".join(raw[i] for i in _MIXIN if i < len(raw))[:32]
    signed = {**params, "wts": int(time.time()) if now is None else now}
    query = urllib.parse.urlencode(
        sorted((k, str(v).translate(_WBI_DROP)) for k, v in signed.items())
    )
    return f"{query}&w_rid={hashlib.md5((query + mixin).encode()).hexdigest()}"


async def read_json(resp: aiohttp.ClientResponse, url: str) -> Any:
    """The answer's JSON, read up to MAX_ANSWER bytes (a bigger one is an error, not a hang)."""
    try:
        return await read_answer(resp, MAX_ANSWER)
    except AnswerError as exc:
        raise ApiError(-1, str(exc), url) from None


def _key_of(url: str) -> str:
    return url.rsplit("/", 1)[-1].split(".", 1)[0]


class WebApi:
    """One HTTP client for the web side. Cookies and the browser headers ride on every call."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        creds: Credentials,
        main_base: str = MAIN_BASE,
        live_base: str = LIVE_BASE,
    ) -> None:
        self.http, self.creds = http, creds
        self.main_base, self.live_base = main_base.rstrip("/"), live_base.rstrip("/")
        self._cookies = creds.cookies()

    async def _get(self, url: str, allow: frozenset[int] = frozenset()) -> Any:
        headers = {**BROWSER_HEADERS}
        if self._cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self._cookies.items())
        async with self.http.get(url, headers=headers) as resp:
            if resp.status == 412:  # the gateway's own answer to a blocked IP
                raise RiskControl(-412, f"HTTP {resp.status}", url)
            resp.raise_for_status()
            body = await read_json(resp, url)
        if not isinstance(body, dict):
            raise ApiError(-1, "answer is not a JSON object", url)
        code = body.get("code", 0)
        if code in RISK_CODES:
            raise RiskControl(code, str(body.get("message", "")), url)
        if code != 0 and code not in allow:
            raise ApiError(int(code), str(body.get("message", "")), url)
        data = body.get("data")
        return data if data is not None else {}

    async def ensure_buvid(self) -> None:
        """buvid3/buvid4 from the environment, else fresh ones from the service (as a browser
        gets them on its first visit)."""
        if self._cookies.get("buvid3") and self._cookies.get("buvid4"):
            return
        data = await self._get(f"{self.main_base}/x/frontend/finger/spi")
        self._cookies.setdefault("buvid3", str(data.get("b_3", "")))
        self._cookies.setdefault("buvid4", str(data.get("b_4", "")))

    async def target(self, room: int) -> Target:
        await self.ensure_buvid()
        # nav answers -101 without a login but still carries the WBI keys.
        nav = await self._get(f"{self.main_base}/x/web-interface/nav", allow=frozenset({-101}))
        wbi = nav.get("wbi_img") or {}
        img_key = _key_of(str(wbi.get("img_url", "")))
        sub_key = _key_of(str(wbi.get("sub_url", "")))
        try:
            init = await self._get(f"{self.live_base}/room/v1/Room/room_init?id={room}")
        except ApiError as exc:
            if exc.code in _NO_ROOM:
                raise RoomNotFound(f"room {room}: {exc}") from None
            raise
        room_id = int(init.get("room_id") or room)
        query = wbi_sign({"id": room_id, "type": 0, "web_location": "444.8"}, img_key, sub_key)
        info = await self._get(f"{self.live_base}/xlive/web-room/v1/index/getDanmuInfo?{query}")
        hosts = info.get("host_list") or []
        # Plain ws:// only where the HTTP side is plain too (a relay on the LAN, tests).
        ws, port = ("ws", "ws_port") if self.live_base.startswith("http:") else ("wss", "wss_port")
        urls = tuple(
            f"{ws}://{h['host']}:{h.get(port, 443)}/sub"
            for h in hosts
            if isinstance(h, dict) and h.get("host")
        )
        # The default host always works when the list comes back empty.
        urls = urls or ("wss://broadcastlv.chat.bilibili.com:443/sub",)
        uid = int(self.creds.dedeuserid or 0) or (
            int(nav.get("mid") or 0) if self.creds.logged_in else 0
        )
        return Target(
            room_id=room_id,
            urls=urls,
            token=str(info.get("token", "")),
            uid=uid,
            buvid=self._cookies.get("buvid3", ""),
        )
