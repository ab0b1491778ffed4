"""The viewers' own voices: "!voice" from chat through the real pipeline, the choices' file
(kept across restarts, bounded, a corrupt or huge one set aside), cooldowns, paid and members'
voices, the hashed pool."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ishowtts.config import Config
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.pipeline import viewer_voices
from ishowtts.pipeline.ingest import Pipeline
from ishowtts.queue.ledger import Ledger
from ishowtts.queue.scheduler import Scheduler

ALICE = User("42", "alice")
BOB = User("43", "bob")
GUARD = User("44", "舰长", guard_level=3)
VOICES = {"default": {}, "b": {}, "c": {}, "gold": {}}


def ev(text: str, user: User = ALICE, kind: Kind = Kind.DANMAKU, **kw: Any) -> ChatEvent:
    return ChatEvent(platform="bilibili", room="1", kind=kind, user=user, text=text, **kw)


def build(path: Path | None, **vv: Any) -> tuple[Pipeline, Ledger]:
    cfg = Config(voices=VOICES, filters={"rate": None}, dedupe={"window_s": 0}, viewer_voices=vv)
    ledger = Ledger()
    sched = Scheduler(cfg.queue, lambda u, state, f: ledger.close(u.id, state, **f))
    return Pipeline(cfg, ledger, sched, voices_file=path), ledger


def say(p: Pipeline, text: str, user: User = ALICE, now: float = 0.0, **kw: Any) -> Any:
    """The utterance's voice, or the command's ledger fields."""
    event = ev(text, user, **kw)
    with capture_logs() as logs:
        utt = p.ingest(event, now=now)
    if utt is not None:
        return utt.voice
    (line,) = [e for e in logs if e.get("id") == event.id and e["event"] == "dropped"]
    return line


def test_a_viewer_picks_lists_and_resets_their_own_voice(tmp_path: Path) -> None:
    p, _ = build(tmp_path / "voices.json")
    assert say(p, "你好") == "default"
    listed = say(p, "!voice list")
    assert (listed["rule"], listed["outcome"]) == ("command", "listed")
    assert listed["answer"] == "voices: default, b, c, gold"
    assert say(p, "!voice B")["outcome"] == "set"  # case does not matter
    assert say(p, "你好") == "b"
    assert say(p, "醒目留言", kind=Kind.SUPER_CHAT, amount=30) == "b"
    assert say(p, "你好", BOB) == "default"  # only alice's own lines
    assert say(p, "!voice nobody", now=100)["outcome"] == "unknown_voice"
    assert say(p, "你好") == "b"  # an unknown name changed nothing
    assert say(p, "!voice reset", now=100)["outcome"] == "reset"
    assert say(p, "你好") == "default"


def test_nobody_can_change_someone_elses_voice(tmp_path: Path) -> None:
    p, _ = build(None)
    say(p, "!voice c", ALICE)
    # Arguments never name whose voice changes: bob sets only his own.
    assert say(p, "!voice b alice", BOB)["outcome"] == "set"
    assert (say(p, "嗨", ALICE), say(p, "嗨", BOB)) == ("c", "b")
    # And "!tts" text from bob is read in bob's voice, not alice's.
    assert say(p, "!tts 我是alice", BOB) == "b"


def test_cooldown_per_viewer() -> None:
    p, _ = build(None, cooldown_s=30)
    assert say(p, "!voice b", now=0.0)["outcome"] == "set"
    assert say(p, "!voice c", now=10.0)["outcome"] == "cooldown"
    assert say(p, "!voice c", BOB, now=10.0)["outcome"] == "set"
    assert say(p, "!voice c", now=31.0)["outcome"] == "set"


def test_allowed_paid_and_members_voices() -> None:
    p, _ = build(None, allowed=["b", "gold", "c"], paid=["gold"], members=["c"], cooldown_s=0)
    assert say(p, "!voice list")["answer"] == "voices: b"
    assert say(p, "!voice default")["answer"] == "voice 'default' is for the streamer only"
    assert say(p, "!voice gold")["answer"] == "voice 'gold' is for paying viewers only"
    assert say(p, "!voice c")["outcome"] == "not_allowed"
    assert say(p, "!voice gold", GUARD)["outcome"] == "set"  # a guard paid, and is a member
    say(p, "谢谢", kind=Kind.SUPER_CHAT, amount=30)  # alice pays
    assert say(p, "!voice gold")["outcome"] == "set"


def test_the_pool_gives_each_viewer_a_stable_voice() -> None:
    p, _ = build(None, pool=["b", "c", "gold"])
    viewers = [User(str(i), f"u{i}") for i in range(300)]
    first = [say(p, "hello", u) for u in viewers]
    assert first == [say(p, "again", u) for u in viewers]
    spread = Counter(first)
    assert set(spread) == {"b", "c", "gold"} and min(spread.values()) > 60
    # A fresh pipeline (a restart) hashes the same.
    q, _ = build(None, pool=["b", "c", "gold"])
    assert [say(q, "hi", u) for u in viewers[:20]] == first[:20]


def test_choices_survive_a_restart_and_stay_bounded(tmp_path: Path) -> None:
    path = tmp_path / "state" / "voices.json"
    p, _ = build(path, max_users=3, cooldown_s=0)
    for i, voice in enumerate(["b", "c", "gold", "b"]):
        say(p, f"!voice {voice}", User(str(i), f"u{i}"), now=10.0 * i)
    p.flush()
    rows = json.loads(path.read_text())["choices"]
    assert [r["uid"] for r in rows] == ["1", "2", "3"]  # the oldest choice went
    q, _ = build(path, max_users=3)
    assert [say(q, "hi", User(str(i), f"u{i}")) for i in range(4)] == ["default", "c", "gold", "b"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"choices": "all"}',
        b"\xff\xfe garbage",
    ],
)
def test_a_bad_or_huge_file_is_set_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "voices.json"
    path.write_bytes(content)
    with capture_logs() as logs:
        p, _ = build(path)
    assert [e["event"] for e in logs] == ["voices_file_invalid"]
    assert len(p.viewer_voices) == 0 and not path.exists()
    (aside,) = tmp_path.glob("voices.json.bad-*")
    assert aside.read_bytes() == content  # kept for the operator
    assert say(p, "!voice b")["outcome"] == "set"
    p.flush()
    assert json.loads(path.read_text())["choices"][0]["voice"] == "b"


def test_a_bad_row_is_skipped_and_the_other_choices_kept(tmp_path: Path) -> None:
    """Like the mute list's entries: one bad row (a hand edit, an id past 128 characters) set
    the whole file aside, and every viewer lost their voice."""
    path = tmp_path / "voices.json"
    good = [{"platform": "bilibili", "uid": str(i), "voice": "b"} for i in range(3)]
    bad = [{"platform": "bilibili", "uid": "", "voice": "b"}, {"uid": "9"}, "junk", None]
    bad.append({"platform": "bilibili", "uid": "x" * 200, "voice": "b"})
    path.write_text(json.dumps({"version": 1, "choices": [good[0], *bad, *good[1:]]}))
    with capture_logs() as logs:
        p, _ = build(path)
    assert [(e["event"], e.get("skipped")) for e in logs] == [
        ("voices_bad_entries", len(bad)),
        ("viewer_voices_loaded", None),
    ]
    assert len(p.viewer_voices) == 3 and path.exists()
    assert not list(tmp_path.glob("voices.json.bad-*"))
    assert say(p, "hi", User("2", "u2")) == "b"


def test_a_file_that_cannot_be_written_keeps_choices_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    p, _ = build(blocker / "voices.json")
    say(p, "!voice b")
    assert p.viewer_voices.save_error is not None and say(p, "hi") == "b"


def test_hostile_arguments_are_bounded() -> None:
    p, ledger = build(None)
    line = say(p, "!voice " + "x" * 100_000)
    assert line["outcome"] == "unknown_voice" and len(line["answer"]) < 200
    assert say(p, "!voice \u202e\u0000b")["outcome"] == "unknown_voice"
    assert ledger.open == {}


def test_a_routing_rule_for_the_user_wins_over_their_pick(tmp_path: Path) -> None:
    cfg = Config(voices=VOICES, routing={"users": {"42": "gold"}}, viewer_voices={"file": None})
    ledger = Ledger()
    p = Pipeline(cfg, ledger, Scheduler(cfg.queue, lambda u, s, f: None))
    say(p, "!voice b")
    assert say(p, "你好") == "gold"


def test_a_file_over_its_bound_is_set_aside_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "voices.json"
    rows = [{"platform": "p", "uid": str(i), "voice": "b"} for i in range(100)]
    path.write_text(json.dumps({"choices": rows}))
    monkeypatch.setattr(viewer_voices, "MAX_FILE_BYTES", 1000)
    with capture_logs() as logs:
        p, _ = build(path)
    (line,) = logs
    assert line["event"] == "voices_file_invalid" and "larger than 1000 bytes" in line["error"]
    assert len(p.viewer_voices) == 0


def test_the_daemon_keeps_choices_in_its_own_locked_file(tmp_path: Path) -> None:
    from ishowtts.app.daemon import Daemon
    from ishowtts.pipeline import statefile

    cfg = Config(voices=VOICES, path=tmp_path / "stream.yaml")
    first = Daemon(cfg)
    first.claim_state()
    first.handle(ev("!voice gold"))
    first.pipeline.flush()
    (path,) = tmp_path.glob("voices-stream-*.json")
    assert json.loads(path.read_text())["choices"][0]["voice"] == "gold"
    # Another daemon naming the same file may not write it at the same time.
    other = Config(
        voices=VOICES,
        path=tmp_path / "other.yaml",
        filters={"mute_file": "other-mutes.json"},
        queue={"pending_file": "other-pending.json"},
        viewer_voices={"file": path.name},
    )
    with pytest.raises(statefile.StateInUse, match=r"viewer_voices\.file"):
        Daemon(other).claim_state()
    first._state_locks.release()
    again = Daemon(cfg)
    again.claim_state()
    utt = again.pipeline.ingest(ev("hello"), now=0.0)
    assert utt is not None and utt.voice == "gold"
    again._state_locks.release()
