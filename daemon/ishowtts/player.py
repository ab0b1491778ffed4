"""The audio player: one long-lived sounddevice output stream fed from a queue of PCM.

Utterances play back to back with no gap while audio is queued. Every edge (an utterance's
start and end, skip, cancel, pause, resume, a mid-utterance underrun) gets a short raised-cosine
fade so that the waveform never jumps: no click. The PortAudio callback only copies samples and
multiplies small pre-allocated arrays; it holds the lock for microseconds.

If the stream dies (the device or sink disappears, PortAudio reports the stream finished, or
callbacks stop arriving), a supervisor task reopens it with backoff; the queue is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import sounddevice as sd
import structlog

from .backoff import Backoff
from .config import PlayerConfig
from .events import AudioChunk, Utterance

__all__ = ["Player", "PlayerError", "list_output_devices", "resolve_output_device"]

log = structlog.get_logger("ishowtts.player")

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
# Ids of cancelled/skipped utterances whose late chunks must be ignored; bounded.
MAX_IGNORED = 4096


class PlayerError(RuntimeError):
    """The configured output device cannot be used (not found, not an output)."""


def list_output_devices() -> list[dict[str, Any]]:
    """Output-capable devices as PortAudio sees them, for ``ishowtts devices``."""
    hostapis = sd.query_hostapis()
    try:
        default_out = sd.default.device[1]
    except (TypeError, IndexError):
        default_out = -1
    if default_out is None or default_out < 0:
        with contextlib.suppress(sd.PortAudioError, ValueError):
            default_out = sd.query_devices(kind="output")["index"]
    out = []
    for dev in sd.query_devices():
        if dev["max_output_channels"] <= 0:
            continue
        out.append(
            {
                "index": dev["index"],
                "name": dev["name"],
                "hostapi": hostapis[dev["hostapi"]]["name"],
                "channels": dev["max_output_channels"],
                "default_samplerate": dev["default_samplerate"],
                "is_default": dev["index"] == default_out,
            }
        )
    return out


def resolve_output_device(device: str | int | None) -> int | None:
    """A device index from a config value: an index, a digit string, or a name substring
    (case-insensitive; an exact name wins over substrings). ``None`` is the default device."""
    if device is None:
        return None
    devices = list_output_devices()
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        if any(d["index"] == index for d in devices):
            return index
        raise PlayerError(f"no output device with index {index}; {_names(devices)}")
    wanted = device.strip().lower()
    exact = [d for d in devices if d["name"].lower() == wanted]
    if exact:
        return exact[0]["index"]
    matches = [d for d in devices if wanted in d["name"].lower()]
    if len(matches) == 1:
        return matches[0]["index"]
    if not matches:
        raise PlayerError(f"no output device matches {device!r}; {_names(devices)}")
    raise PlayerError(
        f"output device {device!r} is ambiguous: "
        + ", ".join(f"[{d['index']}] {d['name']}" for d in matches)
    )


def _names(devices: list[dict[str, Any]]) -> str:
    listed = ", ".join(f"[{d['index']}] {d['name']}" for d in devices)
    return f"output devices: {listed or 'none'} (see `ishowtts devices`)"


def _fade_curve(n: int) -> np.ndarray:
    """Raised-cosine rise 0 → 1 over n samples (n+1 points, exclusive of 0 at the start)."""
    if n <= 0:
        return np.ones(1, dtype=np.float32)
    x = np.arange(1, n + 1, dtype=np.float64) / n
    return (0.5 - 0.5 * np.cos(np.pi * x)).astype(np.float32)


class _Track:
    """One utterance's audio: chunks still to play and its position."""

    __slots__ = (
        "chunks",
        "fade_in_left",
        "got_last",
        "kill_left",
        "killed",
        "offset",
        "resume_fade",
        "started",
        "unread",
        "utt",
    )

    def __init__(self, utt: Utterance, fade_n: int) -> None:
        self.utt = utt
        self.chunks: deque[np.ndarray] = deque()
        self.offset = 0  # read position in chunks[0]
        self.unread = 0  # frames not yet read
        self.got_last = False
        self.started = False
        self.fade_in_left = fade_n  # utterance fade-in still to apply at enqueue
        self.resume_fade = False  # after an underrun: fade back in
        self.killed = False  # skipped/cancelled while playing: fade out, then drop
        self.kill_left = 0

    def read(self, dst: np.ndarray) -> int:
        """Copy up to len(dst) frames into dst; return how many."""
        n = 0
        want = len(dst)
        while n < want and self.chunks:
            head = self.chunks[0]
            take = min(want - n, len(head) - self.offset)
            dst[n : n + take] = head[self.offset : self.offset + take]
            n += take
            self.offset += take
            if self.offset >= len(head):
                self.chunks.popleft()
                self.offset = 0
        self.unread -= n
        return n


class Player:
    """Plays AudioChunks gapless on one output stream; see the module docstring."""

    def __init__(
        self,
        cfg: PlayerConfig,
        sample_rate: int,
        on_started: Callable[[Utterance, float], None],
        on_done: Callable[[Utterance, bool], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.cfg = cfg
        self.sample_rate = int(sample_rate)
        self._on_started = on_started
        self._on_done = on_done
        self._loop = loop
        self._fade_n = max(1, round(cfg.fade_ms * self.sample_rate / 1000))
        self._rise = _fade_curve(self._fade_n)  # 0 → 1
        self._fall = self._rise[::-1].copy()  # 1 → 0
        self._lock = threading.Lock()
        self._tracks: deque[_Track] = deque()
        self._by_id: dict[str, _Track] = {}
        self._ignored: dict[str, None] = {}  # insertion-ordered set
        self._queued = 0  # frames enqueued and not yet played (killed tracks excluded)
        self._volume = float(cfg.volume)
        self._gain = float(cfg.volume)  # the gain actually applied; ramps toward _volume
        self._paused = False
        self._pause_gain = 1.0
        self._settled = False
        self._open_cb = 0.0  # monotonic time of the stream's first callback; 0: none yet
        self._window_t = 0.0
        self._window_frames = 0
        self._channels = 1
        self._stream: sd.OutputStream | None = None
        self._stream_dead = threading.Event()
        self._last_cb = 0.0
        self._running = False
        self._opening = False
        self._supervisor: asyncio.Task[None] | None = None
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        self._wake_below = -1.0  # frames: the callback wakes the loop when queued drops below
        self._warned_rate = False
        self.xruns = 0  # the backend's output underflows
        self.underruns = 0  # an utterance ran dry before its last chunk
        self.reopens = 0
        self._alloc(4096)

    # ---- public API -------------------------------------------------------------------------

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or not 0.0 <= value <= 2.0:
            raise ValueError(f"volume must be between 0 and 2, got {value}")
        self._volume = value  # the callback ramps toward it over one block

    @property
    def queued_seconds(self) -> float:
        return self._queued / self.sample_rate

    @property
    def now_playing(self) -> Utterance | None:
        with self._lock:
            for t in self._tracks:
                if not t.killed:
                    return t.utt if t.started else None
        return None

    @property
    def state(self) -> str:
        if self._running and (self._stream is None or self._opening):
            return "reopening"
        if self._paused:
            return "paused"
        with self._lock:  # the callback mutates the deque
            busy = any(not t.killed for t in self._tracks)
        return "playing" if busy else "idle"

    async def start(self) -> None:
        """Open the stream; on failure keep retrying in the background with backoff.
        A device name or index that matches nothing is a configuration error: raised."""
        if self._running:
            return
        self._loop = self._loop or asyncio.get_running_loop()
        resolve_output_device(self.cfg.device)  # raise PlayerError early for a bad name
        self._running = True
        try:
            await self._open()
        except Exception as exc:  # the device exists but would not open: retry later
            log.error("player_open_failed", device=self.cfg.device, error=str(exc))
            self._stream_dead.set()
        self._supervisor = asyncio.create_task(self._supervise(), name="player-supervisor")

    async def stop(self) -> None:
        self._running = False
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._close()
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    def enqueue(self, chunk: AudioChunk) -> None:
        utt = chunk.utterance
        if utt.id in self._ignored:
            return
        pcm = self._prepare(chunk)
        track = self._by_id.get(utt.id)
        if track is None:
            track = _Track(utt, self._fade_n)
            new = True
        else:
            new = False
            if track.got_last:
                log.warning("player_chunk_after_last", id=utt.id, index=chunk.index)
                return
        if track.fade_in_left > 0 and len(pcm):
            # The utterance's start: fade in over its first fade_n samples, across chunks.
            done = self._fade_n - track.fade_in_left
            k = min(track.fade_in_left, len(pcm))
            pcm[:k] *= self._rise[done : done + k]
            track.fade_in_left -= k
        with self._lock:
            if len(pcm):
                track.chunks.append(pcm)
                track.unread += len(pcm)
                self._queued += len(pcm)
            if chunk.last:
                track.got_last = True
                self._fade_tail(track)
            if new:
                self._tracks.append(track)
                self._by_id[utt.id] = track
        self._check_waiters()

    def cancel(self, utterance_id: str) -> None:
        """Drop an utterance entirely (fading if it is playing); no on_done."""
        self._ignore(utterance_id)
        self._drop(utterance_id)
        self._check_waiters()

    def drop_pending(self) -> list[Utterance]:
        """Drop every utterance not started yet (shutdown); no on_done. The one playing stays."""
        with self._lock:
            pending = [t.utt for t in self._tracks if not t.started and not t.killed]
        for utt in pending:
            self.cancel(utt.id)
        return pending

    def skip(self) -> Utterance | None:
        """Fade out the current utterance and drop its rest; on_done(utt, False)."""
        utt = self.now_playing
        if utt is None:
            return None
        self._ignore(utt.id)
        if not self._drop(utt.id):  # it finished meanwhile: on_done(True) is on its way
            return None
        self._deliver(self._on_done, utt, False)
        self._check_waiters()
        return utt

    def pause(self) -> None:
        self._paused = True  # the callback fades out, then holds the position

    def resume(self) -> None:
        self._paused = False

    async def wait_below(self, seconds: float) -> None:
        """Return once fewer than ``seconds`` of audio are queued (lookahead control)."""
        if self.queued_seconds < seconds:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((seconds, fut))
        self._arm()
        try:
            await fut
        finally:
            self._waiters = [(s, f) for s, f in self._waiters if f is not fut]
            self._arm()

    # ---- loop-side helpers ------------------------------------------------------------------

    def _prepare(self, chunk: AudioChunk) -> np.ndarray:
        pcm = np.asarray(chunk.samples, dtype=np.float32)
        if pcm.ndim > 1:  # tolerate (frames, channels): mix down
            pcm = pcm.mean(axis=1, dtype=np.float32)
        pcm = pcm.reshape(-1)
        if chunk.sample_rate != self.sample_rate and len(pcm):
            if not self._warned_rate:
                log.warning(
                    "player_resampling", chunk_rate=chunk.sample_rate, stream_rate=self.sample_rate
                )
                self._warned_rate = True
            n_out = max(1, round(len(pcm) * self.sample_rate / chunk.sample_rate))
            x = np.linspace(0, len(pcm) - 1, n_out)
            pcm = np.interp(x, np.arange(len(pcm)), pcm).astype(np.float32)
        pcm = np.nan_to_num(pcm, nan=0.0, posinf=1.0, neginf=-1.0)
        return np.clip(pcm, -1.0, 1.0)  # a fresh array we own: fades may write into it

    def _fade_tail(self, track: _Track) -> None:
        """Fade the last fade_n unread samples of a finished utterance (lock held)."""
        left = min(self._fade_n, track.unread)
        if left <= 0:
            return
        curve = self._fall[self._fade_n - left :]  # ends at 0
        end = len(curve)
        for i in range(len(track.chunks) - 1, -1, -1):
            arr = track.chunks[i]
            lo = track.offset if i == 0 else 0
            k = min(end, len(arr) - lo)
            arr[len(arr) - k :] *= curve[end - k : end]
            end -= k
            if end <= 0:
                break

    def _ignore(self, utterance_id: str) -> None:
        self._ignored[utterance_id] = None
        while len(self._ignored) > MAX_IGNORED:
            self._ignored.pop(next(iter(self._ignored)))

    def _drop(self, utterance_id: str) -> bool:
        with self._lock:
            track = self._by_id.pop(utterance_id, None)
            if track is None or track.killed:
                return False
            self._queued -= track.unread
            audible = (
                track.started
                and self._tracks
                and self._tracks[0] is track
                and not (self._paused and self._pause_gain <= 0.0)
                and self._stream is not None
            )
            if audible:
                track.killed = True  # the callback fades it out and removes it
                track.kill_left = self._fade_n
            else:
                self._tracks.remove(track)
            return True

    def _deliver(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._safe_call, fn, args)

    @staticmethod
    def _safe_call(fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("player_callback_failed", callback=getattr(fn, "__name__", str(fn)))

    def _arm(self) -> None:
        pending = [s for s, f in self._waiters if not f.done()]
        self._wake_below = max(pending) * self.sample_rate if pending else -1.0
        self._check_waiters()

    def _check_waiters(self) -> None:
        q = self.queued_seconds
        for seconds, fut in self._waiters:
            if q < seconds and not fut.done():
                fut.set_result(None)

    def _woken(self) -> None:
        self._check_waiters()
        self._arm()

    # ---- stream management ------------------------------------------------------------------

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._opening = True
        try:
            stream = await loop.run_in_executor(None, self._open_blocking)
        finally:
            self._opening = False
        self._stream = stream

    def _open_blocking(self) -> sd.OutputStream:
        device = resolve_output_device(self.cfg.device)
        latency: Any = self.cfg.latency
        last_exc: Exception | None = None
        # Mono first; some devices only take two or more channels: duplicate then.
        max_ch = sd.query_devices(device, kind="output")["max_output_channels"]
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
                    finished_callback=self._stream_dead.set,
                )
            except sd.PortAudioError as exc:
                last_exc = exc
                continue
            self._channels = channels
            self._alloc(max(4096, 4 * max(self.cfg.blocksize, 1)))
            self._stream_dead.clear()
            self._settled = False
            self._open_cb = 0.0
            self._last_cb = time.monotonic()
            with self._lock:  # after a reopen, an utterance cut mid-wave resumes with a fade
                if self._tracks and self._tracks[0].started:
                    self._tracks[0].resume_fade = True
            stream.start()
            log.info(
                "player_opened",
                device=device,
                name=sd.query_devices(device, kind="output")["name"],
                channels=channels,
                sample_rate=self.sample_rate,
                latency=round(stream.latency, 4),
            )
            return stream
        raise last_exc or PlayerError("could not open the output stream")

    async def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return

        def close() -> None:
            with contextlib.suppress(Exception):
                stream.abort()
            with contextlib.suppress(Exception):
                stream.close()

        loop = asyncio.get_running_loop()
        try:  # a wedged backend can hang in close: give up on it rather than on the daemon
            await asyncio.wait_for(loop.run_in_executor(None, close), timeout=2.0)
        except asyncio.TimeoutError:
            log.warning("player_close_hung")

    async def _supervise(self) -> None:
        backoff = Backoff(initial=0.1, maximum=5.0)
        while self._running:
            await asyncio.sleep(0.1)
            stream = self._stream
            stalled = (
                stream is not None and stream.active and time.monotonic() - self._last_cb > STALL_S
            )
            if stream is not None and not self._stream_dead.is_set() and not stalled:
                continue
            log.warning(
                "player_stream_lost",
                reason="stalled" if stalled else "finished" if stream is not None else "not_open",
                queued_s=round(self.queued_seconds, 3),
            )
            await self._close()
            while self._running:
                await asyncio.sleep(backoff.next_delay())
                try:
                    resolve_output_device(self.cfg.device)
                except PlayerError:  # gone from PortAudio's list: maybe it was re-plugged
                    self._rescan()
                try:
                    await self._open()
                except Exception as exc:
                    log.warning("player_reopen_failed", error=str(exc), attempt=backoff.attempt)
                    continue
                self.reopens += 1
                backoff.reset()
                log.info("player_reopened", queued_s=round(self.queued_seconds, 3))
                break

    @staticmethod
    def _rescan() -> None:
        """PortAudio lists devices once; re-initialise so a re-plugged device shows up.
        Safe here: the player's stream is closed and it is the process's only stream."""
        with contextlib.suppress(Exception):
            sd._terminate()
            sd._initialize()

    # ---- the real-time callback -------------------------------------------------------------

    def _alloc(self, frames: int) -> None:
        self._buf = np.zeros(frames, dtype=np.float32)
        self._env = np.ones(frames, dtype=np.float32)
        self._steps = np.arange(1, frames + 1, dtype=np.float32)

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        self._last_cb = now
        if status.output_underflow:
            self.xruns += 1
        if frames > len(self._buf):
            self._alloc(frames)  # rare: the backend chose a larger block than planned
        buf = self._buf[:frames]
        buf.fill(0.0)
        if not self._settled and not self._settle(now, frames):
            outdata.fill(0.0)
            return
        wake = False
        with self._lock:
            self._play(buf, 0, frames, now)
            if self._wake_below >= 0 and self._queued < self._wake_below:
                self._wake_below = -1.0
                wake = True
        # Volume: a linear ramp over the block from the current gain to the target.
        target = self._volume
        if target != self._gain:
            env = self._env[:frames]
            np.multiply(self._steps[:frames], (target - self._gain) / frames, out=env)
            env += self._gain
            buf *= env
            self._gain = target
        elif target != 1.0:
            buf *= target
        if self._channels == 1:
            outdata[:, 0] = buf
        else:
            outdata[:] = buf[:, None]
        if wake:
            self._deliver(self._woken)

    def _settle(self, now: float, frames: int) -> bool:
        """True once the fresh stream consumes audio at about real-time speed."""
        if self._open_cb == 0.0:
            self._open_cb = self._window_t = now
            self._window_frames = 0
        elapsed = now - self._window_t
        if elapsed >= SETTLE_WINDOW_S:
            rate = self._window_frames / self.sample_rate / elapsed
            steady = 0.7 <= rate <= 1.4
            if (steady and now - self._open_cb >= PREROLL_S) or now - self._open_cb > SETTLE_MAX_S:
                self._settled = True
                self._deliver(self._log_settled, now - self._open_cb, rate)
                return True
            self._window_t, self._window_frames = now, 0
        self._window_frames += frames
        return False

    @staticmethod
    def _log_settled(after_s: float, rate: float) -> None:
        log.info("player_stream_settled", after_s=round(after_s, 3), rate=round(rate, 2))

    def _play(self, buf: np.ndarray, start: int, frames: int, now: float) -> None:
        """Fill buf[start:frames] from the tracks, honouring pause (lock held)."""
        step = 1.0 / self._fade_n
        end = frames
        if self._paused:
            if self._pause_gain <= 0.0:
                return
            # Play just enough to fade out, then hold the position.
            end = min(frames, start + math.ceil(self._pause_gain / step))
        pos = self._fill(buf, start, end, now)
        g = self._pause_gain
        if self._paused or g < 1.0:
            n = pos - start
            env = self._env[:n]
            np.multiply(self._steps[:n], -step if self._paused else step, out=env)
            env += g
            np.clip(env, 0.0, 1.0, out=env)
            buf[start:pos] *= env
            g = float(env[-1]) if n else g
            if self._paused and pos < end:  # ran out of audio while fading: done fading
                g = 0.0
            if self._paused and not self._tracks:
                g = 0.0
            self._pause_gain = g
            if not self._paused and pos == start and not self._tracks:
                self._pause_gain = 1.0  # nothing to fade back into

    def _fill(self, buf: np.ndarray, pos: int, end: int, now: float) -> int:
        tracks = self._tracks
        while pos < end and tracks:
            t = tracks[0]
            if t.killed:
                n = t.read(buf[pos : min(end, pos + t.kill_left)])
                fade_from = self._fade_n - t.kill_left
                buf[pos : pos + n] *= self._fall[fade_from : fade_from + n]
                t.kill_left -= n
                pos += n
                if t.kill_left <= 0 or t.unread <= 0:
                    tracks.popleft()
                continue
            n = t.read(buf[pos:end])
            if n:
                if not t.started:
                    t.started = True
                    self._deliver(self._on_started, t.utt, now + pos / self.sample_rate)
                if t.resume_fade:
                    k = min(n, self._fade_n)
                    buf[pos : pos + k] *= self._rise[:k]
                    t.resume_fade = False
                self._queued -= n
                pos += n
            if t.unread > 0:
                continue
            if t.got_last:
                tracks.popleft()
                self._by_id.pop(t.utt.id, None)
                self._deliver(self._on_done, t.utt, True)
                continue
            # Underrun inside an utterance: fade out what we have, fade in when more comes.
            if n:
                k = min(n, self._fade_n)
                buf[pos - k : pos] *= self._fall[self._fade_n - k :]
                t.resume_fade = True
                self.underruns += 1
            break
        return pos
