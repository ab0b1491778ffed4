"""The sound-card output: one PortAudio stream (through sounddevice) pulling from the mixer."""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import sounddevice as sd
import structlog

from ..config import PlayerConfig
from .devices import PlayerError, check_device, open_target
from .output import Render

log = structlog.get_logger("ishowtts.audio.player")

# After every (re)open the stream plays silence until its clock has settled: at least
# PREROLL_S, then until callbacks have asked for audio at about real-time speed over one
# SETTLE_WINDOW_S. Measured on PortAudio's ALSA `pulse` device: a fresh stream may first stall
# for a second, or race through seconds of audio in a few hundred ms, and what it takes in
# that burst is lost; the first 40–60 ms can be lost too.
PREROLL_S = 0.12
SETTLE_WINDOW_S = 0.25
SETTLE_MAX_S = 3.0  # give up waiting and play: a backend that never looks steady still plays
# Callbacks silent for this long while the stream claims to be active: treat it as wedged.
# Generous: an idle null sink can hold a fresh stream back for a second or two.
STALL_S = 5.0


class Settle:
    """Whether a fresh stream already consumes audio at about real-time speed."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.settled = False
        self.rate = 0.0
        self.after_s = 0.0
        self._open_cb = 0.0  # time of the first callback; 0: none yet
        self._window_t = 0.0
        self._window_frames = 0

    def ready(self, now: float, frames: int) -> bool:
        """Whether to play, after a callback at ``now`` asking for ``frames``. On the call that
        settles, ``rate`` (1.0 = real time) and ``after_s`` say how it went."""
        if self.settled:
            return True
        if self._open_cb == 0.0:
            self._open_cb = self._window_t = now
            self._window_frames = 0
        elapsed = now - self._window_t
        if elapsed >= SETTLE_WINDOW_S:
            rate = self._window_frames / self.sample_rate / elapsed
            steady = 0.7 <= rate <= 1.4
            since = now - self._open_cb
            if (steady and since >= PREROLL_S) or since > SETTLE_MAX_S:
                self.settled, self.rate, self.after_s = True, rate, since
                return True
            self._window_t, self._window_frames = now, 0
        self._window_frames += frames
        return False


_inside = 0  # calls into PortAudio that may block on the sound server, now in progress
_inside_lock = threading.Lock()


@contextlib.contextmanager
def _exit_need_not_wait() -> Iterator[None]:
    """While a stream is being opened or closed, take sounddevice's exit handler away: it
    terminates PortAudio, which waits for every stream's thread, so a call stuck on a wedged
    sound server (the player abandons it) would hang the process at exit. Put back once
    no such call is in progress (then it runs first at exit: it only closes PortAudio)."""
    global _inside
    handler = getattr(sd, "_exit_handler", None)
    with _inside_lock:
        _inside += 1
        if _inside == 1 and handler is not None:
            atexit.unregister(handler)
    try:
        yield
    finally:
        with _inside_lock:
            _inside -= 1
            if _inside == 0 and handler is not None:
                atexit.register(handler)


def write_channels(outdata: np.ndarray, mono: np.ndarray) -> None:
    """The mono mix into every channel (devices that refuse a mono stream get it duplicated)."""
    if outdata.shape[1] == 1:
        outdata[:, 0] = mono
    else:
        outdata[:] = mono[:, None]


class PortAudioOutput:
    """A sounddevice ``OutputStream`` on ``cfg.device``: mono if the device takes it, else two
    or more channels with the mix duplicated. Its callback only copies and multiplies."""

    def __init__(
        self,
        cfg: PlayerConfig,
        sample_rate: int,
        defer: Callable[[Callable[[], None]], None] = lambda fn: fn(),
    ) -> None:
        self.cfg = cfg
        self._defer = defer  # runs a call off the real-time thread (the player: on its loop)
        self.sample_rate = sample_rate
        self.xruns = 0
        self._stream: sd.OutputStream | None = None
        self._dead = threading.Event()
        self._render: Render | None = None
        self._settle = Settle(sample_rate)
        self._last_cb = 0.0
        self._buf = np.zeros(4096, dtype=np.float32)

    @property
    def stream(self) -> sd.OutputStream | None:
        """The PortAudio stream while open (for diagnostics and fault-injection tests)."""
        return self._stream

    def check(self) -> None:
        check_device(self.cfg.device)

    def open(self, render: Render) -> None:
        with _exit_need_not_wait():
            self._open(render)

    def _open(self, render: Render) -> None:
        device, max_ch = open_target(self.cfg.device)  # NoSoundOutput: nothing to open
        latency: Any = self.cfg.latency
        last_exc: Exception | None = None
        # Mono first; some devices only take two or more channels: duplicate then.
        for channels in dict.fromkeys((1, min(2, max_ch), max_ch)):
            if channels < 1:
                continue
            try:
                stream = sd.OutputStream(
                    device=device,
                    samplerate=self.sample_rate,
                    channels=channels,
                    dtype="float32",
                    blocksize=self.cfg.blocksize,
                    latency=latency,
                    callback=self._callback,
                    finished_callback=self._dead.set,
                )
            except sd.PortAudioError as exc:
                last_exc = exc
                continue
            self._render = render
            self._buf = np.zeros(max(4096, 4 * max(self.cfg.blocksize, 1)), dtype=np.float32)
            self._dead.clear()
            self._settle = Settle(self.sample_rate)
            self._last_cb = time.monotonic()
            stream.start()
            self._stream = stream
            log.info(
                "player_opened",
                device=device,
                name=sd.query_devices(device, kind="output")["name"],
                channels=channels,
                sample_rate=self.sample_rate,
                latency=round(stream.latency, 4),
            )
            return
        raise last_exc or PlayerError("could not open the output stream")

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        with _exit_need_not_wait():
            self._close(stream)

    @staticmethod
    def _close(stream: sd.OutputStream) -> None:
        try:
            stream.abort()
        except Exception as exc:  # a backend already gone: closing is all that is left
            log.debug("player_abort_failed", error=repr(exc))
        try:
            stream.close()
        except Exception as exc:
            log.debug("player_close_failed", error=repr(exc))

    def lost(self) -> str | None:
        stream = self._stream
        if stream is None:
            return "not_open"
        if self._dead.is_set():
            return "finished"
        if stream.active and time.monotonic() - self._last_cb > STALL_S:
            return "stalled"
        return None

    def _log_settled(self) -> None:
        s = self._settle
        log.info("player_stream_settled", after_s=round(s.after_s, 3), rate=round(s.rate, 2))

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        self._last_cb = now
        if status.output_underflow:
            self.xruns += 1
        render = self._render
        if not self._settle.settled:
            if not self._settle.ready(now, frames):
                outdata.fill(0.0)
                return
            self._defer(self._log_settled)
        if render is None:  # never: set before the stream starts
            outdata.fill(0.0)
            return
        if frames > len(self._buf):
            self._buf = np.zeros(frames, dtype=np.float32)  # rare: a larger block than planned
        buf = self._buf[:frames]
        render(buf, now)
        write_channels(outdata, buf)
