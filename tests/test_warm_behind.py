"""A slow engine warms behind the fallback, and its deferred warm-up runs only between lines.

The primary is the tone engine (a pure tone, told apart from the eSpeak NG fallback's speech by
its spectrum) given a slow load and a scripted ``background_step``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
from structlog.testing import capture_logs

from ishowtts.app.health_checks import StallGuard, engine_check
from ishowtts.engines import Voice, build
from ishowtts.engines.tone import ToneEngine, ToneOptions
from ishowtts.queue.ledger import Ledger
from ishowtts.synth.worker import SynthWorker
from tests.test_fallback import NO_RETRY, VOICES, done, heard, is_speech, is_tone, say
from tests.test_synth import QueueSource, RecordingSink, wait_for


class SlowPrimary(ToneEngine):
    """Loads once ``release`` is set; ``steps`` pieces of deferred warm-up, each ``step_s``
    long, recorded with whether a line waited in the queue when the piece started."""

    release = threading.Event()
    steps = 3
    step_s = 0.2
    bad_voice = False

    def __init__(self) -> None:
        super().__init__(ToneOptions(chunk_seconds=0.1))
        self.pieces: list[tuple[float, float]] = []  # (start, end) of each piece
        self.source: QueueSource | None = None
        self.waiting_at_start: list[bool] = []
        self.left = type(self).steps

    def load(self, voices, progress) -> None:  # type: ignore[no-untyped-def]
        assert type(self).release.wait(10)
        if type(self).bad_voice:
            raise ValueError("voice 'default': reference clip too short")
        super().load(voices, progress)

    def background_step(self) -> float | None:
        if self.left == 0:
            return None
        assert self.source is not None
        self.waiting_at_start.append(not self.source.queue.empty())
        start = time.monotonic()
        time.sleep(type(self).step_s)
        self.pieces.append((start, time.monotonic()))
        self.left -= 1
        return 0.0

    def synthesize(self, text: str, voice: str) -> Iterator[np.ndarray]:
        yield from super().synthesize(text, voice)


def slow(**kw: object) -> type[SlowPrimary]:
    return type("Slow", (SlowPrimary,), {"release": threading.Event(), **kw})


async def start(cls: type[SlowPrimary], behind: bool = True, fallback: bool = True):
    ledger, source = Ledger(), QueueSource()
    worker = SynthWorker(
        cls,
        VOICES,
        source,
        ledger,
        100.0,
        fallback_factory=(lambda: build("espeak")) if fallback else None,
        failover=NO_RETRY,
        primary_name="tone",
        behind_fallback=behind,
    )
    errors: list[BaseException] = []
    worker.on_config_error = errors.append
    if not behind or not fallback:
        cls.release.set()
    await worker.load(lambda _: None)
    worker.sink = RecordingSink(24000)
    worker.start()
    return worker, worker.sink, ledger, source, errors


def primary_of(worker: SynthWorker) -> SlowPrimary:
    engine = worker.engine if worker.speaking == "primary" else worker._primary
    assert isinstance(engine, SlowPrimary)
    return engine


async def test_the_fallback_reads_chat_while_the_primary_loads_then_hands_over() -> None:
    cls = slow(steps=0)
    with capture_logs() as logs:
        worker, sink, ledger, source, _ = await start(cls)
        assert worker.speaking == "fallback" and worker.warming
        assert (
            engine_check(worker, StallGuard(worker))()
            == "tone is warming up: espeak speaks meanwhile"
        )
        early = say(ledger, source, "read while the primary loads")
        await wait_for(lambda: done(sink, early))
        assert is_speech(heard(sink, early))
        cls.release.set()  # the primary's load ends: swapped in while the worker is idle
        await wait_for(lambda: worker.speaking == "primary")
        later = say(ledger, source, "read by the primary")
        await wait_for(lambda: done(sink, later))
    assert is_tone(heard(sink, later), "read by the primary")
    assert not worker.warming and worker.primary_error is None and worker.failovers == 0
    assert engine_check(worker, StallGuard(worker))() is None
    events = [e["event"] for e in logs]
    assert "engine_warming" in events and "engine_ready" in events
    assert "engine_fallback" not in events and "engine_recovered" not in events
    await worker.stop()
    worker.close()


async def test_a_bad_voice_found_behind_the_fallback_is_a_config_error() -> None:
    cls = slow(bad_voice=True)
    worker, _, _, _, errors = await start(cls)
    cls.release.set()
    await wait_for(lambda: bool(errors))
    assert isinstance(errors[0], ValueError) and "too short" in str(errors[0])
    assert not worker.warming and worker.speaking == "fallback"
    await worker.stop()
    worker.close()


async def test_deferred_warm_up_runs_only_while_no_line_waits() -> None:
    """Pieces run while the queue is empty; a line that comes during one waits for that piece
    alone, and no piece starts while it waits."""
    cls = slow(steps=6, step_s=0.3)
    worker, sink, ledger, source, _ = await start(cls, behind=False)
    engine = primary_of(worker)
    engine.source = source
    # The line comes in the middle of the second piece: at a piece's end it would race the
    # worker's choice of the next (a line and a piece starting in the same instant).
    await wait_for(lambda: len(engine.waiting_at_start) >= 2)
    await asyncio.sleep(cls.step_s / 2)
    line = say(ledger, source, "a line during the warm-up")
    await wait_for(lambda: done(sink, line))
    assert engine.left > 0  # spoken before the rest of the warm-up, not after it
    await wait_for(lambda: engine.left == 0)
    assert engine.waiting_at_start.count(True) == 0, engine.waiting_at_start
    assert len(engine.pieces) == 6
    calls = len(engine.pieces)
    await asyncio.sleep(0.3)
    assert len(engine.pieces) == calls  # done: no more calls
    await worker.stop()
    worker.close()


async def test_new_voices_resume_the_deferred_warm_up() -> None:
    cls = slow(steps=1, step_s=0.0)
    worker, _, _, source, _ = await start(cls, behind=False)
    engine = primary_of(worker)
    engine.source = source
    await wait_for(lambda: engine.left == 0)
    await wait_for(lambda: worker._warmed is engine)
    engine.left = 2  # a reload's new voice needs more (F5: its buckets)
    await worker.set_voices({**VOICES, "other": Voice("other")})
    await wait_for(lambda: engine.left == 0)  # the idle worker is woken for it
    await worker.stop()
    worker.close()


async def test_the_primary_starts_building_beside_the_fallback() -> None:
    """The primary's build (F5: the long one) does not wait for the fallback's."""
    cls = slow(steps=0)
    loading = threading.Event()

    class Marking(cls):  # type: ignore[valid-type, misc]
        def load(self, voices, progress) -> None:  # type: ignore[no-untyped-def]
            loading.set()
            super().load(voices, progress)

    def fallback():  # type: ignore[no-untyped-def]
        assert loading.wait(5), "the fallback was built before the primary's build began"
        return build("espeak")

    ledger, source = Ledger(), QueueSource()
    worker = SynthWorker(Marking, VOICES, source, ledger, 100.0, fallback_factory=fallback,
                         failover=NO_RETRY, primary_name="tone", behind_fallback=True)  # fmt: skip
    await worker.load(lambda _: None)
    assert worker.speaking == "fallback" and worker.warming
    worker.sink = RecordingSink(24000)
    worker.start()
    cls.release.set()
    await wait_for(lambda: worker.speaking == "primary")
    await worker.stop()
    worker.close()
