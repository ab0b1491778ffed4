"""Start-up's parts: the engine's load reported step by step (and cancellable between steps),
the output waited for until it plays, the whole start given up when a stop comes, and the
``ready`` line. The daemon's ``start`` runs them in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from ..audio.player import Player
from ..config import Config
from ..connectors import Connector
from ..synth.worker import SynthWorker
from ..tasks import cancel_and_wait

log = structlog.get_logger("ishowtts")

AUDIBLE_TIMEOUT_S = 5.0  # for the output to play (its settling gives up at 3 s)


class StartupCancelled(Exception):
    """A stop was asked for while the engine was loading or warming up."""


def steps(progress: Callable[[str], None] | None, stop: asyncio.Event) -> Callable[[str], None]:
    """What reports each start-up step: ``progress`` (else a log line), unless a stop was
    asked for: engines report between steps of their load and warm-up (from the synth
    thread), so a stop ends the start-up there, not minutes later."""
    report = progress or (lambda line: log.info("startup", step=line))

    def step(line: str) -> None:
        if stop.is_set():
            raise StartupCancelled(line)
        report(line)

    return step


async def until_audible(player: Player) -> None:
    """Start ``player`` and wait until its fresh stream plays what it is given (PulseAudio: up
    to ~1.6 s after opening), so that ready means a line is heard at once. Bounded: a stream
    that cannot open is reported by /healthz, and the daemon starts anyway (the player keeps
    retrying)."""
    await player.start()
    if player.open_error is not None:  # said by the player, which retries in the background
        return
    if not await player.wait_audible(AUDIBLE_TIMEOUT_S):
        log.warning("output_not_playing_yet", waited_s=AUDIBLE_TIMEOUT_S)


async def unless_stopped(
    start: Coroutine[Any, Any, None],
    stop: asyncio.Event,
    grace_s: float,
    doing: Callable[[], object],
) -> None:
    """Run ``start``, but a stop asked for meanwhile ends it: at the engine's next load or
    warm-up step, or, when a step hangs (a wedged GPU), after ``grace_s`` (``doing`` says
    what hung)."""
    started = asyncio.ensure_future(start)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((started, stopped), return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            await asyncio.wait((started,), timeout=grace_s)
        if not started.done():
            await cancel_and_wait(started)
            raise StartupCancelled(f"hung while {doing()}")
        started.result()
    finally:
        stopped.cancel()


def log_ready(
    config: Config,
    worker: SynthWorker,
    connectors: list[Connector],
    started_at: float,
    engine_load_s: float,
) -> None:
    engine = worker.engine
    log.info(
        "ready",
        engine=config.engine.type,
        speaking=worker.speaking,
        speaking_engine=engine.name if engine is not None else None,
        # Keys named below come from the daemon (the F5 engine's describe() has "voices").
        **{
            k: v
            for k, v in (engine.describe() if engine else {}).items()
            if k not in ("engine", "voices", "connectors", "output")
        },
        voices=sorted(worker.voices),
        connectors=[f"{c.name}({c.platform})" for c in connectors],
        output=str(config.player.device or "default"),
        startup_s=round(time.monotonic() - started_at, 2),
        engine_load_s=round(engine_load_s, 2),
    )
