"""The synth worker: the only owner of the engine (and the GPU).

It runs the engine in one dedicated thread, takes utterances from the scheduler while the
player has less than ``lookahead_s`` of audio queued, and streams chunks to the player as they
are made, so the first sentence plays while the rest is synthesised.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import structlog

from .engines import Engine, EngineBroken, Voice
from .events import AudioChunk, Utterance
from .ledger import Ledger, Terminal


class Sink(Protocol):
    """What the worker needs of the player."""

    def enqueue(self, chunk: AudioChunk) -> None: ...
    def cancel(self, utterance_id: str) -> None: ...
    async def wait_below(self, seconds: float) -> None: ...


class Source(Protocol):
    """What the worker needs of the scheduler."""

    async def get(self) -> Utterance: ...


@dataclass(frozen=True, slots=True)
class SynthStats:
    id: str
    chars: int
    audio_s: float
    synth_s: float
    first_chunk_s: float  # from taking it off the queue to the first chunk made

    @property
    def rtf(self) -> float:
        return self.synth_s / self.audio_s if self.audio_s else float("inf")


_END = object()


class EngineThread(Executor):
    """One thread running the engine's calls in order. A daemon thread: unlike
    ThreadPoolExecutor's, which the interpreter joins at exit, an engine hung inside a call
    (a wedged GPU) cannot keep the process from exiting on SIGTERM."""

    def __init__(self, name: str = "synth") -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._closed:
            raise RuntimeError("the engine thread is shut down")
        future: Future[Any] = Future()
        self._calls.put((future, fn, args, kwargs))
        return future

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the awaiting side, as an executor does
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        self._calls.put(None)
        if wait:
            self._thread.join()


def _next_chunk(chunks: Iterator[np.ndarray]) -> Any:
    return next(chunks, _END)


class SynthWorker:
    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        voices: Mapping[str, Voice],
        source: Source,
        ledger: Ledger,
        lookahead_s: float,
        sink: Sink | None = None,  # the player; set once the engine's sample rate is known
    ) -> None:
        self.engine_factory = engine_factory
        self.voices = dict(voices)
        self.source = source
        self.sink = sink
        self.ledger = ledger
        self.lookahead_s = lookahead_s
        self.engine: Engine | None = None
        self.state = "stopped"  # loading, warming, ready, synthesizing, rebuilding, broken
        self.current: Utterance | None = None
        self.stats: deque[SynthStats] = deque(maxlen=512)
        self.on_stats: Callable[[SynthStats], None] | None = None
        self.log = structlog.get_logger("ishowtts.synth")
        self._thread = EngineThread()
        self._task: asyncio.Task[None] | None = None

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    @property
    def sample_rate(self) -> int:
        assert self.engine is not None, "engine not loaded"
        return self.engine.sample_rate

    async def load(self, progress: Callable[[str], None]) -> float:
        """Build, load and warm the engine; returns the seconds it took."""
        started = time.monotonic()
        self.state = "loading"
        self.engine = await self._in_thread(self.engine_factory)
        await self._in_thread(self.engine.load, self.voices, progress)
        self.state = "warming"
        await self._in_thread(self.engine.warmup, progress)
        self.state = "ready"
        return time.monotonic() - started

    async def set_voices(self, voices: Mapping[str, Voice]) -> None:
        """Reload voices (config reload) between utterances, without reloading the model."""
        assert self.engine is not None
        await self._in_thread(self.engine.set_voices, voices)
        self.voices = dict(voices)

    def start(self) -> None:
        assert self.sink is not None, "no sink to play into"
        self._task = asyncio.create_task(self._run(), name="synth-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def close(self, timeout: float | None = None) -> bool:
        """Close the engine in its thread; False if the thread is still inside an engine call
        after ``timeout`` seconds (hung): it is then abandoned, and exit does not wait for it."""
        state = self.state
        if self.engine is not None:
            try:
                self._thread.submit(self.engine.close).result(timeout)
            except FutureTimeout:  # not the builtin TimeoutError before Python 3.11
                self.log.error("engine_abandoned", state=state, waited_s=timeout)
                self._thread.shutdown(wait=False)
                return False
        self._thread.shutdown(wait=True)
        return True

    async def _run(self) -> None:
        assert self.sink is not None
        while True:
            await self.sink.wait_below(self.lookahead_s)
            utterance = await self.source.get()
            self.current = utterance
            try:
                await self._speak(utterance)
            finally:
                self.current = None

    async def _speak(self, utterance: Utterance) -> None:
        assert self.engine is not None and self.sink is not None
        self.state = "synthesizing"
        started = time.monotonic()
        first_chunk_s = 0.0
        samples = 0
        index = 0
        try:
            chunks = await self._in_thread(self.engine.synthesize, utterance.text, utterance.voice)
            while (chunk := await self._in_thread(_next_chunk, chunks)) is not _END:
                if index == 0:
                    first_chunk_s = time.monotonic() - started
                samples += len(chunk)
                self.sink.enqueue(
                    AudioChunk(utterance, chunk, self.engine.sample_rate, index, last=False)
                )
                index += 1
        except asyncio.CancelledError:
            self.sink.cancel(utterance.id)
            raise
        except Exception as exc:  # one utterance fails; the worker goes on
            self.sink.cancel(utterance.id)
            self.ledger.close(utterance.id, Terminal.FAILED, rule="engine", error=repr(exc))
            if isinstance(exc, EngineBroken):
                await self._rebuild(exc)
            self.state = "ready" if self.state == "synthesizing" else self.state
            return
        empty = np.zeros(0, dtype=np.float32)
        self.sink.enqueue(AudioChunk(utterance, empty, self.engine.sample_rate, index, last=True))
        stats = SynthStats(
            utterance.id,
            len(utterance.text),
            samples / self.engine.sample_rate,
            time.monotonic() - started,
            first_chunk_s,
        )
        self.stats.append(stats)
        if self.on_stats is not None:
            self.on_stats(stats)
        self.log.debug("synthesized", id=utterance.id, audio_s=stats.audio_s, rtf=stats.rtf)
        self.state = "ready"

    async def _rebuild(self, why: Exception) -> None:
        self.log.error("engine_broken", error=repr(why))
        self.state = "rebuilding"
        old, self.engine = self.engine, None
        if old is not None:
            with contextlib.suppress(Exception):
                await self._in_thread(old.close)
        try:
            await self.load(lambda line: self.log.info("engine_rebuild", step=line))
        except Exception as exc:
            self.state = "broken"
            self.log.exception("engine_rebuild_failed", error=repr(exc))
            raise
