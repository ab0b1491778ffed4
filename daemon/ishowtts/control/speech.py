"""An OpenAI-compatible speech server on the control API, so that other tools (Social Stream
Ninja's custom TTS, Open WebUI, SillyTavern, home-automation bridges) speak with our voices:

- ``POST /v1/audio/speech`` ``{model, input, voice, response_format, speed}`` → the audio,
  streamed (chunked) as the engine makes it: ``mp3``, ``wav`` or ``pcm``;
- ``GET /v1/audio/voices`` (Open WebUI's list: ``{"voices": [{"id", "name"}]}``),
  ``GET /v1/audio/models`` (Open WebUI's) and ``GET /v1/models`` (OpenAI's list).

A request is an utterance like a chat line: it waits in the queue under ``speech_api.priority``
and is made by the synth worker, the engine's only owner; its chunks come back here instead of
going to the room's speaker (``synth/responses.py``). It is received and closed in the ledger
like any line: spoken once its audio is sent, else expired/evicted/removed/failed with the
reason. Bounded: the input's length, and requests at once (429 past it). Its own errors have
OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``), which these clients read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Protocol

import structlog
from aiohttp import web
from pydantic import ConfigDict, Field

from ..audio.encode import CONTENT_TYPES, FORMATS, encoder
from ..events import ChatEvent, Kind, User, Utterance
from ..queue.ledger import Ledger, Terminal
from ..queue.scheduler import Scheduler
from ..synth.responses import PLATFORM, ResponseFailed, Responses, ResponseStream
from .http import Body, read_body

log = structlog.get_logger("ishowtts.control.speech")

MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")  # names clients send; every one is our engine
GONE_CHECK_S = 0.5  # how often a queued request looks whether its caller is still there


class SpeechTarget(Protocol):
    """What the speech routes use of ``ishowtts.app.daemon.Daemon``."""

    config: Any
    ready: asyncio.Event
    stopping: asyncio.Event
    ledger: Ledger
    scheduler: Scheduler
    responses: Responses


class SpeechBody(Body):
    # OpenAI's clients send fields of newer models (instructions, stream_format): not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str = Field("tts-1", max_length=128)  # any: the daemon has one engine
    input: str = Field(min_length=1)  # its length is checked against the config
    voice: str = Field("", max_length=128)
    response_format: str = Field("mp3", max_length=16)
    speed: float = Field(1.0, ge=0.25, le=4.0, allow_inf_nan=False)
    stream_format: str = Field("audio", max_length=16)


def openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None, **headers: str
) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers or None)


class SpeechApi:
    def __init__(self, target: SpeechTarget, body_timeout_s: float) -> None:
        self.target = target
        self.body_timeout_s = body_timeout_s

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/v1/audio/speech", self.speech)
        r.add_get("/v1/audio/voices", self.voices)
        r.add_get("/v1/audio/models", self.audio_models)
        r.add_get("/v1/models", self.models)

    # -- listings ------------------------------------------------------------------------------

    async def voices(self, request: web.Request) -> web.Response:
        names = list(self.target.config.voices)
        return web.json_response({"voices": [{"id": n, "name": n} for n in names]})

    async def audio_models(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"id": m, "name": m} for m in MODELS]})

    async def models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "ishowtts"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    # -- speech --------------------------------------------------------------------------------

    async def speech(self, request: web.Request) -> web.StreamResponse:
        cfg = self.target.config.speech_api
        if not cfg.enabled:
            return openai_error(404, "the speech endpoint is off (speech_api.enabled)")
        try:
            body = await read_body(request, SpeechBody, self.body_timeout_s)
        except web.HTTPException as exc:  # our JSON error, reshaped as OpenAI's
            return openai_error(exc.status, _message(exc))
        assert isinstance(body, SpeechBody)
        problem = self._check(body)
        if problem is not None:
            return problem
        if self.target.stopping.is_set() or not self.target.ready.is_set():
            state = "shutting down" if self.target.stopping.is_set() else "starting"
            return openai_error(503, f"the daemon is {state}", **{"Retry-After": "5"})
        responses = self.target.responses
        if len(responses.streams) >= cfg.max_requests:
            return openai_error(
                429,
                f"{len(responses.streams)} requests already waiting or being made "
                f"(speech_api.max_requests); try again shortly",
                code="rate_limit_exceeded",
                **{"Retry-After": "2"},
            )
        utt = self._queue(body, self._voice(body.voice))
        try:
            return await self._answer(request, responses.streams[utt.id], body.response_format)
        finally:
            responses.close(utt.id)

    def _check(self, body: SpeechBody) -> web.Response | None:
        cfg = self.target.config.speech_api
        if not body.input.strip():
            return openai_error(400, "input is blank", "input")
        if len(body.input) > cfg.max_input_chars:
            return openai_error(
                400,
                f"input is {len(body.input)} characters; at most {cfg.max_input_chars} "
                f"(speech_api.max_input_chars)",
                "input",
                "string_above_max_length",
            )
        if body.response_format not in FORMATS:
            return openai_error(
                400,
                f"response_format {body.response_format!r} is not served; "
                f"one of {', '.join(FORMATS)}",
                "response_format",
            )
        if body.stream_format != "audio":
            return openai_error(400, "stream_format: only 'audio' is served", "stream_format")
        if self._voice(body.voice) is None:
            voices = ", ".join(self.target.config.voices)
            return openai_error(
                400,
                f"no voice named {body.voice!r}; voices: {voices} "
                f"(or set speech_api.default_voice)",
                "voice",
            )
        return None

    def _voice(self, asked: str) -> Any:
        config = self.target.config
        if not asked:
            return config.routing.default
        if asked in config.voices:
            return asked
        return config.speech_api.default_voice or None

    def _queue(self, body: SpeechBody, voice: str) -> Utterance:
        """Received in the ledger, opened as a response, queued with the chat."""
        cfg = self.target.config.speech_api
        text = body.input.strip()
        user = User(id=PLATFORM, name=PLATFORM)
        event = ChatEvent(PLATFORM, "speech", Kind.SYSTEM, user, text=text, voice=voice)
        self.target.ledger.received(event)
        self.target.responses.open(event.id, play=cfg.play_in_room)
        utt = Utterance(
            event=event,
            text=text,
            voice=voice,
            priority=cfg.priority,
            deadline=event.received_mono + cfg.ttl_s,
            speaker=PLATFORM,
            speed=body.speed,
        )
        # Evicted at once (a full queue of more important lines): the ledger closes it, and
        # the response learns it through the ledger (Responses.on_ledger).
        self.target.scheduler.put(utt, time.monotonic())
        return utt

    async def _first(self, request: web.Request, stream: ResponseStream) -> Any:
        """The first chunk (None: no audio), waiting while the caller is still there; a caller
        gone while it waits takes the request out of the queue."""
        while True:
            waiting = asyncio.ensure_future(stream.next())
            done, _ = await asyncio.wait({waiting}, timeout=GONE_CHECK_S)
            if done:
                return waiting.result()
            waiting.cancel()
            transport = request.transport
            if transport is None or transport.is_closing():
                self._gone(stream.id)
                raise ConnectionResetError("the caller left while its request waited")

    def _gone(self, utterance_id: str) -> None:
        scheduler, ledger = self.target.scheduler, self.target.ledger
        if not scheduler.remove(lambda u: u.id == utterance_id, reason="client_gone"):
            ledger.close(utterance_id, Terminal.REMOVED, rule="client_gone")

    def _failed(self, utterance_id: str) -> None:
        """The engine failed on it and the caller has its answer: closed now, so that a
        fallback engine does not make it again for nobody (already closed: nothing)."""
        self.target.ledger.close(utterance_id, Terminal.FAILED, rule="engine")

    async def _answer(
        self, request: web.Request, stream: ResponseStream, fmt: str
    ) -> web.StreamResponse:
        try:
            chunk = await self._first(request, stream)
        except ResponseFailed as exc:
            self._failed(stream.id)
            return openai_error(503, f"the speech was not made: {exc}", **{"Retry-After": "5"})
        response = web.StreamResponse(
            headers={
                "Content-Type": CONTENT_TYPES[fmt],
                "X-Sample-Rate": str(stream.sample_rate),
                "Cache-Control": "no-store",
            }
        )
        response.enable_chunked_encoding()
        ledger, sent = self.target.ledger, 0
        try:
            await response.prepare(request)
            enc = encoder(fmt, stream.sample_rate)
            while chunk is not None:
                data = enc.encode(chunk)
                sent += len(data)
                await response.write(data)
                chunk = await stream.next()
            await response.write(enc.finish())
            await response.write_eof()
        except ResponseFailed as exc:  # the status is sent: all that is left is to cut it short
            log.warning("speech_cut_short", id=stream.id, why=str(exc), sent_bytes=sent)
            self._failed(stream.id)
            if request.transport is not None:
                request.transport.abort()
            return response
        except (ConnectionError, asyncio.CancelledError):
            self._gone(stream.id)
            raise
        audio_s = round(stream.samples / stream.sample_rate, 3) if stream.sample_rate else 0.0
        ledger.close(stream.id, Terminal.SPOKEN, to="api", format=fmt, audio_s=audio_s)
        return response


def _message(exc: web.HTTPException) -> str:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        body = json.loads(exc.text or "")
        detail = body.get("detail")
        return f"{body['error']}: {detail}" if detail else str(body["error"])
    return exc.reason
