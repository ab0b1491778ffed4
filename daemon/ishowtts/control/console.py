"""The operator's web console (``/``) and the OBS caption overlay (``/overlay``): the pages, the
live event stream they read (Server-Sent Events), the console's state snapshot and its actions
(remove a queued line, mute and unmute users).

The pages are static files shipped in the package (``ishowtts/web``), read once at start; they
hold no data, so they load without a token and ask for one when the API answers 401. Every
data route is behind the API's usual auth. Browser requests pass the API's guard only from the
console's own origin (see ``browser_refusal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib import resources
from typing import Any, Protocol

import structlog
from aiohttp import web
from pydantic import Field

from ..audio.player import PlayerState
from ..pipeline.mutes import MuteError
from .feed import EventFeed, FeedFull, Record, clip
from .http import PAGES, PUBLIC_PREFIX, Body, error, is_loopback, read_body

log = structlog.get_logger("ishowtts.control.console")

# Scripts, styles and connections from this origin only; nothing inline, nothing framed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

BACKLOG = 200  # decisions a freshly opened console shows at once
HEARTBEAT_S = 15.0  # a comment line this often: proxies keep the stream, dead peers show up
GONE_CHECK_S = 1.0  # how soon a closed page's place among the subscribers is freed
WRITE_TIMEOUT_S = 10.0  # a peer that takes longer to accept one record is dropped
MAX_QUEUE_ROWS = 200


class ConsoleTarget(Protocol):
    """What the console reads and drives: ``ishowtts.app.daemon.Daemon``."""

    config: Any
    ready: Any
    scheduler: Any
    player: Any
    worker: Any
    connectors: list[Any]
    ledger: Any
    feed: EventFeed
    mutes: Any
    timeline: Any
    pipeline: Any

    def remove_queued(self, utterance_id: str) -> bool: ...
    def mute(self, platform: str, uid: str, name: str) -> tuple[Any, int]: ...
    def unmute(self, platform: str, uid: str, name: str) -> bool: ...


class RemoveBody(Body):
    id: str = Field(min_length=1, max_length=64)


class UserBody(Body):
    platform: str = Field(min_length=1, max_length=32)
    uid: str = Field("", max_length=128)
    name: str = Field("", max_length=128)


def _read_pages() -> dict[str, bytes]:
    folder = resources.files("ishowtts.control") / "web"
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and any(entry.name.endswith(s) for s in TYPES)
    }


class Console:
    def __init__(self, target: ConsoleTarget) -> None:
        self.target = target
        self.files = _read_pages()

    @property
    def _body_timeout(self) -> float:
        return float(self.target.config.api.body_timeout_s)

    def install(self, app: web.Application) -> None:
        r = app.router
        for path in PAGES:
            r.add_get(path, self.page)
        r.add_get(PUBLIC_PREFIX + "{name}", self.static)
        r.add_get("/events", self.events)
        r.add_get("/console/state", self.state)
        r.add_post("/queue/remove", self.remove)
        r.add_get("/mutes", self.mutes)
        r.add_post("/mute", self.mute)
        r.add_post("/unmute", self.unmute)
        app.on_shutdown.append(self._close_feed)

    def end_streams(self, why: str) -> int:
        """End every open event stream (the pages reconnect, authenticating again)."""
        return int(self.target.feed.end_streams(why))

    async def _close_feed(self, app: web.Application) -> None:
        self.target.feed.close()  # ends every open stream, so shutdown does not wait on them

    # -- pages ---------------------------------------------------------------------------------

    def _file(self, name: str) -> web.Response:
        body = self.files.get(name)
        if body is None:
            return error(404, "no such file")
        suffix = name[name.rfind(".") :]
        return web.Response(body=body, headers={**PAGE_HEADERS, "Content-Type": TYPES[suffix]})

    async def page(self, request: web.Request) -> web.Response:
        return self._file(PAGES[request.path])

    async def static(self, request: web.Request) -> web.Response:
        return self._file(request.match_info["name"])  # a name from the shipped set, no paths

    # -- live events ---------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        since: int | None = None
        raw = request.query.get("since")
        if raw is not None:
            if not raw.isdigit() or len(raw) > 18:
                return error(400, "since must be a record number")
            since = int(raw)
        last = request.query.get("backlog", str(BACKLOG))
        if not last.isdigit() or int(last) > BACKLOG:
            return error(400, f"backlog must be a number of records up to {BACKLOG}")
        feed = self.target.feed
        peer = request.remote or ""
        try:
            sub = feed.subscribe(peer, is_loopback(peer))
        except FeedFull as exc:
            return error(503, "too many live views", str(exc), **{"Retry-After": "5"})
        # No await between subscribing and reading the ring: nothing is missed or repeated.
        backlog, gap = feed.backlog(since, int(last))
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )

        async def send(data: bytes) -> None:
            await asyncio.wait_for(resp.write(data), WRITE_TIMEOUT_S)

        try:
            await resp.prepare(request)
            await send(b"retry: 2000\n\n")
            if gap:
                await send(b"event: gap\ndata: {}\n\n")
            for record in backlog:
                await send(_frame(record))
            quiet_since = time.monotonic()
            while True:
                try:
                    record_or_end = await asyncio.wait_for(sub.queue.get(), GONE_CHECK_S)
                except asyncio.TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break  # the page went away: free its place at once
                    if time.monotonic() - quiet_since >= HEARTBEAT_S:
                        await send(b": ping\n\n")
                        quiet_since = time.monotonic()
                    continue
                if record_or_end is None:
                    if sub.why == "lagged":  # fell behind: the page resumes from the ring
                        await send(b"event: lagged\ndata: {}\n\n")
                    break  # else: replaced, the token rotated, or shutting down
                await send(_frame(record_or_end))
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the page went away or stopped reading
        finally:
            feed.unsubscribe(sub)
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError, RuntimeError):
            await asyncio.wait_for(resp.write_eof(), WRITE_TIMEOUT_S)
        return resp

    # -- state ---------------------------------------------------------------------------------

    async def state(self, request: web.Request) -> web.Response:
        t = self.target
        now = time.monotonic()
        player = t.player
        queued = t.scheduler.matching(lambda u: True)
        engine = t.worker.engine
        described = {  # scalars only: lists (voices, buckets) are not health
            k: v
            for k, v in (engine.describe() if engine is not None else {}).items()
            if isinstance(v, str | int | float | bool) or v is None
        }
        # Which engine speaks (primary | fallback) and, while the fallback does, why.
        for key in ("speaking", "primary_error"):
            value = getattr(t.worker, key, None)
            if value is not None:
                described[key] = clip(str(value), 300)
        return web.json_response(
            {
                "ready": t.ready.is_set(),
                "now": self._now_playing(),
                "player": {
                    "state": str(player.state) if player else "stopped",
                    "paused": player.state == PlayerState.PAUSED if player else False,
                    "volume": round(player.volume, 3) if player else t.config.player.volume,
                    "queued_audio_s": round(player.queued_seconds, 2) if player else 0.0,
                },
                "queue": [
                    {
                        "id": u.id,
                        "kind": u.event.kind.value,
                        "user": u.event.user.name,
                        "text": clip(u.text),
                        "voice": u.voice,
                        "age_s": round(now - u.event.received_mono, 1),
                        "ttl_s": round(u.deadline - now, 1),
                    }
                    for u in queued[:MAX_QUEUE_ROWS]
                ],
                "queued": len(queued),
                "voices": sorted(t.config.voices),
                "default_voice": t.config.routing.default,
                "reading": t.pipeline.reading.status(),
                "dictionary_error": t.pipeline.pronunciation.error,
                "mutes": t.mutes.list(),
                "mutes_error": t.mutes.save_error,
                "engine": {"state": t.worker.state, **described},
                "connectors": [
                    {
                        "name": c.name,
                        "platform": c.platform,
                        "state": str(c.state),
                        "counters": dict(c.counters),
                    }
                    for c in t.connectors
                ],
                "ledger": t.ledger.summary(),
                "timeline": t.timeline.series(),
            }
        )

    def _now_playing(self) -> dict[str, Any] | None:
        player = self.target.player
        utt = player.now_playing if player else None
        if utt is None:
            return None
        left = player.left(utt.id)
        e = utt.event
        return {
            "id": utt.id,
            "kind": e.kind.value,
            "platform": e.platform,
            "user": utt.speaker or e.user.name,  # as it is heard
            "uid": e.user.id,
            "text": clip(utt.text),
            "voice": utt.voice,
            "paid": e.is_paid,
            "amount": round(e.amount, 2),
            "left_s": round(left[0], 1) if left else None,
            "complete": left[1] if left else False,
        }

    # -- actions -------------------------------------------------------------------------------

    async def remove(self, request: web.Request) -> web.Response:
        body = await read_body(request, RemoveBody, self._body_timeout)
        assert isinstance(body, RemoveBody)
        if not self.target.remove_queued(body.id):
            return error(404, "not queued", "already spoken, removed or never queued")
        return web.json_response({"removed": body.id})

    async def mutes(self, request: web.Request) -> web.Response:
        m = self.target.mutes
        return web.json_response({"mutes": m.list(), "error": m.save_error})

    async def mute(self, request: web.Request) -> web.Response:
        body = await read_body(request, UserBody, self._body_timeout)
        assert isinstance(body, UserBody)
        try:
            mute, removed = self.target.mute(body.platform, body.uid, body.name)
        except MuteError as exc:
            return error(422, "cannot mute", str(exc))
        saved = self.target.mutes.save_error
        return web.json_response(
            {"muted": mute.name or mute.uid, "removed": removed, "saved": saved is None}
            | ({"error": saved} if saved else {})
        )

    async def unmute(self, request: web.Request) -> web.Response:
        body = await read_body(request, UserBody, self._body_timeout)
        assert isinstance(body, UserBody)
        if not self.target.unmute(body.platform, body.uid, body.name):
            return error(404, "not muted")
        return web.json_response({"unmuted": body.name or body.uid})


def _frame(record: Record) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (record.seq, record.type.encode(), record.data)
