"""The F5-TTS engine: upstream model classes and checkpoints, our own inference path."""

from __future__ import annotations

__all__ = ["F5Engine"]


def __getattr__(name: str) -> object:
    # The engine pulls in torch; keep ``import ishowtts.engines.f5.textfront`` light.
    if name == "F5Engine":
        from .engine import F5Engine

        return F5Engine
    raise AttributeError(name)
