"""The ``bilibili-open`` connector: the official live open platform (直播开放平台).

The streamer's 身份码 (auth code) starts a session of the operator's app (``/v2/app/start``),
which names the WebSocket servers and the auth body for them (same binary protocol as the web
client). The session lives while the app heartbeats (``/v2/app/heartbeat``, every 20 s; the
platform ends sessions that miss them) and ends with ``/v2/app/end`` when the connector stops.
A socket that drops is reconnected on the same session; a session the platform ends
(``LIVE_OPEN_PLATFORM_INTERACTION_END``, or a heartbeat answered 7003) is started again.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp
from pydantic import Field

from ishowtts.connectors import AuthFailed, ConnectorContext, GiveUp, SessionEnded, short

from .api import Target
from .client import LiveSocketConnector, SocketOptions
from .open_commands import OpenCommandMapper
from .openapi import BASE, AppSession, OpenPlatform, OpenPlatformError

MAX_SOCKET_MISSES = 3  # failed sockets in a row on one session before starting a new one


class BilibiliOpenOptions(SocketOptions):
    app_id: int = Field(gt=0)  # the project id from the open platform's developer console
    # Names of environment variables holding the secrets; their values are never logged.
    auth_code_env: str = "BILIBILI_AUTH_CODE"  # the streamer's 身份码
    access_key_id_env: str = "BILIBILI_ACCESS_KEY_ID"
    access_key_secret_env: str = "BILIBILI_ACCESS_KEY_SECRET"
    api_base: str = BASE  # the open platform's HTTP host (tests: a local server)
    app_heartbeat_s: float = Field(20.0, gt=0)  # the platform ends a session silent for ~60 s
    http_timeout_s: float = Field(10.0, gt=0)


class BilibiliOpenConnector(LiveSocketConnector):
    Options = BilibiliOpenOptions

    def __init__(self, name: str, options: BilibiliOpenOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)
        self.options: BilibiliOpenOptions = options
        self.mapper = OpenCommandMapper(memory=options.dedupe_memory, mirror=options.mirror)
        self.app: AppSession | None = None
        self._api: OpenPlatform | None = None
        self._beat: asyncio.Task[None] | None = None
        self._misses = 0  # sockets of this session that failed before being accepted

    async def session(self, http: aiohttp.ClientSession) -> None:
        accepted = self.counters["sockets_accepted"]
        try:
            await super().session(http)
        except AuthFailed:
            # The socket refused this session's auth body: the session is no good; a new one.
            await self._drop_app(http, "socket auth refused")
            raise
        except (SessionEnded, aiohttp.ClientError, OSError, asyncio.TimeoutError):
            if self.app is not None and self.counters["sockets_accepted"] == accepted:
                self._misses += 1
                if self._misses >= MAX_SOCKET_MISSES:  # its servers may be gone: a new one
                    await self._drop_app(http, f"{self._misses} sockets failed")
            raise

    def connected(self, **why: object) -> None:
        self._misses = 0
        self.counters["sockets_accepted"] += 1
        super().connected(**why)

    async def _drop_app(self, http: aiohttp.ClientSession, why: str) -> None:
        """Ends the current session on the platform (if any) so the next attempt starts one."""
        if self.app is not None:
            self.log.info("bilibili_open_restart", game_id=self.app.game_id, why=why)
            await self.closing(http)

    def _secrets(self) -> tuple[str, str, str]:
        o = self.options
        names = (o.auth_code_env, o.access_key_id_env, o.access_key_secret_env)
        values = tuple(os.environ.get(n, "").strip() for n in names)
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        if missing:
            raise GiveUp(f"set ${', $'.join(missing)} (the 身份码 and the app's access key)")
        return values[0], values[1], values[2]

    async def _target(self, http: aiohttp.ClientSession) -> Target:
        if self.app is None:
            await self._start(http)
        app = self.app
        assert app is not None
        return Target(app.room_id, app.urls, token="", auth_body=app.auth_body)

    async def _start(self, http: aiohttp.ClientSession) -> None:
        o = self.options
        code, key_id, secret = self._secrets()
        if self._api is None:
            self._api = OpenPlatform(http, key_id, secret, o.api_base, o.http_timeout_s)
        try:
            app = await self._api.start(code, o.app_id)
        except OpenPlatformError as exc:
            self.counters[f"app_error:{exc.code}"] += 1
            self.log.warning("bilibili_open_start_failed", code=exc.code, error=str(exc))
            if exc.fatal:
                raise GiveUp(str(exc)) from None
            self.wait_at_least(min(exc.retry_after, o.backoff_max_s))
            raise SessionEnded(str(exc)) from None
        self.app = app
        self.room = str(app.room_id)
        self.mapper.room = self.room
        self.counters["app_starts"] += 1
        self.log.info(
            "bilibili_open_started", room_id=app.room_id, game_id=app.game_id,
            anchor=app.anchor_name, servers=len(app.urls),
        )  # fmt: skip
        self._stop_beat()
        self._beat = asyncio.create_task(self._app_heartbeat(app), name=f"app-beat:{self.name}")

    def _stop_beat(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    async def _app_heartbeat(self, app: AppSession) -> None:
        assert self._api is not None
        while True:
            await asyncio.sleep(self.options.app_heartbeat_s)
            try:
                await self._api.heartbeat(app.game_id)
                self.counters["app_heartbeats"] += 1
            except OpenPlatformError as exc:
                self.counters[f"app_error:{exc.code}"] += 1
                self.log.warning("bilibili_open_heartbeat_failed", code=exc.code, error=str(exc))
                if exc.code == 7003:  # the session is over: start again
                    await self._session_over(app, "heartbeat expired")
                    return
            except Exception as exc:  # the beat must go on, whatever one answer was
                # The next beat may get through; the platform allows a few misses. A task that
                # died here would end the session silently ~60 s later.
                self.counters["app_heartbeat_errors"] += 1
                self.log.info("bilibili_open_heartbeat_error", error=short(exc))

    async def _session_over(self, app: AppSession, why: str) -> None:
        """The platform ended ``app``: forget it and drop the socket, so the loop starts anew."""
        if self.app is not app:
            return
        self.app = None
        self.counters["app_ended_by_platform"] += 1
        self.log.warning("bilibili_open_session_ended", game_id=app.game_id, why=why)
        ws = self._ws
        if ws is not None:
            await ws.close()

    def on_notice(self, note: str) -> None:
        if note.startswith("interaction_end:"):
            app = self.app
            if app is not None and note.split(":", 1)[1] in (app.game_id, ""):
                self.app = None
                self._stop_beat()
                self.counters["app_ended_by_platform"] += 1
                self.log.warning("bilibili_open_session_ended", game_id=app.game_id, why=note)
                raise SessionEnded("the platform ended the session")
            self.counters["notice:interaction_end_other"] += 1
            return
        super().on_notice(note)

    async def closing(self, http: aiohttp.ClientSession) -> None:
        self._stop_beat()
        self._misses = 0
        app, self.app = self.app, None
        if app is None or self._api is None:
            return
        # Without /v2/app/end the room cannot start a new session until this one times out.
        try:
            await asyncio.wait_for(self._api.end(self.options.app_id, app.game_id), 5.0)
            self.counters["app_ends"] += 1
            self.log.info("bilibili_open_ended", game_id=app.game_id)
        except (OpenPlatformError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            self.log.warning("bilibili_open_end_failed", error=str(exc)[:200])
