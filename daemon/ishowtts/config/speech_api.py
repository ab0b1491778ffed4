"""The config section of the OpenAI-style speech endpoint (``POST /v1/audio/speech``, served by
``control/speech.py``). config.py holds only its field."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..confload import Section

# What OpenAI allows for ``input``; clients split longer texts themselves.
OPENAI_MAX_INPUT = 4096


class SpeechApiConfig(Section):
    enabled: bool = True
    # Its place in the queue beside chat (danmaku 20, gifts 30, super chats 50, system 60):
    # by default a request waits its turn with chat lines, so other tools never starve the room.
    priority: int = Field(20, ge=0, le=100)
    # A request still queued after this long is answered 503 (expired) instead of made.
    ttl_s: float = Field(60.0, gt=0, le=3600)
    max_input_chars: int = Field(OPENAI_MAX_INPUT, ge=1, le=OPENAI_MAX_INPUT)
    # Requests queued or being made at once; past it a newcomer gets 429 with Retry-After.
    max_requests: int = Field(4, ge=1, le=64)
    # The voice for a ``voice`` the config does not have (OpenAI's "alloy", "nova"... that
    # clients send by default); empty: such a request is refused with the list of voices. An
    # empty ``voice`` gets routing.default.
    default_voice: str = Field("", max_length=64)
    # The answer is audio for the caller, not a line for the room: true also plays it there.
    play_in_room: bool = False
    # Web pages allowed to call /v1/ from a browser (CORS), e.g. Social Stream Ninja's dock:
    # "https://socialstream.ninja". Any other page's request is refused as cross-site.
    cors_origins: list[str] = Field([], max_length=32)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"an origin is scheme://host[:port], without a path: {origin!r}")
        return [o.lower() for o in origins]
