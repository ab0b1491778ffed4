"""The mixer, the player's glue and the output's pure parts, without a sound server.

The mixer cases feed constant (DC 1.0) audio, so what comes out *is* the envelope applied: fades,
pause ramps, skip and volume are checked sample by sample. Sample rate 1000 Hz and fade_ms 4 make
every fade 4 samples long."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from ishowtts.audio.mixer import Finished, Mixer, Started, fade_curve
from ishowtts.audio.output import Render
from ishowtts.audio.player import Player, PlayerState
from ishowtts.audio.portaudio_output import SETTLE_MAX_S, Settle, write_channels
from ishowtts.config import PlayerConfig
from ishowtts.events import AudioChunk, ChatEvent, Kind, User, Utterance
from tests.servers.util import until

SR = 1000
R = fade_curve(4)  # the 4-sample rise
F = R[::-1]  # and fall
ONES = np.ones


def utterance(text: str) -> Utterance:
    event = ChatEvent(platform="test", room="1", kind=Kind.DANMAKU, user=User("1", "u"), text=text)
    return Utterance(event=event, text=text, voice="default", priority=20, deadline=1e18)


def cat(*parts: Any) -> np.ndarray:
    return np.concatenate([np.atleast_1d(np.asarray(p, np.float32)) for p in parts])


def zeros(n: int) -> np.ndarray:
    return np.zeros(n, np.float32)


# (ops, expected output of all fills together, expected notices, queued frames at the end)
# ops: ("put", name, frames, last) | ("fill", frames) | ("pause",) | ("resume",) |
#      ("skip", expected name or None) | ("cancel", name) | ("volume", v) | ("draining", bool)
CASES: dict[str, tuple[list[tuple[Any, ...]], np.ndarray, list[str], int]] = {
    "an utterance fades in and out": (
        [("put", "a", 10, True), ("fill", 12)],
        cat(R, 1, 1, F, 0, 0),
        ["started a", "finished a"],
        0,
    ),
    "two utterances back to back, no gap": (
        [("put", "a", 8, True), ("put", "b", 8, True), ("fill", 18)],
        cat(R, F, R, F, 0, 0),
        ["started a", "finished a", "started b", "finished b"],
        0,
    ),
    "a chunk split anywhere fades the same": (
        [("put", "a", 3, False), ("put", "a", 4, False), ("put", "a", 3, True), ("fill", 12)],
        cat(R, 1, 1, F, 0, 0),
        ["started a", "finished a"],
        0,
    ),
    "pause ramps down, holds the position, ramps back up": (
        [("put", "a", 16, True), ("fill", 4), ("pause",), ("fill", 6), ("fill", 4),
         ("resume",), ("fill", 12)],
        cat(R, 0.75, 0.5, 0.25, 0, 0, 0, zeros(4), 0.25, 0.5, 0.75, 1, F, zeros(4)),
        ["started a", "finished a"],
        0,
    ),
    "paused while idle: what comes stays silent and kept": (
        [("pause",), ("fill", 2), ("put", "a", 8, True), ("fill", 6)],
        zeros(8),
        [],
        8,
    ),
    "skip fades the playing one out; the next starts": (
        [("put", "a", 20, True), ("put", "b", 8, True), ("fill", 6), ("skip", "a"),
         ("put", "a", 5, True), ("fill", 14), ("skip", None)],
        cat(R, 1, 1, F, R, F, 0, 0),
        ["started a", "started b", "finished b"],
        0,
    ),
    "skip with no output draining drops at once": (
        [("draining", False), ("put", "a", 20, True), ("put", "b", 8, True), ("fill", 6),
         ("skip", "a"), ("fill", 10)],
        cat(R, 1, 1, R, F, 0, 0),
        ["started a", "started b", "finished b"],
        0,
    ),
    "cancel a queued utterance: never heard, no notice": (
        [("put", "a", 8, True), ("put", "b", 8, True), ("cancel", "b"), ("fill", 10)],
        cat(R, F, 0, 0),
        ["started a", "finished a"],
        0,
    ),
    "volume ramps over one block, then holds": (
        [("put", "a", 30, True), ("fill", 4), ("volume", 0.5), ("fill", 8), ("fill", 4)],
        cat(R, 1 - 0.0625 * np.arange(1, 9), 0.5 * ONES(4)),
        ["started a"],
        14,
    ),
    "an underrun fades out, then back in": (
        [("put", "a", 8, False), ("fill", 10), ("put", "a", 8, True), ("fill", 8)],
        cat(R, F, 0, 0, R, F),
        ["started a", "finished a"],
        0,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_mixer(name: str) -> None:
    ops, expected, notices, queued = CASES[name]
    mixer = Mixer(SR, fade_ms=4.0)
    mixer.draining = True
    utts: dict[str, Utterance] = {}
    index: dict[str, int] = {}
    out: list[np.ndarray] = []
    seen: list[str] = []
    now = 100.0
    for op, *args in ops:
        if op == "put":
            who, frames, last = args
            utt = utts.setdefault(who, utterance(who))
            i = index[who] = index.get(who, -1) + 1
            mixer.enqueue(AudioChunk(utt, ONES(frames, np.float32), SR, index=i, last=last))
        elif op == "fill":
            buf = np.full(args[0], 9.0, np.float32)  # stale data must be overwritten
            for n in mixer.fill(buf, now):
                seen.append(f"{'started' if isinstance(n, Started) else 'finished'} "
                            f"{n.utterance.text}")  # fmt: skip
            out.append(buf)
            now += args[0] / SR
        elif op == "skip":
            got = mixer.skip()
            assert (got.text if got else None) == args[0]
        elif op == "cancel":
            mixer.cancel(utts[args[0]].id)
        elif op == "volume":
            mixer.volume = args[0]
        elif op == "draining":
            mixer.draining = args[0]
        else:
            getattr(mixer, op)()
    np.testing.assert_allclose(np.concatenate(out), expected, atol=1e-6)
    assert seen == notices
    assert mixer.queued_frames == queued


def test_started_notice_says_when_the_first_sample_leaves() -> None:
    mixer = Mixer(SR, fade_ms=4.0)
    a, b = utterance("a"), utterance("b")
    mixer.enqueue(AudioChunk(a, ONES(6, np.float32), SR, index=0, last=True))
    mixer.enqueue(AudioChunk(b, ONES(6, np.float32), SR, index=0, last=True))
    notices = mixer.fill(zeros(10), 50.0)
    assert notices == [Started(a, 50.0), Finished(a, 50.006), Started(b, 50.006)]


def test_other_rates_are_resampled_and_bad_samples_tamed() -> None:
    mixer = Mixer(24000)
    pcm = np.sin(np.arange(24000) * 0.1).astype(np.float32)
    pcm[10], pcm[20], pcm[30] = np.nan, 7.0, -np.inf
    mixer.enqueue(AudioChunk(utterance("48k"), pcm, 48000, index=0, last=True))
    assert mixer.queued_frames == 12000
    out = zeros(12000)
    mixer.fill(out, 0.0)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0 and mixer.queued_frames == 0


@pytest.mark.parametrize("volume", [-0.1, 2.5, float("nan")])
def test_volume_out_of_range_is_refused(volume: float) -> None:
    with pytest.raises(ValueError, match="volume"):
        Mixer(SR).volume = volume


def test_write_channels_duplicates_mono() -> None:
    mono = np.arange(5, dtype=np.float32)
    for channels in (1, 2, 6):
        out = np.full((5, channels), 9.0, np.float32)
        write_channels(out, mono)
        assert all(np.array_equal(out[:, c], mono) for c in range(channels))


@pytest.mark.parametrize(
    ("period_s", "settles_after_s"),
    [
        (0.02, 0.26),  # real time from the start: after the preroll and one window
        (0.002, SETTLE_MAX_S),  # a burst 10x faster than real time never looks steady
        (0.2, SETTLE_MAX_S),  # stalling at a fifth of real time neither
    ],
)
def test_settle(period_s: float, settles_after_s: float) -> None:
    settle, t = Settle(SR), 10.0
    while not settle.ready(t, 20):  # 20 frames = 0.02 s a callback
        t += period_s
        assert t < 10 + SETTLE_MAX_S + 1
    assert t - 10 == pytest.approx(settles_after_s, abs=0.21)


class PulledOutput:
    """An output that is not a sound card: the test pulls blocks (a paced output would, on a
    clock); ``die`` makes it report itself lost, as a backend that went away."""

    def __init__(self) -> None:
        self.xruns = 0
        self.render: Render | None = None
        self.opens = 0
        self.dead = False

    def check(self) -> None:
        pass

    def open(self, render: Render) -> None:
        self.render, self.dead = render, False
        self.opens += 1

    def close(self) -> None:
        self.render = None

    def lost(self) -> str | None:
        return "finished" if self.dead else None

    def pull(self, frames: int) -> np.ndarray:
        assert self.render is not None
        buf = zeros(frames)
        self.render(buf, 0.0)
        return buf


async def test_player_on_another_output_reports_and_reopens() -> None:
    done: list[tuple[str, bool]] = []
    started: list[str] = []
    output = PulledOutput()
    cfg = PlayerConfig(fade_ms=4.0)
    player = Player(
        cfg,
        SR,
        lambda u, t: started.append(u.text),
        lambda u, ok: done.append((u.text, ok)),
        output=output,
    )
    await player.start()
    try:
        assert player.state == PlayerState.IDLE and output.opens == 1
        a, b = utterance("a"), utterance("b")
        player.enqueue(AudioChunk(a, ONES(40, np.float32), SR, index=0, last=True))
        player.enqueue(AudioChunk(b, ONES(40, np.float32), SR, index=0, last=True))
        waiting = asyncio.ensure_future(player.wait_below(0.05))
        output.pull(20)
        await until(lambda: started == ["a"])
        assert player.state == PlayerState.PLAYING and not waiting.done()
        output.pull(20)  # a finished; 40 frames (0.04 s) left: the lookahead waiter wakes
        await asyncio.wait_for(waiting, 2)
        output.dead = True  # the output is lost mid-queue: reopened, queue kept
        await until(lambda: player.reopens == 1, what="reopened")
        assert output.opens == 2 and player.queued_seconds == pytest.approx(0.04)
        assert player.skip() is None  # b has not started yet
        output.pull(10)
        await until(lambda: started == ["a", "b"])
        assert player.skip() == b
        await until(lambda: done == [("a", True), ("b", False)])
        assert player.state == PlayerState.IDLE
        np.testing.assert_allclose(output.pull(6), cat(F, 0, 0))  # b fades out, no cut
    finally:
        await player.stop()
