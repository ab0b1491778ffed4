"""The pending file: paid messages saved at a stop, read back once with their ids and age."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ishowtts.app.daemon import pending
from ishowtts.events import ChatEvent, Kind, User


def sc(text: str, age_s: float = 0.0) -> ChatEvent:
    return ChatEvent(
        "bilibili", "1", Kind.SUPER_CHAT, User("7", "大佬", guard_level=3), text=text,
        amount=30.0, raw_id="sc-9", received_wall=time.time() - age_s,
    )  # fmt: skip


def test_round_trip_keeps_ids_fields_and_age(tmp_path: Path) -> None:
    path = tmp_path / "state" / "pending-paid.json"
    events = [sc("支持主播！", age_s=100.0), sc("second")]
    assert pending.save(path, events) == 2
    back = pending.load(path)
    assert not path.exists()  # read once: never read twice
    assert [e.id for e in back] == [e.id for e in events]
    assert back[0].user == events[0].user and back[0].text == "支持主播！"
    assert back[0].amount == 30.0 and back[0].raw_id == "sc-9" and back[0].kind is Kind.SUPER_CHAT
    # the TTL counts from the real arrival: 100 s ago in monotonic terms too
    assert 99.0 < time.monotonic() - back[0].received_mono < 110.0
    assert pending.load(path) == []


def test_nothing_to_save_leaves_an_unread_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    pending.save(path, [sc("kept")])
    assert pending.save(path, []) == 0  # a start that failed before reading it
    assert [e.text for e in pending.load(path)] == ["kept"]


@pytest.mark.parametrize(
    "body", [b"{not json", b"\xff\xfe", b"[]", json.dumps({"events": 3}).encode()]
)
def test_a_damaged_file_is_set_aside(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(body)
    assert pending.load(path) == []
    assert not path.exists() and (tmp_path / "p.json.bad").read_bytes() == body


def test_bad_entries_are_skipped_and_only_paid_kinds_come_back(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    pending.save(path, [sc("good")])
    data = json.loads(path.read_text())
    good = data["events"][0]
    data["events"] += [
        {**good, "kind": "danmaku"},  # free chat is never saved: a forged line is not read
        {**good, "received_wall": "yesterday"},
        {**good, "gift_count": 10**12},
        {**good, "user": "nobody"},
        {**good, "id": ""},
        "junk",
    ]
    path.write_text(json.dumps(data))
    assert [e.text for e in pending.load(path)] == ["good"]


def test_the_file_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b" " * (pending.MAX_BYTES + 1))
    assert pending.load(path) == []
    many = [sc(str(i)) for i in range(pending.MAX_EVENTS + 5)]
    assert pending.save(path, many) == pending.MAX_EVENTS


def test_where_the_file_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/ishowtts:/other")
    assert pending.resolve("auto", tmp_path) == Path("/var/lib/ishowtts/pending-paid.json")
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert pending.resolve("auto", tmp_path) == tmp_path / "xdg/ishowtts/pending-paid.json"
    assert pending.resolve("p.json", tmp_path / "etc") == tmp_path / "etc/p.json"
    assert pending.resolve(None, tmp_path) is None
