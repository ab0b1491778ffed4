"""``GET /audio``, the voice for browser sources, spoken to as a page would but without one: the
wire format against what the daemon played, the token, the listener cap (applied by a reload),
malformed messages, operator controls, and the hand-off from a sound card's thread to a loop
that does not come. A real daemon (tone engine, ``player.device: none``: no sound server)."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from ishowtts.control import audio_route
from ishowtts.control.audio_fanout import HEADER, PCM, SILENCE, AudioFanout
from ishowtts.control.audio_route import FULL, UNAUTHORIZED
from tests.console_daemon import TOKEN, Running, running
from tests.servers.util import until
from tests.stream_align import DaemonOutput, locate


def decode(message: bytes) -> np.ndarray:
    kind, frames = HEADER.unpack_from(message)
    if kind == SILENCE:
        assert len(message) == HEADER.size
        return np.zeros(frames, np.float32)
    assert kind == PCM and len(message) == HEADER.size + 2 * frames
    return np.frombuffer(message, "<i2", offset=HEADER.size).astype(np.float32) / 32767


class Page:
    """What a listening page does: sign in, read, acknowledge (in a task of its own: a receive
    that times out would break aiohttp's client socket)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.texts: list[dict[str, Any]] = []
        self.audio: list[np.ndarray] = []
        self.marks: list[tuple[dict[str, Any], int]] = []  # mark, its frame in the stream
        self.frames = 0
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        pending: list[dict[str, Any]] = []
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                self.texts.append(data)
                pending.append(data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                pcm = decode(msg.data)
                self.marks += [(m, self.frames + m["at"]) for m in pending if "at" in m]
                pending = []
                self.audio.append(pcm)
                self.frames += len(pcm)
                await self.ws.send_str(json.dumps({"ack": self.frames}))

    async def read(self, seconds: float) -> None:
        """Let it read (and acknowledge) what comes for this long."""
        await asyncio.wait({self._task}, timeout=seconds)

    def heard(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)


async def listen(r: Running, token: str | None = None, **headers: str) -> Page:
    ws = await r.session.ws_connect(r.base + "/audio", headers=headers)
    await ws.send_str(json.dumps({"token": token}))
    return Page(ws)


async def test_the_stream_is_what_the_daemon_plays_with_marks_where_lines_start(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, device="none") as r:
        player = r.daemon.player
        assert player is not None
        out = DaemonOutput(player.sample_rate)
        page = await listen(r)
        await page.read(0.2)  # joined: what comes next is what the tap below sees
        hello = page.texts[0]
        assert hello == {"type": "hello", "rate": 24000, "channels": 1, "format": "s16le",
                         "now": None}  # fmt: skip
        assert page.audio and not page.heard().any()  # silence while idle: counts only
        player.taps.append(out.tap)
        await page.read(0.1)
        event = r.chat("alice", "hello listeners")
        await until(lambda: r.fate(event.id) is not None, 10, "spoken")
        player.taps.remove(out.tap)
        await page.read(0.3)  # what the tap saw last is on its way
        # The stream holds the daemon's blocks sample for sample (16-bit), in order, no gap.
        daemon, heard = out.samples(), page.heard()
        at, corr = locate(daemon, heard, 0, len(heard))
        assert corr > 0.999
        same = heard[at : at + len(daemon)]
        assert len(same) == len(daemon)
        assert np.max(np.abs(same - daemon)) < 1.5 / 32767
        # The start and end marks fall on the line's first sample and just past its last.
        line = out.lines[0]
        marks = {m["type"]: (m, frame) for m, frame in page.marks}
        start, start_frame = marks["start"]
        assert start["id"] == event.id and start["text"] == "hello listeners"
        assert start["user"] == "alice" and start["paid"] is False
        assert start_frame - at == line.start
        assert marks["end"][1] - at == line.end


async def test_a_wrong_or_missing_token_gets_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_route, "AUTH_TIMEOUT_S", 0.3)
    async with running(tmp_path, token=TOKEN, device="none") as r:
        for token in ("wrong", None):
            page = await listen(r, token)
            await page.read(1.0)
            assert page.ws.close_code == UNAUTHORIZED
            assert page.texts == [] and page.audio == []
        silent = Page(await r.session.ws_connect(r.base + "/audio"))  # sends nothing at all
        await silent.read(5)
        assert silent.ws.close_code == UNAUTHORIZED and silent.audio == []
        page = await listen(r, TOKEN)
        await page.read(0.3)
        assert page.texts[0]["type"] == "hello" and page.audio
        # Another site's page cannot listen, even with the token (the API's Origin guard).
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await r.session.ws_connect(r.base + "/audio", headers={"Origin": "http://evil.test"})
        assert refused.value.status == 403
        async with r.session.get(r.base + "/audio") as resp:  # not an upgrade
            assert resp.status == 426
        status = await r.call("GET", "/status", Authorization=f"Bearer {TOKEN}")
        assert status[1]["audio_listeners"]["unauthorized"] == 3


async def test_the_cap_follows_a_reload_and_bad_messages_are_skipped(tmp_path: Path) -> None:
    async with running(tmp_path, device="none") as r:
        path = tmp_path / "config.yaml"
        text = path.read_text()
        path.write_text(text.replace("port: 0,", "port: 0, max_audio_listeners: 1,"))
        assert (await r.call("POST", "/reload"))[1]["changed"] == ["api.max_audio_listeners"]
        first = await listen(r)
        await first.read(0.2)
        second = await listen(r)
        await second.read(0.5)
        assert second.ws.close_code == FULL and second.audio == []
        for bad in ("not json", '{"ack": "many"}', '{"ack": -1}', "[1]"):
            await first.ws.send_str(bad)
        await first.ws.send_bytes(b"\x00" * 8)
        await first.read(0.5)  # still served
        assert first.ws.close_code is None and len(first.audio) > 5
        audio = (await r.call("GET", "/status"))[1]["audio_listeners"]
        assert audio["malformed"] == 5 and audio["refused"] == 1 and len(audio["listeners"]) == 1


DEEP = "[" * 1000  # within a message's 1024 bytes, past json's recursion limit


def test_a_deeply_nested_message_is_malformed_not_an_error() -> None:
    assert audio_route.ack_of(DEEP) is None  # it raised RecursionError: the reader died


async def test_a_deeply_nested_sign_in_is_unauthorized(tmp_path: Path) -> None:
    """It raised RecursionError in the handler (a traceback, the attempt never counted)."""
    async with running(tmp_path, token=TOKEN, device="none") as r:
        page = Page(await r.session.ws_connect(r.base + "/audio"))
        await page.ws.send_str(DEEP)
        await page.read(1.0)
        assert page.ws.close_code == UNAUTHORIZED and page.audio == []
        status = await r.call("GET", "/status", Authorization=f"Bearer {TOKEN}")
        assert status[1]["audio_listeners"]["unauthorized"] == 1


async def test_a_new_token_ends_the_listening_pages(tmp_path: Path) -> None:
    """A page signed in once, when it connected: a reload that sets (or rotates) the token
    ends its stream with the close code that makes it sign in again."""
    async with running(tmp_path, device="none") as r:
        page = await listen(r)
        await page.read(0.3)
        assert page.audio and page.ws.close_code is None
        path = tmp_path / "config.yaml"
        path.write_text(path.read_text().replace("port: 0,", f'port: 0, token: "{TOKEN}",'))
        status, body = await r.call("POST", "/reload")
        assert status == 200 and body["changed"] == ["api.token"]
        await page.read(5)
        assert page.ws.close_code == UNAUTHORIZED
        again = await listen(r, TOKEN)
        await again.read(0.3)
        assert again.audio and again.ws.close_code is None


async def test_pause_volume_and_skip_reach_every_listener(tmp_path: Path) -> None:
    async with running(tmp_path, device="none") as r:
        pages = [await listen(r), await listen(r)]
        event = r.chat("bob", "a long line that is still playing when it is paused")
        await until(lambda: r.daemon.player is not None and r.daemon.player.now_playing, 10)
        await asyncio.gather(*(p.read(0.3) for p in pages))
        loud = [np.max(np.abs(p.audio[-1])) for p in pages]
        await r.call("POST", "/volume", {"volume": 0.5})
        await asyncio.gather(*(p.read(0.3) for p in pages))
        for page, was in zip(pages, loud, strict=True):
            assert np.max(np.abs(page.audio[-1])) == pytest.approx(was / 2, rel=0.02)
        await r.call("POST", "/pause")
        await asyncio.gather(*(p.read(0.3) for p in pages))
        for page in pages:
            assert not page.audio[-1].any()
        await r.call("POST", "/resume")
        await r.call("POST", "/skip")
        await asyncio.gather(*(p.read(0.3) for p in pages))
        for page in pages:
            assert {"type": "end", "at": 0, "id": event.id} in page.texts
        assert r.fate(event.id) == ("removed", {"rule": "skip"})


def test_a_stalled_loop_loses_old_blocks_and_never_holds_up_the_sound_card() -> None:
    """The tap is called from the output's thread; while the loop does not run, blocks past
    the hand-off's bound are dropped (counted) and the tap still returns at once."""
    fanout = AudioFanout(max_listeners=2)
    fanout.sample_rate = 24000
    fanout._handoff_max = 10
    loop = asyncio.new_event_loop()
    try:
        listener = loop.run_until_complete(_added(fanout))
        block = np.full(480, 0.25, np.float32)
        done: list[int] = []

        def card() -> None:  # the loop is not running meanwhile: nothing takes the blocks
            for i in range(50):
                fanout.tap(block, float(i), [])
                done.append(i)

        thread = threading.Thread(target=card)
        thread.start()
        thread.join(10)  # a tap waiting for the loop would never get here
        assert len(done) == 50 and fanout.lost_blocks == 40
        loop.run_until_complete(asyncio.sleep(0.05))  # the loop runs: it takes what is left
        assert listener.handed == 10 * 480 and len(listener.out) == 10
        frame = listener.out[0]
        assert isinstance(frame, bytes) and decode(frame)[0] == pytest.approx(0.25, abs=1e-4)
    finally:
        loop.close()


async def _added(fanout: AudioFanout) -> Any:
    return fanout.add("test")


def test_the_header_is_eight_bytes_little_endian() -> None:
    assert HEADER.size == 8 and HEADER.pack(SILENCE, 480) == struct.pack("<BxxxI", 1, 480)
