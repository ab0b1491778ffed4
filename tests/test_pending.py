"""The pending file: paid messages saved at a stop, read back with their ids and age, and kept
until each has been heard (or closed otherwise); damaged or strange files set aside; each
config's own file, locked."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ishowtts.app.daemon import Daemon, pending
from ishowtts.config import load_config
from ishowtts.errors import ConfigInvalid
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.pipeline.statefile import StateInUse
from ishowtts.queue.ledger import Ledger, Terminal


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
    assert [e.id for e in back] == [e.id for e in events]
    assert back[0].user == events[0].user and back[0].text == "支持主播！"
    assert back[0].amount == 30.0 and back[0].raw_id == "sc-9" and back[0].kind is Kind.SUPER_CHAT
    # the TTL counts from the real arrival: 100 s ago in monotonic terms too
    assert 99.0 < time.monotonic() - back[0].received_mono < 110.0
    assert not list(path.parent.glob("*.tmp"))


def test_restored_lines_stay_in_the_file_until_each_is_closed(tmp_path: Path) -> None:
    """A crash (SIGKILL, OOM, the watchdog) after the start read the file but before its lines
    were heard loses none of them; a line heard is never read again."""
    path = tmp_path / "p.json"
    events = [sc("one"), sc("two"), sc("three")]
    pending.save(path, events)
    ledger = Ledger()
    restored = pending.restore(path, ledger.received, ledger)
    assert restored is not None and set(ledger.open) == {e.id for e in events}
    assert [e.id for e in pending.load(path)] == [e.id for e in events]  # "crash" now: all kept
    ledger.close(events[0].id, Terminal.SPOKEN)
    assert [e.text for e in pending.load(path)] == ["two", "three"]  # "crash" now: two kept
    ledger.close(events[2].id, Terminal.EXPIRED)
    ledger.close(events[1].id, Terminal.SPOKEN)
    assert not path.exists()  # all heard or closed: nothing to read twice


async def test_restored_lines_closing_in_one_loop_turn_rewrite_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.json"
    events = [sc(str(i)) for i in range(50)]
    pending.save(path, events)
    ledger = Ledger()
    restored = pending.restore(path, ledger.received, ledger)
    assert restored is not None
    writes: list[int] = []
    real = pending.save
    monkeypatch.setattr(pending, "save", lambda p, evs: writes.append(1) or real(p, evs))
    for e in events[:49]:
        ledger.close(e.id, Terminal.EXPIRED)
    await asyncio.sleep(0)
    assert writes == [1] and [e.text for e in pending.load(path)] == ["49"]
    # At shutdown the unheard restored line is saved again with the others, once.
    pending.save_unheard(path, ledger, restored)
    assert [e.text for e in pending.load(path)] == ["49"] and not ledger.open


def test_nothing_to_save_leaves_an_unread_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    pending.save(path, [sc("kept")])
    assert pending.save(path, []) == 0  # a start that failed before reading it
    assert [e.text for e in pending.load(path)] == ["kept"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json", b"\xff\xfe", b"[]", json.dumps({"events": 3}).encode(),
        b'{"events": [{"text": "\xb2\xe2\xca\xd4"}]}',  # GBK from another editor
        b"[" * 100_000 + b"]" * 100_000,  # nested past the stack
        b'{"events": ' * 50_000 + b"[]" + b"}" * 50_000,
    ],
)  # fmt: skip
def test_a_damaged_file_is_set_aside(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(body)
    assert pending.load(path) == []
    (aside,) = tmp_path.glob("p.json.bad-*")
    assert not path.exists() and aside.read_bytes() == body


def load_in_time(path: Path) -> list[ChatEvent] | None:
    """``pending.load``, or None if it has not returned within 10 s (it hangs)."""
    out: list[list[ChatEvent]] = []
    worker = threading.Thread(target=lambda: out.append(pending.load(path)), daemon=True)
    worker.start()
    worker.join(10)
    return out[0] if out else None


def test_only_a_regular_file_is_read(tmp_path: Path) -> None:
    """A FIFO (which would hang the start, deaf to SIGTERM) or a symbolic link (to /dev/zero it
    would be read until memory runs out) is set aside, never opened as data."""
    real = tmp_path / "elsewhere.json"
    pending.save(real, [sc("not through a link")])
    for name, make in (
        ("fifo.json", os.mkfifo),
        ("link.json", lambda p: p.symlink_to(real)),
        ("zero.json", lambda p: p.symlink_to("/dev/zero")),
    ):
        path = tmp_path / name
        make(path)
        assert load_in_time(path) == [], name
        assert not os.path.lexists(path) and len(list(tmp_path.glob(f"{name}.bad-*"))) == 1
    assert real.exists() and len(pending.load(real)) == 1  # a link's target is left alone


def test_a_folder_or_a_device_is_neither_moved_nor_replaced(tmp_path: Path) -> None:
    """A setting naming a folder (``/tmp``, ``~``) or a device (``/dev/null``) is a mistake
    the daemon must survive without renaming or replacing what is there: renaming /tmp hid
    every other program's files, and as root a write replaced /dev/null by a regular file."""
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "theirs.txt").write_text("someone else's file")
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        device = None  # no CAP_MKNOD here: the folder alone
    for path in (folder, device):
        if path is None:
            continue
        assert load_in_time(path) == [], path
        with pytest.raises(OSError, match="folder or a device"):
            pending.save(path, [sc("kept in memory")])
        assert not list(tmp_path.glob("*.bad-*")), path
    assert (folder / "theirs.txt").read_text() == "someone else's file"
    assert device is None or stat.S_ISCHR(os.lstat(device).st_mode)


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
        {**good, "amount": 10**400},  # past the float range
        {**good, "text": "same id again"},  # one id twice would be closed twice
        "junk",
    ]
    path.write_text(json.dumps(data))
    assert [e.text for e in pending.load(path)] == ["good"]


def test_the_file_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b" " * (pending.MAX_BYTES + 1))
    assert pending.load(path) == []
    assert len(list(tmp_path.glob("p.json.bad-*"))) == 1
    many = [sc(str(i)) for i in range(pending.MAX_EVENTS + 5)]
    assert pending.save(path, many) == pending.MAX_EVENTS


def test_the_save_never_follows_a_planted_link(tmp_path: Path) -> None:
    """The temporary file's name is unpredictable and created exclusively: a link planted at
    the old fixed name (or any name) in the folder is never written through."""
    path = tmp_path / "p.json"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / f".p.json.{os.getpid()}.tmp").symlink_to(victim)
    pending.save(path, [sc("saved")])
    assert victim.read_text() == "untouched" and pending.load(path)[0].text == "saved"
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_where_the_file_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "etc" / "config.yaml"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/ishowtts:/other")
    auto = pending.resolve("auto", config)
    assert auto is not None and auto.parent == Path("/var/lib/ishowtts")
    assert auto.name.startswith("pending-paid-config-") and auto.suffix == ".json"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    auto = pending.resolve("auto", config)
    assert auto is not None and auto.parent == tmp_path / "xdg/ishowtts"
    # Two configs of one account (one folder, or the same name in two folders) never share it.
    other = pending.resolve("auto", tmp_path / "etc" / "room2.yaml")
    again = pending.resolve("auto", tmp_path / "elsewhere" / "config.yaml")
    assert len({auto, other, again}) == 3
    assert pending.resolve("p.json", config) == tmp_path / "etc/p.json"
    assert pending.resolve(None, config) is None


STATE_CONFIG = """\
engine: {type: tone}
connectors: []
player: {device: none}
api: {enabled: false}
"""


def test_files_of_an_earlier_version_are_named_not_lost_silently(tmp_path: Path) -> None:
    """mutes.json and pending-paid.json (the default names until the per-config names) are
    not read; a streamer upgrading lost the mute list without a word. Now one line says which
    file it is and what to rename it to."""
    config = tmp_path / "config.yaml"
    config.write_text(STATE_CONFIG, encoding="utf-8")
    d = Daemon(load_config(config))
    assert d.mutes.path is not None and d.pending_file is not None
    (tmp_path / "mutes.json").write_text('{"users": []}')
    (d.pending_file.parent / "pending-paid.json").parent.mkdir(parents=True, exist_ok=True)
    (d.pending_file.parent / "pending-paid.json").write_text('{"events": []}')
    with capture_logs() as logs:
        d.claim_state()
    said = {e["key"]: e for e in logs if e["event"] == "state_file_not_read"}
    assert said["filters.mute_file"]["path"] == str(tmp_path / "mutes.json")
    assert d.mutes.path.name in said["filters.mute_file"]["advice"]
    assert said["queue.pending_file"]["now"] == str(d.pending_file)
    d._state_locks.release()
    d.mutes.path.write_text('{"users": []}')  # renamed: nothing more is said
    again = Daemon(load_config(config))
    with capture_logs() as logs:
        again.claim_state()
    assert [e["key"] for e in logs if e["event"] == "state_file_not_read"] == ["queue.pending_file"]
    again._state_locks.release()


@pytest.mark.parametrize(
    ("extra", "keys"),
    [
        ("filters: {mute_file: s.json}\nviewer_voices: {file: ./s.json}\n", "filters.mute_file and viewer_voices.file"),
        ("dictionary: {file: s.json}\nviewer_voices: {file: s.json}\n", "viewer_voices.file and dictionary.file"),
        ("queue: {pending_file: s.json}\ndictionary: {file: s.json}\n", "queue.pending_file and dictionary.file"),
    ],
)  # fmt: skip
def test_two_settings_naming_one_file_are_refused(tmp_path: Path, extra: str, keys: str) -> None:
    """The dictionary's save overwrote the viewers' voices (or the paid lines) kept in the same
    file; two locked ones refused the start as 'in use by another ishowtts' with our own pid."""
    config = tmp_path / "config.yaml"
    config.write_text(STATE_CONFIG + extra, encoding="utf-8")
    d = Daemon(load_config(config))
    with pytest.raises(ConfigInvalid, match=f"{keys} name one file .*s.json"):
        d.claim_state()
    d._state_locks.release()


async def test_daemons_never_share_state_files(tmp_path: Path) -> None:
    """Two daemons whose configs share a folder keep their own mute lists and paid lines; two
    configs naming the same file cannot both run: the second refuses to start (exit 2), naming
    the key, and writes nothing."""
    from ishowtts.errors import EXIT_CONFIG
    from ishowtts.shell.service import serve

    def daemon(name: str, extra: str = "") -> Daemon:
        path = tmp_path / f"{name}.yaml"
        path.write_text(STATE_CONFIG + extra, encoding="utf-8")
        return Daemon(load_config(path))

    a, b = daemon("a"), daemon("b")
    assert a.mutes.path is not None and b.mutes.path is not None
    assert a.mutes.path.parent == tmp_path and a.mutes.path != b.mutes.path
    assert a.pending_file != b.pending_file
    a.claim_state()
    b.claim_state()  # no conflict: their own files
    a.mutes.add("bilibili", "1", "troll")
    assert b.mutes.path.exists() is False and len(b.mutes) == 0

    shared = "filters: {mute_file: shared-mutes.json}\nqueue: {pending_file: shared.json}\n"
    c, d = daemon("c", shared), daemon("d", shared)
    c.claim_state()
    with pytest.raises(StateInUse, match=r"filters\.mute_file: .*in use by another.*pid"):
        d.claim_state()
    assert d.mutes.path is None and d.pending_file is None  # nothing will be written
    e = daemon("e", shared)
    assert await serve(e) == EXIT_CONFIG == 2
    c._state_locks.release()
    daemon("f", shared).claim_state()  # free again once the holder is gone
