"""The engine protocol: text + voice in, audio chunks out. The synth worker owns the engine and
calls it from its own thread only, so engines need not be thread-safe."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigInvalid, Temporary


class EngineError(Exception):
    """Synthesis of one utterance failed; the engine itself is still usable."""


class EngineBroken(EngineError):
    """The engine is unusable (device lost, out of memory): the worker rebuilds it."""


class WeightsUnavailable(EngineError, Temporary):
    """The engine's weights are neither local nor downloadable (offline, not cached): it cannot
    load at all. The message says which file is needed and how to provide it; the daemon may
    speak with a fallback engine instead. Temporary: the hub may be reachable on a later
    start."""


class WeightsUnusable(EngineError, ConfigInvalid):
    """The engine's weights are there but cannot work with this config: not a checkpoint, a
    truncated file, another model's or another vocabulary's weights. No restart fixes it, so
    without a fallback it is a config error (exit 2); ``option`` names the engine key to change
    and the message says how. Not a ValueError: those (a bad voice) stop a start even with a
    fallback, while a fallback can speak in place of unusable weights."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True, slots=True)
class Voice:
    """A voice to clone, as configured. Engines load and cache what they need from it."""

    name: str
    ref_audio: Path | None = None
    ref_text: str = ""
    speed: float = 1.0
    # The engine's own keys: an instance of its ``VoiceOptions`` model, validated at config
    # load (None: its defaults; an engine may also accept a plain mapping).
    options: Any = None


Progress = Callable[[str], None]

# A voice named "lang:<code>" (ISO 639-1) asks an engine that speaks many languages (eSpeak NG)
# for the whole line in that language: the daemon's fallback reads lines no voice speaks.
LANGUAGE_VOICE = "lang:"


@runtime_checkable
class Engine(Protocol):
    """Engines are built by their entry point (group ``ishowtts.engines``) as ``cls(options)``,
    ``options`` being an instance of the class's ``Options`` model (the YAML engine section).
    A class may also carry a ``VoiceOptions`` model: the keys of each voice beyond ref_audio,
    ref_text and speed, validated into ``Voice.options``; without one, such keys are errors."""

    name: str
    sample_rate: int

    def load(self, voices: Mapping[str, Voice], progress: Progress) -> None:
        """Load the model and every voice; raise ValueError naming a bad voice."""

    def set_voices(self, voices: Mapping[str, Voice]) -> None:
        """Replace the voice set (config reload) without reloading the model."""

    def warmup(self, progress: Progress) -> None:
        """Do whatever makes the first real request fast (compile, capture, caches)."""

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        """Yield mono float32 chunks at ``sample_rate``. The first chunk should come as soon
        as possible (streaming); chunks are already cross-faded and play back to back.
        ``speed`` multiplies the voice's speaking rate (the daemon raises it under a backlog):
        through the engine's own duration or rate control, never by resampling."""

    def describe(self) -> Mapping[str, Any]:
        """Device, precision and the like, for the start-up summary and /status."""

    def close(self) -> None: ...


def synthesize(engine: Engine, text: str, voice: str, speed: float = 1.0) -> Iterator[np.ndarray]:
    """``engine.synthesize``, at ``speed`` where the engine takes one (an engine written before
    ``speed`` joined the protocol speaks at its own rate)."""
    if speed != 1.0 and "speed" in inspect.signature(engine.synthesize).parameters:
        return engine.synthesize(text, voice, speed=speed)
    return engine.synthesize(text, voice)
