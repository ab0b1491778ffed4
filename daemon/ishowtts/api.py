"""The control API (aiohttp): health, status, metrics, and operator actions.

Bound to 127.0.0.1 by default. Anywhere else it requires a bearer token (from the environment
variable named by ``api.token_env``), and the daemon refuses to start without one. Requests that
carry an ``Origin`` header are refused: no browser page ever needs this API, and refusing them
stops a web page (or a DNS-rebound name) from driving a daemon on localhost. Bodies are JSON,
validated, and size-limited; every error is a JSON object ``{"error": ..., "detail": ...}``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import ApiConfig, ConfigError, load_config
from .metrics import CONTENT_TYPE

log = structlog.get_logger("ishowtts.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MIN_TOKEN_CHARS = 16


class ApiError(Exception):
    """The API cannot be started as configured (no token off loopback, port taken)."""


class ControlTarget(Protocol):
    """What the API drives: ``ishowtts.app.Daemon``."""

    config: Any
    ready: Any
    stopping: Any
    metrics: Any

    def status(self) -> dict[str, Any]: ...
    def skip(self) -> str | None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def clear(self, reason: str = "cleared") -> int: ...
    def set_volume(self, volume: float) -> None: ...
    async def say(self, text: str, user: str = "") -> Any: ...
    async def reload(self) -> bool: ...


# ---- request bodies ------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Empty(_Body):
    pass


class SayBody(_Body):
    text: str = Field(min_length=1, max_length=500)
    user: str = Field("", max_length=64)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text


class ClearBody(_Body):
    reason: str = Field("cleared", min_length=1, max_length=64)


class VolumeBody(_Body):
    volume: float = Field(ge=0.0, le=2.0, allow_inf_nan=False)


# ---- helpers -------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or "": cannot be sure, so treat as exposed


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


def error(status: int, message: str, detail: Any = None, **headers: str) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status, headers=headers or None)


def _validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
        for e in exc.errors()
    ]


async def _body(request: web.Request, model: type[_Body]) -> _Body:
    """The request's JSON body as ``model``; an empty body counts as ``{}``."""
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body is not valid JSON", "detail": str(exc)}),
                content_type="application/json",
            ) from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}),
            content_type="application/json",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({"error": "invalid body", "detail": _validation_detail(exc)}),
            content_type="application/json",
        ) from None


# ---- the server ----------------------------------------------------------------------------


class ControlApi:
    def __init__(self, target: ControlTarget, cfg: ApiConfig, token: str | None) -> None:
        self.target = target
        self.cfg = cfg
        self._token = token.encode() if token else None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port (useful with port 0)
        self.app = web.Application(
            client_max_size=cfg.max_body_bytes,
            middlewares=[self._errors, self._guard],
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

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ApiError(f"cannot listen on {self.cfg.host}:{self.cfg.port}: {exc}") from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.cfg.port
        log.info(
            "api_listening",
            host=self.cfg.host,
            port=self.port,
            auth="bearer" if self._token else "none (loopback)",
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middlewares -------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every failure as a JSON object, never HTML; an unexpected one is logged, not fatal."""
        try:
            return await handler(request)
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
        if "Origin" in request.headers:
            return error(403, "browser requests are not accepted", "Origin header present")
        if self._token is not None and request.path != "/healthz":
            given = request.headers.get("Authorization", "")
            scheme, _, credential = given.partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                credential.strip().encode(), self._token
            )
            if not ok:
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

    # -- handlers ----------------------------------------------------------------------------

    def _intake_closed(self) -> web.Response | None:
        if self.target.stopping.is_set():
            return error(503, "shutting down")
        if not self.target.ready.is_set():
            return error(503, "starting", "the model is still loading")
        return None

    async def healthz(self, request: web.Request) -> web.Response:
        if self.target.stopping.is_set():
            return web.json_response({"status": "stopping"}, status=503)
        if not self.target.ready.is_set():
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.target.status())

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.target.metrics.render(), headers={"Content-Type": CONTENT_TYPE}
        )

    async def say(self, request: web.Request) -> web.Response:
        body = await _body(request, SayBody)
        assert isinstance(body, SayBody)
        if (closed := self._intake_closed()) is not None:
            return closed
        event = await self.target.say(body.text, user=body.user)
        # Accepted, not yet spoken: filters may still drop it; the log line for the id says.
        return web.json_response({"id": event.id, "accepted": True}, status=202)

    async def skip(self, request: web.Request) -> web.Response:
        await _body(request, Empty)
        return web.json_response({"skipped": self.target.skip()})

    async def pause(self, request: web.Request) -> web.Response:
        await _body(request, Empty)
        self.target.pause()
        return web.json_response({"paused": True})

    async def resume(self, request: web.Request) -> web.Response:
        await _body(request, Empty)
        self.target.resume()
        return web.json_response({"paused": False})

    async def clear(self, request: web.Request) -> web.Response:
        body = await _body(request, ClearBody)
        assert isinstance(body, ClearBody)
        return web.json_response({"cleared": self.target.clear(body.reason)})

    async def volume(self, request: web.Request) -> web.Response:
        body = await _body(request, VolumeBody)
        assert isinstance(body, VolumeBody)
        self.target.set_volume(body.volume)
        return web.json_response({"volume": body.volume})

    async def reload(self, request: web.Request) -> web.Response:
        await _body(request, Empty)
        problems: list[str] = []
        try:  # parsed here too, only to tell the caller what is wrong
            load_config(self.target.config.path)
        except ConfigError as exc:
            problems = list(exc.problems)
        except OSError as exc:
            problems = [str(exc)]
        if await self.target.reload():
            return web.json_response({"reloaded": True})
        return error(
            422,
            "config rejected; the running config is kept",
            problems or "see the reload_rejected log line",
        )
