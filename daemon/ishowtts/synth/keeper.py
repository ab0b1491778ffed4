"""The engine keeper: builds, loads and warms the engine the synth worker speaks with, and
keeps a voice speaking.

With a fallback engine (eSpeak NG) there is always a voice: the fallback speaks when the primary
engine cannot load at start, when it keeps failing after a rebuild, or when the device is lost
for good (then ``on_fatal`` asks the daemon for a restart). While on the fallback the primary is
retried in the background with backoff, and swapped back in once it loads. An engine that takes
a while to start (F5 on a GPU) is built behind the fallback the same way, so chat is read from
the first seconds of a start.

The keeper also runs the engine's deferred warm-up (``background_step``: F5 captures its CUDA
graphs there, one bucket a call), which the worker asks for only while no line waits. Every
engine call goes through one dedicated thread, the only one that touches the engine (and GPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from enum import Enum
from typing import Any

import structlog

from ..config import FailoverConfig
from ..engines import Engine, Voice
from ..tasks import cancel_and_wait
from ..threads import DaemonExecutor


class Closing(Exception):
    """The worker closed while an engine was built in the background."""


DEFAULT_FAILOVER = FailoverConfig()


class WorkerState(str, Enum):
    STOPPED = "stopped"
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"
    SYNTHESIZING = "synthesizing"
    REBUILDING = "rebuilding"  # the engine failed as a whole: a new one is being built
    BROKEN = "broken"  # its rebuild failed too

    def __str__(self) -> str:
        return self.value


class EngineKeeper:
    """The primary engine and its fallback: load, failover, recovery, rebuilds, voices, the
    deferred warm-up and closing. The synth worker (its subclass) speaks with ``engine``."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        voices: Mapping[str, Voice],
        *,
        fallback_factory: Callable[[], Engine] | None = None,
        failover: FailoverConfig = DEFAULT_FAILOVER,  # when to fail over, when to retry
        passthrough: tuple[type[BaseException], ...] = (),  # start-up errors never failed over
        primary_name: str = "primary",
        fallback_name: str = "fallback",
        behind_fallback: bool = False,  # start with the fallback, build the primary meanwhile
    ) -> None:
        self.engine_factory = engine_factory
        self.primary_name = primary_name
        self._fallback_label = fallback_name
        self.fallback_factory = fallback_factory
        self.failover = failover  # a reload replaces it; read afresh at each use
        self.passthrough: tuple[type[BaseException], ...] = (
            ValueError,
            *passthrough,
        )  # a bad voice or checkpoint: config errors
        self.voices = dict(voices)
        self.engine: Engine | None = None  # the one speaking: the primary or the fallback
        self._no_foreign = False  # the fallback could not load for a foreign line: not again
        self.state = WorkerState.STOPPED
        self.speaking = "none"  # primary | fallback | none
        self.primary_error: str | None = None  # why the fallback speaks
        self.fatal: str | None = None  # the device is lost: this process must restart
        self.failovers = 0
        self.on_fatal: Callable[[str], None] | None = None
        # A config error found while the primary was built behind the fallback (a bad voice):
        # what the start would have stopped with.
        self.on_config_error: Callable[[BaseException], None] | None = None
        self.behind_fallback = behind_fallback and fallback_factory is not None
        self.warming = False  # the fallback speaks while the primary is built (start-up)
        self._warmed: Engine | None = None  # the engine whose deferred warm-up is done
        self._closing = False
        # Something for the idle worker: a primary to swap in, warm-up for new voices.
        self._wake = asyncio.Event()
        self.on_switch: Callable[[str], None] | None = None  # told "primary" / "fallback"
        self._fallback: Engine | None = None
        self._primary: Engine | None = None  # a recovered primary, swapped in between utterances
        self._streak = 0  # consecutive failed utterances
        self._rebuilt = False  # a rebuild happened during this streak
        self._retry_now = asyncio.Event()
        self._recovery: asyncio.Task[None] | None = None
        self._probe = DaemonExecutor("synth-probe")  # never delays exit
        self.log = structlog.get_logger("ishowtts.synth.worker")
        self._thread = DaemonExecutor("synth")  # an engine hung in a call never delays exit

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    @property
    def sample_rate(self) -> int:
        assert self.engine is not None, "engine not loaded"
        return self.engine.sample_rate

    @property
    def fallback_name(self) -> str:
        return str(getattr(self._fallback, "name", self._fallback_label))

    def _build(self, factory: Callable[[], Engine], progress: Callable[[str], None]) -> Engine:
        """Build, load and warm an engine (in whichever thread calls it)."""
        engine = factory()
        try:
            engine.load(self.voices, progress)
            self.state = WorkerState.WARMING if self.state == WorkerState.LOADING else self.state
            engine.warmup(progress)
            if self._closing:  # built in the background while the worker closed: unused
                raise Closing(self.primary_name)
        except BaseException:
            with contextlib.suppress(Exception):
                engine.close()
            raise
        return engine

    async def load(self, progress: Callable[[str], None]) -> float:
        """Build, load and warm the engine, or the fallback if the engine cannot load; returns
        the seconds it took."""
        started = time.monotonic()
        self.state = WorkerState.LOADING
        if self.behind_fallback:
            await self._start_behind_fallback(progress)
            self.state = WorkerState.READY
            return time.monotonic() - started
        try:
            self.engine = await self._in_thread(self._build, self.engine_factory, progress)
            self.speaking = "primary"
        except self.passthrough:
            raise
        except Exception as exc:
            if self.fallback_factory is None:
                raise
            await self._failover(exc, progress, at_start=True)
        self.state = WorkerState.READY
        return time.monotonic() - started

    async def _start_behind_fallback(self, progress: Callable[[str], None]) -> None:
        """Speak with the fallback at once; build the primary in the background and swap it
        in between lines once it is ready."""
        assert self.fallback_factory is not None
        # The primary's build starts first, beside the fallback's: it is the long one (F5 on
        # a GPU), and every second before it starts is a second later for its first line.
        self.speaking, self.warming = "fallback", True
        self._recovery = asyncio.create_task(self._recover(first_s=0.0), name="synth-warming")
        try:
            self._fallback = await self._in_thread(self._build, self.fallback_factory, progress)
        except BaseException:
            self.speaking, self.warming = "none", False
            await self._stop_recovery()
            raise
        self.engine = self._fallback
        self.log.info(
            "engine_warming",
            primary=self.primary_name,
            fallback=self.fallback_name,
            hint=f"{self.fallback_name} reads chat until {self.primary_name} is ready",
        )
        if self.on_switch is not None:
            self.on_switch("fallback")

    async def _failover(
        self, why: BaseException, progress: Callable[[str], None], at_start: bool = False
    ) -> None:
        """Speak with the fallback from now on (loading it first if need be)."""
        assert self.fallback_factory is not None
        self.primary_error = describe(why)
        self.failovers += 1
        # One loud line: a streamer hears a different voice and must find out why.
        self.log.warning(
            "engine_fallback",
            primary=self.primary_name,
            fallback=self.fallback_name,
            at="start" if at_start else "stream",
            reason=self.primary_error,
            fatal=self.fatal is not None,
            hint="reading chat with the fallback voice; the primary is retried in the background"
            if self.fatal is None
            else "the device is lost: the daemon restarts to get it back",
        )
        old, self.engine = self.engine, None
        if old is not None and old is not self._fallback:
            with contextlib.suppress(Exception):
                await self._in_thread(old.close)
        if self._fallback is None:
            self._fallback = await self._in_thread(self._build, self.fallback_factory, progress)
        self.engine = self._fallback
        self.speaking = "fallback"
        self._streak, self._rebuilt = 0, False
        if self.on_switch is not None:
            self.on_switch("fallback")
        if self.fatal is None and self._recovery is None:
            self._recovery = asyncio.create_task(self._recover(), name="synth-recovery")

    async def _recover(self, first_s: float | None = None) -> None:
        """While the fallback speaks: try the primary again, with backoff, until it loads
        (``first_s``: the first try after this long instead of the config's first delay)."""
        delay = self.failover.retry_first_s
        wait = delay if first_s is None else first_s
        while self.speaking == "fallback" and self.fatal is None:
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._retry_now.wait(), wait)
            self._retry_now.clear()
            if self.fatal is not None:
                break
            if not self.warming:
                self.log.info("engine_retry", primary=self.primary_name, after_s=wait)
            loop = asyncio.get_running_loop()
            try:
                engine = await loop.run_in_executor(
                    self._probe,
                    self._build,
                    self.engine_factory,
                    self._probe_step,
                )
            except self.passthrough as exc:
                if self.warming and self.on_config_error is not None:
                    self.warming = False
                    self.primary_error = describe(exc)
                    self.on_config_error(exc)  # as at a start in front: the config is wrong
                    break
                wait = delay = min(delay * 2, self.failover.retry_max_s)
                self.log.warning("engine_retry_failed", error=describe(exc), next_s=delay)
                continue
            except Exception as exc:
                if self.warming:  # the primary cannot load: from now on, a failover
                    self.warming = False
                    self.primary_error = describe(exc)
                    self.failovers += 1
                    self.log.warning(
                        "engine_fallback",
                        primary=self.primary_name,
                        fallback=self.fallback_name,
                        at="start",
                        reason=self.primary_error,
                        fatal=False,
                        hint="reading chat with the fallback voice; the primary "
                        "is retried in the background",
                    )
                    wait = delay
                    continue
                wait = delay = min(delay * 2, self.failover.retry_max_s)
                self.log.warning("engine_retry_failed", error=describe(exc), next_s=delay)
                continue
            self._primary = engine  # swapped in between lines
            self._wake.set()
            break
        self._recovery = None

    def _probe_step(self, line: str) -> None:
        """Progress of a primary built in the background; it stops here once the worker
        closes."""
        if self._closing:
            raise Closing(line)
        if self.warming:
            self.log.info("engine_warming_step", step=line)
        else:
            self.log.debug("engine_retry_step", step=line)

    def retry_primary(self) -> None:
        """Try the primary now (a config reload) instead of waiting for the backoff."""
        if self.speaking == "fallback" and self.fatal is None:
            if self._recovery is None:
                self._recovery = asyncio.create_task(self._recover(), name="synth-recovery")
            self._retry_now.set()

    def _swap_in_primary(self) -> None:
        engine, self._primary = self._primary, None
        if engine is None:
            return
        self.engine, self.speaking = engine, "primary"
        self.primary_error = None
        self._streak, self._rebuilt = 0, False
        if self.warming:
            self.warming = False
            self.log.info("engine_ready", primary=self.primary_name, speaking="primary")
        else:
            self.log.warning("engine_recovered", primary=self.primary_name, speaking="primary")
        if self.on_switch is not None:
            self.on_switch("primary")

    async def set_voices(self, voices: Mapping[str, Voice]) -> None:
        """Reload voices (config reload) between utterances, without reloading the model."""
        assert self.engine is not None
        await self._in_thread(self.engine.set_voices, voices)
        for other in (self._fallback, self._primary):  # the one not speaking, if loaded
            if other is not None and other is not self.engine:
                await self._in_thread(other.set_voices, voices)
        self.voices = dict(voices)
        self._warmed = None  # new voices may need more warm-up (F5: other buckets)
        self._wake.set()

    async def _background_step(self) -> float | None:
        """One piece of the speaking engine's deferred warm-up; None when it has none left."""
        engine = self.engine
        step = getattr(engine, "background_step", None)
        if step is None or engine is self._warmed:
            return None
        try:
            delay: float | None = await self._in_thread(step)
        except Exception as exc:  # the engine speaks as it is: only slower
            self.log.warning("engine_warmup_failed", error=describe(exc))
            delay = None
        if delay is None:
            self._warmed = engine
        return delay

    async def _foreign_engine(self) -> Engine | None:
        """The fallback engine, for a line in a language no voice speaks: built on the first
        such line (None when there is none, or it cannot load: the line is read as usual)."""
        if self._fallback is None and self.fallback_factory is not None and not self._no_foreign:
            try:
                self._fallback = await self._in_thread(
                    self._build, self.fallback_factory, lambda line: None
                )
            except Exception as exc:
                self._no_foreign = True
                self.log.warning("foreign_engine_unavailable", error=describe(exc))
        return self._fallback

    def _report_fatal(self) -> None:
        if self.fatal is not None and self.on_fatal is not None:
            self.on_fatal(self.fatal)

    async def _rebuild(self, why: Exception) -> bool:
        """Rebuild the primary engine; False (logged) if that fails."""
        self.log.error("engine_broken", error=repr(why))
        self.state = WorkerState.REBUILDING
        old, self.engine = self.engine, None
        if old is not None:
            with contextlib.suppress(Exception):
                await self._in_thread(old.close)
        try:
            self.engine = await self._in_thread(
                self._build,
                self.engine_factory,
                lambda line: self.log.info("engine_rebuild", step=line),
            )
        except Exception as exc:
            self.log.error("engine_rebuild_failed", error=describe(exc))
            self.primary_error = describe(exc)
            return False
        self.state = WorkerState.READY
        return True

    async def _stop_recovery(self) -> None:
        if self._recovery is not None:
            await cancel_and_wait(self._recovery)
            self._recovery = None

    def close(self, timeout: float | None = None) -> bool:
        """Close the engines in their thread; False if the thread is still inside an engine call
        after ``timeout`` seconds (hung): it is then abandoned, and exit does not wait for it."""
        state = self.state
        # A probe still loading the primary stops at its next step; it is waited for a bounded
        # while only (it may hang on the network), as a thread still inside torch at exit can
        # abort the process.
        self._closing = True
        probe_free = self._probe.submit(lambda: None)
        self._probe.shutdown(wait=False)
        with contextlib.suppress(FutureTimeout):
            probe_free.result(timeout)
        engines = {id(e): e for e in (self.engine, self._fallback, self._primary) if e}
        # With no engine built yet (a start-up step hung inside the factory or load), a no-op
        # still finds out whether the thread is free, so a hung thread is never joined.
        calls: list[Callable[[], Any]] = [e.close for e in engines.values()] or [lambda: None]
        for call in calls:
            try:
                self._thread.submit(call).result(timeout)
            except FutureTimeout:  # not the builtin TimeoutError before Python 3.11
                self.log.error("engine_abandoned", state=state, waited_s=timeout)
                self._thread.shutdown(wait=False)
                return False
            except Exception as exc:  # a failing close must not stop the others
                self.log.warning("engine_close_failed", error=repr(exc)[:300])
        self._thread.shutdown(wait=True)
        return True


def describe(exc: BaseException) -> str:
    """One line for logs and /status."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
