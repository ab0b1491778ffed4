"""Shutdown's drain: intake stopped, the utterance being heard let finish (bounded by the
grace), everything else accounted for. What is queued or made ahead but not started is not
played; unheard paid lines are saved for the next start; every open ledger entry closes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog

from ..audio.player import Player, PlayerState
from ..queue.ledger import Ledger, Terminal
from ..queue.scheduler import Scheduler
from ..synth.worker import SynthWorker
from . import pending
from .connector_set import ConnectorSet

log = structlog.get_logger("ishowtts")

ENGINE_CLOSE_TIMEOUT_S = 5.0  # for the engine's thread to finish its call and close


async def drain(
    *,
    intake: ConnectorSet,
    scheduler: Scheduler,
    worker: SynthWorker,
    player: Player | None,
    ledger: Ledger,
    pending_file: Path | None,
    restored: pending.Restored | None,
    grace_s: float,
) -> None:
    await intake.stop_all()
    scheduler.clear("shutdown")
    deadline = time.monotonic() + grace_s

    def heard() -> str | None:
        utt = player.now_playing if player is not None else None
        return utt.id if utt is not None else None

    # The worker may still be making the later chunks of what is being heard. Polled: the
    # state belongs to the worker's and the audio's threads, which signal no asyncio event.
    while time.monotonic() < deadline and (  # noqa: ASYNC110
        worker.current is not None and worker.current.id == heard()
    ):
        await asyncio.sleep(0.05)
    await worker.stop()
    if player is not None:
        player.drop_pending()
        # Not while the output is lost (a wedged sound server): nothing would finish.
        while time.monotonic() < deadline and heard() is not None:
            if player.state is PlayerState.REOPENING:
                break
            await asyncio.sleep(0.05)
        await player.stop()
    pending.save_unheard(pending_file, ledger, restored)
    left = ledger.close_all(Terminal.REMOVED, rule="shutdown")
    # Bounded: an engine hung in a call (a wedged GPU) is abandoned, not waited for.
    await asyncio.get_running_loop().run_in_executor(None, worker.close, ENGINE_CLOSE_TIMEOUT_S)
    log.info("stopped", unfinished=left, **ledger.summary())
