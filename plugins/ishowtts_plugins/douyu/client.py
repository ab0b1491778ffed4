"""The ``douyu`` connector: a room's chat over Douyu's danmaku WebSocket, no login needed.

A session: connect, send ``loginreq`` and ``joingroup`` (gid -9999: every message group),
wait for ``loginres``, then read; ``mrkl`` heartbeats every 45 s keep it open. Before each
session the room's gift list is read once over HTTP for the gifts' names and prices.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import aiohttp
from pydantic import Field, field_validator

from ishowtts.connectors import (
    AnswerError,
    AuthFailed,
    ConnectorContext,
    SessionConnector,
    SessionEnded,
    SessionOptions,
    read_json,
    receive_frame,
    short,
    websocket_url,
)

from . import stt
from .commands import DouyuMapper, GiftPrice, MalformedMessage, number

DEFAULT_ENDPOINT = "wss://danmuproxy.douyu.com:8506/"
GIFT_LIST = "https://gift.douyucdn.cn/api/gift/v2/web/list"
MAX_ROOM = 10**12  # room ids are up to 8 digits
MAX_GIFTS = 5000  # a room's list holds a few hundred
PAID_PRICE_TYPES = frozenset({"2", "鱼翅"})  # 鱼翅 is bought with money; 鱼丸 (1) is free


class DouyuOptions(SessionOptions):
    room: int | str  # the number in the room's URL (douyu.com/<room>) or the URL itself
    endpoint: str = DEFAULT_ENDPOINT
    gift_list: str = GIFT_LIST  # the room's gifts and prices; "" skips it (gifts read unpriced)
    heartbeat_s: float = Field(45.0, gt=0)
    auth_timeout_s: float = Field(10.0, gt=0)  # for loginres
    read_timeout_s: float = Field(120.0, gt=0)  # silence, not even a heartbeat reply → reconnect

    @field_validator("room")
    @classmethod
    def _room(cls, value: int | str) -> str:
        if isinstance(value, int):  # the id itself (-5 was read as room 5: its digits matched)
            number = value
        else:
            m = re.search(r"(\d+)\s*/?\s*(?:\?.*)?$", value.strip())
            number = int(m.group(1)) if m else 0
        if not 0 < number < MAX_ROOM:
            raise ValueError(f"expected a Douyu room number or douyu.com URL, got {value!r}")
        return str(number)

    _endpoint = field_validator("endpoint")(websocket_url)


class DouyuConnector(SessionConnector):
    platform = "douyu"
    Options = DouyuOptions

    def __init__(self, name: str, options: DouyuOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: DouyuOptions = options
        self.room = str(options.room)
        self.gifts: dict[str, GiftPrice] = {}
        self.mapper = DouyuMapper(self.room, self.gifts.get)
        self._framer = stt.Framer()

    async def session(self, http: aiohttp.ClientSession) -> None:
        o = self.options
        await self._load_gifts(http)
        ws = await asyncio.wait_for(
            http.ws_connect(o.endpoint, autoping=True, max_msg_size=stt.MAX_PACKET),
            o.connect_timeout_s,
        )
        self._framer = stt.Framer()
        try:
            await ws.send_bytes(stt.encode(f"type@=loginreq/roomid@={self.room}/"))
            await ws.send_bytes(stt.encode(f"type@=joingroup/rid@={self.room}/gid@=-9999/"))
            await self._await_login(ws)
            self.connected(room=self.room)
            async with self.alongside(self._heartbeat(ws), "heartbeat"):
                while True:
                    try:
                        await self._read(ws, o.read_timeout_s)
                    except asyncio.TimeoutError:
                        raise SessionEnded(f"silent for {o.read_timeout_s} s") from None
        finally:
            await ws.close()

    async def _await_login(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.auth_timeout_s
        late = f"no loginres within {self.options.auth_timeout_s} s"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AuthFailed(late, refused=False)
            try:
                if await self._read(ws, remaining):
                    return
            except asyncio.TimeoutError:
                raise AuthFailed(late, refused=False) from None

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        beat = stt.encode("type@=mrkl/")
        while True:
            await asyncio.sleep(self.options.heartbeat_s)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(beat)
                self.counters["heartbeats_sent"] += 1

    async def _read(self, ws: aiohttp.ClientWebSocketResponse[bool], timeout: float) -> bool:
        """One WebSocket message; True when it held ``loginres`` (the room accepted us)."""
        data = await receive_frame(self, ws, timeout, aiohttp.WSMsgType.BINARY)
        if data is None:
            return False
        try:
            bodies = self._framer.feed(data)
        except stt.FrameError as exc:
            bodies = exc.bodies
            self.malformed(str(exc))
        logged_in = False
        for body in bodies:
            logged_in = await self._message(body) or logged_in
        return logged_in

    async def _message(self, body: str) -> bool:
        self.counters["packets"] += 1
        fields = stt.loads(body)
        if fields.get("type") == "error":
            # The server refuses the room (a wrong or closed room id) with an error code.
            raise SessionEnded(f"server error code {fields.get('code', '')[:20]}")
        try:
            outcome = self.mapper.translate(fields)
        except MalformedMessage as exc:
            self.malformed(f"{fields.get('type', '')[:40]}: {exc}")
            return False
        await self.deliver(outcome)
        return outcome.note == "login"

    def on_notice(self, note: str) -> None:
        super().on_notice(note)
        if note != "login":
            self.log.info("douyu_live_status", status=note, room=self.room)

    async def _load_gifts(self, http: aiohttp.ClientSession) -> None:
        """The room's gift list (names and prices); without it gifts are read unpriced."""
        o = self.options
        if not o.gift_list or self.gifts:
            return
        try:
            answer = await asyncio.wait_for(self._fetch_gifts(http), o.connect_timeout_s)
            self.gifts.update(parse_gift_list(answer))
            self.log.info("douyu_gift_list", gifts=len(self.gifts))
        except (AnswerError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            self.counters["gift_list_failures"] += 1
            self.log.warning(
                "douyu_gift_list_failed", error=short(exc), hint="gifts are read without prices"
            )

    async def _fetch_gifts(self, http: aiohttp.ClientSession) -> Any:
        async with http.get(self.options.gift_list, params={"rid": self.room}) as resp:
            if resp.status != 200:
                raise AnswerError(f"HTTP {resp.status}")
            return await read_json(resp)


def parse_gift_list(answer: Any) -> dict[str, GiftPrice]:
    """``{"data": {"giftList": [{"id", "name", "priceInfo": {"price", "priceType"}}]}}``; price
    in 分. Entries that are not of that shape are skipped; AnswerError if none could be."""
    data = answer.get("data") if isinstance(answer, dict) else None
    gifts = data.get("giftList") if isinstance(data, dict) else None
    if not isinstance(gifts, list):
        raise AnswerError("no data.giftList in the gift list")
    out: dict[str, GiftPrice] = {}
    for gift in gifts[:MAX_GIFTS]:
        if not isinstance(gift, dict) or not isinstance(gift.get("name"), str):
            continue
        info = gift.get("priceInfo")
        price: dict[str, Any] = info if isinstance(info, dict) else {}
        paid = str(price.get("priceType", "")) in PAID_PRICE_TYPES
        try:
            fen = number(str(price.get("price", 0))) if paid else 0
        except MalformedMessage:
            continue
        out[str(gift.get("id", ""))[:32]] = GiftPrice(gift["name"][:64], max(0, fen))
    return out
