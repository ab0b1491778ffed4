"""The public plug-in API: a connector written outside the repository (tests/plugin_example.py)
needs only ``ishowtts.connectors``, registers by entry point and runs through the daemon."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from ishowtts import registry
from ishowtts.app.daemon import Daemon
from ishowtts.config import load_config
from ishowtts.confload import ConfigError

EXAMPLE = Path(__file__).with_name("plugin_example.py")
ENTRY = EntryPoint(
    "announcements", "tests.plugin_example:AnnouncementConnector", registry.CONNECTORS
)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example as if its package declared the entry point."""
    real = registry.installed

    def with_example(group: str) -> Iterator[EntryPoint]:
        yield from real(group)
        if group == registry.CONNECTORS:
            yield ENTRY

    monkeypatch.setattr(registry, "installed", with_example)


def test_the_example_imports_only_the_public_api() -> None:
    tree = ast.parse(EXAMPLE.read_text())
    ours = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ishowtts")
    }
    ours |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("ishowtts")
    }
    assert ours == {"ishowtts.connectors"}


def config(tmp_path: Path, connector: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "engine: {type: tone}\n"
        f"connectors: [{connector}]\n"
        "player: {device: none, lookahead_s: 0.5}\n"
        "filters: {rate: null}\n"
        "api: {enabled: false}\n"
    )
    return path


@pytest.mark.usefixtures("installed")
def test_an_outside_connector_runs_through_the_daemon(tmp_path: Path) -> None:
    lines = '{type: announcements, lines: ["welcome to the stream", "giveaway at nine"]}'
    daemon = Daemon(load_config(config(tmp_path, lines)), until_idle=True, shutdown_grace_s=2)
    spoken: list[str] = []
    daemon.ledger.listeners.append(
        lambda event, state, fields: (
            spoken.append(event.text) if state is not None and state.value == "spoken" else None
        )
    )
    assert asyncio.run(asyncio.wait_for(daemon.run(), 60)) == 0
    assert spoken == ["welcome to the stream", "giveaway at nine"]


@pytest.mark.usefixtures("installed")
def test_its_options_are_validated_like_ours(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(config(tmp_path, "{type: announcements, lines: [], every_s: -1}"))
    text = "\n".join(err.value.problems)
    assert "connectors[0].lines" in text and "connectors[0].every_s" in text
    assert "config.yaml:2" in text
