"""Config reload on a running daemon (tone engine, the real player on the PulseAudio null sink,
the control API over real HTTP): what can change live changes, what cannot is refused by name,
and a reload is all or nothing, ending in one log line."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from ishowtts.audio.null_output import NullOutput
from ishowtts.audio.portaudio_output import PortAudioOutput
from ishowtts.connectors import ConnectorState
from ishowtts.engines import Engine
from ishowtts.engines.tone import ToneEngine
from tests.servers.control import Running, serve
from tests.servers.util import until

pytestmark = pytest.mark.audio

OLD_TOKEN = "the-old-token-0123456789abcdef"
NEW_TOKEN = "the-new-token-fedcba9876543210"

BASE = {
    "engine": "{type: tone}",
    "connectors": "[]",
    "player": "{device: pulse, lookahead_s: 1.0}",
    "filters": "{block_keywords: [spam]}",
    "api": f'{{host: "127.0.0.1", port: 0, token: "{OLD_TOKEN}"}}',
}


def write(path: Path, **sections: str) -> Path:
    merged = {**BASE, **sections}
    path.write_text("".join(f"{k}: {v}\n" for k, v in merged.items() if v is not None))
    return path


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, engine_factory: Callable[[], Engine] | None = None
) -> AsyncIterator[Running]:
    async with serve(write(tmp_path / "config.yaml"), engine_factory=engine_factory) as r:
        yield r


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_rotated_token_replaces_the_old_one(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        assert (await r.call("GET", "/status", **bearer(OLD_TOKEN)))[0] == 200
        api = f'{{host: "127.0.0.1", port: 0, token: "{NEW_TOKEN}"}}'
        write(tmp_path / "config.yaml", api=api)
        status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert (status, body) == (200, {"reloaded": True, "changed": ["api.token"]})
        assert (await r.call("GET", "/status", **bearer(OLD_TOKEN)))[0] == 401
        assert (await r.call("GET", "/status", **bearer(NEW_TOKEN)))[0] == 200


async def test_a_rotated_token_ends_the_streams_opened_with_the_old_one(
    tmp_path: Path, pulse: Any
) -> None:
    """A live stream was authenticated once, when it opened: rotating the token ends it (it
    went on carrying every record, chat text and user ids, to the old token's holder)."""
    async with running(tmp_path) as r:
        async with r.session.get(r.base + "/events", headers=bearer(OLD_TOKEN)) as stream:
            assert stream.status == 200
            await until(lambda: r.daemon.feed.subscribers == 1, 10, "the stream")
            api = f'{{host: "127.0.0.1", port: 0, token: "{NEW_TOKEN}"}}'
            write(tmp_path / "config.yaml", api=api)
            status, _, _ = await r.call("POST", "/reload", **bearer(NEW_TOKEN + "x"))
            assert status == 401  # the reload itself needs the token in force
            status, _, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
            assert status == 200
            rest = await asyncio.wait_for(stream.content.read(), 10)  # ends, not held open
            assert b"event: lagged" not in rest
        assert r.daemon.feed.subscribers == 0
        async with r.session.get(r.base + "/events", headers=bearer(OLD_TOKEN)) as again:
            assert again.status == 401
        async with r.session.get(r.base + "/events", headers=bearer(NEW_TOKEN)) as fresh:
            assert fresh.status == 200


async def test_failover_settings_apply_live(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        assert r.daemon.worker.failover.fail_limit == 3
        write(tmp_path / "config.yaml", failover="{fail_limit: 5, retry_first_s: 30}")
        status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert status == 200
        assert body["changed"] == ["failover.fail_limit", "failover.retry_first_s"]
        assert r.daemon.worker.failover == r.daemon.config.failover
        assert (r.daemon.worker.failover.fail_limit, r.daemon.worker.failover.retry_first_s) == (
            5,
            30.0,
        )


@pytest.mark.parametrize(
    ("sections", "needs"),
    [
        ({"engine": "{type: tone, seconds_per_char: 0.1}"}, "engine.seconds_per_char"),
        ({"engine": "{type: tone, sample_rate: 48000}"}, "engine.sample_rate"),
        (
            {"api": f'{{host: "127.0.0.1", port: 18765, token: "{OLD_TOKEN}"}}'},
            "api.port",
        ),
        ({"player": "{device: pulse, lookahead_s: 1.0, fade_ms: 20}"}, "player.fade_ms"),
    ],
    ids=["engine option", "sample rate", "api port", "fade"],
)
async def test_what_needs_a_restart_is_refused_by_name(
    tmp_path: Path, pulse: Any, sections: dict[str, str], needs: str
) -> None:
    async with running(tmp_path) as r:
        before = r.daemon.config
        # A live change in the same file is not applied either: all or nothing.
        write(tmp_path / "config.yaml", filters="{block_keywords: [eggs]}", **sections)
        status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert status == 422
        assert body["detail"] == [f"needs a restart: {needs}"]
        assert r.daemon.config is before
        assert r.daemon.pipeline.config.filters.block_keywords == ["spam"]


async def test_a_new_state_file_is_refused_not_ignored(tmp_path: Path, pulse: Any) -> None:
    """The mute list and the saved paid lines are locked and read at start: a reload naming
    other files says it needs a restart rather than answering "reloaded" and keeping the old."""
    async with running(tmp_path) as r:
        mutes, saved = r.daemon.mutes.path, r.daemon.pending_file
        write(
            tmp_path / "config.yaml",
            filters="{block_keywords: [spam], mute_file: other-mutes.json}",
            queue="{pending_file: other-pending.json}",
        )
        status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert status == 422
        assert body["detail"] == ["needs a restart: filters.mute_file, queue.pending_file"]
        assert (r.daemon.mutes.path, r.daemon.pending_file) == (mutes, saved)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the file is empty"),
        ("# engine: {type: tone}\n", "the file is empty"),
        # cut short after its second line: later sections are gone, not reset to defaults
        ("engine: {type: tone}\nconnectors: []\n", "api, filters, player: in the running"),
    ],
    ids=["empty", "comments only", "cut short"],
)
async def test_an_empty_or_truncated_file_is_rejected(
    tmp_path: Path, pulse: Any, text: str, problem: str
) -> None:
    async with running(tmp_path) as r:
        before = r.daemon.config
        (tmp_path / "config.yaml").write_text(text)
        with structlog.testing.capture_logs() as logs:
            status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert status == 422 and problem in body["detail"][0], body
        assert r.daemon.config is before
        assert [e["event"] for e in logs if e["event"].startswith("reload")] == ["reload_rejected"]


class FailingVoices(ToneEngine):
    """The tone engine whose voice reload fails as a device fault would (not a ValueError)."""

    def set_voices(self, voices: Any) -> None:
        if self.voices:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        super().set_voices(voices)


async def test_a_reload_failing_with_any_error_changes_nothing(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, engine_factory=FailingVoices) as r:
        before = r.daemon.config
        write(tmp_path / "config.yaml", filters="{block_keywords: [eggs]}")
        with structlog.testing.capture_logs() as logs:
            status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert status == 422
        assert body["detail"] == [
            "RuntimeError: CUDA error: an illegal memory access was encountered"
        ]
        assert r.daemon.config is before
        assert r.daemon.pipeline.config.filters.block_keywords == ["spam"]
        outcome = [e for e in logs if e["event"].startswith("reload")]
        assert [e["event"] for e in outcome] == ["reload_rejected"]


async def test_connectors_are_added_changed_and_removed_live(tmp_path: Path, pulse: Any) -> None:
    for name, text in (("chat.jsonl", "first line"), ("chat2.jsonl", "second line")):
        line = {"t": 0, "kind": "danmaku", "user": {"id": "1", "name": "a"}, "text": text}
        (tmp_path / name).write_text(json.dumps(line) + "\n")
    async with running(tmp_path) as r:
        http = r.daemon.connectors[0]
        write(tmp_path / "config.yaml", connectors="[{type: replay, path: chat.jsonl}]")
        status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert (status, body) == (200, {"reloaded": True, "changed": ["connectors.replay"]})
        ledger = r.daemon.ledger
        await until(lambda: ledger.terminal_counts[("danmaku", "spoken")] == 1, 20, "spoken")
        replay = next(c for c in r.daemon.connectors if c.name == "replay")
        assert r.daemon.connectors[0] is http  # untouched: same instance, still connected
        # Changed: the old instance stops, a new one starts with the new options.
        write(tmp_path / "config.yaml", connectors="[{type: replay, path: chat2.jsonl}]")
        assert (await r.call("POST", "/reload", **bearer(OLD_TOKEN)))[0] == 200
        await until(lambda: ledger.terminal_counts[("danmaku", "spoken")] == 2, 20, "respoken")
        assert replay not in r.daemon.connectors
        assert replay.state in (ConnectorState.STOPPED, ConnectorState.FINISHED)
        # Removed.
        write(tmp_path / "config.yaml")
        status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert (status, body) == (200, {"reloaded": True, "changed": ["connectors.replay"]})
        assert [c.name for c in r.daemon.connectors] == ["http"]
        _, status_body, _ = await r.call("GET", "/status", **bearer(OLD_TOKEN))
        assert list(status_body["connectors"]) == ["http"]


async def test_the_output_device_moves_live_and_a_bad_one_is_refused(
    tmp_path: Path, pulse: Any
) -> None:
    async with running(tmp_path) as r:
        player = r.daemon.player
        assert player is not None and player.reopens == 0
        write(tmp_path / "config.yaml", player="{device: no-such-sink, lookahead_s: 1.0}")
        status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert status == 422 and "no-such-sink" in body["detail"][0]
        assert player.cfg.device == "pulse"
        write(tmp_path / "config.yaml", player="{device: default, lookahead_s: 1.0}")
        status, body, _ = await r.call("POST", "/reload", **bearer(OLD_TOKEN))
        assert (status, body) == (200, {"reloaded": True, "changed": ["player.device"]})
        await until(lambda: player.reopens == 1 and player.state != "reopening", 20, "reopened")
        assert player.output.cfg.device == "default"  # type: ignore[attr-defined]
        status, _, _ = await r.call(
            "POST", "/say", {"text": "on the new device"}, **bearer(OLD_TOKEN)
        )
        ledger = r.daemon.ledger
        await until(lambda: ledger.terminal_counts[("system", "spoken")] == 1, 20, "spoken")


async def test_the_output_can_move_to_no_device_and_back(tmp_path: Path, pulse: Any) -> None:
    """player.device none (a GPU server without a sound card) is an output like the others."""
    async with running(tmp_path) as r:
        player = r.daemon.player
        assert player is not None
        write(tmp_path / "config.yaml", player="{device: none, lookahead_s: 1.0}")
        assert (await r.call("POST", "/reload", **bearer(OLD_TOKEN)))[0] == 200
        await until(lambda: isinstance(player.output, NullOutput), 20, "on no device")
        await until(lambda: player.state != "reopening", 20, "reopened")
        write(tmp_path / "config.yaml")
        assert (await r.call("POST", "/reload", **bearer(OLD_TOKEN)))[0] == 200
        await until(lambda: isinstance(player.output, PortAudioOutput), 20, "back on pulse")
        await until(lambda: player.reopens == 2 and player.state != "reopening", 20, "reopened")
        await r.call("POST", "/say", {"text": "back on the sink"}, **bearer(OLD_TOKEN))
        ledger = r.daemon.ledger
        await until(lambda: ledger.terminal_counts[("system", "spoken")] == 1, 20, "spoken")
