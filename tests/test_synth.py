"""The synth worker: streams chunks in order, ends each utterance with a last marker, respects
the lookahead, fails one utterance on an engine error and rebuilds a broken engine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from ishowtts.engines import EngineBroken, EngineError, Voice
from ishowtts.engines.tone import ToneEngine, ToneOptions
from ishowtts.events import AudioChunk, ChatEvent, Kind, User, Utterance
from ishowtts.queue.ledger import Ledger, Terminal
from ishowtts.synth.worker import SynthWorker


def utterance(text: str) -> Utterance:
    event = ChatEvent("test", "room", Kind.DANMAKU, User("1", "u"), text=text)
    return Utterance(event, text, "default", 20, time.monotonic() + 60)


class QueueSource:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Utterance] = asyncio.Queue()

    async def get(self) -> Utterance:
        return await self.queue.get()


class RecordingSink:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.chunks: list[AudioChunk] = []
        self.cancelled: list[str] = []
        self.played_s = 0.0
        self.lookahead_waits: list[float] = []

    def enqueue(self, chunk: AudioChunk) -> None:
        self.chunks.append(chunk)

    def cancel(self, utterance_id: str) -> None:
        self.cancelled.append(utterance_id)

    @property
    def queued_seconds(self) -> float:
        return sum(len(c.samples) for c in self.chunks) / self.sample_rate - self.played_s

    async def wait_below(self, seconds: float) -> None:
        self.lookahead_waits.append(self.queued_seconds)
        while self.queued_seconds >= seconds:  # noqa: ASYNC110 (a test double: no event to wait on)
            await asyncio.sleep(0.01)


class FlakyEngine(ToneEngine):
    """Fails on texts starting with 'fail', breaks on 'break'; counts builds."""

    builds = 0

    def __init__(self) -> None:
        super().__init__(ToneOptions(chunk_seconds=0.1))
        FlakyEngine.builds += 1
        self.thread_ids: set[int] = set()

    def synthesize(self, text: str, voice: str) -> Iterator[np.ndarray]:
        self.thread_ids.add(threading.get_ident())
        if text.startswith("fail"):
            yield np.zeros(10, np.float32)
            raise EngineError("no")
        if text.startswith("break"):
            raise EngineBroken("device lost")
        yield from super().synthesize(text, voice)


async def run_worker(texts: list[str], lookahead_s: float = 100.0):
    ledger = Ledger()
    source = QueueSource()
    worker = SynthWorker(FlakyEngine, {"default": Voice("default")}, source, ledger, lookahead_s)
    await worker.load(lambda _: None)
    sink = RecordingSink(worker.sample_rate)
    worker.sink = sink
    utts = [utterance(t) for t in texts]
    for u in utts:
        ledger.received(u.event)
        source.queue.put_nowait(u)
    worker.start()
    return worker, sink, ledger, utts


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_streams_chunks_in_order_with_a_last_marker() -> None:
    worker, sink, _, utts = await run_worker(["hello world, a longer line", "second"])
    await wait_for(lambda: sum(c.last for c in sink.chunks) == 2)
    await worker.stop()
    first = [c for c in sink.chunks if c.utterance is utts[0]]
    assert [c.index for c in first] == list(range(len(first)))
    assert len(first) > 2  # streamed in pieces, not one block
    assert first[-1].last and len(first[-1].samples) == 0
    assert not any(c.last for c in first[:-1])
    # utterances do not interleave
    owners = [c.utterance.id for c in sink.chunks]
    assert owners == sorted(owners, key=[u.id for u in utts].index)
    assert [s.id for s in worker.stats] == [u.id for u in utts]
    assert all(s.audio_s > 0 and s.rtf > 0 for s in worker.stats)
    # the engine ran off the event loop, in one thread
    engine = worker.engine
    assert isinstance(engine, FlakyEngine)
    assert len(engine.thread_ids) == 1 and threading.get_ident() not in engine.thread_ids
    worker.close()


async def test_engine_error_fails_one_utterance_and_goes_on() -> None:
    worker, sink, ledger, utts = await run_worker(["fail please", "fine"])
    await wait_for(lambda: any(c.last for c in sink.chunks))
    await worker.stop()
    assert sink.cancelled == [utts[0].id]
    assert utts[0].id not in ledger.open
    assert ledger.terminal_counts[("danmaku", Terminal.FAILED.value)] == 1
    assert [c.utterance.id for c in sink.chunks if c.last] == [utts[1].id]
    worker.close()


async def test_broken_engine_is_rebuilt() -> None:
    FlakyEngine.builds = 0
    worker, sink, ledger, utts = await run_worker(["break it", "after"])
    await wait_for(lambda: any(c.last for c in sink.chunks))
    await worker.stop()
    assert FlakyEngine.builds == 2
    assert worker.state == "ready"
    assert ledger.terminal_counts[("danmaku", Terminal.FAILED.value)] == 1
    assert [c.utterance.id for c in sink.chunks if c.last] == [utts[1].id]
    worker.close()


async def test_lookahead_bounds_audio_made_ahead() -> None:
    worker, sink, _, _ = await run_worker(["one " * 10, "two " * 10, "three " * 10], 0.5)
    await asyncio.sleep(0.5)
    # nothing is played, so after the first utterance (>0.5 s) the worker must wait
    assert sum(c.last for c in sink.chunks) == 1
    sink.played_s = 100.0
    await wait_for(lambda: sum(c.last for c in sink.chunks) == 3)
    await worker.stop()
    worker.close()


@pytest.mark.parametrize("speed", [0.5, 2.0])
def test_tone_engine_length_follows_text_and_speed(speed: float) -> None:
    engine = ToneEngine(ToneOptions())
    engine.load({"v": Voice("v", speed=speed)}, lambda _: None)
    short = np.concatenate(list(engine.synthesize("hi", "v")))
    long = np.concatenate(list(engine.synthesize("a much longer sentence here", "v")))
    assert len(long) > len(short)
    assert len(long) == round(len("a much longer sentence here") * 0.06 / speed * 24000)
