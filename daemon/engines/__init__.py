"""Speech engines, found by entry point (group ``ishowtts.engines``)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from .base import Engine, EngineBroken, EngineError, Voice

__all__ = ["Engine", "EngineBroken", "EngineError", "Voice", "available", "build"]

GROUP = "ishowtts.engines"


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def build(kind: str, options: Mapping[str, Any]) -> Engine:
    for ep in entry_points(group=GROUP):
        if ep.name == kind:
            return ep.load()(options)
    raise ValueError(f"unknown engine {kind!r}; installed: {', '.join(available()) or 'none'}")
