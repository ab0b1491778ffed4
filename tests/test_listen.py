"""Turn-taking with the streamer (listen.device): the bot never talks over them.

The parts first: the turn detector on probability sequences, the duck's ramps, the mixer's hold
on constant audio (what comes out is the envelope), Silero VAD on real eSpeak NG speech. Then
the real thing on PulseAudio: the streamer's speech played into a null sink whose monitor the
listening process records, the daemon's voice recorded from obs_tts, the overlap measured
(tools/bench_listen.py); a missing and an unplugged input device; the config's keys."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from ishowtts.audio.duck import Duck
from ishowtts.audio.listener import Listener
from ishowtts.audio.mixer import Mixer, Started
from ishowtts.audio.vad import FRAME, FRAME_S, SileroVad, Turns
from ishowtts.config import ConfigError, load_config
from ishowtts.config.listen import ListenConfig
from ishowtts.events import AudioChunk
from ishowtts.shell.doctor import check_vad
from tests.servers.control import serve
from tests.servers.util import until
from tests.test_mixer import utterance
from tools import bench_listen as bench

# ---- the turn detector ----------------------------------------------------------------------


def run_turns(probs: list[float], **kw: Any) -> list[tuple[int, bool]]:
    turns = Turns(kw.get("threshold", 0.5), kw.get("min_speech_s", 0.064), kw.get("quiet_s", 0.2))
    return [(i, c) for i, p in enumerate(probs) if (c := turns.feed(p)) is not None]


def test_a_turn_needs_min_speech_and_ends_after_quiet() -> None:
    quiet_frames = math.ceil(0.2 / FRAME_S)  # 7 frames of 32 ms reach 0.2 s
    probs = [0.1, 0.9, 0.2, 0.9, 0.9, 0.9] + [0.1] * (quiet_frames + 2)
    # a lone speech frame is no turn; two in a row (64 ms) are; 7 quiet frames end it
    assert run_turns(probs) == [(4, True), (5 + quiet_frames, False)]


def test_a_soft_syllable_does_not_end_a_turn() -> None:
    # Between threshold - 0.15 and threshold is still speech once a turn runs.
    probs = [0.9, 0.9] + [0.1] * 5 + [0.4] + [0.1] * 5 + [0.1] * 3
    assert run_turns(probs) == [(1, True), (14, False)]


def test_min_speech_zero_starts_on_the_first_frame() -> None:
    assert run_turns([0.1, 0.6], min_speech_s=0.0)[0] == (1, True)


# ---- the duck -------------------------------------------------------------------------------


def test_duck_ramps_without_a_step_and_jumps_only_in_silence() -> None:
    sr = 1000
    duck = Duck(sr)
    duck.ramps(down_ms=20.0, up_ms=50.0)  # 20 and 50 samples for a full swing
    ones = np.ones(10, np.float32)
    duck.target = 0.0
    out = []
    for _ in range(4):
        buf = ones.copy()
        duck.apply(buf, len(buf))
        out.append(buf)
    down = np.concatenate(out)
    assert down[0] == pytest.approx(0.95) and down[19] == pytest.approx(0.0, abs=1e-6)
    assert np.max(np.abs(np.diff(down))) <= 1 / 20 + 1e-6  # no step larger than one ramp step
    assert duck.silent
    duck.target = 1.0
    buf = ones.copy()
    duck.apply(buf, 10)
    assert np.allclose(np.diff(buf), 1 / 50, atol=1e-6) and buf[-1] == pytest.approx(0.2)
    buf = np.zeros(10, np.float32)
    duck.apply(buf, 0)  # a block that played nothing: straight to the target
    assert duck.gain == 1.0 and not buf.any()


# ---- the mixer's hold -----------------------------------------------------------------------


def put(mixer: Mixer, name: str, frames: int) -> str:
    utt = utterance(name)
    mixer.enqueue(AudioChunk(utt, np.ones(frames, np.float32), 1000, 0, True))
    return utt.id


def fill(mixer: Mixer, frames: int) -> tuple[np.ndarray, list[Any]]:
    buf = np.empty(frames, np.float32)
    return buf, mixer.fill(buf, 0.0)


def test_hold_ducks_the_line_playing_and_starts_no_other() -> None:
    mixer = Mixer(1000, fade_ms=4)
    mixer.duck.ramps(down_ms=10.0, up_ms=10.0)
    mixer.draining = True
    put(mixer, "a", 50)
    put(mixer, "b", 50)
    fill(mixer, 10)
    mixer.hold(True, 0.25)
    ducked, _ = fill(mixer, 20)
    assert ducked[-1] == pytest.approx(0.25)  # ramped down, still playing
    assert np.max(np.abs(np.diff(ducked))) <= 0.1 + 1e-6
    rest, notices = fill(mixer, 100)  # a ends; b must not start
    assert not any(isinstance(n, Started) for n in notices)
    assert not rest[30:].any() and mixer.queued_frames == 50
    mixer.hold(False)
    resumed, notices = fill(mixer, 60)
    assert [n.utterance.text for n in notices if isinstance(n, Started)] == ["b"]
    assert resumed[10:40].min() == pytest.approx(1.0)  # a new line after the hold: full level


def test_pause_mode_fades_out_holds_the_place_and_resumes_there() -> None:
    mixer = Mixer(1000, fade_ms=4)
    mixer.duck.ramps(down_ms=10.0, up_ms=10.0)
    mixer.draining = True
    a = put(mixer, "a", 100)
    fill(mixer, 20)
    mixer.hold(True, 0.0)
    out, _ = fill(mixer, 30)
    assert out[:9].min() > 0 and not out[9:].any()  # a 10-sample ramp to 0, then nothing
    left = mixer.left(a)
    assert left is not None and left[0] == pytest.approx(0.07)  # 20 + 10 of 100 were read
    fill(mixer, 50)
    assert mixer.left(a) == left  # held in place
    mixer.hold(False)
    back, _ = fill(mixer, 30)
    assert back[0] == pytest.approx(0.1) and back[12:20].min() == pytest.approx(1.0)


def test_a_line_skipped_while_paused_for_the_streamer_is_gone_at_once() -> None:
    mixer = Mixer(1000, fade_ms=4)
    mixer.draining = True
    put(mixer, "a", 100)
    fill(mixer, 20)
    mixer.hold(True, 0.0)
    fill(mixer, 100)
    assert mixer.skip() is not None
    assert not mixer.busy and mixer.queued_frames == 0


# ---- Silero VAD -----------------------------------------------------------------------------


def frames_of(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i : i + FRAME] for i in range(0, len(audio) - FRAME + 1, FRAME)]


def test_silero_hears_speech_and_not_tones_or_noise() -> None:
    vad = SileroVad()
    speech = bench.streamer_speech(["大家好，欢迎来到直播间。 Hello and welcome."])[0]
    probs = [vad(f) for f in frames_of(speech)]
    assert np.mean(np.array(probs) > 0.5) > 0.6
    t = np.arange(3 * 16000) / 16000
    rng = np.random.default_rng(1)
    for other in (0.3 * np.sin(2 * np.pi * 440 * t), 0.05 * rng.standard_normal(len(t))):
        vad.reset()
        assert max(vad(f.astype(np.float32)) for f in frames_of(other)) < 0.3


def test_doctor_checks_the_vad_loads() -> None:
    assert check_vad().startswith("Silero VAD (silero-vad 6.")


# ---- the config -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        ("listen: {device: ''}", "listen.device"),
        ("listen: {device: -1}", "listen.device"),
        ("listen: {device: true}", "listen.device"),
        ("listen:\n  device: pulse\n  mode: mute", "listen.mode"),
        ("listen:\n  device: pulse\n  duck_db: 1", "listen.duck_db"),
        ("listen:\n  device: pulse\n  threshold: 1.5", "listen.threshold"),
        ("listen:\n  device: pulse\n  quiet_s: 0", "listen.quiet_s"),
        ("listen:\n  device: pulse\n  max_hold_s: -1", "listen.max_hold_s"),
        ("listen:\n  device: pulse\n  dukc_db: 6", "listen.dukc_db"),
    ],
)
def test_bad_listen_options_name_the_key_and_line(tmp_path: Path, yaml: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("engine: {type: tone}\n" + yaml + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    line = next(i for i, text in enumerate(yaml.splitlines(), 2) if expected.split(".")[-1] in text)
    assert any(expected in p and f"config.yaml:{line}" in p for p in err.value.problems), err.value


def test_listen_is_off_by_default_and_pause_means_silence() -> None:
    assert not ListenConfig().enabled
    assert ListenConfig(device="pulse", mode="pause").duck_gain == 0.0
    assert ListenConfig(device=0, duck_db=20).duck_gain == pytest.approx(0.1)


# ---- the real thing -------------------------------------------------------------------------

LISTEN_CONFIG = """\
engine: {type: tone}
player: {device: pulse, lookahead_s: 0.5}
listen: {device: %s}
api: {host: 127.0.0.1, port: 0}
"""


@pytest.fixture
def mic(pulse: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The streamer's microphone: a null sink's monitor, recorded through ``pulse``. Unloaded
    after the test: a second sink would take in streams that other tests expect to lose."""
    module = bench.add_mic()
    monkeypatch.setenv("PULSE_SOURCE", bench.MIC_SOURCE)
    yield bench.MIC_SOURCE
    if module is not None:
        bench.pactl("unload-module", module)


@pytest.mark.audio
@pytest.mark.slow
async def test_the_bot_yields_to_the_streamer_and_resumes_within_a_second(
    mic: str, tmp_path: Path
) -> None:
    script = [
        (2.0, "大家好，欢迎来到我的直播间，今天我们玩一个新游戏。"),
        (10.0, "这一关有点难，我们慢慢来。"),
    ]
    figures = await bench.measure(tmp_path, "duck", 18.0, script)
    turns = figures["turns"]
    assert len(turns) == 2, figures
    assert figures["overlap"] <= 0.10, figures  # at full level during ≤ 10 % of the speech
    assert all(t["audible"] > 0.3 for t in turns), figures  # duck mode: ducked, not silenced
    assert all(t["resume_s"] is not None and t["resume_s"] <= 1.0 for t in turns), figures
    assert figures["vad_cpu_percent"] is not None and figures["vad_cpu_percent"] < 25, figures
    # the airtime gate took no line from the queue during the turns, and was let go after
    assert figures["gate_held_s"] > 2.0 and figures["gate_holds_at_end"] == [], figures


@pytest.mark.audio
async def test_a_missing_input_device_is_one_line_and_the_bot_talks_on(
    pulse: Any, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(LISTEN_CONFIG % "no-such-mic")
    with capture_logs() as logs:
        async with serve(path) as r:
            listener = r.daemon.listener
            await until(lambda: listener.retries >= 3, 20, "three tries to open the device")
            status, body, _ = await r.call("GET", "/healthz")
            assert status == 503 and body["listen"] == "unavailable"
            assert "no input device matches 'no-such-mic'" in body["reasons"]["listen"]
            assert "talks without waiting" in body["reasons"]["listen"]
            _, status_body, _ = await r.call("GET", "/status")
            assert status_body["listen"]["state"] == "unavailable"
            assert (await r.call("POST", "/say", {"text": "still talking"}))[0] == 202
            await until(lambda: r.daemon.ledger.summary().get("spoken", 0) == 1, 10)
    assert [e["event"] for e in logs].count("listen_unavailable") == 1


@pytest.mark.audio
async def test_an_unplugged_microphone_releases_the_hold_and_comes_back(
    mic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listening process reaches the sound server through a socket of its own; removing
    that socket mid-sentence fails its reads and reopens as a vanished device does (ALSA: EIO,
    then "no input device matches"), until it is back."""
    primary = {**os.environ}
    socket = tmp_path / "mic-socket"
    load = ("load-module", "module-native-protocol-unix", f"socket={socket}")
    module = bench.pactl(*load).strip()
    with monkeypatch.context() as env:  # undone before the mic fixture's teardown needs pactl
        env.setenv("PULSE_SERVER", f"unix:{socket}")  # for the listening process
        mixer = Mixer(24000)
        listener = Listener(ListenConfig(device="pulse", mode="pause"))
        told: list[bool] = []
        listener.on_hold = told.append
        with capture_logs() as logs:
            await listener.start(mixer)
            try:
                await until(lambda: listener.state == "quiet", 20, "listening")
                speech = bench.streamer_speech(["我们现在开始说话，说得长一点，说得久一点。"])[0]
                player = bench.play_into_mic(speech, primary)
                await until(lambda: mixer.held, 10, "the streamer's turn")
                pactl_on(primary, "unload-module", module)  # unplugged mid-sentence
                await until(lambda: listener.state == "unavailable", 10, "the loss noticed")
                assert not mixer.held  # never left holding the bot
                assert "talks without waiting" in (listener.problem() or "")
                await until(lambda: listener.retries >= 2, 10, "a retry while it is gone")
                player.wait(10)
                module = pactl_on(primary, *load).strip()  # plugged back in
                await until(lambda: listener.state == "quiet", 30, "listening again")
                assert listener.problem() is None
            finally:
                await listener.stop()
                pactl_on(primary, "unload-module", module)
    events = [e["event"] for e in logs]
    assert events.count("listen_unavailable") == 1 and "listen_recovered" in events
    assert listener.turn_count == 1 and listener.status()["state"] == "off"
    assert told == [True, False]  # the gate held for the turn, let go when the mic went


@pytest.mark.audio
def test_devices_lists_inputs_for_listen(mic: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ishowtts", "devices"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    inputs = proc.stdout.split("inputs (for listen.device):")[1]
    assert " pulse " in inputs and "PULSE_SOURCE" in inputs


def pactl_on(env: dict[str, str], *args: str) -> str:
    """pactl through the test's own connection to the server (not the listening one)."""
    proc = subprocess.run(["pactl", *args], env=env, capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.audio
async def test_a_reload_turns_listening_off_and_on(mic: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(LISTEN_CONFIG % "pulse")
    async with serve(path) as r:
        listener = r.daemon.listener
        await until(lambda: listener.state == "quiet", 20, "listening")
        first = listener._proc
        path.write_text(LISTEN_CONFIG % "null")
        assert (await r.daemon.reload()).applied
        await until(lambda: listener.state == "off" and listener._proc is None, 10, "off")
        assert first is not None and first.poll() is not None
        path.write_text(LISTEN_CONFIG % "pulse")
        assert (await r.daemon.reload()).applied
        await until(lambda: listener.state == "quiet", 20, "listening again")
        assert listener._proc is not first
