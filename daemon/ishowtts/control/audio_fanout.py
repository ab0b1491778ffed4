"""The voice for browser sources: every block the player plays, after volume and fades, fanned
out to the pages listening (``/overlay?audio=1``; ``audio_route.py`` serves them).

The output's thread (a sound card's callback, or the paced ``none`` output) calls ``tap``: it
encodes the block (16-bit PCM, or only a count when it is silent), appends it to a bounded
hand-off queue and wakes the loop once per batch. It never blocks on the loop: a stalled loop
loses the oldest blocks (counted), never stalls the audio. On the loop each block goes into
every listener's own queue. A listener more than ``MAX_BEHIND_S`` of audio behind what it has
confirmed receiving (a slow link, a paused or vanished page) is dropped; its page reconnects and
starts again at the live point. Nothing a listener does reaches the player, the local device or
the other listeners.

Messages (docs/browser-audio.md): binary, one per block: an 8-byte header (kind: 0 PCM,
1 silence; 3 bytes zero; frames, uint32 little-endian), then for PCM the frames as int16
little-endian. Text, JSON: ``hello`` first (rate, the caption of the line playing), and
``start`` / ``end`` marks (an utterance's first sample, its end) placed ``at`` a frame of the
next binary message, so the page shows each caption when its audio is heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from ..audio.mixer import Notice, Started
from ..audio.player import Player
from ..events import Utterance
from .live_view import caption

log = structlog.get_logger("ishowtts.control.audio")

PCM, SILENCE = 0, 1
HEADER = struct.Struct("<B3xI")
MAX_BEHIND_S = 1.0  # audio a listener may have been sent and not yet confirmed
# Audio the output's thread may hand over before the loop takes it. Below MAX_BEHIND_S: a
# stalled loop loses audio (the pages underrun, then play on), it does not drop the listeners.
HANDOFF_S = 0.5


class ListenersFull(Exception):
    """As many pages listen as ``api.max_audio_listeners`` allows."""


@dataclass(eq=False)
class Listener:
    """One listening page: what is to be sent to it, and how far it has confirmed."""

    peer: str
    out: deque[bytes | str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    handed: int = 0  # frames put in its queue since it connected
    acked: int = 0  # frames it says it received
    gone: str | None = None  # why its stream must end (fell behind, closed, shutdown)

    def ack(self, frames: int) -> None:
        self.acked = min(max(self.acked, frames), self.handed)  # a page cannot get ahead

    def stop(self, why: str) -> None:
        if self.gone is None:
            self.gone = why
        self.out.clear()
        self.wake.set()


def encode(buf: np.ndarray) -> bytes:
    """One block as a binary message: silence as a bare count, sound as int16."""
    if not buf.any():
        return HEADER.pack(SILENCE, len(buf))
    pcm = np.clip(buf, -1.0, 1.0) * 32767.0  # the volume may go to 2: clip, as a card does
    return HEADER.pack(PCM, len(buf)) + pcm.astype("<i2").tobytes()


def marks(notices: list[Notice], now: float, frames: int, rate: int) -> list[str]:
    """The ``start`` / ``end`` messages for what began and ended in a block."""
    out = []
    for n in notices:
        at = min(frames, max(0, round((n.at - now) * rate)))
        if isinstance(n, Started):
            out.append(json.dumps({"type": "start", "at": at, **caption(n.utterance)}))
        else:
            out.append(json.dumps({"type": "end", "at": at, "id": n.utterance.id}))
    return out


class AudioFanout:
    def __init__(self, max_listeners: int) -> None:
        self.max_listeners = max_listeners
        self.sample_rate = 0  # of the player attached (the engine's)
        self._now_playing: Callable[[], Utterance | None] = lambda: None
        self._listeners: set[Listener] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._handoff: deque[tuple[bytes, float, int, list[Notice]]] = deque()
        self._handoff_max = 1
        self._scheduled = False
        self.lost_blocks = 0  # handed over while the loop did not take them: dropped
        self.tap_errors = 0
        self.refused = 0  # pages turned away: as many listen as allowed
        self.dropped: Counter[str] = Counter()  # listeners dropped, by reason
        self.closed = False

    def attach(self, player: Player) -> None:
        """Listen to what ``player`` plays (from its next block on)."""
        self.sample_rate = player.sample_rate
        self._now_playing = lambda: player.now_playing
        block = max(1, player.cfg.blocksize or 256)
        self._handoff_max = max(4, round(HANDOFF_S * self.sample_rate / block))
        player.taps.append(self.tap)

    # ---- the output's thread ------------------------------------------------------------------

    def tap(self, buf: np.ndarray, now: float, notices: list[Notice]) -> None:
        if not self._listeners:
            return
        try:
            message = encode(buf)
            with self._lock:
                if len(self._handoff) >= self._handoff_max:
                    self._handoff.popleft()  # the loop is stalled: the oldest is lost
                    self.lost_blocks += 1
                self._handoff.append((message, now, len(buf), list(notices)))
                if self._scheduled:
                    return
                self._scheduled = True
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._flush)
        except Exception:  # never into the sound card's callback
            self.tap_errors += 1

    # ---- the loop -----------------------------------------------------------------------------

    def _flush(self) -> None:
        with self._lock:
            blocks = list(self._handoff)
            self._handoff.clear()
            self._scheduled = False
        for message, now, frames, notices in blocks:
            texts = marks(notices, now, frames, self.sample_rate) if notices else []
            for listener in list(self._listeners):
                self._give(listener, texts, message, frames)

    def _give(self, listener: Listener, texts: list[str], message: bytes, frames: int) -> None:
        if listener.handed + frames - listener.acked > MAX_BEHIND_S * self.sample_rate:
            self.drop(listener, "fell behind")
            return
        listener.out.extend(texts)
        listener.out.append(message)
        listener.handed += frames
        listener.wake.set()

    def ended(self, utt: Utterance) -> None:
        """An utterance stopped early (skipped): its caption goes at once."""
        text = json.dumps({"type": "end", "at": 0, "id": utt.id})
        for listener in self._listeners:
            listener.out.append(text)
            listener.wake.set()

    def add(self, peer: str) -> Listener:
        """A new listener, from the next block on (the live point: no backlog)."""
        if self.closed:
            raise ListenersFull("the daemon is stopping")
        if len(self._listeners) >= self.max_listeners:
            self.refused += 1
            raise ListenersFull(f"{self.max_listeners} pages listen already")
        self._loop = asyncio.get_running_loop()
        listener = Listener(peer)
        self._listeners.add(listener)
        log.info("audio_listener_joined", peer=peer, listeners=len(self._listeners))
        return listener

    def hello(self) -> str:
        now = self._now_playing()
        return json.dumps(
            {
                "type": "hello",
                "rate": self.sample_rate,
                "channels": 1,
                "format": "s16le",
                "now": caption(now) if now is not None else None,
            }
        )

    def remove(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.discard(listener)
            log.info(
                "audio_listener_left",
                peer=listener.peer,
                why=listener.gone or "closed",
                listeners=len(self._listeners),
            )

    def drop(self, listener: Listener, why: str) -> None:
        self._listeners.discard(listener)
        self.dropped[why] += 1
        listener.stop(why)
        log.warning("audio_listener_dropped", peer=listener.peer, why=why)

    def end_streams(self, why: str) -> int:
        """End every stream (a rotated token: each page signs in again); how many ended."""
        listeners = list(self._listeners)
        for listener in listeners:
            self.drop(listener, why)
        return len(listeners)

    def close(self) -> None:
        """End every stream (shutdown)."""
        self.closed = True
        for listener in list(self._listeners):
            self._listeners.discard(listener)
            listener.stop("shutdown")

    def status(self) -> dict[str, Any]:
        rate = self.sample_rate or 1
        return {
            "listeners": [
                {"peer": li.peer, "behind_ms": round((li.handed - li.acked) / rate * 1000)}
                for li in self._listeners
            ],
            "max": self.max_listeners,
            "refused": self.refused,
            "dropped": dict(self.dropped),
            "lost_blocks": self.lost_blocks,
        }
