"""The player: the mixer (mixer.py) played on an output (a PortAudio stream by default),
supervised, and bridged to the asyncio loop.

Utterances play back to back with no gap while audio is queued; the mixer fades every edge.
The output pulls blocks from its own thread; what the mixer reports (an utterance started or
finished) and lookahead wake-ups are handed to the loop with ``call_soon_threadsafe``. If the
output dies (the device or sink disappears, PortAudio reports the stream finished, or callbacks
stop arriving), a supervisor task reopens it with backoff; the queue is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

import numpy as np
import structlog

from ..backoff import Backoff
from ..config import PlayerConfig
from ..events import AudioChunk, Utterance
from ..tasks import cancel_and_wait
from ..threads import DaemonExecutor
from .devices import (
    NoSoundOutput,
    PlayerError,
    check_device,
    list_output_devices,
    resolve_output_device,
)
from .mixer import Mixer, Notice, Started
from .null_output import NullOutput, is_null_device
from .output import Output

__all__ = [
    "NoSoundOutput",
    "Player",
    "PlayerError",
    "PlayerState",
    "Tap",
    "list_output_devices",
    "resolve_output_device",
]

log = structlog.get_logger("ishowtts.audio.player")

# A wedged sound server (PulseAudio frozen, a driver stuck) can block PortAudio's open and close
# for good. Those calls run on a daemon thread of their own and are waited for this long; then
# the call is abandoned (logged): the daemon goes on, and exit does not wait for that thread.
CLOSE_TIMEOUT_S = 2.0
OPEN_TIMEOUT_S = 10.0  # ALSA's pulse plugin alone waits up to ~5 s for a server to answer


# Sees every block the output plays, after volume and fades, on the output's thread (a sound
# card's callback): the block (reused after the call: copy what you keep), the monotonic time it
# starts to leave, and what started and finished in it. It must return in microseconds and
# never block or raise; what it hands on goes through a bounded path of its own.
Tap = Callable[[np.ndarray, float, list[Notice]], None]


class OutputHung(Exception):
    """An output's open or close did not return in time and was abandoned."""


class PlayerState(str, Enum):
    IDLE = "idle"
    PLAYING = "playing"
    PAUSED = "paused"
    REOPENING = "reopening"  # the output is not open (yet, or again): audio waits

    def __str__(self) -> str:
        return self.value


def output_for(cfg: PlayerConfig, sample_rate: int, deliver: Callable[..., None]) -> Output:
    """The output ``cfg.device`` names: ``none`` plays nowhere at a card's pace; anything else
    is a PortAudio stream (imported here: it loads PortAudio, which device ``none`` lacks)."""
    if is_null_device(cfg.device):
        return NullOutput(sample_rate, cfg.blocksize)
    from .portaudio_output import PortAudioOutput

    return PortAudioOutput(cfg, sample_rate, deliver)


class Player:
    """Plays AudioChunks gapless on one output; see the module docstring."""

    def __init__(
        self,
        cfg: PlayerConfig,
        sample_rate: int,
        on_started: Callable[[Utterance, float], None],
        on_done: Callable[[Utterance, bool], None],
        loop: asyncio.AbstractEventLoop | None = None,
        output: Output | None = None,
    ) -> None:
        self.cfg = cfg
        self.mixer = Mixer(sample_rate, cfg.fade_ms, cfg.volume)
        self.sample_rate = self.mixer.sample_rate
        # An output given by the caller is the caller's; one made from cfg follows a reload.
        self._managed = output is None
        self.output: Output = output or output_for(cfg, self.sample_rate, self._deliver)
        self._on_started = on_started
        self._on_done = on_done
        self._loop = loop
        self._running = False
        self._open = False
        self._opening = False
        self._supervisor: asyncio.Task[None] | None = None
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        self._wake_below = -1.0  # frames: render wakes the loop when queued drops below
        # Set once the output pulls audio through the mixer (a PortAudio stream only does
        # after its clock settled, up to seconds after opening): from then on a line is heard
        # at once. Cleared on every (re)open.
        self._rendering = False
        self._audible = asyncio.Event()
        self._switch_to: Output | None = None  # a reload's new output, opened by the supervisor
        self.reopens = 0
        # Why the output is not open (its last open failed), and since when it is not: None
        # while it plays. Read by the health check and by --until-idle's bound.
        self.open_error: Exception | None = None
        self._down_since: float | None = None
        self.taps: list[Tap] = []  # listeners beyond the output (the browser source)
        # Opens and closes, one at a time in order: a call stuck in a wedged backend holds up
        # only the later ones (each waited for with a deadline), never the loop or the exit.
        self._io: DaemonExecutor | None = None  # made on first use
        self._busy: tuple[int, str] | None = None  # the output call running there
        self._serials = itertools.count()
        self._reported = -1  # the serial of the last call logged as hung

    # ---- public API -------------------------------------------------------------------------

    @property
    def volume(self) -> float:
        return self.mixer.volume

    @volume.setter
    def volume(self, value: float) -> None:
        self.mixer.volume = value  # ramped over the next block

    @property
    def queued_seconds(self) -> float:
        return self.mixer.queued_frames / self.sample_rate

    @property
    def now_playing(self) -> Utterance | None:
        return self.mixer.now_playing

    def left(self, utterance_id: str) -> tuple[float, bool] | None:
        """Seconds of this utterance not yet heard (see ``Mixer.left``)."""
        return self.mixer.left(utterance_id)

    @property
    def underruns(self) -> int:
        return self.mixer.underruns

    @property
    def xruns(self) -> int:
        return self.output.xruns

    @property
    def state(self) -> PlayerState:
        if self._running and (not self._open or self._opening):
            return PlayerState.REOPENING
        if self.mixer.paused:
            return PlayerState.PAUSED
        return PlayerState.PLAYING if self.mixer.busy else PlayerState.IDLE

    def down_for(self) -> float:
        """Seconds since the output last played (0 while it is open)."""
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    async def start(self) -> None:
        """Open the output; on failure keep retrying in the background with backoff.
        A device name or index that matches nothing is a configuration error: raised."""
        if self._running:
            return
        self._loop = self._loop or asyncio.get_running_loop()
        self.output.check()
        self._running = True
        self._down_since = time.monotonic()
        try:
            await self._open_output()
        except Exception as exc:  # no sound server, or the device would not open: retry later
            self._open_failed(exc, "player_open_failed", log.error)
        self._supervisor = asyncio.create_task(self._supervise(), name="player-supervisor")

    def reconfigure(self, cfg: PlayerConfig) -> None:
        """A reload's settings: the volume at once; a new device, block size or latency
        moves playback to a new stream (the supervisor reopens it, the queue is kept; an
        utterance cut there resumes with a fade). Validate ``cfg.device`` first (``check``)."""
        old, self.cfg = self.cfg, cfg
        self.volume = cfg.volume
        moved = (cfg.device, cfg.blocksize, cfg.latency) != (old.device, old.blocksize, old.latency)
        if moved and self._managed:
            output = output_for(cfg, self.sample_rate, self._deliver)
            output.xruns = self.output.xruns
            self._switch_to = output

    def check(self, cfg: PlayerConfig) -> None:
        """Raise PlayerError if ``cfg.device`` names no output device."""
        if self._managed and not is_null_device(cfg.device):
            check_device(cfg.device)

    async def stop(self) -> None:
        self._running = False
        if self._supervisor is not None:
            await cancel_and_wait(self._supervisor)
            self._supervisor = None
        if self._open:
            await self._close_output()
        elif self._io is not None:  # a close or open cut short above may still be stuck
            with contextlib.suppress(OutputHung):
                await self._io_call(lambda: None, CLOSE_TIMEOUT_S, "stop")
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
        if self._io is not None:
            self._io.shutdown(wait=False)  # a call hung in the backend is left behind
            self._io = None

    def enqueue(self, chunk: AudioChunk) -> None:
        self.mixer.enqueue(chunk)
        self._check_waiters()

    def cancel(self, utterance_id: str) -> None:
        """Drop an utterance entirely (fading if it is playing); no on_done."""
        self.mixer.cancel(utterance_id)
        self._check_waiters()

    def drop_pending(self) -> list[Utterance]:
        """Drop every utterance not started yet (shutdown); no on_done. The one playing stays."""
        dropped = self.mixer.drop_pending()
        self._check_waiters()
        return dropped

    def skip(self) -> Utterance | None:
        """Fade out the current utterance and drop its rest; on_done(utt, False)."""
        utt = self.mixer.skip()
        if utt is not None:
            self._deliver(self._on_done, utt, False)
            self._check_waiters()
        return utt

    def pause(self) -> None:
        self.mixer.pause()  # it fades out, then holds the position

    def resume(self) -> None:
        self.mixer.resume()

    async def wait_audible(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until the output plays what is enqueued; whether it does."""
        try:
            await asyncio.wait_for(self._audible.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

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

    # ---- the output thread's side -----------------------------------------------------------

    def _render(self, buf: np.ndarray, now: float) -> None:
        if not self._rendering:
            self._rendering = True
            self._deliver(self._audible.set)
        notices = self.mixer.fill(buf, now)
        for tap in self.taps:
            tap(buf, now, notices)
        for notice in notices:
            if isinstance(notice, Started):
                self._deliver(self._on_started, notice.utterance, notice.at)
            else:
                self._deliver(self._on_done, notice.utterance, True)
        if self._wake_below >= 0 and self.mixer.queued_frames < self._wake_below:
            self._wake_below = -1.0
            self._deliver(self._woken)

    def _deliver(self, fn: Callable[..., None], *args: Any) -> None:
        """Calls ``fn(*args)`` on the loop, from any thread."""
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

    # ---- lookahead waiters (loop side) ------------------------------------------------------

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

    # ---- supervision ------------------------------------------------------------------------

    async def _io_call(self, fn: Callable[[], None], timeout: float, call: str) -> None:
        """``fn()`` on the output thread, waited for at most ``timeout`` s (OutputHung)."""
        if self._io is None:
            self._io = DaemonExecutor("player-io")

        serial = next(self._serials)

        def run() -> None:
            self._busy = (serial, call)
            try:
                fn()
            finally:
                self._busy = None
                if serial == self._reported:  # its hang was logged: so is its end
                    log.info("player_output_answered", call=call)

        future = self._io.submit(run)
        waiter = asyncio.wrap_future(future)
        # Read a late result or error, so an abandoned call logs no "never retrieved".
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
        if not done:
            future.cancel()  # never started (stuck behind a hung call): it never will
            stuck, stuck_call = self._busy or (serial, call)  # maybe an earlier call
            # One error per stuck call, not one per reopen attempt queued behind it.
            report = log.debug if stuck == self._reported else log.error
            self._reported = stuck
            report(
                "player_output_abandoned",
                call=stuck_call,
                waited_s=timeout,
                device=str(self.cfg.device or "default"),
                hint="the sound server does not answer; "
                + ("playback resumes once it does" if self._running else "exit does not wait"),
            )
            raise OutputHung(f"output {call} hung for {timeout} s")
        waiter.result()

    async def _open_output(self) -> None:
        output, render = self.output, self._render
        given_up = threading.Event()

        def open_() -> None:
            if given_up.is_set():
                return
            # A stream left open by an attempt given up on just as it succeeded: close it
            # (a no-op otherwise), so two streams never pull from the mixer.
            output.close()
            output.open(render)
            if given_up.is_set():  # the loop stopped waiting meanwhile: nobody owns it
                output.close()

        self._opening = True
        try:
            self.mixer.resume_with_fade()  # an utterance cut by a lost output fades back in
            self._rendering = False
            self._audible.clear()
            await self._io_call(open_, OPEN_TIMEOUT_S, "open")
        except BaseException:  # failed, hung or cancelled: a late success closes itself
            given_up.set()
            raise
        finally:
            self._opening = False
        self._open = True
        self.open_error = self._down_since = None
        self.mixer.draining = True

    async def _close_output(self) -> None:
        if not self._open:
            return
        self._open = False
        self._down_since = time.monotonic()
        self.mixer.draining = False
        with contextlib.suppress(OutputHung):
            await self._io_call(self.output.close, CLOSE_TIMEOUT_S, "close")

    async def _supervise(self) -> None:
        backoff = Backoff(initial=0.1, maximum=5.0)
        while self._running:
            await asyncio.sleep(0.1)
            switch, self._switch_to = self._switch_to, None
            reason = "reconfigured" if switch is not None else self.output.lost()
            if reason is None:
                continue
            if switch is not None:
                log.info("player_switching", device=self.cfg.device, blocksize=self.cfg.blocksize)
            elif self.open_error is None:  # else it never opened, and that was said
                queued = round(self.queued_seconds, 3)
                log.warning("player_stream_lost", reason=reason, queued_s=queued)
            await self._close_output()
            if switch is not None:
                self.output = switch
            since = self._down_since or time.monotonic()
            while self._running:
                await asyncio.sleep(backoff.next_delay())
                try:
                    await self._open_output()
                except Exception as exc:
                    self._open_failed(exc, "player_reopen_failed", log.warning, backoff.attempt)
                    continue
                self.reopens += 1
                log.info(
                    "player_reopened",
                    queued_s=round(self.queued_seconds, 3),
                    attempts=backoff.attempt,
                    down_s=round(time.monotonic() - since, 1),
                )
                backoff.reset()
                break

    def _open_failed(self, exc: Exception, event: str, level: Any, attempt: int = 0) -> None:
        """Remember why the output is not open; log it when that changed, not every attempt
        (retries go on with backoff, silently, while the reason stays the same)."""
        before, self.open_error = self.open_error, exc
        if before is not None and (type(before), str(before)) == (type(exc), str(exc)):
            return
        if isinstance(exc, NoSoundOutput):  # the one line a first run without sound gets
            meanwhile = "lines wait; the output is retried in the background"
            log.error(
                "no_sound_output", reason=str(exc), ways_out=exc.ways_out, meanwhile=meanwhile
            )
            return
        meanwhile = "retrying with backoff; logged again only if this changes"
        level(event, device=self.cfg.device, error=str(exc), attempt=attempt, meanwhile=meanwhile)
