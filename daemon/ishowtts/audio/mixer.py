"""The mixer: utterances' PCM in, blocks of faded, gain-ramped mono PCM out.

Pure: no device, no event loop. An output thread calls ``fill(buffer, now)``; it returns what
happened in that block (an utterance started, one finished) as notices for the caller to pass
on. Every edge (an utterance's start and end, skip, cancel, pause, resume, a mid-utterance
underrun) gets a short raised-cosine fade so that the waveform never jumps: no click. While the
streamer speaks (``hold``) no utterance starts and the one playing is ducked (duck.py). ``fill``
only copies samples and multiplies small pre-allocated arrays; it holds the lock for
microseconds. Thread-safe: the loop enqueues and controls while the output thread fills.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
import structlog

from ..events import AudioChunk, Utterance
from .duck import Duck

log = structlog.get_logger("ishowtts.audio.player")

# Ids of cancelled/skipped utterances whose late chunks must be ignored; bounded.
MAX_IGNORED = 4096


@dataclass(frozen=True, slots=True)
class Started:
    utterance: Utterance
    at: float  # monotonic time its first sample left the mixer


@dataclass(frozen=True, slots=True)
class Finished:
    utterance: Utterance  # played to its end
    at: float  # monotonic time just after its last sample left the mixer


Notice = Started | Finished


def fade_curve(n: int) -> np.ndarray:
    """Raised-cosine rise 0 → 1 over n samples (exclusive of 0 at the start)."""
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
        self.resume_fade = False  # after an underrun or a reopen: fade back in
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


class Mixer:
    def __init__(self, sample_rate: int, fade_ms: float = 6.0, volume: float = 1.0) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.fade_n = max(1, round(fade_ms * self.sample_rate / 1000))
        self._rise = fade_curve(self.fade_n)  # 0 → 1
        self._fall = self._rise[::-1].copy()  # 1 → 0
        self._lock = threading.Lock()
        self._tracks: deque[_Track] = deque()
        self._by_id: dict[str, _Track] = {}
        self._ignored: dict[str, None] = {}  # insertion-ordered set
        self._queued = 0  # frames enqueued and not yet played (killed tracks excluded)
        self._volume = 0.0
        self.volume = volume
        self._gain = self._volume  # the gain actually applied; ramps toward volume
        self._paused = False
        self._pause_gain = 1.0
        self._held = False  # the streamer speaks: nothing new starts
        self.duck = Duck(self.sample_rate)
        self._warned_rate = False
        # Whether something drains fill(): a track killed while nothing does is dropped at once
        # instead of left for a fade-out that would never run.
        self.draining = False
        self.underruns = 0  # an utterance ran dry before its last chunk
        self._alloc(4096)

    # ---- state ------------------------------------------------------------------------------

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or not 0.0 <= value <= 2.0:
            raise ValueError(f"volume must be between 0 and 2, got {value}")
        self._volume = value  # fill ramps toward it over one block

    @property
    def queued_frames(self) -> int:
        return self._queued

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def busy(self) -> bool:
        """Something is playing or waiting to (paused or not)."""
        with self._lock:
            return any(not t.killed for t in self._tracks)

    @property
    def now_playing(self) -> Utterance | None:
        with self._lock:
            for t in self._tracks:
                if not t.killed:
                    return t.utt if t.started else None
        return None

    def left(self, utterance_id: str) -> tuple[float, bool] | None:
        """Seconds of this utterance's audio made and not yet heard, and whether all of it is
        made (only then is that the time left); None when it is not here."""
        with self._lock:
            track = self._by_id.get(utterance_id)
            if track is None or track.killed:
                return None
            return track.unread / self.sample_rate, track.got_last

    # ---- control (any thread but the one filling) -------------------------------------------

    def enqueue(self, chunk: AudioChunk) -> None:
        utt = chunk.utterance
        if utt.id in self._ignored:
            return
        pcm = self._prepare(chunk)
        track = self._by_id.get(utt.id)
        if track is None:
            track = _Track(utt, self.fade_n)
            new = True
        else:
            new = False
            if track.got_last:
                log.warning("player_chunk_after_last", id=utt.id, index=chunk.index)
                return
        if track.fade_in_left > 0 and len(pcm):
            # The utterance's start: fade in over its first fade_n samples, across chunks.
            done = self.fade_n - track.fade_in_left
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

    def cancel(self, utterance_id: str) -> bool:
        """Drop an utterance entirely (fading if it is heard) and ignore its late chunks;
        True if it was there."""
        self._ignore(utterance_id)
        return self._drop(utterance_id)

    def drop_pending(self) -> list[Utterance]:
        """Drop every utterance not started yet. The one playing stays."""
        with self._lock:
            pending = [t.utt for t in self._tracks if not t.started and not t.killed]
        for utt in pending:
            self.cancel(utt.id)
        return pending

    def skip(self) -> Utterance | None:
        """Fade out the utterance playing and drop its rest; it, or None if none was (or it
        finished meanwhile: then a ``Finished`` notice is on its way)."""
        utt = self.now_playing
        if utt is None:
            return None
        self._ignore(utt.id)
        return utt if self._drop(utt.id) else None

    def pause(self) -> None:
        self._paused = True  # fill fades out, then holds the position

    def resume(self) -> None:
        self._paused = False

    @property
    def held(self) -> bool:
        return self._held

    def hold(self, on: bool, gain: float = 0.0) -> None:
        """The streamer started (``on``) or stopped speaking. While on, no utterance starts and
        the one playing ramps to ``gain`` (0: it fades out and keeps its place); off, it ramps
        back to full level and the queue plays on."""
        if on:
            self.duck.target = gain
            self._held = True
        else:
            self._held = False
            self.duck.target = 1.0

    def resume_with_fade(self) -> None:
        """The output was cut (a reopen): an utterance cut mid-wave comes back with a fade."""
        with self._lock:
            if self._tracks and self._tracks[0].started:
                self._tracks[0].resume_fade = True

    # ---- helpers ----------------------------------------------------------------------------

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
        left = min(self.fade_n, track.unread)
        if left <= 0:
            return
        curve = self._fall[self.fade_n - left :]  # ends at 0
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
                and not (self._held and self.duck.silent)
                and self.draining
            )
            if audible:
                track.killed = True  # fill fades it out and removes it
                track.kill_left = self.fade_n
            else:
                self._tracks.remove(track)
            return True

    # ---- the real-time side -----------------------------------------------------------------

    def _alloc(self, frames: int) -> None:
        self._env = np.ones(frames, dtype=np.float32)
        self._steps = np.arange(1, frames + 1, dtype=np.float32)

    def fill(self, buf: np.ndarray, now: float) -> list[Notice]:
        """Overwrite ``buf`` (mono float32) with the next ``len(buf)`` frames; ``now`` is the
        monotonic time they start to leave. Returns what started and finished in them."""
        frames = len(buf)
        if frames > len(self._env):
            self._alloc(frames)  # rare: an output chose a larger block than planned
        buf.fill(0.0)
        notices: list[Notice] = []
        with self._lock:
            played = self._play(buf, frames, now, notices)
        self.duck.apply(buf[:frames], played)
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
        return notices

    def _play(self, buf: np.ndarray, frames: int, now: float, notices: list[Notice]) -> int:
        """Fill buf[:frames] from the tracks, honouring pause and hold (lock held); how many
        frames carry audio."""
        step = 1.0 / self.fade_n
        end = frames
        if self._held and self.duck.target <= 0.0:  # paused for the streamer
            if self.duck.gain <= 0.0:
                return 0  # faded out: the position is kept
            end = min(frames, self.duck.frames_to_silence())  # read no further than the fade
        if self._paused:
            if self._pause_gain <= 0.0:
                return 0
            # Play just enough to fade out, then hold the position.
            end = min(frames, math.ceil(self._pause_gain / step))
        pos = self._fill(buf, 0, end, now, notices)
        g = self._pause_gain
        if self._paused or g < 1.0:
            env = self._env[:pos]
            np.multiply(self._steps[:pos], -step if self._paused else step, out=env)
            env += g
            np.clip(env, 0.0, 1.0, out=env)
            buf[:pos] *= env
            g = float(env[-1]) if pos else g
            if self._paused and pos < end:  # ran out of audio while fading: done fading
                g = 0.0
            if self._paused and not self._tracks:
                g = 0.0
            self._pause_gain = g
            if not self._paused and pos == 0 and not self._tracks:
                self._pause_gain = 1.0  # nothing to fade back into
        return pos

    def _fill(self, buf: np.ndarray, pos: int, end: int, now: float, notices: list[Notice]) -> int:
        tracks = self._tracks
        while pos < end and tracks:
            t = tracks[0]
            if t.killed:
                n = t.read(buf[pos : min(end, pos + t.kill_left)])
                fade_from = self.fade_n - t.kill_left
                buf[pos : pos + n] *= self._fall[fade_from : fade_from + n]
                t.kill_left -= n
                pos += n
                if t.kill_left <= 0 or t.unread <= 0:
                    tracks.popleft()
                continue
            if self._held and not t.started:
                break  # the streamer speaks: the next utterance waits for their turn to end
            n = t.read(buf[pos:end])
            if n:
                if not t.started:
                    t.started = True
                    notices.append(Started(t.utt, now + pos / self.sample_rate))
                if t.resume_fade:
                    k = min(n, self.fade_n)
                    buf[pos : pos + k] *= self._rise[:k]
                    t.resume_fade = False
                self._queued -= n
                pos += n
            if t.unread > 0:
                continue
            if t.got_last:
                tracks.popleft()
                self._by_id.pop(t.utt.id, None)
                notices.append(Finished(t.utt, now + pos / self.sample_rate))
                continue
            # Underrun inside an utterance: fade out what we have, fade in when more comes.
            if n:
                k = min(n, self.fade_n)
                buf[pos - k : pos] *= self._fall[self.fade_n - k :]
                t.resume_fade = True
                self.underruns += 1
            break
        return pos
