"""The player on a real PulseAudio null sink: what arrives at the obs_tts monitor is checked
for order, frequency, gaps and clicks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from ishowtts.audio.player import Player, PlayerError, list_output_devices
from ishowtts.audio.portaudio_output import PortAudioOutput
from ishowtts.config import PlayerConfig
from ishowtts.events import AudioChunk, ChatEvent, Kind, User, Utterance
from tests.audio_utils import (
    Recorder,
    clicks,
    gaps,
    load_sink,
    pactl,
    rms,
    sink_module,
    sound_segments,
    tone,
    tone_sequence,
)
from tests.servers.util import until

SR = 24000


def utterance(text: str = "x") -> Utterance:
    event = ChatEvent(platform="test", room="1", kind=Kind.DANMAKU, user=User("1", "u"), text=text)
    return Utterance(event=event, text=text, voice="default", priority=20, deadline=1e18)


def chunks(utt: Utterance, pcm: np.ndarray, size_s: float = 0.1) -> list[AudioChunk]:
    step = round(size_s * SR)
    parts = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    return [AudioChunk(utt, p, SR, index=i, last=i == len(parts) - 1) for i, p in enumerate(parts)]


@dataclass
class Calls:
    started: list[Utterance] = field(default_factory=list)
    done: list[tuple[Utterance, bool]] = field(default_factory=list)
    events: dict[str, asyncio.Event] = field(default_factory=dict)

    def event(self, key: str) -> asyncio.Event:
        return self.events.setdefault(key, asyncio.Event())

    def on_started(self, utt: Utterance, t: float) -> None:
        self.started.append(utt)
        self.event(f"started:{utt.id}").set()

    def on_done(self, utt: Utterance, played: bool) -> None:
        self.done.append((utt, played))
        self.event(f"done:{utt.id}").set()

    async def wait(self, key: str, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.event(key).wait(), timeout)


@pytest.fixture
async def make_player(pulse: object) -> AsyncIterator[Callable[..., tuple[Player, Calls]]]:
    players: list[Player] = []

    def make(**cfg: object) -> tuple[Player, Calls]:
        calls = Calls()
        player = Player(
            PlayerConfig(**{"device": "pulse", **cfg}),
            SR,
            calls.on_started,
            calls.on_done,
            asyncio.get_running_loop(),
        )
        players.append(player)
        return player, calls

    yield make
    for p in players:
        await p.stop()


async def drained(player: Player, calls: Calls, utt: Utterance) -> None:
    """The utterance was written, and the stream's buffer has had time to reach the sink."""
    await calls.wait(f"done:{utt.id}")
    await asyncio.sleep(0.25)


async def warmed_up(player: Player, calls: Calls) -> None:
    """Start the player and wait until its fresh stream has settled and plays (a silent
    utterance got written)."""
    await player.start()
    silent = utterance("warm-up")
    player.enqueue(AudioChunk(silent, np.zeros(240, np.float32), SR, index=0, last=True))
    await calls.wait(f"done:{silent.id}")
    calls.started.clear()
    calls.done.clear()


def assert_no_clicks(x: np.ndarray) -> None:
    bad = clicks(x)
    assert len(bad) == 0, f"{len(bad)} click(s), first at {bad[0] / SR:.3f}s"


@pytest.mark.audio
async def test_three_tones_back_to_back_in_order_without_gap_or_click(make_player) -> None:
    player, calls = make_player()
    await player.start()
    freqs = [300.0, 500.0, 700.0]
    utts = [utterance(str(f)) for f in freqs]
    with Recorder(SR) as rec:

        async def produce() -> None:
            # Chunks arrive while earlier ones play, throttled by the lookahead control.
            for utt, f in zip(utts, freqs, strict=True):
                for chunk in chunks(utt, tone(f, 0.6)):
                    await player.wait_below(0.35)
                    player.enqueue(chunk)

        await produce()
        await drained(player, calls, utts[-1])
        audio = rec.stop()

    assert [u.id for u in calls.started] == [u.id for u in utts]
    assert calls.done == [(u, True) for u in utts]
    seq = tone_sequence(audio, SR)
    assert [round(f, -1) for _, _, f in seq] == freqs, seq
    segs = sound_segments(audio, SR)
    assert segs, "nothing arrived at the sink"
    assert all(g < 0.05 for g in gaps(segs)), gaps(segs)
    total = segs[-1][1] - segs[0][0]
    assert abs(total - 1.8) < 0.05, total  # all of it arrived, nothing doubled
    assert_no_clicks(audio)
    assert player.state == "idle"
    assert player.queued_seconds == 0


@pytest.mark.audio
async def test_skip_fades_out_reports_and_ignores_the_rest(make_player) -> None:
    player, calls = make_player()
    await player.start()
    long, nxt, cancelled = utterance("long"), utterance("next"), utterance("cancelled")
    long_chunks = chunks(long, tone(400, 2.0))
    with Recorder(SR) as rec:
        for c in long_chunks[:10]:
            player.enqueue(c)
        for c in chunks(cancelled, tone(1000, 0.4)):
            player.enqueue(c)
        for c in chunks(nxt, tone(600, 0.4)):
            player.enqueue(c)
        player.cancel(cancelled.id)  # queued, not playing: gone without a word
        await calls.wait(f"started:{long.id}")
        await asyncio.sleep(0.4)
        assert player.now_playing == long
        assert player.skip() == long
        for c in long_chunks[10:]:  # the engine's late chunks of a skipped utterance
            player.enqueue(c)
        await drained(player, calls, nxt)
        audio = rec.stop()

    assert calls.done == [(long, False), (nxt, True)]
    assert [u.id for u in calls.started] == [long.id, nxt.id]
    seq = tone_sequence(audio, SR)
    assert [round(f, -1) for _, _, f in seq] == [400.0, 600.0], seq
    first = seq[0][1] - seq[0][0]
    assert first < 1.0, first  # cut short, not played to its end
    assert_no_clicks(audio)
    assert player.skip() is None


@pytest.mark.audio
async def test_pause_resume_keeps_position(make_player) -> None:
    player, calls = make_player()
    await player.start()
    utt = utterance("paused")
    with Recorder(SR) as rec:
        for c in chunks(utt, tone(450, 1.0)):
            player.enqueue(c)
        await calls.wait(f"started:{utt.id}")
        await asyncio.sleep(0.3)
        player.pause()
        assert player.state == "paused"
        await asyncio.sleep(0.5)
        queued = player.queued_seconds
        assert queued > 0.3
        await asyncio.sleep(0.2)
        assert player.queued_seconds == queued  # nothing consumed while paused
        player.resume()
        await drained(player, calls, utt)
        audio = rec.stop()

    assert calls.done == [(utt, True)]
    segs = sound_segments(audio, SR)
    assert len(segs) == 2, segs
    assert gaps(segs)[0] > 0.4
    heard = sum(b - a for a, b in segs)
    assert abs(heard - 1.0) < 0.03, heard  # the position was kept: all of it, once
    assert_no_clicks(audio)


@pytest.mark.audio
async def test_volume_scales_rms_smoothly(make_player) -> None:
    player, calls = make_player(volume=1.0)
    await player.start()
    a, b = utterance("loud"), utterance("soft")
    with Recorder(SR) as rec:
        for c in chunks(a, tone(500, 0.5)):
            player.enqueue(c)
        await calls.wait(f"done:{a.id}")
        await asyncio.sleep(0.2)
        player.volume = 0.5
        for c in chunks(b, tone(500, 0.5)):
            player.enqueue(c)
        await calls.wait(f"started:{b.id}")
        await asyncio.sleep(0.2)
        player.volume = 0.25  # mid-utterance: ramped, no click
        await drained(player, calls, b)
        audio = rec.stop()

    segs = sound_segments(audio, SR, threshold=0.01)
    assert len(segs) == 2, segs
    (a0, a1), (b0, b1) = segs
    loud = rms(audio[int((a0 + 0.05) * SR) : int((a1 - 0.05) * SR)])
    soft = rms(audio[int((b0 + 0.02) * SR) : int((b0 + 0.15) * SR)])
    softer = rms(audio[int((b1 - 0.15) * SR) : int((b1 - 0.02) * SR)])
    assert loud == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
    assert soft / loud == pytest.approx(0.5, rel=0.05)
    assert softer / loud == pytest.approx(0.25, rel=0.05)
    assert_no_clicks(audio)
    with pytest.raises(ValueError, match="between 0 and 2"):
        player.volume = 3.0


@pytest.mark.audio
async def test_cancel_while_playing_fades_without_on_done(make_player) -> None:
    player, calls = make_player()
    await player.start()
    gone, nxt = utterance("gone"), utterance("next")
    with Recorder(SR) as rec:
        for c in chunks(gone, tone(650, 1.5)):
            player.enqueue(c)
        for c in chunks(nxt, tone(350, 0.3)):
            player.enqueue(c)
        await calls.wait(f"started:{gone.id}")
        await asyncio.sleep(0.3)
        player.cancel(gone.id)
        player.enqueue(AudioChunk(gone, tone(650, 0.2), SR, index=99, last=True))  # ignored
        await drained(player, calls, nxt)
        audio = rec.stop()
    assert calls.done == [(nxt, True)]
    seq = tone_sequence(audio, SR)
    assert [round(f, -1) for _, _, f in seq] == [650.0, 350.0], seq
    assert seq[0][1] - seq[0][0] < 1.0
    assert_no_clicks(audio)


def test_click_detector_sees_a_cut_and_not_a_fade() -> None:
    x = tone(500, 0.2)
    cut = np.concatenate([x[:1234], np.zeros(500, np.float32)])
    faded = cut.copy()
    n = 144  # 6 ms
    faded[1234 - n : 1234] *= np.cos(np.linspace(0, np.pi / 2, n)) ** 2
    assert len(clicks(cut)) > 0
    assert len(clicks(faded)) == 0
    assert len(clicks(x)) == 0


@pytest.mark.audio
async def test_engine_slower_than_playback_underruns_without_clicks(make_player) -> None:
    player, calls = make_player()
    await warmed_up(player, calls)
    utt = utterance("slow engine")
    parts = chunks(utt, tone(600, 0.48), size_s=0.08)
    with Recorder(SR) as rec:
        for c in parts:
            player.enqueue(c)
            await asyncio.sleep(0.15)  # each chunk runs dry before the next arrives
        await drained(player, calls, utt)
        audio = rec.stop()
    assert calls.done == [(utt, True)]
    assert player.underruns >= 3
    assert [round(f, -1) for _, _, f in tone_sequence(audio, SR, frame_s=0.01)] == [600.0] * len(
        sound_segments(audio, SR)
    )
    assert_no_clicks(audio)


@pytest.mark.audio
def test_list_output_devices(pulse: object) -> None:
    devices = list_output_devices()
    names = [d["name"] for d in devices]
    assert "pulse" in names
    d = devices[names.index("pulse")]
    assert set(d) == {"index", "name", "hostapi", "channels", "default_samplerate", "is_default"}
    assert d["channels"] >= 1
    assert sum(d["is_default"] for d in devices) <= 1


@pytest.mark.audio
@pytest.mark.parametrize("how", ["name", "index"])
async def test_device_by_name_substring_and_index(make_player, how: str) -> None:
    index = next(d["index"] for d in list_output_devices() if d["name"] == "pulse")
    player, calls = make_player(device="PULS" if how == "name" else index)
    await player.start()
    utt = utterance(how)
    with Recorder(SR) as rec:
        for c in chunks(utt, tone(800, 0.3)):
            player.enqueue(c)
        await drained(player, calls, utt)
        audio = rec.stop()
    assert [round(f, -1) for _, _, f in tone_sequence(audio, SR)] == [800.0]


@pytest.mark.audio
@pytest.mark.parametrize("device", ["no-such-device", 9999])
async def test_unknown_device_is_a_clear_error(make_player, device: object) -> None:
    player, _ = make_player(device=device)
    with pytest.raises(PlayerError, match="ishowtts devices"):
        await player.start()


@pytest.mark.audio
async def test_reopens_after_stream_abort_and_keeps_queue(make_player) -> None:
    player, calls = make_player()
    await player.start()
    utt = utterance("aborted")
    with Recorder(SR) as rec:
        for c in chunks(utt, tone(350, 1.5)):
            player.enqueue(c)
        await calls.wait(f"started:{utt.id}")
        await asyncio.sleep(0.3)
        assert isinstance(player.output, PortAudioOutput) and player.output.stream is not None
        player.output.stream.abort()  # as a backend does when the device goes away
        await until(lambda: player.reopens == 1, timeout=10)
        await drained(player, calls, utt)
        audio = rec.stop()
    assert calls.done == [(utt, True)]
    heard = sum(b - a for a, b in sound_segments(audio, SR))
    assert heard > 1.3, heard  # the rest of the queue played after the reopen
    assert [round(f, -1) for _, _, f in tone_sequence(audio, SR)][-1] == 350.0


@pytest.mark.audio
async def test_reopens_after_sink_unloaded_and_reloaded(make_player) -> None:
    player, calls = make_player()
    await player.start()
    first, second = utterance("before"), utterance("after")
    for c in chunks(first, tone(300, 0.4)):
        player.enqueue(c)
    await calls.wait(f"started:{first.id}")
    module = sink_module()
    assert module is not None
    pactl("unload-module", module[0])
    try:
        for c in chunks(second, tone(900, 0.6)):
            player.enqueue(c)  # queued while the sink is gone
        await until(lambda: player.state == "reopening", timeout=10)
        await asyncio.sleep(0.5)
        assert player.state == "reopening"
        kept = player.queued_seconds  # the rest of the first, and all of the second
        assert kept >= 0.6
    finally:
        load_sink(module[1])
    with Recorder(SR) as rec:
        await until(lambda: player.reopens >= 1, timeout=10)
        await drained(player, calls, second)
        audio = rec.stop()
    assert calls.done == [(first, True), (second, True)]
    seq = tone_sequence(audio, SR)
    assert [round(f, -1) for _, _, f in seq][-1] == 900.0, seq
    heard = sum(b - a for a, b in sound_segments(audio, SR))
    assert abs(heard - kept) < 0.03, (heard, kept)  # the kept queue played after the reopen
    assert_no_clicks(audio)
