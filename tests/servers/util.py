"""Small async helpers shared by the connector tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from ishowtts.connectors import BaseConnector, ConnectorState


async def until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Waits for a condition; fails the test (not a timing assertion) if it never comes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.005)


class Running:
    """A started connector whose items are collected in the background; states are recorded."""

    def __init__(self, connector: BaseConnector) -> None:
        self.connector = connector
        self.items: list[Any] = []
        self.states: list[ConnectorState] = []
        original = connector.set_state

        def record(state: ConnectorState, **why: Any) -> None:
            if state != connector.state:
                self.states.append(state)
            original(state, **why)

        connector.set_state = record  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    async def _drain(self) -> None:
        async for item in self.connector:
            self.items.append(item)

    async def __aenter__(self) -> Running:
        await self.connector.start()
        self._task = asyncio.create_task(self._drain())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connector.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 2.0)


@contextlib.asynccontextmanager
async def running(connector: BaseConnector) -> AsyncIterator[Running]:
    async with Running(connector) as r:
        yield r


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Starts a local test server; its runner and the port it listens on (``port`` 0: any)."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner, port or site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
