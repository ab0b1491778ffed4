"""The replay connector: the JSONL format, timing, bad lines, recalls, looping."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ishowtts.connectors import ConnectorContext, ConnectorState
from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.replay import (
    ReplayConnector,
    ReplayError,
    ReplayOptions,
    demo_path,
    parse_line,
)


def test_parse_full_line() -> None:
    line = json.dumps(
        {
            "t": 1.25,
            "kind": "gift",
            "user": {"id": 42, "name": "alice", "guard": 3, "medal_level": 7, "moderator": True},
            "gift": "小心心",
            "count": 5,
            "amount": 0.5,
            "id": "abc",
        }
    )
    t, event = parse_line(line, "bilibili", "123")
    assert t == 1.25
    assert isinstance(event, ChatEvent)
    assert event.kind is Kind.GIFT and event.platform == "bilibili" and event.room == "123"
    assert event.user.id == "42" and event.user.guard_level == 3 and event.user.is_moderator
    assert (event.gift_name, event.gift_count, event.amount, event.raw_id) == (
        "小心心",
        5,
        0.5,
        "abc",
    )


def test_parse_recall() -> None:
    _, item = parse_line('{"t": 2, "kind": "recall", "id": "m-1"}', "replay", "r")
    assert item == Retraction("replay", raw_ids=("m-1",))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"t": -1, "text": "x"}', "'t' must be a finite non-negative number"),
        ('{"t": "soon", "text": "x"}', "'t' must be a finite non-negative number"),
        ('{"t": 1e400, "text": "x"}', "'t' must be a finite non-negative number, got inf"),
        ('{"t": NaN, "text": "x"}', "'t' must be a finite non-negative number, got nan"),
        ('{"kind": "gift", "amount": "Infinity"}', "'amount' must be a finite"),
        ('{"kind": "gift", "amount": -5}', "'amount' must be a finite"),
        ('{"kind": "gift", "count": 0}', "'count' must be a whole number from 1"),
        ('{"kind": "shout", "text": "x"}', "unknown kind 'shout'"),
        ('{"kind": "recall"}', "a recall needs"),
        ('{"user": "bob"}', "'user' must be an object"),
        ('{"count": "many", "kind": "gift"}', "'count' must be a whole number"),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(ReplayError, match=message):
        parse_line(line, "replay", "r")


def test_null_fields_are_empty_not_none() -> None:
    line = '{"kind": "danmaku", "user": {"id": 5, "name": null}, "text": null, "id": null}'
    _, event = parse_line(line, "replay", "r")
    assert event.text == "" and event.user.name == "" and event.user.id == "5"
    assert event.raw_id == ""


def _connector(tmp_path: Path, lines: list[str], **options: object) -> ReplayConnector:
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    opts = ReplayOptions(path="chat.jsonl", **options)
    return ReplayConnector("r", opts, ConnectorContext(base_dir=tmp_path))


async def test_replays_with_timing_and_skips_bad_lines(tmp_path: Path) -> None:
    lines = [
        '{"t": 0.0, "text": "first", "user": {"id": "1", "name": "a"}}',
        "garbage",
        '{"t": 0.4, "text": "second", "user": {"id": "2", "name": "b"}}',
        '{"t": 0.6, "kind": "recall", "id": "x"}',
    ]
    connector = _connector(tmp_path, lines, speed=2.0)
    started = time.monotonic()
    await connector.start()
    items = [(time.monotonic() - started, item) async for item in connector]
    assert [type(i).__name__ for _, i in items] == ["ChatEvent", "ChatEvent", "Retraction"]
    assert [i.text for _, i in items[:2]] == ["first", "second"]
    # speed 2: t=0.4 arrives at 0.2 s, not before; received_mono is the replay time
    assert items[1][0] >= 0.19
    assert items[1][1].received_mono >= started + 0.19
    assert connector.counters["malformed"] == 1
    assert connector.state is ConnectorState.FINISHED


async def test_loop_repeats_the_log(tmp_path: Path) -> None:
    connector = _connector(tmp_path, ['{"t": 0, "text": "hi"}'], loop=True, speed=100.0)
    await connector.start()
    seen = []
    async for item in connector:
        seen.append(item)
        if len(seen) == 3:
            break
    await connector.stop()
    assert len({i.id for i in seen}) == 3  # each replayed event is a new event
    assert connector.state is ConnectorState.STOPPED


async def test_missing_file_fails_the_connector_not_the_daemon(tmp_path: Path) -> None:
    connector = ReplayConnector(
        "r", ReplayOptions(path="nope.jsonl"), ConnectorContext(base_dir=tmp_path)
    )
    await connector.start()
    assert [i async for i in connector] == []
    assert connector.state is ConnectorState.FAILED


def test_bundled_demo_has_every_kind_and_parses() -> None:
    kinds = set()
    for line in demo_path().read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            _, item = parse_line(line, "replay", "demo")
            kinds.add(item.kind if isinstance(item, ChatEvent) else "recall")
    assert kinds == set(Kind) | {"recall"}


# -- hostile or broken files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # Wrong-typed fields are bad lines, not read aloud as Python reprs or truncated.
        ('{"text": {"a": 1}}', "'text' must be a string, got {'a': 1}"),
        ('{"text": true}', "'text' must be a string, got True"),
        ('{"text": 5}', "'text' must be a string, got 5"),
        ('{"kind": "gift", "count": 2.7}', "'count' must be a whole number"),
        ('{"kind": "gift", "count": "3"}', "'count' must be a whole number"),
        ('{"kind": "gift", "count": true}', "'count' must be a whole number"),
        ('{"user": {"name": ["x"]}}', "'user.name' must be a string"),
        ('{"user": {"id": {"x": 1}}}', "'user.id' must be a string or an integer"),
        ('{"user": {"guard": "3"}}', "'user.guard' must be a whole number"),
        ('{"user": {"moderator": "no"}}', "'user.moderator' must be true or false"),
        ('{"sticker": 1}', "'sticker' must be true or false"),
        ('{"gift": 7, "kind": "gift"}', "'gift' must be a string"),
        ('{"kind": "gift", "amount": true}', "'amount' must be a finite non-negative number"),
        ('{"kind": "gift", "amount": "12"}', "'amount' must be a finite non-negative number"),
        ('{"kind": "recall", "id": {"a": 1}}', "'id' must be"),
        # Numbers no chat has: too many digits, too large for a float, absurd counts.
        ('{"t": 1' + "0" * 5000 + "}", "not JSON"),
        ('{"t": 1' + "0" * 400 + "}", "'t' must be a finite non-negative number"),
        ('{"kind": "gift", "amount": 1' + "0" * 400 + "}", "'amount' must be a finite"),
        ('{"kind": "gift", "count": 1' + "0" * 400 + "}", "'count' must be a whole number"),
        ('{"user": {"guard": 1' + "0" * 30 + "}}", "'user.guard' must be a whole number"),
        # Nesting deep enough to exhaust the parser's recursion.
        ('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}", "not JSON"),
    ],
)
def test_hostile_lines_are_bad_lines(line: str, message: str) -> None:
    with pytest.raises(ReplayError, match=re.escape(message)):
        parse_line(line, "replay", "r")


def test_integral_float_count_and_numeric_user_id_are_fine() -> None:
    _, event = parse_line('{"kind": "gift", "count": 3.0, "user": {"id": 7}}', "replay", "r")
    assert isinstance(event, ChatEvent) and event.gift_count == 3 and event.user.id == "7"


async def test_bad_bytes_bom_and_long_lines_cost_one_line_each(tmp_path: Path) -> None:
    good = [json.dumps({"t": 0, "text": f"line {i}"}).encode() for i in range(4)]
    data = (
        b"\xef\xbb\xbf" + good[0] + b"\n"  # a BOM before line 1 (Windows editors)
        + b'{"t": 0, "text": "bad \xff byte"}\n'  # one invalid UTF-8 byte
        + good[1] + b"\r\n"
        + b'{"t": 0, "text": "' + b"x" * 3_000_000 + b'"}\n'  # past the line bound
        + good[2] + b"\n"
        + b'{"t": 0, "text": "' + b"y" * 3_000_000  # past the bound, no newline at the end
        + b"\n" + good[3]
    )  # fmt: skip
    (tmp_path / "chat.jsonl").write_bytes(data)
    connector = ReplayConnector(
        "r", ReplayOptions(path="chat.jsonl"), ConnectorContext(base_dir=tmp_path)
    )
    await connector.start()
    items = [item async for item in connector]
    assert [i.text for i in items] == ["line 0", "line 1", "line 2", "line 3"]
    assert connector.counters["malformed"] == 3
    assert connector.state is ConnectorState.FINISHED


@pytest.mark.parametrize(
    ("content", "bad"), [("", 0), ("# comments only\n\n# more\n", 0), ("garbage\n{bad\n[1]\n", 3)]
)
def test_loop_with_no_valid_line_stops_instead_of_spinning(
    tmp_path: Path, content: str, bad: int
) -> None:
    import asyncio
    import threading

    (tmp_path / "chat.jsonl").write_text(content, encoding="utf-8")
    connector = ReplayConnector(
        "r", ReplayOptions(path="chat.jsonl", loop=True), ConnectorContext(base_dir=tmp_path)
    )
    seen: list[object] = []

    async def main() -> None:
        await connector.start()
        seen.extend([item async for item in connector])

    # In a thread of its own: the old connector never yielded to its event loop, so a hang here
    # must fail the test rather than freeze it.
    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    with capture_logs() as logs:
        thread.start()
        thread.join(timeout=20)
    assert not thread.is_alive(), "the looping replay never finished"
    assert seen == [] and connector.state is ConnectorState.FAILED
    failed = [e for e in logs if e["event"] == "connector_state" and e["state"] == "failed"]
    assert failed and failed[0]["log_level"] == "error" and "no valid line" in failed[0]["error"]
    # One warning per bad line of the one pass, not a pass per millisecond.
    assert sum(e["event"] == "replay_line_skipped" for e in logs) == bad


async def test_a_long_run_of_bad_lines_lets_the_loop_run(tmp_path: Path) -> None:
    """Bad lines emit nothing, so a pass over 50,000 of them never awaited: signals, the
    watchdog and the API waited for the whole file. The pass now yields as it reads."""
    import asyncio

    (tmp_path / "chat.jsonl").write_text("garbage\n" * 50_000, encoding="utf-8")
    connector = ReplayConnector(
        "r", ReplayOptions(path="chat.jsonl"), ConnectorContext(base_dir=tmp_path)
    )
    seen: list[int] = []

    async def tick() -> None:
        while True:
            seen.append(connector.counters["lines"])
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await connector.start()
    assert [item async for item in connector] == []
    ticker.cancel()
    assert connector.counters["lines"] == 50_000
    assert any(0 < n < 50_000 for n in seen)  # the loop ran while the file was being read
