"""The listening process: the streamer's input device → Silero VAD → their turns, reported as
JSON lines on stdout. The daemon's listener (listener.py) runs it and acts on the lines.

A process of its own, not a thread: a PortAudio input stream opened beside the player's output
in one process starves the output (ALSA's pulse plugin, measured: ~2 k of 24 k frames a second
played), the VAD's CPU stays off the daemon's GIL, and a capture stuck in the sound server is
ended by killing the process. It exits when its stdin closes (the daemon is gone).

    python -m ishowtts.audio.listen_child '{"device": "pulse", "threshold": 0.5, ...}'

Lines (``e`` says which): ``open`` (listening: device, name, rate), ``speech`` (``on``: a turn
started or ended), ``beat`` (each second: level, top probability, CPU used, overflows),
``unavailable`` (the device cannot be opened now: retried), ``lost`` (it failed
while open), ``fatal`` (the VAD itself cannot run: exit 1).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from typing import Any, TextIO

import numpy as np

from .vad import FRAME, SAMPLE_RATE, SileroVad, Turns, VadUnavailable

# Between attempts to open a missing device (PortAudio rescanned each time: ~40 ms of CPU),
# doubling up to RETRY_MAX_S.
RETRY_S = 2.0
RETRY_MAX_S = 10.0
BEAT_S = 1.0
RATES = (SAMPLE_RATE, 48000, 32000)  # tried in order; multiples of 16 kHz are decimated


class Reporter:
    """Writes one JSON object a line, whole, from any thread."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, e: str, **fields: Any) -> None:
        line = json.dumps({"e": e, "t": time.monotonic(), **fields}, ensure_ascii=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


class Decimator:
    """``factor``× fewer samples through a low-pass FIR that keeps its state across blocks
    (a stateless resampler would put an edge at every block)."""

    def __init__(self, factor: int) -> None:
        from scipy.signal import firwin

        self.factor = factor
        self._taps = firwin(16 * factor + 1, 0.9 / factor).astype(np.float32)
        self._zi = np.zeros(len(self._taps) - 1, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import lfilter

        y, self._zi = lfilter(self._taps, [1.0], x, zi=self._zi)
        return np.asarray(y[:: self.factor], dtype=np.float32)


def open_input(device: str | int | None) -> tuple[Any, str, int, int]:
    """An input stream on ``device`` (mono, or more channels mixed down) at the first rate of
    RATES it takes: (stream, name, rate, channels). Not started."""
    import sounddevice as sd

    from .devices import ListenDeviceError, rescan, resolve_device

    rescan()  # a device plugged in since the last try shows up
    index = resolve_device(device, "input")
    info = sd.query_devices(index, kind="input")
    for rate in RATES:
        for channels in dict.fromkeys((1, min(2, info["max_input_channels"]))):
            try:
                sd.check_input_settings(index, channels=channels, dtype="float32", samplerate=rate)
            except (sd.PortAudioError, ValueError):
                continue
            stream = sd.InputStream(
                device=index,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=FRAME * (rate // SAMPLE_RATE),
                latency="low",
            )
            return stream, str(info["name"]), rate, channels
    raise ListenDeviceError(
        f"input device {info['name']!r} takes none of {', '.join(map(str, RATES))} Hz mono"
    )


def listen(stream: Any, rate: int, vad: SileroVad, turns: Turns, out: Reporter) -> None:
    """Read, detect, report, until the stream fails (raises)."""
    factor = rate // SAMPLE_RATE
    down = Decimator(factor) if factor > 1 else None
    vad.reset()
    next_beat = time.monotonic() + BEAT_S
    peak, top, overflows = 0.0, 0.0, 0
    stream.start()
    while True:
        data, overflowed = stream.read(FRAME * factor)
        overflows += bool(overflowed)
        mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        frame = down(mono) if down is not None else mono
        prob = vad(frame)
        peak = max(peak, float(np.sqrt(np.mean(frame * frame))))
        top = max(top, prob)
        change = turns.feed(prob)
        if change is not None:
            out.send("speech", on=change, p=round(prob, 3))
        now = time.monotonic()
        if now >= next_beat:
            level = round(20 * math.log10(peak), 1) if peak > 1e-6 else -120.0
            out.send("beat", level_db=level, top_p=round(top, 3), cpu_s=cpu(), overflows=overflows)
            next_beat, peak, top = now + BEAT_S, 0.0, 0.0


def cpu() -> float:
    return round(time.process_time(), 4)


def run(options: dict[str, Any], out: Reporter) -> int:
    try:
        vad = SileroVad()
    except VadUnavailable as exc:
        out.send("fatal", error=str(exc))
        return 1
    turns = Turns(
        float(options.get("threshold", 0.5)),
        float(options.get("min_speech_ms", 64.0)) / 1000.0,
        float(options.get("quiet_s", 0.45)),
    )
    device = options.get("device")
    delay = RETRY_S
    while True:
        try:
            stream, name, rate, channels = open_input(device)
        except Exception as exc:  # not there, or PortAudio refuses it: try again later
            out.send("unavailable", error=_short(exc), cpu_s=cpu())
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        delay = RETRY_S
        out.send("open", name=name, rate=rate, channels=channels)
        try:
            listen(stream, rate, vad, turns, out)
        except Exception as exc:  # unplugged, the sound server gone
            out.send("lost", error=_short(exc), cpu_s=cpu())
        finally:
            with contextlib.suppress(Exception):
                stream.abort()
                stream.close()
        if turns.speaking:
            turns.speaking = False
            out.send("speech", on=False, p=0.0)
        time.sleep(RETRY_S / 4)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()}"[:500]


def _exit_with_parent() -> None:
    """Block on stdin; the daemon holds its other end, so EOF means it is gone."""
    with contextlib.suppress(Exception):
        while sys.stdin.buffer.read(4096):
            pass
    os._exit(0)


def main(argv: list[str]) -> int:
    options = json.loads(argv[1]) if len(argv) > 1 else {}
    threading.Thread(target=_exit_with_parent, name="listen-parent", daemon=True).start()
    return run(options, Reporter(sys.stdout))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
