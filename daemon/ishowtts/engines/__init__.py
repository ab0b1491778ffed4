"""Speech engines, found by entry point (group ``ishowtts.engines``)."""

from __future__ import annotations

from typing import Any

from .. import registry
from .base import Engine, EngineBroken, EngineError, Voice

__all__ = ["Engine", "EngineBroken", "EngineError", "Voice", "available", "build"]

GROUP = registry.ENGINES


def available() -> list[str]:
    return registry.names(GROUP)


def build(kind: str, options: Any = None) -> Engine:
    """An engine by name; ``options`` is its validated Options (None: its defaults)."""
    try:
        cls = registry.load(GROUP, kind)
    except LookupError as exc:
        raise ValueError(str(exc)) from None
    if options is None and hasattr(cls, "Options"):
        options = cls.Options()
    engine: Engine = cls(options)
    return engine
