"""The synth worker: speaks utterances with the engine its keeper holds (and the GPU).

It takes utterances from the scheduler while the player has less than ``lookahead_s`` of audio
queued, and streams chunks to the player as they are made, so the first sentence plays while the
rest is synthesised. A failed line ends in its ledger line, or makes the keeper rebuild the
engine or fail over to the fallback (which then reads it); see ``keeper.py``.

While no line waits, the worker gives the engine its deferred warm-up (``background_step``: F5
captures its CUDA graphs there, one bucket a call), so a line is never held up by it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..config import FailoverConfig
from ..engines import LANGUAGE_VOICE, Engine, EngineBroken, Voice, synthesize
from ..engines.faults import unrecoverable
from ..events import AudioChunk, Utterance
from ..queue.ledger import Ledger, Terminal
from ..tasks import cancel_and_wait
from .keeper import DEFAULT_FAILOVER, EngineKeeper, WorkerState, describe


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


class SynthWorker(EngineKeeper):
    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        voices: Mapping[str, Voice],
        source: Source,
        ledger: Ledger,
        lookahead_s: float,
        sink: Sink | None = None,  # the player; set once the engine's sample rate is known
        *,
        fallback_factory: Callable[[], Engine] | None = None,
        failover: FailoverConfig = DEFAULT_FAILOVER,  # when to fail over, when to retry
        passthrough: tuple[type[BaseException], ...] = (),  # start-up errors never failed over
        primary_name: str = "primary",
        fallback_name: str = "fallback",
        behind_fallback: bool = False,  # start with the fallback, build the primary meanwhile
    ) -> None:
        super().__init__(
            engine_factory,
            voices,
            fallback_factory=fallback_factory,
            failover=failover,
            passthrough=passthrough,
            primary_name=primary_name,
            fallback_name=fallback_name,
            behind_fallback=behind_fallback,
        )
        self.source = source
        self.sink = sink
        self.ledger = ledger
        self.lookahead_s = lookahead_s
        self._halt = asyncio.Event()  # never set: the worker waits on it once it has no voice
        self.current: Utterance | None = None
        self.stats: deque[SynthStats] = deque(maxlen=512)
        self.on_stats: Callable[[SynthStats], None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        assert self.sink is not None, "no sink to play into"
        self._task = asyncio.create_task(self._run(), name="synth-worker")

    async def stop(self) -> None:
        await self._stop_recovery()
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        assert self.sink is not None
        while True:
            if self.fatal is not None and self.speaking != "fallback":
                await self._halt.wait()  # the device is lost and there is no fallback: the
                # daemon is restarting; what is queued stays queued (paid messages are saved)
            await self.sink.wait_below(self.lookahead_s)
            utterance = await self._next()
            if self._primary is not None:
                self._swap_in_primary()
            self.current = utterance
            try:
                await self._speak(utterance)
            finally:
                self.current = None

    async def _next(self) -> Utterance:
        """The next utterance. While none waits: a primary that became ready is swapped in,
        and the engine's deferred warm-up runs, one piece at a time (a piece never starts
        while a line waits; a line that comes during one waits for that piece alone)."""
        get = asyncio.ensure_future(self.source.get())
        try:
            while not get.done():
                self._wake.clear()
                if self._primary is not None:
                    self._swap_in_primary()
                delay = await self._background_step()
                if not get.done():
                    wake = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait(
                            (get, wake), timeout=delay, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        wake.cancel()
            return get.result()
        finally:
            get.cancel()  # when the worker is stopped meanwhile (a taken line stays open)

    async def _speak(self, utterance: Utterance) -> None:
        assert self.engine is not None and self.sink is not None
        self.state = WorkerState.SYNTHESIZING
        engine, voice = self.engine, utterance.voice
        if utterance.by_fallback and utterance.language:
            foreign = await self._foreign_engine()
            if foreign is not None:
                engine, voice = foreign, LANGUAGE_VOICE + utterance.language
        started = time.monotonic()
        first_chunk_s = 0.0
        samples = 0
        index = 0
        try:
            chunks = await self._in_thread(
                synthesize, engine, utterance.text, voice, utterance.speed
            )
            while (chunk := await self._in_thread(_next_chunk, chunks)) is not _END:
                if index == 0:
                    first_chunk_s = time.monotonic() - started
                samples += len(chunk)
                rate = engine.sample_rate
                self.sink.enqueue(AudioChunk(utterance, chunk, rate, index, last=False))
                index += 1
        except asyncio.CancelledError:
            self.sink.cancel(utterance.id)
            raise
        except Exception as exc:  # one utterance fails; the worker goes on
            self.sink.cancel(utterance.id)
            if engine is not self.engine:  # the fallback on a foreign line: not the primary's
                self.ledger.close(utterance.id, Terminal.FAILED, rule="engine", error=repr(exc))
                self.state = WorkerState.READY
                return
            await self._failed(utterance, exc)
            self.state = WorkerState.READY if self.state == WorkerState.SYNTHESIZING else self.state
            return
        self._streak, self._rebuilt = 0, False
        empty = np.zeros(0, dtype=np.float32)
        self.sink.enqueue(AudioChunk(utterance, empty, engine.sample_rate, index, last=True))
        stats = SynthStats(
            utterance.id,
            len(utterance.text),
            samples / engine.sample_rate,
            time.monotonic() - started,
            first_chunk_s,
        )
        self.stats.append(stats)
        if self.on_stats is not None:
            self.on_stats(stats)
        self.log.debug("synthesized", id=utterance.id, audio_s=stats.audio_s, rtf=stats.rtf)
        self.state = WorkerState.READY

    async def _failed(self, utterance: Utterance, exc: Exception) -> None:
        """An utterance failed: fail it, or rebuild the primary, or fail over and read it with
        the fallback, or (device lost, no fallback) leave it open for the restart to save."""

        def close() -> None:
            self.ledger.close(utterance.id, Terminal.FAILED, rule="engine", error=repr(exc)[:500])

        if self.speaking != "primary":  # the fallback failed on it: nothing left to try
            close()
            return
        self._streak += 1
        if unrecoverable(exc):
            self.fatal = f"unrecoverable device error: {describe(exc)}"
            self.log.error("engine_device_lost", id=utterance.id, error=self.fatal)
        elif not isinstance(exc, EngineBroken) and self._streak < self.failover.fail_limit:
            close()
            return
        elif not self._rebuilt:
            self._rebuilt = True  # until an utterance succeeds: failing again means fail over
            if await self._rebuild(exc):
                close()
                self._streak = 0
                return
        if self.fallback_factory is None:
            if self.fatal is None:
                self.state = WorkerState.BROKEN
                raise exc
            # No voice left in this process: the utterance stays open, the restart saves it.
            self.state = WorkerState.BROKEN
            self._report_fatal()
            return
        await self._failover(exc, lambda line: self.log.info("engine_fallback_load", step=line))
        if utterance.id in self.ledger.open:
            await self._speak(utterance)  # read with the fallback, so a paid message is heard
        self._report_fatal()
