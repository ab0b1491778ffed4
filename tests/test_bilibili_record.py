"""tools/record_chat.py: a live (local) room recorded into JSONL the replay connector reads."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

from ishowtts.connectors import ConnectorContext
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.bilibili import BilibiliConnector, BilibiliOptions
from ishowtts_plugins.replay import parse_line
from tests.servers import bilibili_samples as s
from tests.servers.bilibili import BiliServer
from tests.servers.util import until

TOOL = Path(__file__).resolve().parents[1] / "tools" / "record_chat.py"
spec = importlib.util.spec_from_file_location("record_chat", TOOL)
assert spec and spec.loader
record_chat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(record_chat)


async def test_record_then_replay_parses_every_line() -> None:
    srv = await BiliServer().start()
    try:
        opts = BilibiliOptions(
            room=s.ROOM, endpoint=srv.url, heartbeat_s=0.05, backoff_initial_s=0.02
        )
        conn = BilibiliConnector("bili", opts, ConnectorContext(base_dir=Path(".")))
        out = io.StringIO()

        async def feed() -> None:
            await srv.wait_authed()
            await srv.push([s.danmu("你好", uid=42, name="alice", dmid=7, reply_to="bob"),
                            s.send_gift(num=3, price=100, combo=""), s.guard_buy(),
                            s.super_chat(sc_id=3), s.recall(7)], 2)  # fmt: skip

        import asyncio

        feeder = asyncio.create_task(feed())
        n = await record_chat.record(conn, out, duration=10.0, max_events=5)
        await feeder
        await until(lambda: True)
    finally:
        await srv.stop()
    assert n == 5
    parsed = [parse_line(line, "bilibili", "r") for line in out.getvalue().splitlines()]
    items = [item for _t, item in parsed]
    assert all(t >= 0 for t, _ in parsed)
    dm = items[0]
    assert isinstance(dm, ChatEvent) and dm.kind == Kind.DANMAKU and dm.text == "你好"
    assert (dm.user.id, dm.user.name, dm.raw_id, dm.reply_to, dm.user.medal_level) == (
        "42",
        "alice",
        "7",
        "bob",
        21,
    )
    gift = items[1]
    assert isinstance(gift, ChatEvent) and (gift.gift_count, gift.amount) == (3, 0.3)
    assert (
        isinstance(items[2], ChatEvent) and items[2].kind == Kind.GUARD and items[2].amount == 198.0
    )
    assert isinstance(items[3], ChatEvent) and items[3].kind == Kind.SUPER_CHAT
    assert isinstance(items[4], Retraction) and items[4].raw_ids == ("7",)
