"""Speech engines, found by entry point (group ``ishowtts.engines``)."""

from __future__ import annotations

from typing import Any

from .. import registry
from .base import (
    LANGUAGE_VOICE,
    Engine,
    EngineBroken,
    EngineError,
    Voice,
    WeightsUnavailable,
    WeightsUnusable,
    synthesize,
)

__all__ = [
    "LANGUAGE_VOICE",
    "Engine",
    "EngineBroken",
    "EngineError",
    "Voice",
    "WeightsUnavailable",
    "WeightsUnusable",
    "available",
    "build",
    "check_files",
    "check_voice",
    "engine_class",
    "synthesize",
]

GROUP = registry.ENGINES


def available() -> list[str]:
    return registry.names(GROUP)


def engine_class(kind: str) -> Any:
    try:
        return registry.load(GROUP, kind)
    except LookupError as exc:
        raise ValueError(str(exc)) from None


def build(kind: str, options: Any = None) -> Engine:
    """An engine by name; ``options`` is its validated Options (None: its defaults)."""
    cls = engine_class(kind)
    if options is None and hasattr(cls, "Options"):
        options = cls.Options()
    engine: Engine = cls(options)
    return engine


def check_files(kind: str, options: Any) -> dict[str, str]:
    """Model files the engine cannot get, by option name, where it checks (``cls.check_files``)."""
    check = getattr(engine_class(kind), "check_files", None)
    return dict(check(options)) if check is not None else {}


def check_voice(kind: str, options: Any, voice: Voice) -> None:
    """The engine's model-free checks of one voice (its clip, its transcript), where it has
    any (``cls.check_voice(voice, options)``); a ValueError names the problem."""
    check = getattr(engine_class(kind), "check_voice", None)
    if check is not None:
        check(voice, options)
