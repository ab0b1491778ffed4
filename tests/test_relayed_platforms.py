"""The ssn and youtube connectors inside a real daemon (tone engine, the real player on the
PulseAudio null sink), fed by the local relay and API servers: their lines go through the
filters and the queue and are spoken, a ban takes the banned viewer's queued lines back, and
every received line ends in one terminal ledger line."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ishowtts.connectors import ConnectorState
from tests.servers.control import Running, serve
from tests.servers.ssn import SAMPLES, SESSION, SsnRelay
from tests.servers.util import until
from tests.servers.youtube import ITEMS, KEY, VIDEO, YoutubeApi

pytestmark = pytest.mark.audio

CONFIG = """\
engine: {{type: tone, delay_s: 0.2}}
connectors: [{connector}]
player: {{device: pulse, lookahead_s: 0.5}}
filters:
  block_keywords: [spam]
api: {{host: 127.0.0.1, port: 0}}
"""


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, connector: str) -> AsyncIterator[Running]:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(connector=connector))
    async with serve(path) as r:
        yield r


async def test_ssn_lines_are_read_filtered_and_banned(
    tmp_path: Path, pulse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSN_SESSION", SESSION)
    relay = await SsnRelay().start()
    try:
        async with daemon(tmp_path, f"{{type: ssn, endpoint: '{relay.url}'}}") as r:
            await relay.wait_joined()
            ledger = r.daemon.ledger
            await relay.publish(
                SAMPLES["tiktok_chat"],
                {**SAMPLES["kick_member_chat"], "id": 2001, "chatmessage": "buy spam now"},
                {**SAMPLES["kick_member_chat"], "id": 2002, "chatmessage": "one"},
                {**SAMPLES["kick_member_chat"], "id": 2003, "chatmessage": "two"},
                SAMPLES["youtube_superchat"],
                SAMPLES["block"],  # kicker is banned while their lines wait
            )
            await until(lambda: ledger.summary()["received"] == 5 and not ledger.open, 20)
            summary = ledger.summary()
    finally:
        await relay.stop()
    assert summary["spoken"] == 2  # lily's chat and the super chat
    assert ledger.rules["dropped:blocked_keyword"] == 1
    assert ledger.rules["removed:banned"] == 2  # "one" and "two" were waiting
    assert summary["received"] == sum(
        v for k, v in summary.items() if k not in ("received", "open")
    )


async def test_youtube_lines_are_read(
    tmp_path: Path, pulse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YOUTUBE_API_KEY", KEY)
    api = await YoutubeApi().start()
    try:
        async with daemon(
            tmp_path, f"{{type: youtube, video: {VIDEO}, endpoint: '{api.url}'}}"
        ) as r:
            (conn,) = [c for c in r.daemon.connectors if c.platform == "youtube"]
            await api.wait_stream()
            await api.push(ITEMS["text"], ITEMS["superchat"], ITEMS["member"])
            ledger = r.daemon.ledger
            await until(lambda: ledger.summary()["received"] == 3 and not ledger.open, 20)
            assert conn.state == ConnectorState.CONNECTED
            summary = ledger.summary()
    finally:
        await api.stop()
    assert summary["spoken"] == 3
