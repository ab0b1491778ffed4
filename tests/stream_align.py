"""What a listener played, compared with what the daemon played: the daemon's output blocks
(a player tap) and a recording of a PulseAudio sink's monitor (``parec``), both on the
monotonic clock, and where each stretch of the first shows up in the second.

Each line the daemon played is cut into windows; each window is found in the recording by
normalised correlation near where the previous one was. The delay (recording time minus
daemon time) of every window is the listener's latency there: constant through a line and
across lines played back to back means everything was heard, in order, with no gap; a step
is a gap (or a skip) of that size.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ishowtts.audio.mixer import Notice, Started


@dataclass
class Line:
    id: str
    text: str
    start: int  # sample index in the daemon's output of its first sample
    end: int = -1  # just past its last sample; -1 while it plays (or if it was cut)


class DaemonOutput:
    """Every block a player played (``player.taps.append(out.tap)``), with its time."""

    def __init__(self, sample_rate: int) -> None:
        self.rate = sample_rate
        self.blocks: list[np.ndarray] = []
        self.starts: list[int] = []  # sample index of each block's first sample
        self.times: list[float] = []  # monotonic time of each block's first sample
        self.lines: list[Line] = []
        self.frames = 0

    def tap(self, buf: np.ndarray, now: float, notices: list[Notice]) -> None:
        for n in notices:
            at = self.frames + max(0, round((n.at - now) * self.rate))
            if isinstance(n, Started):
                self.lines.append(Line(n.utterance.id, n.utterance.text, at))
            else:
                for line in reversed(self.lines):
                    if line.id == n.utterance.id:
                        line.end = at
                        break
        self.blocks.append(buf.copy())
        self.starts.append(self.frames)
        self.times.append(now)
        self.frames += len(buf)

    def samples(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)

    def time(self, index: int) -> float:
        """When sample ``index`` left the mixer."""
        b = max(0, bisect.bisect_right(self.starts, index) - 1)
        return self.times[b] + (index - self.starts[b]) / self.rate


class TimedRecorder:
    """Records a PulseAudio source (mono float32) with ``parec``, noting when each read came:
    the earliest (arrival - samples so far / rate) is when its first sample was captured."""

    def __init__(self, source: str, sample_rate: int, env: dict[str, str] | None = None) -> None:
        self.source, self.rate = source, sample_rate
        self.env = env
        self._data = bytearray()
        self.t0 = float("inf")
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TimedRecorder:
        self._proc = subprocess.Popen(
            ["parec", f"--device={self.source}", "--format=float32le", f"--rate={self.rate}",
             "--channels=1", "--raw", "--latency-msec=10"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._data:
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError(f"parec recorded nothing from {self.source}")
            time.sleep(0.01)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 16384):
            now = time.monotonic()
            self._data += chunk
            self.t0 = min(self.t0, now - len(self._data) // 4 / self.rate)

    def stop(self) -> np.ndarray:
        if self._proc is not None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        n = len(self._data) // 4 * 4
        return np.frombuffer(bytes(self._data[:n]), dtype="<f4").astype(np.float32)


@dataclass
class Found:
    index: int  # the window's first sample in the daemon's output
    at: float  # daemon time of the window's first sample
    delay: float  # seconds until it was in the recording
    corr: float  # normalised correlation there


@dataclass
class LineFound:
    line: Line
    windows: list[Found] = field(default_factory=list)

    @property
    def delay(self) -> float:
        """The latency of the line's first sample."""
        return self.windows[0].delay

    def worst_step(self, daemon: np.ndarray, quiet: int = 480, sure: float = 0.0) -> float:
        """The largest change of delay between neighbouring windows with sound all the way
        between them: a gap inside speech. Where the daemon played a silent block (``quiet``
        zeros) between two windows, a listener may lengthen or shorten that silence to follow
        its sound card's clock: that is not counted; nor are windows found with a correlation
        below ``sure`` (a syllable that repeats may be matched a few syllables off)."""
        steps = [0.0]
        for a, b in itertools.pairwise(self.windows):
            if min(a.corr, b.corr) < sure:
                continue
            if not has_silence(daemon[a.index : b.index + 1], quiet):
                steps.append(abs(b.delay - a.delay))
        return max(steps)


def has_silence(x: np.ndarray, n: int) -> bool:
    """Whether ``x`` holds ``n`` zeros in a row."""
    zero = np.concatenate(([0], (x == 0).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(zero))
    return bool(len(edges)) and int(np.max(edges[1::2] - edges[::2])) >= n


def locate(clip: np.ndarray, heard: np.ndarray, lo: int, hi: int) -> tuple[int, float]:
    """Where in ``heard[lo:hi + len(clip)]`` ``clip`` best fits, and the normalised
    correlation there."""
    lo, hi = max(0, lo), min(len(heard) - len(clip), hi)
    if hi < lo or not len(clip):
        return lo, 0.0
    region = heard[lo : hi + len(clip)]
    size = 1 << (len(region) + len(clip)).bit_length()
    xc = np.fft.irfft(np.fft.rfft(region, size) * np.conj(np.fft.rfft(clip, size)), size)
    xc = xc[: hi - lo + 1]
    # Normalise by each position's energy, so a loud stretch does not win by loudness alone.
    energy = np.convolve(region**2, np.ones(len(clip)), "valid")[: hi - lo + 1]
    score = xc / (np.sqrt(np.maximum(energy, 1e-12)) * (np.linalg.norm(clip) + 1e-12))
    k = int(np.argmax(score))
    return lo + k, float(score[k])


def follow(
    out: DaemonOutput,
    heard: np.ndarray,
    t0: float,
    window_s: float = 0.1,
    guess_s: float = 0.15,
    search_s: float = 0.5,
    threshold: float = 0.01,
) -> list[LineFound]:
    """Every finished line of ``out`` found window by window in ``heard`` (recorded from
    monotonic time ``t0``); windows without sound are skipped."""
    rate = out.rate
    daemon = out.samples()
    n = round(window_s * rate)
    found: list[LineFound] = []
    guess = guess_s
    for line in out.lines:
        if line.end < 0:
            continue
        lf = LineFound(line)
        for i in range(line.start, line.end - n + 1, n):
            clip = daemon[i : i + n]
            if np.sqrt(np.mean(clip**2)) < threshold:
                continue
            at = out.time(i)
            expect = round((at + guess - t0) * rate)
            reach = round(search_s * rate)
            k, corr = locate(clip, heard, expect - reach, expect + reach)
            delay = t0 + k / rate - at
            lf.windows.append(Found(i, at, delay, corr))
            if corr > 0.9:
                guess = delay
        if lf.windows:
            found.append(lf)
    return found
