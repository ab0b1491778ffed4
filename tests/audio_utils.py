"""Shared audio test helpers: a PulseAudio server with the ``obs_tts`` null sink, a recorder of
its monitor, and analysis of what was recorded (sound segments, gaps, frequencies, clicks).

The recorder is ``parec`` in a subprocess: it shares nothing with PortAudio in the test
process (a second PortAudio stream beside the player's has deadlocked here), and a
low-latency reader on the monitor also keeps the null sink's clock running smoothly.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SINK = "obs_tts"
SINK_ARGS = f"sink_name={SINK} rate=24000 channels=1"


def pactl(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"pactl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def sink_module() -> tuple[str, str] | None:
    """(module index, its arguments) of the null sink named obs_tts, if loaded."""
    for line in pactl("list", "short", "modules").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1] == "module-null-sink" and f"sink_name={SINK}" in parts[2]:
            return parts[0], parts[2]
    return None


def load_sink(args: str = SINK_ARGS) -> str:
    return pactl("load-module", "module-null-sink", *args.split()).strip()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, however it dies (a
    killed pytest must not leave servers behind; prctl's PR_SET_PDEATHSIG = 1)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class PulseServer:
    """A PulseAudio server this process started, in a folder of its own."""

    proc: subprocess.Popen[bytes]
    base: Path  # HOME, XDG_RUNTIME_DIR and the server's log live under it

    @property
    def address(self) -> str:
        """``PULSE_SERVER`` for clients of this server."""
        return f"unix:{self.base}/run/pulse/native"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGCONT)  # a test may have frozen it
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.base, ignore_errors=True)


def start_pulseaudio(base: Path | None = None) -> PulseServer:
    """A PulseAudio server of our own with the obs_tts null sink: its own HOME and
    XDG_RUNTIME_DIR under a fresh temp folder (so no other server, session or test run is
    touched, and several runs at once each have their own), in the foreground as a child of
    this process, which it does not outlive. Nothing talks to it unless told its
    ``address`` (``base``: that folder, made if missing, for a test that points a client at
    a server before it runs)."""
    if shutil.which("pulseaudio") is None:
        raise RuntimeError("PulseAudio is not installed (apt-get install pulseaudio)")
    base = base or Path(tempfile.mkdtemp(prefix="ishowtts-pulse-"))
    (base / "home").mkdir(parents=True, exist_ok=True)
    (base / "run").mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "HOME": str(base / "home"), "XDG_RUNTIME_DIR": str(base / "run")}
    for name in ("PULSE_SERVER", "PULSE_SINK", "PULSE_COOKIE", "XDG_CONFIG_HOME"):
        env.pop(name, None)  # all of these would point at someone else's server or settings
    with (base / "pulseaudio.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                "pulseaudio",
                "--daemonize=no",
                "-n",  # no default.pa: only the modules below
                "--exit-idle-time=-1",
                "--load=module-native-protocol-unix",
                f"--load=module-null-sink {SINK_ARGS}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,
        )
    server = PulseServer(proc, base)
    probe = {**os.environ, "PULSE_SERVER": server.address}
    for _ in range(200):
        if proc.poll() is not None:
            break
        info = subprocess.run(["pactl", "info"], env=probe, capture_output=True, timeout=5)
        if info.returncode == 0:
            return server
        time.sleep(0.05)
    log_tail = (base / "pulseaudio.log").read_text(errors="replace")[-2000:]
    server.stop()
    raise RuntimeError(f"PulseAudio did not come up: {log_tail}")


def ensure_pulseaudio() -> PulseServer:
    """Start a private PulseAudio server (never someone else's: a desktop session's, CI's or
    another test run's) and point this process and its children at it: libpulse clients,
    ``pactl``/``parec`` and PortAudio's ALSA ``pulse`` device play into its obs_tts sink."""
    server = start_pulseaudio()
    os.environ["PULSE_SERVER"] = server.address
    os.environ["PULSE_SINK"] = SINK  # libpulse's default sink for this process
    os.environ.pop("PULSE_COOKIE", None)
    # PortAudio probes its devices once; redo it now that the server is reachable.
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
    return server


class Recorder:
    """Records the obs_tts monitor (mono float32) with parec until ``stop()``."""

    def __init__(self, sample_rate: int = 24000, source: str = f"{SINK}.monitor") -> None:
        self.sample_rate = sample_rate
        self.source = source
        self._data = bytearray()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Recorder:
        self._proc = subprocess.Popen(
            [
                "parec",
                f"--device={self.source}",
                "--format=float32le",
                f"--rate={self.sample_rate}",
                "--channels=1",
                "--raw",
                "--latency-msec=20",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while len(self._data) < 4 * self.sample_rate // 20:  # 50 ms in: it is flowing
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("parec produced no audio")
            time.sleep(0.01)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self._data += chunk

    def stop(self) -> np.ndarray:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        n = len(self._data) // 4 * 4
        return np.frombuffer(bytes(self._data[:n]), dtype="<f4").astype(np.float32)

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- analysis -------------------------------------------------------------------------------


def tone(
    freq: float,
    seconds: float,
    sample_rate: int = 24000,
    amp: float = 0.3,
    phase: float = np.pi / 2,
) -> np.ndarray:
    """A sine; by default it starts at its peak, so an edge without a fade is a step."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def sound_segments(
    x: np.ndarray, sample_rate: int, threshold: float = 0.02, join_s: float = 0.003
) -> list[tuple[float, float]]:
    """(start, end) seconds of sound: samples above threshold, joined across silences
    shorter than join_s (a tone's zero crossings). Gaps are the silences between them."""
    idx = np.flatnonzero(np.abs(x) > threshold)
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > join_s * sample_rate)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]]))
    return [(s / sample_rate, (e + 1) / sample_rate) for s, e in zip(starts, ends, strict=True)]


def gaps(segments: list[tuple[float, float]]) -> list[float]:
    return [b[0] - a[1] for a, b in itertools.pairwise(segments)]


def dominant_frequency(x: np.ndarray, sample_rate: int) -> float:
    """Peak of the Hann-windowed spectrum, refined by parabolic interpolation."""
    if len(x) < 8:
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=max(len(x), 4096)))
    k = int(np.argmax(spec[1:])) + 1
    if 0 < k < len(spec) - 1:
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
        k = k + 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else k
    return float(k * sample_rate / max(len(x), 4096))


def tone_sequence(
    x: np.ndarray,
    sample_rate: int,
    frame_s: float = 0.02,
    threshold: float = 0.02,
    tolerance: float = 0.05,
) -> list[tuple[float, float, float]]:
    """(start, end, frequency) of runs of frames with the same dominant frequency.
    Single frames (a boundary between two tones) are left out."""
    n = round(frame_s * sample_rate)
    runs: list[list[float]] = []  # [start, end, freq sum, frames]
    for i in range(0, len(x) - n + 1, n):
        frame = x[i : i + n]
        if np.sqrt(np.mean(frame**2)) < threshold:
            continue
        f = dominant_frequency(frame, sample_rate)
        t0 = i / sample_rate
        if runs:
            last = runs[-1]
            mean = last[2] / last[3]
            if abs(f - mean) <= tolerance * mean and abs(t0 - last[1]) < 1e-9:
                last[1] = t0 + frame_s
                last[2] += f
                last[3] += 1
                continue
        runs.append([t0, t0 + frame_s, f, 1])
    return [(r[0], r[1], r[2] / r[3]) for r in runs if r[3] >= 2]


def max_jump(x: np.ndarray) -> float:
    """Largest sample-to-sample step."""
    return float(np.max(np.abs(np.diff(x)))) if len(x) > 1 else 0.0


def clicks(x: np.ndarray, limit: float = 0.05) -> np.ndarray:
    """Sample indices where the second difference exceeds limit. A sine of amplitude A and
    frequency f has |x''| <= A (2 pi f / sr)^2 (0.3 at 700 Hz, 24 kHz: 0.013); a cut or step
    anywhere but a zero crossing shows up far above that."""
    if len(x) < 3:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.abs(np.diff(x, n=2)) > limit) + 1


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
