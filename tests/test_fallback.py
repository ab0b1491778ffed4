"""The worker always has a voice: the eSpeak NG fallback speaks when the primary engine cannot
load, keeps failing after a rebuild, or loses its device (a real ``torch.AcceleratorError``);
the worker goes back to the primary once it loads again. The primary here is the tone engine,
so what was heard tells the engines apart: a pure tone (primary) or speech (fallback)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from structlog.testing import capture_logs

from ishowtts.config import FailoverConfig, load_config
from ishowtts.engines import EngineBroken, EngineError, Voice, build
from ishowtts.engines.faults import DeviceLost, unrecoverable
from ishowtts.engines.tone import ToneEngine, ToneOptions, tone_frequency
from ishowtts.queue.ledger import Ledger
from ishowtts.synth.worker import SynthWorker
from tests.audio_utils import dominant_frequency
from tests.test_synth import QueueSource, RecordingSink, utterance, wait_for


def retries(first_s: float, max_s: float) -> FailoverConfig:
    """Retry delays below the config's 1 s floor, so a test sees several retries."""
    return FailoverConfig.model_construct(fail_limit=3, retry_first_s=first_s, retry_max_s=max_s)


NO_RETRY = FailoverConfig(retry_first_s=3600, retry_max_s=3600)  # within a test
VOICES = {"default": Voice("default", options={"language": "en"})}


class Primary(ToneEngine):
    """A tone engine whose failures a test scripts: ``load_fails`` loads fail first, then
    ``fail_with`` is raised for every text starting with 'x'."""

    builds = 0
    load_fails = 0
    fail_with: Exception | None = None

    def __init__(self) -> None:
        super().__init__(ToneOptions(chunk_seconds=0.1))
        type(self).builds += 1

    def load(self, voices, progress) -> None:  # type: ignore[no-untyped-def]
        if type(self).load_fails > 0:
            type(self).load_fails -= 1
            raise FileNotFoundError("F5 checkpoint: not in the hub cache and HF_HUB_OFFLINE")
        super().load(voices, progress)

    def synthesize(self, text: str, voice: str) -> Iterator[np.ndarray]:
        if text.startswith("x") and type(self).fail_with is not None:
            raise type(self).fail_with
        yield from super().synthesize(text, voice)


def primary(**kw: object) -> type[Primary]:
    return type("ScriptedPrimary", (Primary,), {"builds": 0, **kw})


async def start(cls: type[Primary], retry: FailoverConfig = NO_RETRY, fallback: bool = True):
    ledger, source = Ledger(), QueueSource()
    worker = SynthWorker(
        cls,
        VOICES,
        source,
        ledger,
        100.0,
        fallback_factory=(lambda: build("espeak")) if fallback else None,
        failover=retry,
        primary_name="tone",
    )
    await worker.load(lambda _: None)
    worker.sink = RecordingSink(24000)
    fatal: list[str] = []
    worker.on_fatal = fatal.append
    worker.start()
    return worker, worker.sink, ledger, source, fatal


def say(ledger: Ledger, source: QueueSource, text: str, kind: str = "danmaku"):
    u = utterance(text)
    if kind != "danmaku":
        from dataclasses import replace

        from ishowtts.events import Kind

        u = replace(u, event=replace(u.event, kind=Kind(kind)))
    ledger.received(u.event)
    source.queue.put_nowait(u)
    return u


def heard(sink: RecordingSink, utt) -> np.ndarray:  # type: ignore[no-untyped-def]
    parts = [c.samples for c in sink.chunks if c.utterance.id == utt.id]
    return np.concatenate([np.zeros(0, np.float32), *parts])


def is_tone(audio: np.ndarray, text: str) -> bool:
    """The primary's audio: one sine at the text's pitch (speech has no single peak)."""
    if len(audio) < 2400:
        return False
    f = dominant_frequency(audio, 24000)
    spectrum = np.abs(np.fft.rfft(audio))
    return abs(f - tone_frequency(text)) < 5 and (spectrum > 0.1 * spectrum.max()).sum() < 20


def is_speech(audio: np.ndarray) -> bool:
    spectrum = np.abs(np.fft.rfft(audio))
    return len(audio) > 2400 and (spectrum > 0.1 * spectrum.max()).sum() > 50


def done(sink: RecordingSink, utt) -> bool:  # type: ignore[no-untyped-def]
    return any(c.last and c.utterance.id == utt.id for c in sink.chunks)


async def test_fallback_speaks_when_the_primary_cannot_load_then_the_primary_returns() -> None:
    cls = primary(load_fails=2)  # at start, and at the first retry
    worker, sink, ledger, source, _ = await start(cls, retries(0.2, 0.4))
    assert worker.speaking == "fallback" and worker.engine is not None
    assert worker.engine.name == "espeak" and "HF_HUB_OFFLINE" in (worker.primary_error or "")
    first = say(ledger, source, "hello while the primary is away")
    await wait_for(lambda: done(sink, first))
    assert is_speech(heard(sink, first))
    # The second retry loads it; the idle worker swaps it in without waiting for a line.
    await wait_for(lambda: worker.speaking == "primary")
    back = say(ledger, source, "the primary is back")
    await wait_for(lambda: done(sink, back))
    assert worker.speaking == "primary" and worker.primary_error is None
    assert is_tone(heard(sink, back), "the primary is back")
    assert cls.builds == 3 and worker.failovers == 1
    await worker.stop()
    worker.close()


async def test_a_config_error_at_start_is_not_failed_over() -> None:
    class BadVoice(Primary):
        def load(self, voices, progress) -> None:  # type: ignore[no-untyped-def]
            raise ValueError("voice 'default': clip too short")

    with pytest.raises(ValueError, match="too short"):
        await start(BadVoice)


async def test_failing_again_after_a_rebuild_fails_over_and_reads_the_message() -> None:
    cls = primary(fail_with=EngineBroken("CUDA out of memory"))
    worker, sink, ledger, source, fatal = await start(cls)
    a = say(ledger, source, "x first break: rebuilt")
    await wait_for(lambda: cls.builds == 2 and worker.state == "ready" and not worker.current)
    assert worker.speaking == "primary"
    assert ledger.terminal_counts[("danmaku", "failed")] == 1 and a.id not in ledger.open
    b = say(ledger, source, "x second break: fall back", "super_chat")
    await wait_for(lambda: done(sink, b))
    # read by the fallback rather than failed: a paid message is still heard
    assert worker.speaking == "fallback" and is_speech(heard(sink, b))
    assert ledger.terminal_counts[("super_chat", "failed")] == 0
    assert not fatal and worker.fatal is None and cls.builds == 2
    await worker.stop()
    worker.close()


async def test_repeated_errors_count_as_broken() -> None:
    cls = primary(fail_with=EngineError("NaN"))
    worker, sink, ledger, source, _ = await start(cls)
    fails = [say(ledger, source, f"x fails {i}") for i in range(6)]
    ok = say(ledger, source, "after the failures")
    await wait_for(lambda: done(sink, ok))
    # 3 failures: rebuilt; 3 more: the fallback reads the last one and what follows
    assert cls.builds == 2 and worker.speaking == "fallback"
    assert ledger.terminal_counts[("danmaku", "failed")] == 5
    assert is_speech(heard(sink, fails[-1])) and is_speech(heard(sink, ok))
    await worker.stop()
    worker.close()


async def test_the_fail_limit_and_retry_delays_are_the_configs(tmp_path: Path) -> None:
    """``failover`` in the config file: one failed line is enough to rebuild (fail_limit 1),
    the next fails over; a failed retry waits retry_first_s, doubled but capped at retry_max_s."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "engine: {type: tone}\nfailover: {fail_limit: 1, retry_first_s: 1, retry_max_s: 1.5}\n"
    )
    failover = load_config(path).failover
    cls = primary(fail_with=EngineError("NaN"))
    worker, sink, ledger, source, _ = await start(cls, failover)
    with capture_logs() as logs:
        first = say(ledger, source, "x fails once")
        await wait_for(lambda: ledger.terminal_counts[("danmaku", "failed")] == 1)
        assert cls.builds == 2 and worker.speaking == "primary"  # rebuilt after one failure
        cls.load_fails = 1  # the first retry fails
        second = say(ledger, source, "x fails again")
        await wait_for(lambda: done(sink, second))
        assert worker.speaking == "fallback" and is_speech(heard(sink, second))
        await wait_for(lambda: any(e["event"] == "engine_retry_failed" for e in logs), 10)
    retry = next(e for e in logs if e["event"] == "engine_retry")
    failed = next(e for e in logs if e["event"] == "engine_retry_failed")
    assert retry["after_s"] == 1.0 and failed["next_s"] == 1.5
    assert not done(sink, first)
    await worker.stop()
    worker.close()


async def test_a_device_fault_fails_over_at_once_and_asks_for_a_restart() -> None:
    fault = torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
    cls = primary(fail_with=fault)
    worker, sink, ledger, source, fatal = await start(cls, retries(0.05, 0.05))
    sc = say(ledger, source, "x super chat hits the fault", "super_chat")
    await wait_for(lambda: done(sink, sc))
    assert is_speech(heard(sink, sc))  # the fallback read it
    assert cls.builds == 1  # no rebuild: the CUDA context is gone for this process
    assert worker.speaking == "fallback" and fatal == [worker.fatal]
    assert "AcceleratorError" in (worker.fatal or "") and "illegal memory" in (worker.fatal or "")
    await asyncio.sleep(0.3)
    assert cls.builds == 1  # and no retry of the primary in this process
    await worker.stop()
    worker.close()


async def test_a_device_fault_without_fallback_keeps_the_message_for_the_restart() -> None:
    cls = primary(fail_with=torch.AcceleratorError("CUDA error: unspecified launch failure"))
    worker, sink, ledger, source, fatal = await start(cls, fallback=False)
    sc = say(ledger, source, "x paid and lost?", "super_chat")
    later = say(ledger, source, "waits in the queue")
    await wait_for(lambda: bool(fatal))
    await asyncio.sleep(0.2)
    assert sc.id in ledger.open  # neither failed nor spoken: the restart saves it
    assert ledger.terminal_counts[("super_chat", "failed")] == 0
    assert worker.state == "broken" and not source.queue.empty()  # no more taken
    assert not done(sink, later)
    await worker.stop()
    worker.close()


def test_which_errors_are_unrecoverable() -> None:
    assert unrecoverable(torch.AcceleratorError("CUDA error: an illegal memory access"))
    assert unrecoverable(RuntimeError("CUDA error: device-side assert triggered"))
    assert unrecoverable(DeviceLost("lost"))
    assert not unrecoverable(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not unrecoverable(RuntimeError("CUDA error: out of memory"))
    assert not unrecoverable(RuntimeError("shape mismatch"))
    assert not unrecoverable(ValueError("CUDA error"))
    # An engine wrapping the device error is still recognised.
    outer = EngineError("synthesis failed")
    outer.__cause__ = torch.AcceleratorError("CUDA error: misaligned address")
    assert unrecoverable(outer)
