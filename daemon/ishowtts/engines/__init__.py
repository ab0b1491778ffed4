"""Speech engines, found by entry point (group ``ishowtts.engines``)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .base import Engine, EngineBroken, EngineError, Voice

__all__ = ["Engine", "EngineBroken", "EngineError", "Voice", "available", "build"]

GROUP = "ishowtts.engines"


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def build(kind: str, options: Any = None) -> Engine:
    """An engine by name; ``options`` is its validated Options (None: its defaults)."""
    for ep in entry_points(group=GROUP):
        if ep.name == kind:
            cls = ep.load()
            if options is None and hasattr(cls, "Options"):
                options = cls.Options()
            return cls(options)
    raise ValueError(f"unknown engine {kind!r}; installed: {', '.join(available()) or 'none'}")
