"""The voice in an OBS browser source: real headless chromium plays ``/overlay?audio=1`` into a
PulseAudio null sink of its own while the daemon (eSpeak NG, ``player.device: none``: no sound
card) speaks; the sink's monitor is recorded and compared with what the engine made and what
the daemon played."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import browser
from tests.audio_utils import pactl
from tests.console_daemon import TOKEN, Running, running
from tests.servers.util import until
from tests.stream_align import (
    DaemonOutput,
    Found,
    TimedRecorder,
    follow,
    has_silence,
    locate,
)

pytestmark = [pytest.mark.audio, browser.needed]

ESPEAK = "{type: espeak}"
SR = 24000
LINES = ["hello there, welcome to the stream", "谢谢老板的醒目留言", "one more line, said later"]
GAP_S = 0.02  # the bound on any gap
# The pages' jitter buffer (ms): the default 80 ms rides out the daemon's and chromium's
# hiccups on an idle machine; a CI box shared by parallel jobs stalls longer. Latency is the
# benchmark's business (tools/bench_browser_audio.py), not these tests'.
BUFFER = "buffer=250"


def lan_address() -> str:
    """This machine's address on its network (no packet is sent); loopback if it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


@contextlib.contextmanager
def sink(name: str) -> Iterator[str]:
    """A null sink of its own for one browser, on the test's PulseAudio server."""
    module = pactl(
        "load-module", "module-null-sink", f"sink_name={name}", f"rate={SR}", "channels=1"
    )
    try:
        yield name
    finally:
        pactl("unload-module", module.strip(), check=False)


async def listening(page: Any, url: str, min_played_s: float = 1.5) -> None:
    """Open the overlay and wait until its voice plays (chromium's first second of a new
    output stream is lost, so nothing is said before that)."""
    await page.goto(url)
    await page.wait_for_function(
        "n => window.ishowttsVoice && window.ishowttsVoice.played > n", arg=min_played_s * SR
    )


async def voice_stats(page: Any) -> dict[str, Any]:
    return dict(await page.evaluate("({...window.ishowttsVoice})"))


async def captions_seen(page: Any) -> list[str]:
    return list(await page.evaluate("window.captionsSeen"))


RECORD_CAPTIONS = """
window.captionsSeen = [];
new MutationObserver(() => {
  const line = document.querySelector('#caption:not(.gone) .line');
  const text = line && line.textContent;
  if (text && window.captionsSeen.at(-1) !== text) window.captionsSeen.push(text);
}).observe(document, {subtree: true, childList: true, attributes: true,
                                     characterData: true});
"""


@contextlib.asynccontextmanager
async def recording(source: str) -> AsyncIterator[TimedRecorder]:
    rec = await asyncio.to_thread(TimedRecorder(source, SR).start)
    try:
        yield rec
    finally:
        await asyncio.to_thread(rec.stop)


def tap(r: Running) -> DaemonOutput:
    player = r.daemon.player
    assert player is not None
    out = DaemonOutput(player.sample_rate)
    player.taps.append(out.tap)
    return out


async def speak_three_lines(r: Running) -> None:
    """Two lines at once (played back to back, in the order the queue picks), then a third
    after a pause."""
    r.chat("alice", LINES[0])
    r.chat("bob", LINES[1])
    await until(lambda: len(r.closed) == 2, 30, "the first two lines")
    await asyncio.sleep(0.5)
    r.chat("carol", LINES[2])
    await until(lambda: len(r.closed) == 3, 30, "the third line")
    await asyncio.sleep(1.0)  # the listener's buffer plays out


def played(out: DaemonOutput) -> list[str]:
    """The lines in the order the daemon played them (its queue decides: not always arrival)."""
    texts = [line.text for line in out.lines]
    assert sorted(texts) == sorted(LINES)
    return texts


def engine_output(r: Running) -> dict[str, np.ndarray]:
    """What the engine makes from now on, by text (eSpeak NG varies its pitch a little from
    call to call, so saying a line again would not give the same samples)."""
    engine = r.daemon.worker.engine
    assert engine is not None
    made: dict[str, np.ndarray] = {}
    synthesize = engine.synthesize

    def keep(text: str, voice: str) -> Iterator[np.ndarray]:
        for chunk in synthesize(text, voice):
            made[text] = np.concatenate([made.get(text, np.zeros(0, np.float32)), chunk])
            yield chunk

    engine.synthesize = keep  # type: ignore[method-assign]
    return made


def check_heard(
    r: Running, out: DaemonOutput, made: dict[str, np.ndarray], heard: np.ndarray, t0: float
) -> None:
    """Every line the daemon played is in the recording, whole, in order, with no gap."""
    assert [s for _, s, _ in r.closed[:3]] == ["spoken"] * 3
    found = follow(out, heard, t0)
    assert [f.line.text for f in found] == played(out)
    daemon = out.samples()

    def sound(w: Found) -> bool:  # no silent block (480 zeros) a listener may have stretched
        return not has_silence(daemon[max(0, w.index - 480) : w.index + SR // 10 + 480], 480)

    for f in found:
        corrs = [w.corr for w in f.windows]
        assert np.median(corrs) > 0.95, (f.line.text, corrs)
        assert min(w.corr for w in f.windows if sound(w)) > 0.8, (f.line.text, corrs)
        assert 0 < f.delay < 1.0, f.delay
        step = f.worst_step(daemon)
        assert step <= GAP_S, (f.line.text, step, [w.delay for w in f.windows])
    # The first two were played back to back: the listener heard them so (unless the daemon
    # played a silent block between them, which a listener may stretch: see worst_step).
    last, first = found[0].windows[-1], found[1].windows[0]
    if not has_silence(daemon[last.index : first.index + 1], 480):
        assert abs(first.delay - last.delay) <= GAP_S
    # And what was heard is what the engine made for each line, window by window.
    for f in found:
        clip = made[f.line.text]
        corrs = []
        for w in f.windows:
            window = clip[w.index - f.line.start : w.index - f.line.start + SR // 10]
            expect = round((w.at + w.delay - t0) * SR)
            corrs.append((locate(window, heard, expect - 48, expect + 48)[1], sound(w)))
        assert np.median([c for c, _ in corrs]) > 0.95, (f.line.text, corrs)
        assert min(c for c, whole in corrs if whole) > 0.8, (f.line.text, corrs)


async def test_the_overlay_plays_the_voice_on_loopback_and_across_the_lan(
    tmp_path: Path, pulse: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """From localhost chromium plays through an AudioWorklet; from the board's LAN address
    (no secure context: no AudioWorklet) through scheduled buffers. Both hear every line,
    gapless, in order, with the captions; pages without the right token hear and see nothing."""
    lan = lan_address()
    async with (
        running(tmp_path, token=TOKEN, engine=ESPEAK, device="none") as r,
        contextlib.AsyncExitStack() as stack,
    ):
        port = r.api.port
        pages = {}
        for name in ("local", "lan", "strangers"):
            b = await stack.enter_async_context(
                browser.launch(sink=stack.enter_context(sink(name)))
            )
            pages[name] = b
        local = await pages["local"].new_page()
        await local.add_init_script(RECORD_CAPTIONS)
        lan_page = await pages["lan"].new_page()
        await lan_page.add_init_script(RECORD_CAPTIONS)
        wrong = await pages["strangers"].new_page()
        await wrong.add_init_script(RECORD_CAPTIONS)
        none = await pages["strangers"].new_page()
        await none.add_init_script(RECORD_CAPTIONS)
        await listening(local, f"http://127.0.0.1:{port}/overlay?audio=1&{BUFFER}#token={TOKEN}")
        await listening(
            lan_page, f"http://{lan}:{port}/overlay?audio=1&names=0&{BUFFER}#token={TOKEN}"
        )
        await wrong.goto(f"http://{lan}:{port}/overlay?audio=1#token=not-the-token")
        await none.goto(f"http://{lan}:{port}/overlay?audio=1&captions=0")
        for page in (wrong, none):
            await page.locator("#login:not([hidden])").wait_for()
        out, made = tap(r), engine_output(r)
        before = {p: await voice_stats(p) for p in (local, lan_page)}
        async with (
            recording("local.monitor") as rec_local,
            recording("lan.monitor") as rec_lan,
            recording("strangers.monitor") as rec_strangers,
        ):
            await speak_three_lines(r)
        local_stats, lan_stats = await voice_stats(local), await voice_stats(lan_page)
        assert local_stats["player"] == "worklet"
        if lan != "127.0.0.1":
            assert lan_stats["player"] == "scheduled"
        for page, stats in ((local, local_stats), (lan_page, lan_stats)):
            for key in ("underruns", "skipped", "connects"):  # while the lines played
                assert stats[key] == before[page][key], (key, before[page], stats)
        assert await captions_seen(local) == played(out)
        assert await captions_seen(lan_page) == played(out)
        # The strangers: refused, nothing received, nothing shown, nothing heard.
        for page in (wrong, none):
            stats = await voice_stats(page)
            assert stats["state"] == "unauthorized" and stats["received"] == 0, stats
            assert await captions_seen(page) == []
            assert "token" not in page.url
        assert float(np.max(np.abs(rec_strangers.stop()), initial=0.0)) < 1e-3
        status = await r.call("GET", "/status", **{"Authorization": f"Bearer {TOKEN}"})
        audio = status[1]["audio_listeners"]
        assert len(audio["listeners"]) == 2 and audio["unauthorized"] == 2, audio
        assert TOKEN not in str(status) and TOKEN not in await local.content()
        assert "token" not in local.url
        check_heard(r, out, made, rec_local.stop(), rec_local.t0)
        check_heard(r, out, made, rec_lan.stop(), rec_lan.t0)
    logs = capfd.readouterr()
    assert TOKEN not in logs.out + logs.err


# ---- a listener that stops reading --------------------------------------------------------


def stalled_listener(port: int) -> socket.socket:
    """A WebSocket client that signs in and then never reads (a small receive buffer, so the
    kernel does not read for it for long)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /audio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += s.recv(1)
    assert reply.startswith(b"HTTP/1.1 101"), reply
    payload = b'{"token": null}'
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
    return s


async def test_listeners_that_stop_reading_are_dropped_while_a_good_one_plays_on(
    tmp_path: Path, pulse: Any
) -> None:
    """A socket that signs in and never reads, and a page whose script is paused (a hung OBS):
    both are dropped; the good page hears every line, gapless; the daemon loses nothing. The
    paused page, resumed, reconnects and plays at the live point, not through a backlog."""
    async with (
        running(tmp_path, engine=ESPEAK, device="none") as r,
        contextlib.AsyncExitStack() as stack,
    ):
        url = f"http://127.0.0.1:{r.api.port}/overlay?audio=1&{BUFFER}"
        pages = []
        for name in ("good", "paused"):
            b = await stack.enter_async_context(
                browser.launch(sink=stack.enter_context(sink(name)))
            )
            pages.append(await b.new_page())
        good, paused = pages
        await good.add_init_script(RECORD_CAPTIONS)
        await listening(good, url)
        await listening(paused, url)
        stalled = await asyncio.to_thread(stalled_listener, r.api.port)
        stack.callback(stalled.close)
        debugger = await paused.context.new_cdp_session(paused)
        await debugger.send("Debugger.enable")
        await debugger.send("Debugger.pause")  # at its next message: it stops reading
        out, made = tap(r), engine_output(r)
        before = await voice_stats(good)
        async with recording("good.monitor") as rec:
            await speak_three_lines(r)
        player = r.daemon.player
        assert player is not None
        player.taps.remove(out.tap)
        fanout = r.daemon.audio_fanout
        await until(lambda: fanout.dropped["fell behind"] == 2, 10, "both dropped")
        stats = await voice_stats(good)
        for key in ("underruns", "skipped", "connects"):
            assert stats[key] == before[key], (key, before, stats)
        assert await captions_seen(good) == played(out)
        assert fanout.lost_blocks == 0 and player.xruns == 0
        assert [li["peer"] for li in fanout.status()["listeners"]] == ["127.0.0.1"]
        # Resumed, the page comes back at the live point.
        await debugger.send("Debugger.resume")
        await paused.wait_for_function(
            "() => window.ishowttsVoice.connects === 2 && window.ishowttsVoice.state === 'live'"
        )
        await asyncio.sleep(1.0)
        later = DaemonOutput(SR)
        player.taps.append(later.tap)
        async with recording("paused.monitor") as rec_paused:
            r.chat("dave", "back again")
            await until(lambda: len(r.closed) == 4, 30, "the fourth line")
            await asyncio.sleep(1.0)
        found = follow(later, rec_paused.stop(), rec_paused.t0)
        assert [f.line.text for f in found] == ["back again"]
        assert found[0].delay < 0.5, found[0].delay  # its buffer, not seconds of backlog
        check_heard(r, out, made, rec.stop(), rec.t0)
