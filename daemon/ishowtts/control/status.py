"""The daemon's state as one JSON-able dict: the control API's ``GET /status``."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from ..audio.listener import Listener
from ..audio.player import Player
from ..config import Config
from ..connectors import Connector
from ..pipeline.ingest import Pipeline
from ..queue.airtime import Airtime
from ..queue.ledger import Ledger
from ..queue.paidloss import PaidLoss
from ..queue.scheduler import Scheduler
from ..synth.worker import SynthWorker
from .health import Health


class StatusSource(Protocol):
    """What the snapshot reads (``ishowtts.app.daemon.Daemon``)."""

    started_at: float
    ready: asyncio.Event
    config: Config
    worker: SynthWorker
    player: Player | None
    listener: Listener
    scheduler: Scheduler
    airtime: Airtime
    connectors: list[Connector]
    ledger: Ledger
    health: Health
    paid_lost: PaidLoss
    pipeline: Pipeline


def snapshot(d: StatusSource) -> dict[str, Any]:
    engine = d.worker.engine
    player = d.player
    return {
        "uptime_s": round(time.monotonic() - d.started_at, 1),
        "ready": d.ready.is_set(),
        "engine": {
            "state": d.worker.state,
            **(dict(engine.describe()) if engine is not None else {}),
            "speaking": d.worker.speaking,  # primary | fallback | none
            "primary": d.config.engine.type,
            "fallback": d.config.engine.fallback,
            "primary_error": d.worker.primary_error,
            "warming": d.worker.warming,  # the fallback speaks while the primary is built
            "failovers": d.worker.failovers,
            "fatal": d.worker.fatal,
        },
        "player": {
            "state": player.state if player else "stopped",
            "now_playing": player.now_playing.id if player and player.now_playing else None,
            "queued_audio_s": round(player.queued_seconds, 2) if player else 0.0,
        },
        "listen": d.listener.status(),
        "queue": d.scheduler.depth_by_kind(),
        # Who and what is read (the mode, "!tts off"), and how many viewers picked a voice.
        "reading": {**d.pipeline.reading.status(), "viewer_voices": len(d.pipeline.viewer_voices)},
        "airtime": d.airtime.status(),
        "connectors": {
            c.name: {"state": str(c.state), "counters": dict(c.counters)} for c in d.connectors
        },
        "ledger": d.ledger.summary(),
        "health": d.health.problems(),
        "paid_lost": d.paid_lost.status(),
    }
