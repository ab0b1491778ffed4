"""The console's routes for what viewers hear: the reading mode and the pronunciation dictionary
(list, add or replace an entry, remove one, test a line: it is spoken through the dictionary).

Behind the API's usual guards and body limits; an entry is checked as the file's are, so the
console can never write a dictionary the daemon would refuse.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from pydantic import Field

from ..pipeline.pronounce import MAX_SAY, MAX_TERM, DictionaryError, parse_entry
from .http import Body, error, read_body

MAX_LISTED = 2000  # entries the console lists (a bigger dictionary is edited as a file)


class ViewersTarget(Protocol):
    """``ishowtts.app.daemon.Daemon``."""

    config: Any
    pipeline: Any

    async def say(self, text: str, user: str = "", voice: str = "") -> Any: ...


class EntryBody(Body):
    term: str = Field(min_length=1, max_length=MAX_TERM)
    say: str = Field("", max_length=MAX_SAY)
    regex: bool = False
    voices: list[str] = Field([], max_length=64)
    languages: list[str] = Field([], max_length=64)


class TermBody(Body):
    term: str = Field(min_length=1, max_length=MAX_TERM)


class TestBody(Body):
    text: str = Field(min_length=1, max_length=500)
    voice: str = Field("", max_length=64)
    speak: bool = True


class ViewersRoutes:
    def __init__(self, target: ViewersTarget) -> None:
        self.target = target

    @property
    def _timeout(self) -> float:
        return float(self.target.config.api.body_timeout_s)

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/dictionary", self.listing)
        r.add_post("/dictionary/entry", self.put)
        r.add_post("/dictionary/remove", self.remove)
        r.add_post("/dictionary/test", self.test)

    async def listing(self, request: web.Request) -> web.Response:
        pron = self.target.pipeline.pronunciation
        return web.json_response(
            {
                "entries": [e.as_dict() for e in pron.entries[:MAX_LISTED]],
                "total": len(pron.entries),
                "starter": len(pron) - len(pron.entries),
                "error": pron.error,
                "file": str(pron.path) if pron.path else None,
            }
        )

    async def put(self, request: web.Request) -> web.Response:
        body = await read_body(request, EntryBody, self._timeout)
        assert isinstance(body, EntryBody)
        raw = body.model_dump(exclude_defaults=True) | {"term": body.term, "say": body.say}
        return self._save(
            lambda rows: [r for r in rows if r["term"] != body.term] + [raw], body.term
        )

    async def remove(self, request: web.Request) -> web.Response:
        body = await read_body(request, TermBody, self._timeout)
        assert isinstance(body, TermBody)
        rows = [e.as_dict() for e in self.target.pipeline.pronunciation.entries]
        if not any(r["term"] == body.term for r in rows):
            return error(404, "no such entry")
        return self._save(lambda rows: [r for r in rows if r["term"] != body.term], body.term)

    def _save(self, change: Any, term: str) -> web.Response:
        pron = self.target.pipeline.pronunciation
        rows = change([e.as_dict() for e in pron.entries])
        try:
            for row in rows[-1:]:
                parse_entry(row)  # an added entry's own message, not "entry N: ..."
            total = pron.save(rows)
        except DictionaryError as exc:
            return error(422, "entry refused", str(exc))
        return web.json_response({"term": term, "entries": total})

    async def test(self, request: web.Request) -> web.Response:
        """The line as the dictionary makes it, and (speak) the line spoken the usual way."""
        body = await read_body(request, TestBody, self._timeout)
        assert isinstance(body, TestBody)
        voices = self.target.config.voices
        if body.voice and body.voice not in voices:
            return error(422, "invalid body", f"no voice named {body.voice!r}")
        voice = body.voice or self.target.config.routing.default
        said = self.target.pipeline.pronunciation.apply(body.text, voice)
        spoken = None
        if body.speak:
            try:
                event = await self.target.say(body.text, user="dictionary test", voice=voice)
            except RuntimeError as exc:  # no http connector: nothing can be said
                return error(409, "cannot speak", str(exc))
            spoken = event.id
        return web.json_response({"said": said, "id": spoken})
