"""A real daemon (tone engine, the real player on the PulseAudio null sink) and its control API
in the test's event loop, for the console's tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ishowtts.app.daemon import Daemon
from ishowtts.config import load_config
from ishowtts.control.api import ControlApi, resolve_token
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.queue.ledger import Terminal

TOKEN = "console-test-token-0123456789abcdef"

TONE = "{type: tone, seconds_per_char: 0.05}"
CONFIG = """\
engine: {engine}
connectors: {connectors}
voices: {{default: {{}}, bright: {{}}}}
speech:
  templates: {{super_chat: "{{user}}: {{text}}", danmaku: "{{text}}"}}
filters: {{block_keywords: [buy followers], rate: null}}
player: {{device: {device}, lookahead_s: 0.5}}
api: {{host: "{host}", port: 0, token_env: ISHOWTTS_CONSOLE_TEST_TOKEN}}
"""


def mute_file(folder: Path) -> Path:
    """The mute list of the daemon whose config is ``folder``/config.yaml (named after it)."""
    (path,) = folder.glob("mutes-config-*.json")
    return path


def write_config(
    folder: Path,
    connectors: str = "[]",
    host: str = "127.0.0.1",
    engine: str = TONE,
    device: str = "pulse",
) -> Path:
    path = folder / "config.yaml"
    text = CONFIG.format(connectors=connectors, host=host, engine=engine, device=device)
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Running:
    daemon: Daemon
    api: ControlApi
    session: aiohttp.ClientSession
    # (id, state, fields) of every terminal ledger line, in order
    closed: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    def fate(self, event_id: str) -> tuple[str, dict[str, Any]] | None:
        return next(((s, f) for i, s, f in self.closed if i == event_id), None)

    def chat(
        self,
        name: str,
        text: str,
        uid: str = "",
        kind: Kind = Kind.DANMAKU,
        amount: float = 0.0,
        platform: str = "bilibili",
    ) -> ChatEvent:
        """A chat event entering as a connector's would."""
        event = ChatEvent(
            platform, "1", kind, User(uid or f"uid-{name}", name), text=text, amount=amount
        )
        self.daemon.handle(event)
        return event

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json()


@contextlib.asynccontextmanager
async def running(
    folder: Path,
    connectors: str = "[]",
    token: str | None = None,
    engine: str = TONE,
    device: str = "pulse",
) -> AsyncIterator[Running]:
    host = "0.0.0.0" if token else "127.0.0.1"
    config = load_config(write_config(folder, connectors, host, engine, device))
    env = {"ISHOWTTS_CONSOLE_TEST_TOKEN": token} if token else {}
    daemon = Daemon(config, shutdown_grace_s=1.0)
    api = ControlApi(daemon, config.api, resolve_token(config.api, env))
    closed: list[tuple[str, str, dict[str, Any]]] = []

    def record(event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        if state is not None:
            closed.append((event.id, state.value, dict(fields)))

    daemon.ledger.listeners.append(record)
    await api.start()
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 30)
        async with aiohttp.ClientSession() as session:
            yield Running(daemon, api, session, closed)
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
        await api.stop()
