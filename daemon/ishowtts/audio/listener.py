"""Turn-taking with the streamer: the bot never talks over them.

The listening process (listen_child.py) watches ``listen.device`` with Silero VAD and reports
the streamer's turns. A reader thread here acts on each at once, on the mixer, without a hop
through the event loop: while a turn lasts no line starts and the one playing is ducked or
paused (``Mixer.hold``); when it ends the queue plays on. ``on_hold`` is told too, on the loop
(the daemon holds the airtime gate with it: no new line is taken from the queue meanwhile).
The loop side supervises the process (restarts it with backoff when it exits or goes silent),
releases a hold that outlasts ``listen.max_hold_s``, and keeps what ``/status`` and
``/healthz`` report.

Whatever goes wrong with listening (no such device, unplugged, the process dead or stuck), the
hold is released first: the bot talks without turn-taking rather than not at all, and one log
line and ``/healthz`` say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

import structlog

from ..backoff import Backoff
from ..config.listen import ListenConfig
from ..tasks import cancel_and_wait
from .mixer import Mixer

log = structlog.get_logger("ishowtts.audio.listener")

STALL_S = 5.0  # no line from the process this long (it beats every second): stuck, restarted
MAX_LINE = 4096  # bytes; the process writes short lines, a longer one is skipped
# The keys the listening process runs with: a reload changing one restarts it.
PROCESS_KEYS = ("device", "threshold", "min_speech_ms", "quiet_s")


class Listener:
    def __init__(self, cfg: ListenConfig) -> None:
        self.cfg = cfg
        self.mixer: Mixer | None = None
        # Told on the loop when a turn starts holding the bot (True) and when it stops (False).
        self.on_hold: Callable[[bool], None] | None = None
        self.state = "off"  # off | starting | unavailable | quiet | speaking
        self.error: str | None = None  # why listening does not work, while it does not
        self.device_name: str | None = None
        self.rate = 0
        self.holding = False  # a turn holds the bot now (False once max_hold_s passed)
        self.turn_since: float | None = None  # monotonic start of the turn in progress
        self.turns: deque[tuple[float, float]] = deque(maxlen=64)  # (start, end), monotonic
        self.turn_count = 0
        self.held_s = 0.0
        self.level_db: float | None = None
        self.cpu_percent: float | None = None
        self.restarts = 0  # listening processes started after the first
        self.retries = 0  # reports that the device could not be opened or was lost
        self.malformed = 0
        self._lock = threading.Lock()  # the turn state: written by the reader and the loop
        self._proc: subprocess.Popen[bytes] | None = None
        self._gen = 0  # which process the reader threads' lines belong to
        self._last_line = 0.0
        self._last_cpu: tuple[float, float] | None = None
        self._stderr: deque[str] = deque(maxlen=10)
        self._opened = False  # the process in charge has opened the device
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    # ---- life cycle (loop side) ---------------------------------------------------------------

    async def start(self, mixer: Mixer) -> None:
        self.mixer = mixer
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._apply_ramps()
        if self.cfg.enabled:
            self._task = asyncio.create_task(self._supervise(), name="listener")

    async def stop(self) -> None:
        self._running = False
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self._end_process()
        self._release()
        self.state = "off"

    def reconfigure(self, cfg: ListenConfig) -> None:
        """A reload's ``listen``: ramps and depth at once; another device or detector setting
        restarts the listening process (the supervisor sees it); off stops it, on starts it."""
        self.cfg = cfg
        self._apply_ramps()
        with self._lock:
            if self.holding and self.mixer is not None:
                self.mixer.hold(True, cfg.duck_gain)
        if self._running and cfg.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._supervise(), name="listener")

    # ---- what it reports ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        if not self.cfg.enabled:
            return {"state": "off"}
        since = self.turn_since
        return {
            "state": self.state,
            "holding": self.holding,
            "device": self.cfg.device,
            "name": self.device_name,
            "mode": self.cfg.mode,
            "speaking_for_s": round(time.monotonic() - since, 2) if since else None,
            "turns": self.turn_count,
            "held_s": round(self.held_s, 1),
            "level_db": self.level_db,
            "vad_cpu_percent": self.cpu_percent,
            "restarts": self.restarts,
            "retries": self.retries,
            "error": self.error,
        }

    def problem(self) -> str | None:
        """Why listening is configured but not working (a health check), or None."""
        if not self.cfg.enabled or self.state in ("off", "starting", "quiet", "speaking"):
            return None
        return (
            f"listen.device {self.cfg.device!r}: {self.error or self.state}; the bot talks "
            "without waiting for the streamer"
        )

    # ---- the process --------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {k: getattr(self.cfg, k) for k in PROCESS_KEYS}

    async def _supervise(self) -> None:
        """Run the listening process for as long as listening is on, and again when it exits,
        stalls or a reload changes its settings."""
        backoff = Backoff(initial=0.5, maximum=30.0)
        self.state = "starting"
        while self._running and self.cfg.enabled:
            options = self._options()
            proc = await self._spawn(options)
            while proc.poll() is None and self._options() == options and self.cfg.enabled:
                await asyncio.sleep(0.1)
                self._expire_hold()
                if time.monotonic() - self._last_line > STALL_S:
                    self._unavailable("stalled", f"no word from it in {STALL_S:g} s: restarted")
                    break
            await self._end_process()
            if self._options() != options or not self.cfg.enabled:
                backoff.reset()
                self.state = "starting"
                continue  # a reload: at once, with the new settings
            if proc.returncode not in (0, None, -15) and self.state != "unavailable":
                tail = " | ".join(self._stderr)[-300:]
                self._unavailable(
                    "exited", f"the listening process exited ({proc.returncode}): {tail}"
                )
            self.restarts += 1
            if self._opened:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())
        self.state, self.error = "off", None

    async def _spawn(self, options: dict[str, Any]) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "ishowtts.audio.listen_child", json.dumps(options)]
        self._stderr.clear()
        self._opened = False
        self._last_line = time.monotonic()
        proc = await asyncio.to_thread(
            subprocess.Popen,
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._gen += 1
        self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        for target, stream in ((self._read, proc.stdout), (self._read_stderr, proc.stderr)):
            threading.Thread(
                target=target, args=(self._gen, stream), daemon=True, name="listen-read"
            ).start()
        return proc

    async def _end_process(self) -> None:
        proc, self._proc = self._proc, None
        self._gen += 1  # lines still in flight from it are ignored
        self._release()
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    # ---- the reader threads -------------------------------------------------------------------

    def _read(self, gen: int, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            while line := stream.readline(MAX_LINE):
                if gen != self._gen:
                    return
                self._last_line = time.monotonic()
                try:
                    msg = json.loads(line)
                    kind = msg["e"]
                except (ValueError, KeyError, TypeError):
                    self.malformed += 1
                    continue
                if kind == "speech":
                    try:
                        self._turn(bool(msg.get("on")))
                    except Exception as exc:  # a bug here must not end the reading
                        self._call(log.error, "listen_turn_failed", error=repr(exc))
                else:
                    self._call(self._on_message, gen, kind, msg)

    def _read_stderr(self, gen: int, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            while line := stream.readline(MAX_LINE):
                text = line.decode("utf-8", "replace").strip()
                if text and not text.startswith("ALSA lib"):  # PortAudio's probe chatter
                    self._stderr.append(text[:300])

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """``fn(*args, **kwargs)`` on the loop, from a reader thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(functools.partial(fn, *args, **kwargs))

    # ---- turns (reader thread, or the loop releasing) -------------------------------------------

    def _turn(self, on: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if on and self.turn_since is None:
                self.turn_since = now
                self.turn_count += 1
                self.holding = True
                if self.mixer is not None:
                    self.mixer.hold(True, self.cfg.duck_gain)
                self._call(self._tell, True)
                self.state = "speaking"
            elif not on and self.turn_since is not None:
                self._end_turn(now)
                self.state = "quiet"
        self._call(log.debug, "listen_turn", speaking=on)

    def _end_turn(self, now: float) -> None:
        """Lock held."""
        since, self.turn_since = self.turn_since, None
        if since is not None:
            self.turns.append((since, now))
        if self.holding:
            self.held_s += now - (since or now)
            self.holding = False
            if self.mixer is not None:
                self.mixer.hold(False)
            self._call(self._tell, False)

    def _release(self) -> None:
        """Listening stopped working or was stopped: never leave the bot held."""
        with self._lock:
            self._end_turn(time.monotonic())

    def _expire_hold(self) -> None:
        limit = self.cfg.max_hold_s
        with self._lock:
            since = self.turn_since
            if not (self.holding and limit and since and time.monotonic() - since > limit):
                return
            self.holding = False
            self.held_s += limit
            if self.mixer is not None:
                self.mixer.hold(False)
            self._call(self._tell, False)
        log.warning(
            "listen_hold_expired", held_s=limit, hint="lines play again until the next pause"
        )

    # ---- messages (loop side) -------------------------------------------------------------------

    def _on_message(self, gen: int, kind: str, msg: dict[str, Any]) -> None:
        if gen != self._gen:
            return
        if kind == "open":
            self.device_name, self.rate = str(msg.get("name"))[:200], int(msg.get("rate") or 0)
            self._opened = True
            was = self.state
            self.state, self.error = "quiet", None
            log.info(
                "listening" if was == "starting" else "listen_recovered",
                device=self.cfg.device,
                name=self.device_name,
                rate=self.rate,
                mode=self.cfg.mode,
            )
        elif kind == "beat":
            level, cpu_s, t = msg.get("level_db"), msg.get("cpu_s"), msg.get("t")
            self.level_db = float(level) if isinstance(level, (int, float)) else None
            if isinstance(cpu_s, (int, float)) and isinstance(t, (int, float)):
                if self._last_cpu is not None and t > self._last_cpu[1]:
                    used = (cpu_s - self._last_cpu[0]) / (t - self._last_cpu[1])
                    self.cpu_percent = round(100 * used, 2)
                self._last_cpu = (float(cpu_s), float(t))
        elif kind in ("unavailable", "lost", "fatal"):
            self.retries += 1
            self._unavailable(kind, str(msg.get("error", "?"))[:500])

    def _unavailable(self, why: str, error: str) -> None:
        """Listening does not work: one error line when it stops working (not one per retry)."""
        self._release()
        first = self.state != "unavailable"
        self.state, self.error = "unavailable", error
        if first:
            log.error(
                "listen_unavailable",
                device=self.cfg.device,
                why=why,
                error=error,
                hint="the bot keeps talking without waiting for the streamer; listening "
                "resumes when the device is back",
            )

    def _tell(self, on: bool) -> None:
        if self.on_hold is not None:
            self.on_hold(on)

    def _apply_ramps(self) -> None:
        if self.mixer is not None:
            self.mixer.duck.ramps(self.cfg.duck_ms, self.cfg.restore_ms)
