"""The HTTP side, through bilibili-api-python: credentials, room id resolution and the
wbi-signed ``getDanmuInfo`` (token + server list). Imported lazily: with an ``endpoint``
override the connector never touches it (and makes no HTTP call at all)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


class RoomNotFound(Exception):
    """The room does not exist or is locked: retrying will not help."""


@dataclass(frozen=True, slots=True)
class Credentials:
    sessdata: str = field(default="", repr=False)
    bili_jct: str = field(default="", repr=False)
    buvid3: str = field(default="", repr=False)
    dedeuserid: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, sessdata: str, bili_jct: str, buvid3: str, dedeuserid: str) -> Credentials:
        get = os.environ.get
        return cls(get(sessdata, ""), get(bili_jct, ""), get(buvid3, ""), get(dedeuserid, ""))

    @property
    def logged_in(self) -> bool:
        return bool(self.sessdata)


@dataclass(frozen=True, slots=True)
class Target:
    """Everything one connection attempt needs; fetched afresh before every attempt."""

    room_id: int  # the real (long) id
    urls: tuple[str, ...]
    token: str = field(repr=False)
    uid: int = 0
    buvid: str = field(default="", repr=False)


# Codes the live API answers for a room that is missing, locked or hidden.
_NO_ROOM = {60004, 60005, 19002000, 1002}


async def fetch_target(room: int, creds: Credentials) -> Target:
    from bilibili_api import Credential, live
    from bilibili_api.exceptions import ResponseCodeException
    from bilibili_api.utils.network import get_buvid

    credential = Credential(
        sessdata=creds.sessdata or None,
        bili_jct=creds.bili_jct or None,
        buvid3=creds.buvid3 or None,
        dedeuserid=creds.dedeuserid or None,
    )
    live_room = live.LiveRoom(room_display_id=room, credential=credential)
    try:
        room_id = int(await live_room.get_room_id())
        info = await live_room.get_danmu_info()
    except ResponseCodeException as exc:
        if exc.code in _NO_ROOM:
            raise RoomNotFound(f"room {room}: {exc.msg} (code {exc.code})") from None
        raise
    uid = int(creds.dedeuserid or 0)
    if creds.logged_in and not uid:
        uid = int((await live.get_self_info(credential)).get("uid", 0) or 0)
    buvid = creds.buvid3 or (await get_buvid())[0]
    hosts = info.get("host_list") or []
    urls = tuple(f"wss://{h['host']}:{h.get('wss_port', 443)}/sub" for h in hosts if h.get("host"))
    # The default host always works when the list comes back empty.
    urls = urls or ("wss://broadcastlv.chat.bilibili.com:443/sub",)
    return Target(
        room_id=room_id, urls=urls, token=str(info.get("token", "")), uid=uid, buvid=buvid
    )
