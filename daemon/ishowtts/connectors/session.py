"""``SessionConnector``: the skeleton every network connector shares.

A *session* is one connection (a WebSocket, or a run of HTTP polls). The skeleton runs sessions
one after another: state (connecting → connected → reconnecting, or failed), exponential backoff
with jitter between them (reset once a session was accepted, unless it then ended within the
longest wait: a server that accepts and drops at once still backs off), giving up after too many
refused logins, dedupe of platform message ids across reconnects, throttled logging of malformed
frames, and bounded counters. A platform writes only:

- ``session(http)``: connect, log in, call ``connected()`` once accepted, then read until the
  connection ends by raising ``SessionEnded`` (or ``AuthFailed``, ``ReconnectNow``, ``GiveUp``,
  ``Finished``;
  aiohttp, OS and timeout errors count as the connection ending);
- its message mapping: a pure function from a platform message to an ``Outcome``, handed to
  ``deliver``; a frame it cannot read goes to ``malformed``.

A polling platform fits the same shape (``tests/test_connector_session.py`` has one whole)::

    class PollConnector(SessionConnector):
        platform = "poll"

        async def session(self, http: aiohttp.ClientSession) -> None:
            cursor = ""
            while True:  # one session: polls until one fails
                async with http.get(self.options.url, params={"cursor": cursor}) as resp:
                    if resp.status == 401:
                        raise AuthFailed("token refused", refused=True)
                    if resp.status != 200:
                        raise SessionEnded(f"HTTP {resp.status}")
                    page = await resp.json()
                self.connected()  # no-op after the first poll of a session
                cursor = page["cursor"]
                for message in page["messages"]:
                    await self.deliver(map_message(message))
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp
from pydantic import Field

from ..backoff import Backoff
from ..confload import Section
from ..events import ChatEvent, ConnectorItem, Retraction
from ..recent import Recent
from ..tasks import cancel_and_wait
from .base import BaseConnector, ConnectorContext, ConnectorState

# Malformed frames: the first few are logged, then every MALFORMED_EVERY-th (a flood must not
# flood the log; the counter has them all).
MALFORMED_LOGGED = 10
MALFORMED_EVERY = 1000


class Status(str, Enum):
    """What a platform message was, as a mapper sees it."""

    EVENT = "event"  # something to read: items hold it
    RETRACTION = "retraction"  # a message taken back
    DUPLICATE = "duplicate"  # the platform said it again (another command for the same thing)
    IGNORED = "ignored"  # known, nothing to read
    UNKNOWN = "unknown"  # a command this version does not know (note: its name)
    NOTICE = "notice"  # about the room or the session (note: what), handled by ``on_notice``

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    items: tuple[ConnectorItem, ...] = ()
    note: str = ""


class SessionEnded(Exception):
    """The connection ended (closed, silent, failed): reconnect after the backoff."""


class ReconnectNow(Exception):
    """The server asked for a reconnect: done at once, unless it keeps asking (see run)."""


class AuthFailed(Exception):
    def __init__(self, reason: str, refused: bool) -> None:
        super().__init__(reason)
        self.refused = refused  # the server said no (vs. said nothing): counts toward giving up


class GiveUp(Exception):
    """Retrying cannot help (no such room, credentials refused): FAILED, needs the operator."""


class Finished(Exception):
    """The source is over for good (the live stream ended): FINISHED, nothing is wrong."""


class SessionOptions(Section):
    """Options every network connector has; a platform's options extend them."""

    connect_timeout_s: float = Field(10.0, gt=0)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    dedupe_memory: int = Field(4096, ge=16)  # message ids remembered to drop repeats
    # Logins refused in a row before FAILED; None: keep trying (anonymous logins).
    max_auth_failures: int | None = Field(None, ge=1)


class SessionConnector(BaseConnector):
    def __init__(self, name: str, options: SessionOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: SessionOptions = options
        self.backoff = Backoff(options.backoff_initial_s, options.backoff_max_s)
        self.recent = Recent(options.dedupe_memory)
        self._refusals = 0  # logins refused since the last accepted one
        self._at_least = 0.0  # the next wait's floor (a platform's cooldown, risk control)
        # Reconnects the server asked for: the first at once, then backing off (own sequence,
        # since an accepted session resets the other) until a session outlives the longest wait.
        self._requested = Backoff(options.backoff_initial_s, options.backoff_max_s)
        self._up_since: float | None = None  # when the current session was accepted
        self._attempts_before = 0  # the backoff's attempts when the current session was accepted

    # -- what a platform writes ----------------------------------------------------------------
    async def session(self, http: aiohttp.ClientSession) -> None:
        raise NotImplementedError

    def client(self) -> aiohttp.ClientSession:
        """The HTTP client all sessions share (override for headers)."""
        return aiohttp.ClientSession()

    def dedupe_key(self, event: ChatEvent) -> str | None:
        """The key that makes a repeat of ``event`` recognisable; None: never a repeat."""
        return f"id:{event.kind}:{event.raw_id}" if event.raw_id else None

    def on_notice(self, note: str) -> None:
        self.counters[f"notice:{note[:64]}"] += 1

    async def closing(self, http: aiohttp.ClientSession) -> None:
        """Runs once as the connector stops, the HTTP client still open (end a platform-side
        session, say goodbye)."""

    def wait_at_least(self, seconds: float) -> None:
        """The wait before the next session is at least ``seconds`` (the platform asked for a
        pause, or retrying soon would make things worse); backoff as usual otherwise."""
        self._at_least = max(self._at_least, seconds)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        async with self.client() as http:
            try:
                await self._sessions(http)
            finally:
                await self.closing(http)

    async def _sessions(self, http: aiohttp.ClientSession) -> None:
        first = True
        while True:
            self.set_state(ConnectorState.CONNECTING if first else ConnectorState.RECONNECTING)
            first = False
            delay = await self._one_session(http)
            if delay is None:
                return
            delay, self._at_least = max(delay, self._at_least), 0.0
            self.counters["reconnects"] += 1
            self.set_state(ConnectorState.RECONNECTING)
            self.log.info(f"{self.platform}_reconnect_in", seconds=round(delay, 2))
            await asyncio.sleep(delay)

    async def _one_session(self, http: aiohttp.ClientSession) -> float | None:
        """Runs a session to its end; the delay before the next one, or None to stop."""
        p = self.platform
        self._up_since = None
        try:
            await self.session(http)
            raise SessionEnded("session returned")
        except GiveUp as exc:
            self.set_state(ConnectorState.FAILED, error=str(exc))
            return None
        except Finished as exc:
            self.set_state(ConnectorState.FINISHED, why=str(exc))
            return None
        except ReconnectNow:
            return self._requested_delay()
        except AuthFailed as exc:
            self.counters["auth_failures"] += 1
            self._refusals += exc.refused
            self.log.warning(f"{p}_auth_failed", error=str(exc))
            limit = self.options.max_auth_failures
            if limit is not None and self._refusals >= limit:
                self.set_state(ConnectorState.FAILED, error=f"auth refused {self._refusals}x")
                return None
        except (SessionEnded, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            self.log.info(f"{p}_disconnected", error=short(exc))
        except Exception as exc:  # the HTTP side of a platform can raise anything: keep trying
            self.log.warning(f"{p}_error", error=short(exc))
        up = self._up_since
        if up is not None and time.monotonic() - up < self.options.backoff_max_s:
            # Accepted, then ended at once (a session ended right after its auth, a frame it
            # cannot take): still failing, so the wait keeps growing instead of staying at
            # the floor (that looped ~1 app start a second).
            self.backoff.attempt = self._attempts_before
        return self.backoff.next_delay()

    def connected(self, **why: Any) -> None:
        """The session was accepted: the next failure starts the backoff afresh."""
        self._refusals = 0
        if self._up_since is None:
            self._up_since = time.monotonic()
            self._attempts_before = self.backoff.attempt
        self.backoff.reset()
        self.set_state(ConnectorState.CONNECTED, **why)

    def _requested_delay(self) -> float:
        """A server's reconnect request (maintenance) is honoured at once; one that asks again
        before a session has lasted the longest backoff is looping us (a hostile server drove
        ~1,265 reconnects a second) and waits like a failure, longer each time."""
        up = 0.0 if self._up_since is None else time.monotonic() - self._up_since
        if up >= self.options.backoff_max_s:
            self._requested.reset()
        first = self._requested.attempt == 0
        delay = self._requested.next_delay()
        if first:
            self.log.info(f"{self.platform}_reconnect_requested")
            return 0.0
        self.log.warning(
            f"{self.platform}_reconnect_requested_again", in_a_row=self._requested.attempt
        )
        return delay

    @contextlib.asynccontextmanager
    async def alongside(self, job: Coroutine[Any, Any, None], what: str) -> AsyncIterator[None]:
        """Runs ``job`` (a heartbeat, a pinger) for as long as the block runs."""
        task = asyncio.create_task(job, name=f"{what}:{self.name}")
        try:
            yield
        finally:
            await cancel_and_wait(task)

    # -- messages ------------------------------------------------------------------------------
    async def deliver(self, outcome: Outcome) -> None:
        """Counts a mapped message by its status and emits its items, repeats dropped."""
        if outcome.status is Status.UNKNOWN:
            self.counters["unknown"] += 1
            self.counters[f"unknown:{outcome.note[:64]}"] += 1
        elif outcome.status is Status.NOTICE:
            self.on_notice(outcome.note)
        else:
            self.counters[outcome.status.value] += 1
        for item in outcome.items:
            if isinstance(item, ChatEvent):
                # Relays and replaying servers send a message twice, and a reconnect can
                # repeat the last ones; ids say so.
                key = self.dedupe_key(item)
                if key is not None and self.recent.check_and_add(key):
                    self.counters["duplicate"] += 1
                    continue
                self.counters["events"] += 1
                self.counters[f"kind:{item.kind}"] += 1
            elif isinstance(item, Retraction):
                self.counters["retractions"] += 1
            await self.emit(item)

    def malformed(self, reason: str) -> None:
        """Counts a frame that could not be read; it is skipped, the session goes on."""
        n = self.counters["malformed"] = self.counters["malformed"] + 1
        if n <= MALFORMED_LOGGED or n % MALFORMED_EVERY == 0:
            self.log.warning(
                f"{self.platform}_malformed_frame", reason=reason[:200], malformed_total=n
            )


def short(exc: BaseException | None) -> str:
    """An exception as one bounded line for the log."""
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown"
    return text if len(text) <= 200 else text[:197] + "..."
