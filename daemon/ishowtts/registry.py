"""Plug-ins, found by entry point: the one place that asks ``importlib.metadata``.

A package adds a connector or an engine by declaring an entry point in its ``pyproject.toml``
(``[project.entry-points."ishowtts.connectors"]``, ``..."ishowtts.engines"``) naming a class;
a config's ``type`` picks it by the entry point's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

CONNECTORS = "ishowtts.connectors"
ENGINES = "ishowtts.engines"
GROUPS = (ENGINES, CONNECTORS)


def what(group: str) -> str:
    """A group in words, for messages: "connector", "engine"."""
    return group.rsplit(".", 1)[-1].removesuffix("s")


def installed(group: str) -> Iterator[EntryPoint]:
    yield from entry_points(group=group)


def names(group: str) -> list[str]:
    return sorted(ep.name for ep in installed(group))


def load(group: str, name: str) -> Any:
    """The class ``name`` stands for. LookupError: none installed by that name; anything else
    the import raises (a broken install) passes through."""
    for ep in installed(group):
        if ep.name == name:
            return ep.load()
    raise LookupError(f"no {what(group)} named {name!r}; installed: {', '.join(names(group))}")
