"""The daemon's parts as health checks: what makes ``/healthz`` say degraded, and why.

Each check reads one part's state when asked (see health.py); the engine is also watched
through the ledger, because a run of failed messages is a fault that no state shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from ..audio.player import Player, PlayerState
from ..config import Config
from ..connectors import Connector, ConnectorState
from ..control.health import Check, Health
from ..events import ChatEvent
from ..queue.ledger import Terminal
from ..queue.paidloss import PaidLoss
from ..queue.scheduler import Scheduler
from ..synth.keeper import WorkerState
from ..synth.worker import SynthWorker

log = structlog.get_logger("ishowtts")

# One utterance synthesising for longer than this means the engine (the GPU) hangs: the loop
# is fine, so neither the loop's watchdog nor a failure count would notice. Long texts are
# split into sentence chunks, so even a slow board stays far below it.
SYNTH_STALL_S = 180.0

# The engine failing this many messages in a row (none spoken between) is a fault, not bad
# luck with one text: /healthz says degraded until a message is spoken again.
ENGINE_FAILURES_DEGRADED = 3


class EngineFailures:
    """A ledger listener: reports the engine degraded after a run of failed messages, and
    clears it when one is spoken."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.in_a_row = 0

    def __call__(self, event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        if state is Terminal.SPOKEN:
            self.in_a_row = 0
            self.health.clear("engine")
        elif state is Terminal.FAILED and fields.get("rule") == "engine":
            self.in_a_row += 1
            if self.in_a_row >= ENGINE_FAILURES_DEGRADED:
                self.health.report(
                    "engine",
                    f"{self.in_a_row} messages failed in a row, none spoken; "
                    f"last: {str(fields.get('error', '?'))[:200]}",
                )


class StallGuard:
    """Healthy unless the synth worker has been on the same utterance for ``limit`` seconds
    (the daemon calls it every tick; the service's watchdog feeding asks it too, and
    ``reason`` is what /healthz reports)."""

    def __init__(
        self,
        worker: Any,
        limit: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker, self.clock = worker, clock
        self.limit = SYNTH_STALL_S if limit is None else limit
        self._current: Any = None
        self._since = clock()
        self.reason: str | None = None  # why synthesis is stalled, while it is

    def __call__(self) -> bool:
        now = self.clock()
        current = self.worker.current
        if current is not self._current:
            self._current, self._since = current, now
        stalled = current is not None and now - self._since > self.limit
        reason = f"synthesis stalled: {current.id} for over {self.limit:g} s" if stalled else None
        if reason is not None and self.reason is None:  # one line as it begins
            log.error("synth_stalled", id=current.id, seconds=round(now - self._since, 1))
        self.reason = reason
        if self.worker.state == WorkerState.BROKEN or getattr(self.worker, "fatal", None):
            return False  # the device is lost: if the restart hangs, systemd kills us
        return not stalled


def queue_check(scheduler: Scheduler, paid_lost: PaidLoss) -> Check:
    def check() -> str | None:
        if scheduler.paid < scheduler.max_paid:
            return None
        return (
            f"paid queue full ({scheduler.paid} of queue.max_paid): new paid lines are lost "
            f"({paid_lost.count} so far)"
        )

    return check


def engine_check(worker: SynthWorker, stall: StallGuard) -> Check:
    def check() -> str | None:
        if stall.reason is not None:
            return f"{stall.reason} (the engine hangs; the watchdog is withheld)"
        if worker.fatal is not None:
            return f"{worker.fatal}; restarting"
        if worker.state == WorkerState.BROKEN:
            return "engine broken: its rebuild failed"
        if worker.warming:
            return f"{worker.primary_name} is warming up: {worker.fallback_name} speaks meanwhile"
        if worker.speaking == "fallback":
            return (
                f"{worker.fallback_name} speaks instead of {worker.primary_name}: "
                f"{worker.primary_error}"
            )
        return None

    return check


def player_check(player: Callable[[], Player | None], config: Callable[[], Config]) -> Check:
    """``player`` and ``config`` are read at each check: the player is built at start-up, and
    a reload replaces the config."""

    def check() -> str | None:
        p = player()
        if p is None or p.state != PlayerState.REOPENING:
            return None
        device = config().player.device or "default"
        why = f": {str(p.open_error)[:300]}" if p.open_error is not None else ""
        return f"no output stream on {device}{why}; reopening"

    return check


def connector_check(connector: Connector) -> Check:
    def check() -> str | None:
        if connector.state is ConnectorState.FAILED:
            return f"connector {connector.name} ({connector.platform}) gave up; see its log"
        return None

    return check
