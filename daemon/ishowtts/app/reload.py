"""What a config reload changes, and whether a running daemon can apply it.

A reload is all or nothing: the new file is read and checked whole before anything changes.
Filters, templates, routing, voices, the queue, the player's device and volume, the connectors
and the API token apply live. What only a restart can change (the engine: its model is loaded;
the API's socket and limits: bound at start; the mixer's fade; the state files: locked and read
at start) refuses the whole reload, naming
the keys, so a reload never answers "reloaded" for something it did not do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..config import Config, PluginConfig

# Key paths (and everything under them) that a running daemon cannot change.
NEEDS_RESTART = (
    "engine",
    "api.enabled",
    "api.host",
    "api.port",
    "api.max_body_bytes",
    "api.idle_timeout_s",
    "api.body_timeout_s",
    "api.max_connections",
    "player.fade_ms",
    # The state files are opened at start (the mute list and the saved paid lines locked too).
    "viewer_voices.file",
    "dictionary.file",
    "filters.mute_file",
    "queue.pending_file",
)
_MISSING = object()


@dataclass
class ReloadResult:
    """A reload's outcome: applied (``changed``: the key paths that differ) or rejected
    (``problems``: one line each; the running config is kept)."""

    applied: bool
    changed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.applied


def plugin_view(entry: PluginConfig) -> dict[str, Any]:
    """A plug-in entry as compared across reloads: its type, whether on, its options."""
    options = entry.options
    dumped = options.model_dump() if isinstance(options, BaseModel) else dict(entry.raw)
    return {"type": entry.type, "enabled": entry.enabled, **dumped}


def _view(config: Config) -> dict[str, Any]:
    data = config.model_dump(exclude={"path", "connectors", "engine"})
    data["engine"] = plugin_view(config.engine)
    data["connectors"] = {c.name: plugin_view(c) for c in config.connectors}
    return data


def _key(part: Any) -> str:
    return str(getattr(part, "value", part))


def _diff(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping) and not prefix.startswith("connectors."):
        out: list[str] = []
        for k in sorted({*a, *b}, key=_key):
            out += _diff(a.get(k, _MISSING), b.get(k, _MISSING), f"{prefix}.{_key(k)}")
        return out
    return [] if a == b else [prefix]  # a connector counts as one key: it restarts whole


def changed_keys(old: Config, new: Config) -> list[str]:
    """Every key path whose value differs (a connector by name, as a whole)."""
    a, b = _view(old), _view(new)
    out: list[str] = []
    for section in sorted({*a, *b}):
        out += [k.lstrip(".") for k in _diff(a.get(section), b.get(section), section)]
    return out


def needing_restart(changed: list[str]) -> list[str]:
    return [k for k in changed if any(k == p or k.startswith(p + ".") for p in NEEDS_RESTART)]


def missing_sections(old: Config, new: Config) -> list[str]:
    """Top-level keys written in the running config's file and absent from the new one. A
    file cut short (a copy or an editor interrupted) loses its last sections; taking it would
    reset them to the defaults silently, so a reload asks for them to be written out."""
    return sorted(old.top_level_keys() - new.top_level_keys())
