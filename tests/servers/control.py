"""A daemon with its control API running in the test's event loop, and a small client for it:
what every API-level test file needs, written once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from ishowtts.app.daemon import Daemon
from ishowtts.config import load_config
from ishowtts.control.api import ControlApi, resolve_token
from ishowtts.engines import Engine


class Running:
    def __init__(self, daemon: Daemon, api: ControlApi, session: aiohttp.ClientSession) -> None:
        self.daemon, self.api, self.session = daemon, api, session
        self.base = f"http://127.0.0.1:{api.port}"

    async def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **headers: str
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.session.request(
            method, self.base + path, data=data, headers=headers
        ) as resp:
            text = await resp.text()
            try:
                payload: Any = json.loads(text)
            except json.JSONDecodeError:
                payload = text
            return resp.status, payload, resp


@contextlib.asynccontextmanager
async def serve(
    config_path: Path,
    env: Mapping[str, str] | None = None,
    engine_factory: Callable[[], Engine] | None = None,
) -> AsyncIterator[Running]:
    """The daemon of ``config_path`` and its API, ready; stopped (and awaited) on exit. ``env``
    is where the API token is looked up."""
    config = load_config(config_path)
    daemon = Daemon(config, shutdown_grace_s=2.0, engine_factory=engine_factory)
    api = ControlApi(daemon, config.api, resolve_token(config.api, dict(env or {})))
    task = asyncio.create_task(daemon.run())
    await api.start()
    try:
        await asyncio.wait_for(daemon.ready.wait(), 30)
        async with aiohttp.ClientSession() as session:
            yield Running(daemon, api, session)
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
        await api.stop()
