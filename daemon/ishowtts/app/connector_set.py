"""The running connectors: built from the config, each started with a task that hands what it
receives to the daemon, changed by a reload (only those whose entry changed), stopped at
shutdown. Each has a health check while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from .. import registry
from ..config import Config
from ..connectors import Connector, ConnectorContext
from ..control.health import Health
from ..events import ChatEvent, Retraction
from .health_checks import connector_check
from .reload import plugin_view

log = structlog.get_logger("ishowtts")

Handler = Callable[[ChatEvent | Retraction], None]


def build_connectors(config: Config) -> list[Connector]:
    context = ConnectorContext(base_dir=config.base_dir)
    out: list[Connector] = []
    for entry in config.connectors:
        if entry.enabled:
            cls = registry.load(registry.CONNECTORS, entry.type)
            out.append(cls(entry.name, entry.options, context))
    if config.api.enabled and not any(c.platform == "http" for c in out):
        # POST /say always has somewhere to go.
        cls = registry.load(registry.CONNECTORS, "http")
        out.append(cls("http", cls.Options(), context))
    return out


@dataclass
class Swap:
    """What a reload does to the connectors: ``leaving`` are stopped, ``added`` (built, not
    started) take their place or join them."""

    leaving: list[Connector] = field(default_factory=list)
    added: list[Connector] = field(default_factory=list)


class ConnectorSet:
    def __init__(self, config: Config, health: Health, handle: Handler) -> None:
        self.health = health
        self.handle = handle  # never raises (the daemon's last guard on chat content)
        # The list the console, metrics and status read: changed in place, never replaced.
        self.connectors = build_connectors(config)
        self._pumps: dict[str, asyncio.Task[None]] = {}  # connector name → its intake task
        for connector in self.connectors:
            self.health.add_check(f"connector:{connector.name}", connector_check(connector))

    def http(self) -> Connector | None:
        return next((c for c in self.connectors if c.platform == "http"), None)

    async def start_all(self) -> None:
        for connector in self.connectors:
            await self.start(connector)

    async def start(self, connector: Connector) -> None:
        await connector.start()
        self._pumps[connector.name] = asyncio.create_task(self._pump(connector))

    async def _pump(self, connector: Connector) -> None:
        try:
            async for item in connector:
                self.handle(item)
        except Exception as exc:  # handle() never raises; this is the last guard on intake
            self.health.report(f"intake:{connector.name}", f"intake stopped: {exc!r}")
            log.exception("intake_failed", connector=connector.name, error=repr(exc))

    def plan(self, old: Config, new: Config) -> Swap:
        """The connectors the new config adds or changes (built, not started) and those they
        replace or it drops; the unchanged keep running, connected, with their counters."""
        before = {c.name: plugin_view(c) for c in old.connectors}
        fresh = [c for c in new.connectors if before.get(c.name) != plugin_view(c)]
        names = {c.name for c in fresh}
        dropped = {c.name for c in old.connectors} - {c.name for c in new.connectors}
        built = build_connectors(new.model_copy(update={"connectors": fresh}))
        return Swap(
            leaving=[c for c in self.connectors if c.name in names | dropped],
            added=[c for c in built if c.name in names],
        )

    async def swap(self, swap: Swap) -> None:
        """Apply a reload's plan; never raises (a connector that fails to start says so)."""
        for connector in swap.leaving:
            with contextlib.suppress(Exception):
                await connector.stop()
            pump = self._pumps.pop(connector.name, None)
            if pump is not None:
                pump.cancel()
            self.health.remove_check(f"connector:{connector.name}")
            self.connectors.remove(connector)
            log.info("connector_removed", connector=connector.name)
        for connector in swap.added:
            self.connectors.append(connector)
            self.health.add_check(f"connector:{connector.name}", connector_check(connector))
            try:
                await self.start(connector)
            except Exception as exc:  # it reports its own state; the rest of the reload stands
                log.error("connector_start_failed", connector=connector.name, error=repr(exc))
            log.info("connector_added", connector=connector.name, platform=connector.platform)

    async def stop_all(self) -> None:
        """Intake ends: each connector is stopped and its task cancelled."""
        for connector in self.connectors:
            with contextlib.suppress(Exception):
                await connector.stop()
        for pump in self._pumps.values():
            pump.cancel()
