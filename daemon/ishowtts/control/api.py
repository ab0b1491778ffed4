"""The control API (aiohttp): health, status, metrics, and operator actions.

Bound to 127.0.0.1 by default. Anywhere else it requires a bearer token (from the environment
variable named by ``api.token_env``), and the daemon refuses to start without one. Browser
requests pass only from the web console's own origin (``console.browser_refusal``): another
site's page (or a DNS-rebound name) cannot drive a daemon on localhost. Bodies are JSON,
validated, and size-limited; every error is a JSON object ``{"error": ..., "detail": ...}``.

Everything a stranger can send is bounded before authentication: open connections
(``api.max_connections``), the time to send a request's headers (``api.idle_timeout_s``) and
its body (``api.body_timeout_s``), the body's size, its nesting and its numbers' digits.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog
from aiohttp import web
from pydantic import Field, field_validator

from ..config import ApiConfig
from .console import Console
from .http import Body, bearer_ok, browser_refusal, error, is_loopback, is_public, read_body
from .metrics import CONTENT_TYPE

log = structlog.get_logger("ishowtts.control.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MIN_TOKEN_CHARS = 16
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: 33\r\n\r\n"
    b'{"error": "too many connections"}'
)


class ApiError(Exception):
    """The API cannot be started as configured (no token off loopback, port taken)."""


class ControlTarget(Protocol):
    """What the API drives: ``ishowtts.app.daemon.Daemon``."""

    config: Any
    ready: Any
    stopping: Any
    metrics: Any
    health: Any
    # Told (config, token) when a reload is applied: a rotated token takes effect at once.
    on_config: list[Callable[[Any, str | None], None]]

    def status(self) -> dict[str, Any]: ...
    def skip(self) -> str | None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def clear(self, reason: str = "cleared") -> int: ...
    def set_volume(self, volume: float) -> None: ...
    async def say(self, text: str, user: str = "", voice: str = "") -> Any: ...
    async def reload(self) -> Any: ...  # truthy when applied; .changed, .problems


# ---- request bodies ------------------------------------------------------------------------


class Empty(Body):
    pass


class SayBody(Body):
    text: str = Field(min_length=1, max_length=500)
    user: str = Field("", max_length=64)
    voice: str = Field("", max_length=64)  # a voice of the config; empty: routing decides

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text


class ClearBody(Body):
    reason: str = Field("cleared", min_length=1, max_length=64)


class VolumeBody(Body):
    volume: float = Field(ge=0.0, le=2.0, allow_inf_nan=False)


# ---- helpers -------------------------------------------------------------------------------


def resolve_token(cfg: ApiConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token clients must send, or None when none is needed (loopback, unset).
    Raises ApiError when the API is exposed beyond loopback without a token."""
    env = os.environ if env is None else env
    from_config = cfg.token.get_secret_value() if cfg.token is not None else ""
    token = env.get(cfg.token_env, "").strip() or from_config.strip() or None
    if token is None and not is_loopback(cfg.host):
        raise ApiError(
            f"api.host is {cfg.host!r}, not loopback: set a bearer token in ${cfg.token_env} "
            f"or api.token (e.g. `openssl rand -hex 24`), or bind api.host to 127.0.0.1"
        )
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        log.warning("api_token_short", chars=len(token), advice=f">= {MIN_TOKEN_CHARS} chars")
    return token


class _Connection(asyncio.Protocol):
    """Wraps one connection's aiohttp protocol: counts it, and closes it when it has not
    completed a request's headers ``idle`` seconds after connecting or after its last answer.
    aiohttp alone leaves a connection that never completes a first request open forever, and
    counts connections a loop turn late (a burst of accepts would overshoot the cap)."""

    def __init__(self, inner: asyncio.Protocol, api: ControlApi) -> None:
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


# ---- the server ----------------------------------------------------------------------------


class ControlApi:
    def __init__(self, target: ControlTarget, cfg: ApiConfig, token: str | None) -> None:
        self.target = target
        self.cfg = cfg
        self._token = token.encode() if token else None
        target.on_config.append(self._configured)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.port: int | None = None  # the bound port (useful with port 0)
        self.connections = 0  # open now
        self.refused = 0  # connections turned away at the cap, since start
        self.idle_closed = 0  # connections closed for sending no complete request in time
        self.app = web.Application(
            client_max_size=cfg.max_body_bytes,
            middlewares=[self._busy, self._errors, self._guard],
        )
        r = self.app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/status", self.status)
        r.add_get("/metrics", self.metrics)
        r.add_post("/say", self.say)
        r.add_post("/skip", self.skip)
        r.add_post("/pause", self.pause)
        r.add_post("/resume", self.resume)
        r.add_post("/clear", self.clear)
        r.add_post("/volume", self.volume)
        r.add_post("/reload", self.reload)
        Console(target).install(self.app)  # type: ignore[arg-type]

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
            raise ApiError(f"cannot listen on {self.cfg.host}:{self.cfg.port}: {exc}") from None
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
        refused = browser_refusal(
            request.headers, request.host, self._token is not None, request.method, request.path
        )
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

    def _authorized(self, request: web.Request) -> bool:
        """No token needed (loopback), a path that holds no data, or the right bearer token."""
        token = self._token
        if token is None or request.path == "/healthz" or is_public(request.path):
            return True
        return bearer_ok(request.headers, token)

    # -- handlers ----------------------------------------------------------------------------

    def _intake_closed(self) -> web.Response | None:
        if self.target.stopping.is_set():
            return error(503, "shutting down")
        if not self.target.ready.is_set():
            return error(503, "starting", "the model is still loading")
        return None

    async def healthz(self, request: web.Request) -> web.Response:
        if self.target.stopping.is_set():
            # A stop may be a restart the daemon asked for (a lost GPU): say why, if it is.
            problems = self.target.health.problems()
            body = {"status": "stopping", **({"reasons": problems} if problems else {})}
            return web.json_response(body, status=503)
        if not self.target.ready.is_set():
            return web.json_response({"status": "starting"}, status=503)
        problems = self.target.health.problems()
        if problems:
            # 503, so a plain HTTP probe notices; the body says which part and why.
            return web.json_response({"status": "degraded", "reasons": problems}, status=503)
        return web.json_response({"status": "ok"})

    async def status(self, request: web.Request) -> web.Response:
        connections = {
            "open": self.connections,
            "refused": self.refused,  # at the cap
            "idle_closed": self.idle_closed,  # no complete request in time
        }
        return web.json_response({**self.target.status(), "api_connections": connections})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.target.metrics.render(), headers={"Content-Type": CONTENT_TYPE}
        )

    async def say(self, request: web.Request) -> web.Response:
        body = await read_body(request, SayBody, self.cfg.body_timeout_s)
        assert isinstance(body, SayBody)
        if (closed := self._intake_closed()) is not None:
            return closed
        voices = self.target.config.voices
        if body.voice and body.voice not in voices:
            problem = f"no voice named {body.voice!r}; voices: {', '.join(sorted(voices))}"
            raise web.HTTPUnprocessableEntity(
                text=json.dumps(
                    {"error": "invalid body", "detail": [{"field": "voice", "problem": problem}]}
                ),
                content_type="application/json",
            )
        event = await self.target.say(body.text, user=body.user, voice=body.voice)
        # Accepted, not yet spoken: filters may still drop it; the log line for the id says.
        return web.json_response({"id": event.id, "accepted": True}, status=202)

    async def skip(self, request: web.Request) -> web.Response:
        await read_body(request, Empty, self.cfg.body_timeout_s)
        return web.json_response({"skipped": self.target.skip()})

    async def pause(self, request: web.Request) -> web.Response:
        await read_body(request, Empty, self.cfg.body_timeout_s)
        self.target.pause()
        return web.json_response({"paused": True})

    async def resume(self, request: web.Request) -> web.Response:
        await read_body(request, Empty, self.cfg.body_timeout_s)
        self.target.resume()
        return web.json_response({"paused": False})

    async def clear(self, request: web.Request) -> web.Response:
        body = await read_body(request, ClearBody, self.cfg.body_timeout_s)
        assert isinstance(body, ClearBody)
        return web.json_response({"cleared": self.target.clear(body.reason)})

    async def volume(self, request: web.Request) -> web.Response:
        body = await read_body(request, VolumeBody, self.cfg.body_timeout_s)
        assert isinstance(body, VolumeBody)
        self.target.set_volume(body.volume)
        return web.json_response({"volume": body.volume})

    async def reload(self, request: web.Request) -> web.Response:
        await read_body(request, Empty, self.cfg.body_timeout_s)
        if (closed := self._intake_closed()) is not None:
            return closed  # a reload now would tell systemd READY before the daemon is
        result = await self.target.reload()
        if result:
            return web.json_response({"reloaded": True, "changed": list(result.changed)})
        return error(422, "config rejected; the running config is kept", list(result.problems))

    def _configured(self, config: Any, token: str | None) -> None:
        """A reload was applied: from now on only its token is accepted (the old one not)."""
        new = token.encode() if token else None
        if new != self._token:
            self._token = new
            log.info("api_token_changed", auth="bearer" if new else "none (loopback)")
