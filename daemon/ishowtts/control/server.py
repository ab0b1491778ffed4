"""The control API's listening side: the socket, what a connection may cost before it is
authenticated, and the middlewares every request passes (the connection's deadline, errors as
JSON, the browser guard, the token, the body's size). ``api.py`` adds the routes.

Everything a stranger can send is bounded before authentication: open connections
(``api.max_connections``), the time to send a request's headers (``api.idle_timeout_s``) and
its body (``api.body_timeout_s``, in ``http.read_body``), the body's size, its nesting and its
numbers' digits, and the log lines it causes (malformed requests, wrong tokens, refused
browsers: a few per kind every ten seconds, then a count). A connection that has sent no
complete request holds no place: at the cap, a newcomer takes the place of the connection idle
longest (so silent sockets cannot lock the operator out); only when every connection is busy
with a request (a live stream, a body arriving) is the newcomer refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from ..config import ApiConfig
from .http import (
    AUDIO_PATH,
    bearer_ok,
    browser_refusal,
    cors_origin,
    error,
    host_refusal,
    is_public,
)

log = structlog.get_logger("ishowtts.control.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: 33\r\n\r\n"
    b'{"error": "too many connections"}'
)


class Throttle:
    """At most ``burst`` lines of one kind per ``window_s``: a flood is seen, never the flood;
    the first line after a suppressed run says how many were left out."""

    def __init__(
        self, burst: int = 5, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._start = -window_s
        self._lines = 0
        self.suppressed = 0  # left out since the last line logged

    def allow(self) -> bool:
        now = self.clock()
        if now - self._start >= self.window_s:
            self._start, self._lines = now, 0
        if self._lines >= self.burst:
            self.suppressed += 1
            return False
        self._lines += 1
        return True

    def log(self, level: str, event: str, **fields: Any) -> None:
        if self.allow():
            if self.suppressed:
                fields["suppressed"], self.suppressed = self.suppressed, 0
            getattr(log, level)(event, **fields)


class _ProtocolLog(logging.Logger):
    """aiohttp's server logger for requests it cannot parse (a duplicate ``Host``, a NUL, an
    over-long header, a bad chunk): one short throttled line instead of a traceback each."""

    def __init__(self) -> None:
        super().__init__("ishowtts.control.server.http")
        self.throttle = Throttle()

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        error = f"{type(exc).__name__}: {exc}"[:200] if exc is not None else str(msg)[:200]
        peer = str(args[0])[:64] if args else ""
        self.throttle.log("warning", "api_bad_request", peer=peer, error=error)


class ListenError(Exception):
    """The address cannot be listened on (taken, not this machine's)."""


class _Connection(asyncio.Protocol):
    """Wraps one connection's aiohttp protocol: counts it, and closes it when it has not
    completed a request's headers ``idle`` seconds after connecting or after its last answer.
    aiohttp alone leaves a connection that never completes a first request open forever, and
    counts connections a loop turn late (a burst of accepts would overshoot the cap)."""

    def __init__(self, inner: asyncio.Protocol, api: ApiServer) -> None:
        self.inner, self.api = inner, api
        self.busy = 0  # requests being handled (their body has its own deadline)
        self.idle_since = 0.0  # when it last finished a request, or connected
        self.evicted = False  # closed to make room: no longer counted
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self.idle_since = loop.time()
        self._timer = loop.call_later(self.api.cfg.idle_timeout_s, self._expire)

    @property
    def open(self) -> bool:
        return self._transport is not None

    def evict(self) -> None:
        """Make room for a newcomer: closed at once, its place freed now."""
        self.evicted = True
        self.api.connections -= 1
        self.api.idle.pop(self, None)
        if isinstance(self._transport, asyncio.WriteTransport):
            self._transport.abort()

    def _expire(self) -> None:
        self._timer = None
        if not self.busy and self._transport is not None:
            self.api.idle_closed += 1
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self.arm()
        self.api.idle[self] = None
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.evicted:
            self.api.connections -= 1
        self.api.idle.pop(self, None)
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Refuse(asyncio.Protocol):
    """Past the connection cap: one fixed 503, then close; nothing read or parsed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_REFUSED)
        transport.close()


class ApiServer:
    """An aiohttp application behind our own listener, which counts and caps connections at
    accept time; ``token`` (None: loopback, no token needed) guards every non-public path."""

    def __init__(self, cfg: ApiConfig, token: str | None) -> None:
        self.cfg = cfg
        self._token = token.encode() if token else None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.port: int | None = None  # the bound port (useful with port 0)
        self.connections = 0  # open now
        self.refused = 0  # connections turned away at the cap, since start
        self.evicted = 0  # idle connections closed to make room for a newcomer, since start
        self.idle_closed = 0  # connections closed for sending no complete request in time
        self.idle: dict[_Connection, None] = {}  # open connections handling no request
        self._unauthorized = Throttle()
        self._browser_refused = Throttle()
        # Pages allowed to call the speech server from a browser (speech_api.cors_origins).
        self.cors_origins: frozenset[str] = frozenset()
        self.app = web.Application(
            client_max_size=cfg.max_body_bytes,
            middlewares=[self._busy, self._errors, self._guard],
        )
        self.app.on_response_prepare.append(self._cors_headers)

    def counts(self) -> dict[str, int]:
        return {
            "open": self.connections,
            "refused": self.refused,  # at the cap, every connection busy
            "evicted": self.evicted,  # idle ones closed at the cap for a newcomer
            "idle_closed": self.idle_closed,  # no complete request in time
        }

    @property
    def token(self) -> bytes | None:
        """The token clients must send now (None: loopback, none needed)."""
        return self._token

    def set_token(self, token: str | None) -> bool:
        """From now on only this token is accepted (the old one not); whether it changed."""
        new = token.encode() if token else None
        if new == self._token:
            return False
        self._token = new
        log.info("api_token_changed", auth="bearer" if new else "none (loopback)")
        return True

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            logger=_ProtocolLog(),
            keepalive_timeout=self.cfg.idle_timeout_s,
        )
        await self._runner.setup()
        try:
            # Our own listener rather than web.TCPSite, to count connections at accept time.
            self._server = await asyncio.get_running_loop().create_server(
                self._accept, self.cfg.host, self.cfg.port, reuse_address=True
            )
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ListenError(f"cannot listen on {self.cfg.host}:{self.cfg.port}: {exc}") from None
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else self.cfg.port
        log.info(
            "api_listening",
            host=self.cfg.host,
            port=self.port,
            auth="bearer" if self._token else "none (loopback)",
        )

    def _accept(self) -> asyncio.Protocol:
        assert self._runner is not None and self._runner.server is not None
        if self.connections >= self.cfg.max_connections:
            victim = min(self.idle, key=lambda c: c.idle_since, default=None)
            if victim is None:  # every one is busy with a request
                self.refused += 1
                if self.refused & (self.refused - 1) == 0:  # 1st, 2nd, 4th...: a flood is seen
                    log.warning(
                        "api_connections_refused", open=self.connections, refused=self.refused
                    )
                return _Refuse()
            victim.evict()
            self.evicted += 1
            if self.evicted & (self.evicted - 1) == 0:
                log.warning("api_idle_connection_closed", open=self.connections, total=self.evicted)
        self.connections += 1
        return _Connection(self._runner.server(), self)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middlewares -------------------------------------------------------------------------

    @web.middleware
    async def _busy(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Holds the connection's idle deadline while a request is handled; re-arms it after."""
        transport = request.transport
        conn = transport.get_protocol() if transport is not None else None
        if not isinstance(conn, _Connection):
            return await handler(request)
        conn.busy += 1
        self.idle.pop(conn, None)
        try:
            return await handler(request)
        finally:
            conn.busy -= 1
            conn.arm()
            if not conn.busy and not conn.evicted and conn.open:
                self.idle[conn] = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every failure as a JSON object, never HTML; an unexpected one is logged, not fatal."""
        try:
            return await handler(request)
        except ConnectionError as exc:
            # The client left mid-request (aiohttp cancels the body read): nobody to answer.
            log.info("api_client_gone", path=request.path, error=str(exc) or type(exc).__name__)
            return error(499, "client closed the connection")
        except web.HTTPException as exc:
            if exc.content_type == "application/json" or exc.status < 400:
                raise
            message = {413: "body too large", 404: "no such endpoint"}.get(exc.status, exc.reason)
            detail = f"at most {self.cfg.max_body_bytes} bytes" if exc.status == 413 else None
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            return error(exc.status, message, detail, **headers)
        except Exception as exc:
            log.exception("api_handler_failed", path=request.path, error=repr(exc))
            return error(500, "internal error", repr(exc))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token_required = self._token is not None
        cors = cors_origin(request.headers, request.path, self.cors_origins)
        if cors is None:
            refused = browser_refusal(
                request.headers, request.host, token_required, request.method, request.path
            )
        else:  # an allowed page: cross-site, but the host rule and the token still hold
            refused = host_refusal(request.host, token_required)
            if refused is None and request.method == "OPTIONS":
                return _preflight(request)  # carries no token, by the browser's rules
        if refused is not None:
            self._browser_refused.log("warning", "api_browser_refused", path=request.path,
                                      why=refused)  # fmt: skip
            return error(403, "browser request refused", refused)
        if not self._authorized(request):
            self._unauthorized.log(
                "warning", "api_unauthorized", path=request.path[:200], peer=request.remote
            )
            return error(
                401,
                "unauthorized",
                "send Authorization: Bearer <token>",
                **{"WWW-Authenticate": 'Bearer realm="ishowtts"'},
            )
        length = request.content_length
        if length is not None and length > self.cfg.max_body_bytes:
            return error(413, "body too large", f"at most {self.cfg.max_body_bytes} bytes")
        return await handler(request)

    async def _cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """An allowed page may read the answer (the browser hides it otherwise)."""
        origin = cors_origin(request.headers, request.path, self.cors_origins)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    def _authorized(self, request: web.Request) -> bool:
        """No token needed (loopback), a path that holds no data, or the right bearer token."""
        token = self._token
        if token is None or request.path == "/healthz" or is_public(request.path):
            return True
        if request.path == AUDIO_PATH:
            return True  # a WebSocket: the page sends its token in-band (audio_route.py)
        return bearer_ok(request.headers, token)


# ---- CORS for the pages speech_api.cors_origins allows ------------------------------------


def _preflight(request: web.Request) -> web.Response:
    headers = {
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
    }
    # Chrome asks before a public page may reach a private address (Private Network Access).
    if request.headers.get("Access-Control-Request-Private-Network") == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)
