"""Chat commands, reading modes, bots and names: tables of real chat lines through the real
pipeline, and moderators' commands through a real (not started) daemon's controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ishowtts.app.daemon import Daemon
from ishowtts.config import Config, ConfigError, parse_config
from ishowtts.config.chat import CommandsConfig, CommandWords
from ishowtts.confload import SourceMap
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.pipeline.commands import MAX_ARGS, OTHER, CommandParser
from ishowtts.queue.ledger import Terminal

VIEWER = User("1001", "路人甲")
FAN = User("1002", "舰长大人", guard_level=3, medal_level=21, medal_name="小电视")
MEDAL = User("1003", "粉丝团", medal_level=12, medal_name="小电视")
MOD = User("2001", "房管", is_moderator=True)
VIP = User("tw-7", "vipper", is_vip=True)


def ev(text: str = "", user: User = VIEWER, kind: Kind = Kind.DANMAKU, **kw: Any) -> ChatEvent:
    return ChatEvent(platform="bilibili", room="1", kind=kind, user=user, text=text, **kw)


# ---- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "args"),
    [
        ("!voice 小明", "voice", "小明"),
        ("！声音 list", "voice", "list"),
        ("!VOICE reset", "voice", "reset"),
        ("!voice\u3000list", "voice", "list"),  # a full-width space after the word
        ("  !skip", "skip", ""),
        ("!tts 主播晚上好", "tts", "主播晚上好"),
        ("!tts   hello    world ", "tts", "hello world"),
        ("!uptime", OTHER, ""),
        ("!so @streamer_friend", OTHER, "@streamer_friend"),
        ("!discord", OTHER, ""),
        ("!!!", None, None),  # excitement
        ("！！！主播加油", None, None),
        ("！真的吗", None, None),  # not one of ours, and not a bot's ASCII command
        ("!", None, None),
        ("! skip", None, None),
        ("666", None, None),
        ("主播 !skip", None, None),  # only at the start
        ("hello !voice b", None, None),
        ("!" + "a" * 100_000, None, None),  # a word longer than any command
    ],
)
def test_parser_table(line: str, name: str | None, args: str | None) -> None:
    cmd = CommandParser(CommandsConfig()).parse(line)
    if name is None:
        assert cmd is None
    else:
        assert cmd is not None and (cmd.name, cmd.args) == (name, args)


def test_parser_bounds_hostile_arguments() -> None:
    cmd = CommandParser(CommandsConfig()).parse("!tts " + "啊" * 1_000_000)
    assert cmd is not None and cmd.name == "tts" and len(cmd.args) == MAX_ARGS


def test_command_words_are_checked() -> None:
    with pytest.raises(ValueError, match="names both tts and skip"):
        CommandWords(skip=["TTS"])
    with pytest.raises(ValueError, match="without spaces"):
        CommandWords(voice=["my voice"])
    with pytest.raises(ValueError, match="no letters"):
        CommandsConfig(prefixes=["x"])


def test_config_names_the_key_and_line() -> None:
    text = "reading:\n  mode: loud\nviewer_voices:\n  pool: [nobody]\n"
    import yaml

    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_load(text), SourceMap("c.yaml", yaml.compose(text)), Config().path)
    problems = "\n".join(info.value.problems)
    assert "reading.mode" in problems and "c.yaml:2" in problems


# ---- the pipeline --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _state_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the mute list's file goes next to the (relative) config


def daemon(**config: Any) -> Daemon:
    config.setdefault("filters", {"rate": None})
    config.setdefault("voices", {"default": {}, "b": {}, "c": {}, "vip": {}})
    config.setdefault("viewer_voices", {"file": None})
    return Daemon(Config(**config))


def fate(d: Daemon, event: ChatEvent) -> tuple[str, dict[str, Any]]:
    """What became of ``event``: "queued" (and the utterance's fields), or its terminal line."""
    with capture_logs() as logs:
        d.handle(event)
    if event.id in d.ledger.open:
        (utt,) = d.scheduler.matching(lambda u: u.id == event.id)
        return "queued", {"text": utt.text, "voice": utt.voice}
    (line,) = [e for e in logs if e.get("id") == event.id and e["event"] != "received"]
    return line["event"], line


@pytest.mark.parametrize(
    ("config", "event", "state", "fields"),
    [
        ({}, ev("!uptime"), "dropped", {"rule": "command", "outcome": "another bot's command"}),
        ({"commands": {"read_other": True}}, ev("!uptime"), "queued", {"text": "!uptime"}),
        ({}, ev("!tts 主播晚上好"), "queued", {"text": "主播晚上好"}),
        ({}, ev("!tts"), "dropped", {"rule": "command", "outcome": "nothing to read"}),
        ({}, ev("!skip"), "dropped", {"outcome": "refused: not a moderator"}),
        ({}, ev("!tts off"), "dropped", {"outcome": "refused: not a moderator"}),
        ({}, ev("!mute 路人乙", MOD), "dropped", {"outcome": "muted 路人乙 (0 waiting line(s) removed)"}),
        ({}, ev("!skip", MOD), "dropped", {"outcome": "nothing was playing"}),
        ({}, ev("!mute", MOD), "dropped", {"outcome": "refused: mute whom?"}),
        ({"commands": {"moderators": ["1001"]}}, ev("!pause"), "dropped", {"outcome": "paused"}),
        # A name is no credential: anyone can take one (it made a viewer a moderator).
        ({"commands": {"moderators": ["路人甲"]}}, ev("!pause"), "dropped", {"outcome": "refused: not a moderator"}),
        ({"commands": {"words": {"skip": []}}}, ev("!skip", MOD), "dropped", {"outcome": "another bot's command"}),
        ({}, ev("!!!"), "dropped", {"rule": "punctuation_only"}),
        ({}, ev("大家好", User("n1", "Nightbot")), "dropped", {"rule": "bot"}),
        ({"reading": {"bots": []}}, ev("大家好", User("n1", "Nightbot")), "queued", {}),
        ({}, ev("大家好", User("b1", "STREAMELEMENTS")), "dropped", {"rule": "bot"}),
        ({"reading": {"mode": "paid_only"}}, ev("大家好"), "dropped", {"rule": "mode_paid_only"}),
        ({"reading": {"mode": "paid_only"}}, ev("加油", kind=Kind.SUPER_CHAT, amount=30), "queued", {}),
        ({"reading": {"mode": "paid_only"}}, ev("!tts 大家好"), "dropped", {"rule": "mode_paid_only"}),
        ({"reading": {"mode": "commands_only"}}, ev("大家好"), "dropped", {"rule": "mode_commands_only"}),
        ({"reading": {"mode": "commands_only"}}, ev("!tts 大家好"), "queued", {"text": "大家好"}),
        ({"reading": {"mode": "commands_only"}}, ev(kind=Kind.ENTER), "dropped", {"rule": "mode_commands_only"}),
        ({"reading": {"mode": "members_only"}}, ev("大家好"), "dropped", {"rule": "mode_members_only"}),
        ({"reading": {"mode": "members_only"}}, ev("大家好", FAN), "queued", {}),
        ({"reading": {"mode": "members_only"}}, ev("hi", VIP), "queued", {}),
        ({"reading": {"mode": "members_only"}}, ev("大家好", MEDAL), "dropped", {"rule": "mode_members_only"}),
        ({"reading": {"mode": "members_only", "member_medal_level": 10}}, ev("大家好", MEDAL), "queued", {}),
        ({"reading": {"mode": "members_only"}}, ev("公告", kind=Kind.SYSTEM), "queued", {}),
        ({"reading": {"names": {"danmaku": True}}}, ev("主播好"), "queued", {"text": "路人甲说：主播好"}),
        ({}, ev("公告", kind=Kind.SYSTEM), "queued", {"text": "公告"}),  # {text} alone: no name
        ({"reading": {"names": {"danmaku": True}, "nicknames": {"1001": "甲哥"}}}, ev("主播好"), "queued", {"text": "甲哥说：主播好"}),
        ({"reading": {"names": {"gift": False}}}, ev(kind=Kind.GIFT, gift_name="辣条"), "queued", {"text": "谢谢这位观众送的辣条"}),
        ({"reading": {"nicknames": {"舰长大人": "舰长"}}}, ev(kind=Kind.GIFT, user=FAN, gift_name="辣条"), "queued", {"text": "谢谢舰长送的辣条"}),
    ],
)  # fmt: skip
def test_chat_lines(
    config: dict[str, Any], event: ChatEvent, state: str, fields: dict[str, Any]
) -> None:
    got, line = fate(daemon(**config), event)
    assert got == state
    assert fields.items() <= line.items()


def test_a_moderator_switches_the_mode_and_turns_reading_off_and_on() -> None:
    d = daemon()
    assert fate(d, ev("!tts paid_only", MOD))[1]["outcome"] == "mode paid_only"
    assert d.status()["reading"]["mode"] == "paid_only"
    assert fate(d, ev("大家好"))[1]["rule"] == "mode_paid_only"
    assert fate(d, ev("醒目留言", kind=Kind.SUPER_CHAT, amount=30))[0] == "queued"
    fate(d, ev("!TTS OFF", MOD))
    assert fate(d, ev("醒目留言2", kind=Kind.SUPER_CHAT, amount=30))[1]["rule"] == "tts_off"
    assert fate(d, ev("主播说", kind=Kind.SYSTEM))[0] == "queued"  # the operator's own
    fate(d, ev("!tts on", MOD))
    fate(d, ev("!tts all", MOD))
    assert fate(d, ev("又来了"))[0] == "queued"
    # A reload keeps the live mode unless the file's mode changed.
    d.pipeline.reconfigure(Config(**{**d.config.model_dump(), "path": d.config.path}))
    assert d.pipeline.reading.mode.value == "all"


def test_moderators_mute_by_id_and_unmute_from_chat() -> None:
    d = daemon()
    bob = User("3001", "Bob")
    first = ev("我先说一句", bob)
    assert fate(d, first)[0] == "queued"
    with capture_logs() as logs:
        d.handle(ev("!mute @bob", MOD))
    (used,) = [e for e in logs if e["event"] == "moderator_command"]
    assert (used["by"], used["uid"], used["command"]) == ("房管", "2001", "mute")
    assert d.mutes.list()[0]["uid"] == "3001"  # by id, known from Bob's own line
    assert first.id not in d.ledger.open  # what Bob had waiting is gone
    renamed = User("3001", "Bob改名了")
    assert fate(d, ev("我又来了", renamed))[1]["rule"] == "muted_user"
    assert fate(d, ev("!unmute bob", MOD))[1]["outcome"] == "unmuted bob"
    assert fate(d, ev("我回来了", renamed))[0] == "queued"
    assert fate(d, ev("!unmute bob", MOD))[1]["outcome"] == "bob was not muted"


def test_every_command_ends_in_one_terminal_line() -> None:
    d = daemon()
    lines = ["!voice b", "!voice nobody", "!uptime", "!skip", "!tts", "!tts hi", "!mute x"]
    for text in lines:
        d.handle(ev(text))
    assert d.ledger.summary()["received"] == len(lines)
    closed = d.ledger.terminal_counts[("danmaku", Terminal.DROPPED.value)]
    assert closed + len(d.ledger.open) == len(lines) and len(d.ledger.open) == 1
