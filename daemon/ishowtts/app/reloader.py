"""Applying a config reload to the running daemon: one at a time, all of it or nothing of it,
and not before the daemon is ready (a SIGHUP during start-up waits for ready).

What differs and what a running daemon can change is reload.py's; this module reads the new
file, checks it whole against the running parts, then commits it to each part. Every reload
ends in exactly one log line: ``reloaded`` or ``reload_rejected``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import structlog

from .. import logs
from ..audio.listener import Listener
from ..audio.player import Player
from ..config import Config, ConfigError, load_config
from ..control.api import resolve_token
from ..pipeline.ingest import Pipeline
from ..queue.airtime import Airtime
from ..synth.voices import voices_from
from ..synth.worker import SynthWorker
from .connector_set import ConnectorSet
from .reload import ReloadResult, changed_keys, missing_sections, needing_restart

log = structlog.get_logger("ishowtts")


class Reloadable(Protocol):
    """The parts a reload reads and changes (``ishowtts.app.daemon.Daemon``)."""

    config: Config
    ready: asyncio.Event
    player: Player | None
    listener: Listener
    worker: SynthWorker
    pipeline: Pipeline
    airtime: Airtime
    intake: ConnectorSet
    # Told when a reload begins (True) and ends (False): sd_notify RELOADING=1 / READY=1.
    on_reload: Callable[[bool], None] | None
    # Told the new config and API token when a reload is applied (the API takes the token).
    on_config: list[Callable[[Config, str | None], None]]


def _rejected(problems: list[str], changed: list[str] | None = None) -> ReloadResult:
    log.error("reload_rejected", error="; ".join(problems), changed=changed or [])
    return ReloadResult(False, changed or [], problems)


class Reloader:
    def __init__(self, daemon: Reloadable) -> None:
        self.daemon = daemon
        self._lock = asyncio.Lock()  # SIGHUP and /reload may overlap
        self._deferred = False  # a SIGHUP during start-up: reload once ready
        self._spawned: set[asyncio.Future[Any]] = set()

    def request(self) -> None:
        """SIGHUP. During start-up the reload waits for ready: telling systemd RELOADING and
        READY then would declare the daemon ready before it is."""
        if self.daemon.ready.is_set():
            self._spawn(self.reload())
        elif not self._deferred:
            self._deferred = True
            log.info("reload_deferred", reason="still starting; reloading once ready")

    def ready(self) -> None:
        """The daemon just became ready: run the reload a SIGHUP asked for meanwhile."""
        if self._deferred:
            self._deferred = False
            self._spawn(self.reload())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task the loop keeps a reference to until it ends."""
        task = asyncio.ensure_future(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def reload(self) -> ReloadResult:
        """Re-read the config file and apply it whole, or nothing of it."""
        async with self._lock:
            told = self.daemon.on_reload
            if told is not None:
                told(True)
            try:
                return await self._apply()
            finally:
                told = self.daemon.on_reload
                if told is not None:
                    told(False)

    async def _apply(self) -> ReloadResult:
        d = self.daemon
        player = d.player
        if not d.ready.is_set() or player is None:
            return _rejected(["the daemon is still starting; reload once it is ready"])
        old = d.config
        # 1. Read and check everything; nothing changes yet.
        try:
            new = load_config(old.path)
            changed = changed_keys(old, new)
            if missing := missing_sections(old, new):
                return _rejected(
                    [
                        f"{', '.join(missing)}: in the running config but not in the file (cut "
                        f"short?); write each out (e.g. `{missing[0]}: {{}}` for its defaults)"
                    ],
                    changed,
                )
            if restart := needing_restart(changed):
                return _rejected([f"needs a restart: {', '.join(restart)}"], changed)
            token = resolve_token(new.api)
            if any(k.startswith("player.") for k in changed):
                player.check(new.player)
            swap = d.intake.plan(old, new)
            # The engine swaps its voices only when all load; until then it keeps the old.
            await d.worker.set_voices(voices_from(new))
        except ConfigError as exc:
            return _rejected(exc.problems)
        except Exception as exc:  # any failure before the commit leaves everything as it was
            return _rejected([f"{type(exc).__name__}: {exc}"])
        # 2. Commit: nothing below raises.
        d.pipeline.reconfigure(new)
        d.airtime.reconfigure(new.airtime, new.queue)
        d.config = new
        d.worker.lookahead_s = new.player.lookahead_s
        d.worker.failover = new.failover
        player.reconfigure(new.player)
        d.listener.reconfigure(new.listen)
        for hook in d.on_config:
            with contextlib.suppress(Exception):
                hook(new, token)
        if any(k.startswith("log.") for k in changed):
            logs.configure(new.log.level, new.log.format)
        await d.intake.swap(swap)
        d.worker.retry_primary()  # on the fallback: try the primary engine again now
        log.info("reloaded", changed=changed, voices=sorted(new.voices), path=str(new.path))
        return ReloadResult(True, changed)
