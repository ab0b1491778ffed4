"""``player.device: none``: the paced output without a device, alone and under the whole daemon
(tone engine, replay connector), with no sound server at all."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ishowtts.app.daemon import Daemon
from ishowtts.audio.null_output import NullOutput, is_null_device
from ishowtts.audio.player import Player
from ishowtts.config import PlayerConfig, load_config
from ishowtts.events import AudioChunk, ChatEvent, Kind, User, Utterance

SR = 24000


def until(pred, timeout: float) -> None:
    """Waits for a condition; fails the test (not a timing assertion) if it never comes."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {pred}"
        time.sleep(0.005)


def test_none_is_the_null_device_and_names_are_not() -> None:
    assert is_null_device("none") and is_null_device(" None ")
    assert not is_null_device(None) and not is_null_device("pulse") and not is_null_device(0)


def test_never_faster_than_real_time() -> None:
    out = NullOutput(SR, 480)
    seen: list[float] = []
    out.open(lambda buf, now: seen.append(now))
    t0 = time.monotonic()
    try:
        until(lambda: out.frames >= SR // 2, timeout=10)
    finally:
        out.close()
    elapsed = time.monotonic() - t0
    # Blocks are due one period apart on the clock: half a second of audio cannot take less.
    assert elapsed >= 0.5 - 480 / SR
    assert seen == sorted(seen)
    assert out.lost() == "not_open"


def test_a_stall_is_an_underflow_not_a_rush() -> None:
    out = NullOutput(SR, 480)
    blocked = threading.Event()
    calls: list[float] = []

    def render(buf: np.ndarray, now: float) -> None:
        calls.append(now)
        if len(calls) == 3 and not blocked.is_set():
            blocked.set()
            time.sleep(0.5)

    out.open(render)
    try:
        until(lambda: len(calls) >= 8, timeout=10)
    finally:
        out.close()
    assert out.xruns == 1
    # After the stall the clock restarted: the next blocks were not rendered back to back
    # to catch up on the 25 blocks the stall cost.
    assert calls[7] - calls[3] >= 3 * 480 / SR


def test_a_failing_render_is_reported_as_lost() -> None:
    out = NullOutput(SR, 480)

    def render(buf: np.ndarray, now: float) -> None:
        raise RuntimeError("mixer bug")

    out.open(render)
    until(lambda: out.lost() is not None, timeout=10)
    assert "mixer bug" in str(out.lost())
    out.close()


async def test_player_plays_chunks_in_order_gapless_through_the_tap() -> None:
    heard: list[np.ndarray] = []
    out = NullOutput(SR, 480, tap=lambda buf, now: heard.append(buf.copy()))
    started: list[tuple[Utterance, float]] = []
    done: list[Utterance] = []
    player = Player(
        PlayerConfig(device="none", fade_ms=0.0),
        SR,
        lambda u, t: started.append((u, t)),
        lambda u, played: done.append(u),
        asyncio.get_running_loop(),
        output=out,
    )
    await player.start()
    utts = []
    try:
        for i, value in enumerate((0.25, 0.5, 0.75)):
            event = ChatEvent(platform="t", room="1", kind=Kind.DANMAKU, user=User("1", "u"),
                              text=str(i))  # fmt: skip
            utt = Utterance(event=event, text=str(i), voice="v", priority=20, deadline=1e18)
            utts.append(utt)
            pcm = np.full(SR // 5, value, dtype=np.float32)
            player.enqueue(AudioChunk(utt, pcm, SR, index=0, last=True))
        for _ in range(200):
            if len(done) == 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await player.stop()
    assert [u.id for u in done] == [u.id for u in utts]
    audio = np.concatenate(heard)
    nz = np.flatnonzero(audio)
    played = audio[nz[0] : nz[-1] + 1]
    want = np.repeat(np.array([0.25, 0.5, 0.75], dtype=np.float32), SR // 5)
    assert np.array_equal(played, want)  # in order, back to back, nothing lost
    assert [t for _, t in started] == sorted(t for _, t in started)


def test_daemon_runs_a_replay_to_the_end_on_no_device(tmp_path: Path) -> None:
    lines = [
        {"t": 0.0, "kind": "danmaku", "user": {"id": "1", "name": "a"}, "text": "first line"},
        {"t": 0.05, "kind": "danmaku", "user": {"id": "2", "name": "b"}, "text": "second"},
        {"t": 0.1, "kind": "super_chat", "user": {"id": "3", "name": "c"}, "text": "thanks",
         "amount": 30},
    ]  # fmt: skip
    (tmp_path / "chat.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (tmp_path / "config.yaml").write_text(
        "engine: {type: tone}\n"
        "connectors: [{type: replay, path: chat.jsonl}]\n"
        "player: {device: none, lookahead_s: 0.5}\n"
        "filters: {rate: null}\n"
        "api: {enabled: false}\n"
    )
    daemon = Daemon(load_config(tmp_path / "config.yaml"), until_idle=True, shutdown_grace_s=2)
    assert asyncio.run(asyncio.wait_for(daemon.run(), 60)) == 0
    assert len(daemon.ttfa) == 3 and all(0 < t < 10 for t in daemon.ttfa)


def test_the_daemon_imports_without_portaudio() -> None:
    """A machine without PortAudio (a GPU server) can run the daemon on device none: nothing
    imports sounddevice until a sound card is used."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sounddevice':\n"
        "            raise ImportError('PortAudio library not found')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ishowtts.app.daemon, ishowtts.audio.player, ishowtts.shell.cli\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
