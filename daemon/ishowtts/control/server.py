"""The control API's listening side: the socket, what a connection may cost before it is
authenticated, and the middlewares every request passes (the connection's deadline, errors as
JSON, the browser guard, the token, the body's size). ``api.py`` adds the routes.

Everything a stranger can send is bounded before authentication: open connections
(``api.max_connections``), the time to send a request's headers (``api.idle_timeout_s``) and
its body (``api.body_timeout_s``, in ``http.read_body``), the body's size, its nesting and its
numbers' digits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.api.cfg.idle_timeout_s, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if not self.busy and self._transport is not None:
            self.api.idle_closed += 1
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self.arm()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.api.connections -= 1
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
        self.idle_closed = 0  # connections closed for sending no complete request in time
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
            "refused": self.refused,  # at the cap
            "idle_closed": self.idle_closed,  # no complete request in time
        }

    @property
    def token(self) -> bytes | None:
        """The token clients must send now (None: loopback, none needed)."""
        return self._token

    def set_token(self, token: str | None) -> None:
        """From now on only this token is accepted (the old one not)."""
        new = token.encode() if token else None
        if new != self._token:
            self._token = new
            log.info("api_token_changed", auth="bearer" if new else "none (loopback)")

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
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
            self.refused += 1
            if self.refused & (self.refused - 1) == 0:  # 1st, 2nd, 4th, 8th...: a flood is seen
                log.warning("api_connections_refused", open=self.connections, refused=self.refused)
            return _Refuse()
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
        try:
            return await handler(request)
        finally:
            conn.busy -= 1
            conn.arm()

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
            log.warning("api_browser_refused", path=request.path, why=refused)
            return error(403, "browser request refused", refused)
        if not self._authorized(request):
            log.warning("api_unauthorized", path=request.path, peer=request.remote)
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
