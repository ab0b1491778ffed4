"""Runs a Daemon as a service: the control API, sd_notify (READY once warm, STATUS, STOPPING)
and the watchdog fed from the event loop. ``ishowtts run`` comes through here, under systemd or
not (without ``$NOTIFY_SOCKET`` the notify calls do nothing)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from ..app.daemon import Daemon
from ..control.api import ApiError, ControlApi, resolve_token
from ..engines import WeightsUnusable
from ..errors import Failure, exit_code
from ..pipeline.statefile import StateInUse
from ..tasks import cancel_and_wait
from .notify import (
    Notifier,
    feed_watchdog,
    ready_fields,
    reloading_fields,
    stopping_fields,
    watchdog_interval,
)

log = structlog.get_logger("ishowtts.shell.service")

STATUS_EVERY_S = 5.0


def status_line(daemon: Daemon) -> str:
    """One line for ``systemctl status``: what it is doing and what it has done."""
    s = daemon.ledger.summary()
    queued = len(daemon.scheduler)
    player = daemon.player.state if daemon.player else "stopped"
    return (
        f"{player}; queued {queued}; received {s.get('received', 0)}, spoken {s.get('spoken', 0)}, "
        f"dropped {s.get('dropped', 0)}, failed {s.get('failed', 0)}"
    )


async def _announce(
    daemon: Daemon, notifier: Notifier, announced: asyncio.Event | None = None
) -> None:
    """READY once warm, a status line every few seconds, STOPPING as the drain begins.
    READY and STOPPING are retried until delivered (status lines are not: the next one comes)."""
    ready = asyncio.ensure_future(daemon.ready.wait())
    stopping = asyncio.ensure_future(daemon.stopping.wait())
    try:
        await asyncio.wait((ready, stopping), return_when=asyncio.FIRST_COMPLETED)
        if not stopping.done():
            told = asyncio.ensure_future(
                notifier.deliver(**ready_fields(f"ready: {status_line(daemon)}"))
            )
            await asyncio.wait((told, stopping), return_when=asyncio.FIRST_COMPLETED)
            told.cancel()
            if announced is not None:
                announced.set()
            while not stopping.done():
                await asyncio.wait((stopping,), timeout=STATUS_EVERY_S)
                if not stopping.done():
                    notifier.status(status_line(daemon))
        await notifier.deliver(
            **stopping_fields("stopping: finishing the current utterance, accounting for the queue")
        )
    finally:
        ready.cancel()
        stopping.cancel()


class ReloadNotices:
    """RELOADING / READY for each reload, sent one at a time in order by one task. A reload
    asked for during start-up runs as soon as the daemon is ready, maybe before READY=1 is out:
    systemd must hear READY first (``announced``), then RELOADING/READY."""

    def __init__(self, daemon: Daemon, notifier: Notifier, announced: asyncio.Event) -> None:
        self.daemon, self.notifier, self.announced = daemon, notifier, announced
        self.outbox: deque[dict[str, str | int]] = deque()
        self.sender: asyncio.Task[None] | None = None

    def __call__(self, begins: bool) -> None:
        fields = (
            reloading_fields() if begins else ready_fields(f"reloaded: {status_line(self.daemon)}")
        )
        self.outbox.append(fields)
        if self.sender is None or self.sender.done():
            self.sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        await self.announced.wait()
        while self.outbox:
            await self.notifier.deliver(**self.outbox[0])
            self.outbox.popleft()

    async def close(self) -> None:
        if self.sender is not None:
            await _cancelled(self.sender)


async def _cancelled(task: asyncio.Task[Any]) -> None:
    with contextlib.suppress(Exception):  # a teardown: its task's own failure was logged
        await cancel_and_wait(task)


async def _say_stopping(daemon: Daemon, announce: asyncio.Task[None]) -> None:
    daemon.stopping.set()  # also when start-up failed: _announce then says STOPPING
    with contextlib.suppress(asyncio.TimeoutError, Exception):
        await asyncio.wait_for(asyncio.shield(announce), 1.0)  # let it say STOPPING


async def serve(daemon: Daemon, notifier: Notifier | None = None) -> int:
    """Run ``daemon`` until it stops; the exit status (0 on a clean stop). Each resource is set
    up beside its teardown, and the teardowns run in reverse order however the run ends."""
    notifier = notifier or Notifier.from_env()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(notifier.close)
        try:
            daemon.claim_state()  # before the API: two daemons sharing state must not both run
        except StateInUse as exc:
            log.error("refusing_to_start", reason=str(exc))
            return exc.exit_code  # 2: each config needs its own files
        cfg = daemon.config.api
        if cfg.enabled:
            try:
                # Refuse before loading the model: an exposed API without a token is a config error.
                api = ControlApi(daemon, cfg, resolve_token(cfg))
            except ApiError as exc:
                log.error("refusing_to_start", reason=str(exc))
                return exc.exit_code  # 2: the config must change
            try:
                await api.start()  # before the model: /healthz answers "starting" while it loads
            except ApiError as exc:
                log.error("api_failed", error=str(exc))
                return exc.exit_code  # 1: the port may be free on the next start
            stack.push_async_callback(api.stop)

        announced = asyncio.Event()  # the first READY=1 went out
        daemon.on_reload = reloads = ReloadNotices(daemon, notifier, announced)
        stack.push_async_callback(reloads.close)
        interval = watchdog_interval()
        if interval is not None and notifier.enabled:
            log.info("watchdog", interval_s=interval)
            # The daemon's stall guard (a hung engine) withholds the watchdog; /healthz says why.
            watchdog = asyncio.create_task(feed_watchdog(notifier, interval, daemon.stall))
            stack.push_async_callback(_cancelled, watchdog)
        announce = asyncio.create_task(_announce(daemon, notifier, announced))
        stack.push_async_callback(_cancelled, announce)
        stack.push_async_callback(_say_stopping, daemon, announce)  # the first teardown

        def progress(line: str) -> None:  # called from the synth thread during load and warm-up
            log.info("startup", step=line)
            notifier.status(line)

        code = await _run(daemon, progress)
    log.info("exit", code=code)
    return code


async def _run(daemon: Daemon, progress: Callable[[str], None]) -> int:
    try:
        return await daemon.run(progress)
    except Exception as exc:  # the start failed: one line, and the status tells systemd what to do
        code = exit_code(exc)
        if isinstance(exc, WeightsUnusable):  # a wrong file, found only by loading it
            log.error("daemon_failed", key=f"engine.{exc.option}", error=str(exc),
                      where=daemon.config.where("engine", exc.option))  # fmt: skip
        elif isinstance(exc, Failure):  # its message says what to do: no traceback to wade through
            log.error("daemon_failed", error=str(exc), exit_code=code)
        else:  # a bug: the traceback is for whoever fixes it
            log.exception("daemon_failed", error=repr(exc))
        return code
