"""Turn-taking measured: does the bot talk over the streamer, and how soon does it resume?

A private PulseAudio server gets two null sinks: ``obs_tts`` (what OBS would capture: the bot)
and ``mic`` (the streamer's "microphone"). The whole daemon runs in this process with the tone
engine, ``player.device: pulse`` into obs_tts and ``listen.device: pulse`` on ``mic.monitor``
(``PULSE_SOURCE``), and is kept busy with chat. The streamer's speech (eSpeak NG, real speech
to Silero VAD) is played into ``mic`` at known times; both monitors are recorded.

    .venv/bin/python tools/bench_listen.py                   # duck mode (the default)
    .venv/bin/python tools/bench_listen.py --mode pause

Per turn of the streamer (its speech found in the mic recording: 10 ms frames above -40 dBFS,
pauses under 0.35 s joined) it prints: ``overlap`` (share of the turn during which the bot is
heard at full level: louder than halfway, in dB, between its own level and the ducked level),
``audible`` (heard at all: above -40 dBFS; in duck mode the ducked line is), ``yield_s`` (turn
start → the bot below full level), ``resume_s`` (turn end → the bot back at full level), and the
VAD's own view (``vad_on_s`` / ``vad_off_s``: turn start/end → the listener's turn start/end);
``gate_held_s``: about how long the airtime gate was held by listening (no line taken).
``vad_cpu_percent`` is the listening process's CPU (PortAudio reads and Silero) per second of
audio, from its own clock. Figures: docs/listen.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ishowtts import logs  # noqa: E402
from ishowtts.app.daemon import Daemon  # noqa: E402
from ishowtts.config import load_config  # noqa: E402
from ishowtts.events import ChatEvent, Kind, User  # noqa: E402
from tests.audio_utils import Recorder, ensure_pulseaudio, pactl  # noqa: E402

MIC = "mic"
MIC_SOURCE = f"{MIC}.monitor"
MIC_RATE = 16000
BOT_RATE = 24000
BOT_AMPLITUDE = 0.3  # the tone engine's
FRAME_S = 0.01
AUDIBLE = 0.01  # RMS: -40 dBFS
JOIN_S = 0.35  # pauses shorter than this inside the streamer's speech belong to one turn

# (start s after the daemon is ready and busy, what the streamer says)
SCRIPT = [
    (3.0, "大家好，欢迎来到我的直播间，今天我们玩一个新游戏。"),
    (11.0, "OK, let me read the chat for a second."),
    (16.0, "这一关有点难，我们慢慢来。"),
]

CONFIG = """\
engine: {type: tone, seconds_per_char: 0.09, amplitude: %(amp)s}
player: {device: pulse, lookahead_s: 1.0}
listen: {device: pulse, mode: %(mode)s, duck_db: %(duck_db)s}
airtime: {max_share: 1}  # turn-taking measured alone, not the airtime budget
log: {level: warning, format: json}
"""


class TimedRecorder(Recorder):
    """A Recorder that knows the monotonic time of its first sample."""

    t0 = 0.0

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            if not self._data:
                self.t0 = time.monotonic() - len(chunk) / 4 / self.sample_rate
            self._data += chunk


def streamer_speech(texts: list[str]) -> list[np.ndarray]:
    """Each text spoken by eSpeak NG at 16 kHz."""
    from ishowtts.engines.base import Voice
    from ishowtts.engines.espeak import EspeakEngine, EspeakOptions

    engine = EspeakEngine(EspeakOptions(sample_rate=MIC_RATE))
    engine.load({"default": Voice(name="default")}, lambda _: None)
    return [np.concatenate(list(engine.synthesize(t, "default"))) for t in texts]


def frame_rms(x: np.ndarray, rate: int) -> np.ndarray:
    n = round(FRAME_S * rate)
    frames = x[: len(x) // n * n].reshape(-1, n)
    return np.sqrt(np.mean(frames * frames, axis=1))


def turns_in(mic: np.ndarray) -> list[tuple[float, float]]:
    """The streamer's turns (start, end) in seconds of the mic recording."""
    on = np.flatnonzero(frame_rms(mic, MIC_RATE) > AUDIBLE)
    out: list[list[float]] = []
    for i in on:
        t = i * FRAME_S
        if out and t - out[-1][1] <= JOIN_S:
            out[-1][1] = t + FRAME_S
        else:
            out.append([t, t + FRAME_S])
    return [(a, b) for a, b in out if b - a > 0.2]


def analyse(
    bot: np.ndarray,
    bot_t0: float,
    mic: np.ndarray,
    mic_t0: float,
    duck_db: float,
    vad_turns: Sequence[tuple[float, float]] = (),
) -> dict[str, Any]:
    """The figures, per turn and in total; times are monotonic (``*_t0``: first sample)."""
    level = frame_rms(bot, BOT_RATE)
    nominal = BOT_AMPLITUDE / np.sqrt(2)
    full = nominal * 10 ** (-duck_db / 40)  # halfway, in dB, to the ducked level
    bot_time = bot_t0 + np.arange(len(level)) * FRAME_S

    def bot_frames(a: float, b: float) -> np.ndarray:
        return level[(bot_time >= a) & (bot_time < b)]

    rows: list[dict[str, Any]] = []
    for start, end in turns_in(mic):
        a, b = mic_t0 + start, mic_t0 + end
        during = bot_frames(a, b)
        loud_after = np.flatnonzero((bot_time >= b) & (level >= full))
        quiet_after = np.flatnonzero((bot_time >= a) & (level < full))
        vad = next(((s, e) for s, e in vad_turns if s < b + 0.5 and e > a), None)
        rows.append(
            {
                "start_s": round(start, 2),
                "speech_s": round(end - start, 2),
                "overlap": round(float(np.mean(during >= full)), 3) if len(during) else None,
                "audible": round(float(np.mean(during >= AUDIBLE)), 3) if len(during) else None,
                "yield_s": round(bot_time[quiet_after[0]] - a, 3) if len(quiet_after) else None,
                "resume_s": round(bot_time[loud_after[0]] - b, 3) if len(loud_after) else None,
                "vad_on_s": round(vad[0] - a, 3) if vad else None,
                "vad_off_s": round(vad[1] - b, 3) if vad else None,
            }
        )
    speech = float(sum(r["speech_s"] for r in rows))
    overlapped = float(sum(r["speech_s"] * (r["overlap"] or 0.0) for r in rows))
    resumes = [float(r["resume_s"]) for r in rows if r["resume_s"] is not None]
    return {
        "turns": rows,
        "speech_s": round(speech, 2),
        "overlap": round(overlapped / speech, 3) if speech else None,
        "resume_max_s": max(resumes, default=None),
    }


def play_into_mic(audio: np.ndarray, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start playing ``audio`` into the mic sink (returns at once); ``env``: pacat's."""
    proc = subprocess.Popen(
        [
            "pacat",
            f"--device={MIC}",
            f"--rate={MIC_RATE}",
            "--channels=1",
            "--format=float32le",
            "--raw",
            "--latency-msec=20",
        ],
        stdin=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    threading.Thread(target=_feed, args=(proc, audio), daemon=True).start()
    return proc


def _feed(proc: subprocess.Popen[bytes], audio: np.ndarray) -> None:
    assert proc.stdin is not None
    proc.stdin.write(audio.astype("<f4").tobytes())
    proc.stdin.close()


async def measure(
    folder: Path,
    mode: str = "duck",
    duck_db: float = 18.0,
    script: list[tuple[float, str]] = SCRIPT,
) -> dict[str, Any]:
    """One run of the script against a busy daemon; needs the PulseAudio set-up of ``setup``."""
    speech = streamer_speech([text for _, text in script])
    config = folder / "config.yaml"
    config.write_text(
        textwrap.dedent(CONFIG % {"mode": mode, "duck_db": duck_db, "amp": BOT_AMPLITUDE})
    )
    daemon = Daemon(load_config(config))
    runner = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 60)
        for _ in range(100):  # the listening process is up
            if daemon.listener.state == "quiet":
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"listening did not start: {daemon.listener.status()}")
        bot, mic = TimedRecorder(BOT_RATE), TimedRecorder(MIC_RATE, MIC_SOURCE)
        bot.start()
        mic.start()
        t0 = time.monotonic()
        end = t0 + script[-1][0] + len(speech[-1]) / MIC_RATE + 2.5
        pending = list(zip([t for t, _ in script], speech, strict=True))
        players = []
        n = 0
        gate_held = 0.0  # seconds the airtime gate was seen held by listen
        while (now := time.monotonic()) < end:
            gate_held += 0.02 if "listen" in daemon.airtime.holds else 0.0
            if len(daemon.scheduler) < 2:  # always something to say
                n += 1
                text = f"line {n} from the chat keeps the bot talking"
                daemon.handle(ChatEvent("bench", "1", Kind.DANMAKU, User(str(n), f"v{n}"), text))
            if pending and now - t0 >= pending[0][0]:
                players.append(play_into_mic(pending.pop(0)[1]))
            await asyncio.sleep(0.02)
        bot_audio, mic_audio = bot.stop(), mic.stop()
        for p in players:
            p.wait(5)
        figures = analyse(
            bot_audio, bot.t0, mic_audio, mic.t0, duck_db, list(daemon.listener.turns)
        )
        figures["mode"], figures["duck_db"] = mode, duck_db
        figures["vad_cpu_percent"] = daemon.listener.cpu_percent
        figures["gate_held_s"] = round(gate_held, 1)
        figures["gate_holds_at_end"] = sorted(daemon.airtime.holds)
        return figures
    finally:
        daemon.request_stop()
        await asyncio.wait_for(runner, 30)


def add_mic() -> str | None:
    """The streamer's "microphone": a null sink, loaded unless there (its module's index, or
    None). Its monitor, MIC_SOURCE, is what the listening process records (PULSE_SOURCE)."""
    if MIC in pactl("list", "short", "sinks"):
        return None
    return pactl(
        "load-module", "module-null-sink", f"sink_name={MIC}", f"rate={MIC_RATE}", "channels=1"
    ).strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["duck", "pause"], default="duck")
    ap.add_argument("--duck-db", type=float, default=18.0)
    args = ap.parse_args(argv)
    logs.configure("warning", "console")
    server = ensure_pulseaudio()
    add_mic()
    os.environ["PULSE_SOURCE"] = MIC_SOURCE
    try:
        with tempfile.TemporaryDirectory() as folder:
            figures = asyncio.run(measure(Path(folder), args.mode, args.duck_db))
    finally:
        server.stop()
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
