"""The connector protocol and ``BaseConnector``, which runs a connector's ``run`` in a task.

A connector is an async iterator of ``ChatEvent`` (and ``Retraction``) with ``start``/``stop``,
built by its entry point (group ``ishowtts.connectors``) as ``cls(name, options, context)``.
Network connectors build on ``SessionConnector`` (session.py), which owns reconnects, backoff,
id-dedupe and malformed-frame reporting; finite or local sources (replay, http) on this base.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog

from .. import registry
from ..events import ChatEvent, ConnectorItem
from ..tasks import cancel_and_wait
from .counters import BoundedCounter

GROUP = registry.CONNECTORS

# What a connector passes on, in characters: every platform's own limits are far lower (a
# danmaku 40, a super chat 100, Twitch 500), so only a hostile or broken source is cut, before
# its text reaches the log, the normaliser or the queue.
MAX_TEXT_CHARS = 4096
MAX_FIELD_CHARS = 256  # names, ids, gift names


class ConnectorState(str, Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"  # gave up (bad credentials, room not found): needs the operator
    FINISHED = "finished"  # a finite source (a replay) reached its end
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    base_dir: Path  # the config file's folder: relative paths resolve against it


@runtime_checkable
class Connector(Protocol):
    name: str
    platform: str
    state: ConnectorState
    counters: Counter[str]  # frames, events, malformed, unknown commands, reconnects...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[ConnectorItem]: ...


_DONE = object()


class BaseConnector:
    """Runs ``run()`` in a task; what it ``emit``s comes out of the async iterator.

    Subclasses implement ``run`` (loop, reconnect, parse) and set ``state`` as they go.
    """

    platform = "unknown"

    def __init__(self, name: str, options: Any, context: ConnectorContext) -> None:
        self.name = name
        self.options = options
        self.context = context
        self.state = ConnectorState.IDLE
        self.counters: Counter[str] = BoundedCounter()
        self.log = structlog.get_logger("ishowtts.connector").bind(connector=name)
        # Unbounded: the daemon drains it synchronously and fast, and the end marker must fit.
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    async def emit(self, item: ConnectorItem) -> None:
        self.counters["emitted"] += 1
        if isinstance(item, ChatEvent):
            bounded = _bounded(item)
            if bounded is not item:
                self.counters["truncated"] += 1
                item = bounded
        self._queue.put_nowait(item)
        await asyncio.sleep(0)  # let the consumer run between bursts

    def set_state(self, state: ConnectorState, **why: Any) -> None:
        if state != self.state:
            self.state = state
            # A failed connector needs the operator: it must stand out in the journal.
            say = self.log.error if state is ConnectorState.FAILED else self.log.info
            say("connector_state", state=str(state), **why)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._main(), name=f"connector:{self.name}")

    async def _main(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a connector must not take the daemon down
            self.log.exception("connector_crashed", error=repr(exc))
            self.set_state(ConnectorState.FAILED, error=repr(exc))
        finally:
            self._queue.put_nowait(_DONE)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        if self.state not in (ConnectorState.FAILED, ConnectorState.FINISHED):
            self.set_state(ConnectorState.STOPPED)

    async def __aiter__(self) -> AsyncIterator[ConnectorItem]:
        while True:
            item = await self._queue.get()
            if item is _DONE:
                return
            yield item


def _bounded(event: ChatEvent) -> ChatEvent:
    """``event`` itself when every text field is within its bound, else a cut copy."""
    user = event.user
    fields = {"text": MAX_TEXT_CHARS, "gift_name": MAX_FIELD_CHARS, "raw_id": MAX_FIELD_CHARS,
              "reply_to": MAX_FIELD_CHARS}  # fmt: skip
    long = {k: getattr(event, k)[:n] for k, n in fields.items() if len(getattr(event, k)) > n}
    long_user = {
        k: getattr(user, k)[:MAX_FIELD_CHARS]
        for k in ("id", "name", "medal_name")
        if len(getattr(user, k)) > MAX_FIELD_CHARS
    }
    if not long and not long_user:
        return event
    if long_user:
        long["user"] = dataclasses.replace(user, **long_user)
    return dataclasses.replace(event, **long)
