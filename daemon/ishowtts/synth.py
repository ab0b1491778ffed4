"""The synth worker: the only owner of the engine (and the GPU).

It runs the engine in one dedicated thread, takes utterances from the scheduler while the
player has less than ``lookahead_s`` of audio queued, and streams chunks to the player as they
are made, so the first sentence plays while the rest is synthesised.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
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
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth")
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

    def close(self) -> None:
        if self.engine is not None:
            self._thread.submit(self.engine.close).result()
        self._thread.shutdown(wait=True)

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
