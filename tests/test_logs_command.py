"""``ishowtts logs``: a real daemon's log read back as one line per decision, filtered and
summed; from a file (followed), stdin and a real systemd journal; and odd lines (terminal
escapes, surrogates, control characters, non-JSON, huge, deep) never crash it or reach the
terminal raw."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ishowtts.shell.logview import MAX_OPEN, Filters, Reader

ROOT = Path(__file__).resolve().parent.parent
FATES = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
LINE = re.compile(r"^\d\d:\d\d:\d\d  (\S+)\s+(\S+)\s+(.*)$")


ENV = {**os.environ, "TZ": "UTC"}


def logs(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ishowtts", "logs", *args], cwd=ROOT, input=stdin,
        capture_output=True, timeout=120, check=False, env=ENV,
    )  # fmt: skip


def text(run: subprocess.CompletedProcess[bytes]) -> str:
    return run.stdout.decode()


@pytest.fixture(scope="module")
def daemon_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log of a real run: the bundled demo replayed fast, the tone engine, no sound card."""
    tmp = tmp_path_factory.mktemp("daemon")
    (tmp / "config.yaml").write_text(
        "engine: {type: tone}\nconnectors:\n  - {type: replay, path: demo, speed: 4}\n"
        "filters: {block_keywords: [加我微信]}\nplayer: {device: none}\napi: {enabled: false}\n"
        "log: {format: json}\n"
    )
    env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state")}
    with (tmp / "daemon.log").open("wb") as err:
        run = subprocess.run(
            [sys.executable, "-m", "ishowtts", "run", "--until-idle", "-c", "config.yaml"],
            cwd=tmp, env=env, stderr=err, stdout=subprocess.DEVNULL, timeout=120, check=False,
        )  # fmt: skip
    assert run.returncode == 0, (tmp / "daemon.log").read_text()[-3000:]
    return tmp / "daemon.log"


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]


def test_one_line_per_decision_with_its_text_and_reason(daemon_log: Path) -> None:
    run = logs(str(daemon_log))
    assert run.returncode == 0, run.stderr
    fates = [r for r in records(daemon_log) if r["event"] in FATES]
    received = {r["id"]: r for r in records(daemon_log) if r["event"] == "received"}
    shown = [m.groups() for x in text(run).splitlines() if (m := LINE.match(x))]
    decisions = [g for g in shown if g[0] in FATES]
    assert [(g[0], g[1]) for g in decisions] == [(r["event"], r["kind"]) for r in fates]
    for (_, _, said), fate in zip(decisions, fates, strict=True):
        assert said.startswith(fate["user"])
        if fate.get("rule"):
            assert said.endswith(f"({fate['rule']})") or f"({fate['rule']}:" in said
        if fate["event"] == "dropped" and received[fate["id"]]["text"]:
            assert received[fate["id"]]["text"][:40] in said  # the text, from its received line
    assert {"blocked_keyword", "recalled"} <= {r.get("rule") for r in fates}
    for (_, _, said), fate in zip(decisions, fates, strict=True):
        if fate.get("merged_into"):  # said by another line: which one
            assert f"in {fate['merged_into']})" in said
    assert sum(g[0] == "spoken" for g in decisions) >= 5


def test_filters_by_user_kind_event_and_rule(daemon_log: Path) -> None:
    all_fates = [r for r in records(daemon_log) if r["event"] in FATES]
    uid = next(r["uid"] for r in records(daemon_log) if r.get("user") == "小明")

    def fates_shown(*args: str) -> list[tuple[str, ...]]:
        out = text(logs(str(daemon_log), *args))
        return [m.groups() for x in out.splitlines() if (m := LINE.match(x)) and m[1] in FATES]

    mine = fates_shown("--user", "小明")
    assert mine and len(mine) == sum(r["user"] == "小明" for r in all_fates)
    assert fates_shown("--user", uid) == mine  # the uid, through the received line
    gifts = fates_shown("--kind", "gift,guard")
    assert {g[1] for g in gifts} == {"gift", "guard"}
    assert [g[0] for g in fates_shown("--event", "dropped")] == ["dropped"] * sum(
        r["event"] == "dropped" for r in all_fates
    )
    (spam,) = fates_shown("--rule", "blocked_keyword")
    assert spam[0] == "dropped" and spam[2].endswith("(blocked_keyword)")


def test_the_summary_counts_fates_and_rules(daemon_log: Path) -> None:
    recs = records(daemon_log)
    out = text(logs(str(daemon_log), "--summary")).splitlines()
    table = {x.split()[0]: x.split(None, 2) for x in out}
    fates = Counter(r["event"] for r in recs if r["event"] in FATES)
    for fate, n in fates.items():
        assert int(table[fate][1]) == n
    assert int(table["received"][1]) == sum(r["event"] == "received" for r in recs)
    assert "blocked_keyword 1" in table["dropped"][2] and "recalled 1" in table["removed"][2]
    assert int(table["undecided"][1]) == 0
    ledger = next(r for r in recs if r["event"] == "stopped")  # the daemon's own count
    assert int(table["received"][1]) == ledger["received"]


def test_stdin_and_a_followed_file(daemon_log: Path, tmp_path: Path) -> None:
    data = daemon_log.read_bytes()
    assert text(logs("-", stdin=data)) == text(logs(str(daemon_log)))
    grown = tmp_path / "growing.log"
    lines = data.splitlines(keepends=True)
    half = len(lines) // 2
    grown.write_bytes(b"".join(lines[:half]))
    cmd = [sys.executable, "-m", "ishowtts", "logs", "-f", str(grown)]
    viewer = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        with grown.open("ab") as f:  # the rest arrives while it follows, a line cut in two
            f.write(b"".join(lines[half:-1]) + lines[-1][:10])
            f.flush()
            time.sleep(1)
            f.write(lines[-1][10:])
        want = text(logs(str(daemon_log))).splitlines()
        assert viewer.stdout is not None
        got = [viewer.stdout.readline().rstrip("\n") for _ in want]
        assert got == want
    finally:
        viewer.terminate()
        viewer.wait(timeout=10)


ODD: list[bytes] = [
    b'{"event": "received", "id": "o1", "kind": "danmaku", "user": "\\u001b[31mred", "uid": "9",'
    b' "text": "lone \\ud83d half \\u001b[2J\\u0007 bell \\u202egnp.exe \\u0000", "level": "info",'
    b' "timestamp": "2026-12-04T10:00:00.000000Z"}',
    b'{"event": "dropped", "id": "o1", "kind": "danmaku", "user": "\\u001b[31mred",'
    b' "rule": "\\u001b]0;pwned\\u0007", "level": "info", "timestamp": "2026-12-04T10:00:01Z"}',
    b"Traceback (most recent call last):\x1b[2J",
    b'  File "x.py", line 1, in <module>',
    b"\xff\xfe not utf-8 \xc3",
    b'{"event": "spoken", "id": "o2", "kind": ["a", {"b": 1}], "user": 42, "text": {"x": null},'
    b' "level": "info", "timestamp": 7}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    b"{" + b'"a": 1, ' * 10 + b'"text": "' + b"x" * 3_000_000 + b'"}',  # 3 MB: over the bound
    b"[1, 2, 3]",
    b'{"event": "no_sound_output", "level": "error", "reason": "' + b"\\u001b" * 5000 + b'"}',
    b'{"event": "removed", "kind": "gift", "user": "\\ud83d\\ude00", "rule": "saved",'
    b' "level": "info", "timestamp": "2026-12-04T10:00:02Z"}',
]


@pytest.mark.parametrize("colour", ["never", "always"])
def test_odd_lines_never_crash_it_or_reach_the_terminal_raw(tmp_path: Path, colour: str) -> None:
    odd = tmp_path / "odd.log"
    odd.write_bytes(b"\n".join(ODD) + b"\n")
    run = logs(str(odd), "--all", "--color", colour)
    assert run.returncode == 0, run.stderr
    out = text(run)
    assert len(out) < 20_000  # huge lines are cut (or skipped), never copied whole
    visible = re.sub(r"\x1b\[[0-9;]*m", "", out)  # our own colours, on request only
    assert (visible != out) == (colour == "always")
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f\u202e]", visible), repr(visible[:2000])
    assert "\\x1b[2J" in out and "\\ud83d half" in out and "\\u202egnp.exe" in out
    assert "(\\x1b]0;pwned\\x07)" in out  # the rule, escaped too
    assert "Traceback" in out  # not JSON: shown (with --all) as it is, made safe
    assert "😀" in out  # a surrogate pair in JSON is one character: shown as such
    summary = text(logs(str(odd), "--summary")).splitlines()
    assert summary[0] == "window     2026-12-04 10:00:00 to 2026-12-04 10:00:02 UTC"  # not "7"
    counts = {x.split()[0]: x.split()[1] for x in summary}
    assert counts["unreadable"] == "7"  # 3 not JSON, 2 too deep, 1 too long, 1 not an object
    assert counts["dropped"] == "1" and counts["spoken"] == "1" and counts["removed"] == "1"


def test_a_closed_pipe_ends_it_quietly(daemon_log: Path) -> None:
    cmd = f"{sys.executable} -m ishowtts logs --all {daemon_log} | head -n 1"
    run = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0 and run.stdout.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr


def test_messages_waiting_for_a_fate_are_bounded() -> None:
    reader = Reader(Filters())
    for n in range(MAX_OPEN + 5000):
        reader.read(json.dumps({"event": "received", "id": str(n), "text": "x" * 50}).encode())
    assert len(reader._open) == MAX_OPEN
    assert "0" not in reader._open and str(MAX_OPEN + 4999) in reader._open


@pytest.mark.skipif(not Path(JOURNAL_REMOTE).exists() and not os.getenv("CI"),
                    reason="apt-get install systemd-journal-remote")  # fmt: skip
@pytest.mark.skipif(shutil.which("journalctl") is None, reason="no journalctl")
@pytest.mark.parametrize("user_unit", [False, True], ids=["system unit", "user unit"])
def test_the_units_journal(daemon_log: Path, tmp_path: Path, user_unit: bool) -> None:
    """A real journal file (written by systemd-journal-remote from the daemon's lines, beside
    another unit's), read through journalctl like the board's own journal."""
    field = "_SYSTEMD_USER_UNIT" if user_unit else "_SYSTEMD_UNIT"
    entries = []
    start = int(time.time() * 1e6)
    for n, line in enumerate(daemon_log.read_bytes().splitlines()):
        for unit in ("ishowtts.service", "other.service"):
            entries.append(
                f"__REALTIME_TIMESTAMP={start + 2 * n + (unit == 'other.service')}\n"
                f"__MONOTONIC_TIMESTAMP={2 * n + 1}\n_BOOT_ID={'ab' * 16}\n_UID={os.getuid()}\n"
                f"{field}={unit}\n".encode()
                + b"MESSAGE=" + line + b"\n\n"
            )  # fmt: skip
    journal = tmp_path / "journal"
    journal.mkdir()
    subprocess.run([JOURNAL_REMOTE, f"--output={journal / 'remote.journal'}", "-"],
                   input=b"".join(entries), check=True, capture_output=True, timeout=60)  # fmt: skip
    args = ["-D", str(journal)] + (["--user-unit"] if user_unit else [])
    assert text(logs(*args)) == text(logs(str(daemon_log)))  # the other unit's lines left out
    summary = text(logs(*args, "--summary"))
    assert summary == text(logs(str(daemon_log), "--summary"))
    last = text(logs(str(daemon_log), "--all")).splitlines()[-3:]
    assert text(logs(*args, "--all", "-n", "3")).splitlines() == last
    assert text(logs(str(daemon_log), "--all", "-n", "3")).splitlines() == last
