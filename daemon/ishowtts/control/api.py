"""The control API (aiohttp): health, status, metrics, and operator actions.

Bound to 127.0.0.1 by default. Anywhere else it requires a bearer token (from the environment
variable named by ``api.token_env``), and the daemon refuses to start without one. Browser
requests pass only from the web console's own origin (``http.browser_refusal``): another
site's page (or a DNS-rebound name) cannot drive a daemon on localhost. Bodies are JSON,
validated, and size-limited; every error is a JSON object ``{"error": ..., "detail": ...}``.

What a stranger can send is bounded before authentication by the listener (server.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog
from aiohttp import web
from pydantic import Field, field_validator

from ..config import ApiConfig
from ..config.chat import ReadingMode
from ..errors import ConfigInvalid, Failure, Temporary
from .audio_route import AudioRoute
from .console import Console
from .http import Body, error, is_loopback, read_body
from .metrics import CONTENT_TYPE
from .server import ApiServer, ListenError
from .speech import SpeechApi
from .viewers import ViewersRoutes

log = structlog.get_logger("ishowtts.control.api")

MIN_TOKEN_CHARS = 16


class ApiError(Failure):
    """The API cannot be started as configured."""


class ApiUnprotected(ApiError, ConfigInvalid):
    """Exposed beyond loopback without a token: the config must change."""


class ApiCannotListen(ApiError, Temporary):
    """The address is taken or not ours: a later start may get it."""


class ControlTarget(Protocol):
    """What the API drives: ``ishowtts.app.daemon.Daemon``."""

    config: Any
    ready: Any
    stopping: Any
    metrics: Any
    health: Any
    audio_fanout: Any  # the voice for browser sources (audio_fanout.AudioFanout)
    listener: Any  # its status() says what turn-taking is doing
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
    def set_reading(self, mode: str | None = None, enabled: bool | None = None) -> Any: ...


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


class ReadingBody(Body):
    mode: ReadingMode | None = None
    enabled: bool | None = None


class VolumeBody(Body):
    volume: float = Field(ge=0.0, le=2.0, allow_inf_nan=False)


# ---- helpers -------------------------------------------------------------------------------


def resolve_token(cfg: ApiConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token clients must send, or None when none is needed (loopback, unset).
    Raises ApiUnprotected when the API is exposed beyond loopback without a token."""
    env = os.environ if env is None else env
    from_config = cfg.token.get_secret_value() if cfg.token is not None else ""
    token = env.get(cfg.token_env, "").strip() or from_config.strip() or None
    if token is None and not is_loopback(cfg.host):
        raise ApiUnprotected(
            f"api.host is {cfg.host!r}, not loopback: set a bearer token in ${cfg.token_env} "
            f"or api.token (e.g. `openssl rand -hex 24`), or bind api.host to 127.0.0.1"
        )
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        log.warning("api_token_short", chars=len(token), advice=f">= {MIN_TOKEN_CHARS} chars")
    return token


# ---- the server ----------------------------------------------------------------------------


class ControlApi:
    """The routes: health, status, metrics, the operator's actions and the console, on an
    ``ApiServer`` (server.py) that owns the listener, its caps and the guards."""

    def __init__(self, target: ControlTarget, cfg: ApiConfig, token: str | None) -> None:
        self.target = target
        self.cfg = cfg
        self.server = ApiServer(cfg, token)
        self.app = self.server.app
        target.on_config.append(self._configured)
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
        r.add_post("/reading", self.reading)
        self.console = Console(target)  # type: ignore[arg-type]
        self.console.install(self.app)
        ViewersRoutes(target).install(self.app)  # type: ignore[arg-type]
        SpeechApi(target, cfg.body_timeout_s).install(self.app)  # type: ignore[arg-type]
        self.server.cors_origins = frozenset(target.config.speech_api.cors_origins)
        self.audio = AudioRoute(target.audio_fanout, lambda: self.server.token)
        self.audio.install(self.app)

    # The listener's figures, read by tests and tools through the API they start.
    @property
    def port(self) -> int | None:
        return self.server.port

    @property
    def connections(self) -> int:
        return self.server.connections

    @property
    def refused(self) -> int:
        return self.server.refused

    @property
    def idle_closed(self) -> int:
        return self.server.idle_closed

    async def start(self) -> None:
        try:
            await self.server.start()
        except ListenError as exc:
            raise ApiCannotListen(str(exc)) from None

    async def stop(self) -> None:
        await self.server.stop()

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
        listen = self.target.listener.status()["state"]
        extra = {"listen": listen} if listen != "off" else {}
        if problems:
            # 503, so a plain HTTP probe notices; the body says which part and why.
            body = {"status": "degraded", "reasons": problems, **extra}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ok", **extra})

    async def status(self, request: web.Request) -> web.Response:
        counts = self.server.counts()
        audio = {
            **self.target.audio_fanout.status(),
            "unauthorized": self.audio.unauthorized,
            "malformed": self.audio.malformed,
        }
        return web.json_response(
            {**self.target.status(), "api_connections": counts, "audio_listeners": audio}
        )

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

    async def reading(self, request: web.Request) -> web.Response:
        body = await read_body(request, ReadingBody, self.cfg.body_timeout_s)
        assert isinstance(body, ReadingBody)
        mode = body.mode.value if body.mode is not None else None
        return web.json_response({"reading": self.target.set_reading(mode, body.enabled)})

    async def reload(self, request: web.Request) -> web.Response:
        await read_body(request, Empty, self.cfg.body_timeout_s)
        if (closed := self._intake_closed()) is not None:
            return closed  # a reload now would tell systemd READY before the daemon is
        result = await self.target.reload()
        if result:
            return web.json_response({"reloaded": True, "changed": list(result.changed)})
        return error(422, "config rejected; the running config is kept", list(result.problems))

    def _configured(self, config: Any, token: str | None) -> None:
        """A reload was applied: its token and allowed pages take effect at once. A request is
        checked when it comes, but a live stream was checked once, when it opened: every open
        stream ends, and each page must come back with the new token."""
        if self.server.set_token(token):
            ended = self.console.end_streams("token") + self.audio.fanout.end_streams(
                "token changed"
            )
            log.info("api_streams_ended", reason="the token changed", streams=ended)
        self.server.cors_origins = frozenset(config.speech_api.cors_origins)
