"""Twitch IRC parsing and message mapping, on lines as Twitch sends them."""

from __future__ import annotations

import pytest

from ishowtts.events import ChatEvent, Kind, Retraction
from ishowtts_plugins.twitch import TwitchOptions
from ishowtts_plugins.twitch.commands import MalformedMessage, MessageMapper
from ishowtts_plugins.twitch.irc import IrcError, lines, parse
from tests.servers import twitch_samples as t


def test_parse_tags_prefix_params_and_escapes() -> None:
    m = parse(
        r"@badges=;display-name=A\sB;system-msg=x\:y\\z\;id=1 :a!a@a.tmi.twitch.tv PRIVMSG #c :hi :) there"
    )
    assert m.command == "PRIVMSG" and m.params == ("#c", "hi :) there") and m.nick == "a"
    assert m.tags == {"badges": "", "display-name": "A B", "system-msg": "x;y\\z", "id": "1"}
    assert parse("PING :tmi.twitch.tv").trailing == "tmi.twitch.tv"
    assert parse(":tmi.twitch.tv 001 justinfan1 :Welcome, GLHF!").command == "001"
    assert lines("A\r\nB\r\n\r\n") == ["A", "B"]


@pytest.mark.parametrize("line", ["", "@a=b", ":prefix", "@a=b :prefix ", "!!! x", "12 x"])
def test_parse_rejects_non_irc(line: str) -> None:
    with pytest.raises(IrcError):
        parse(line)


def one(line: str, mapper: MessageMapper | None = None) -> ChatEvent:
    out = (mapper or MessageMapper("dallas")).translate(parse(line))
    assert out.status == "event", out
    (e,) = out.items
    assert isinstance(e, ChatEvent)
    return e


def test_privmsg_plain_reply_and_emote_only() -> None:
    e = one(t.privmsg("hello chat", msg_id="m1"))
    assert (e.kind, e.text, e.raw_id, e.user.id, e.user.name) == (
        Kind.DANMAKU,
        "hello chat",
        "m1",
        "1337",
        "Ronni",
    )
    assert e.user.is_moderator and e.user.guard_level == 1 and e.user.medal_level == 8
    assert one(t.privmsg("@bob yes", reply_to="Bob")).reply_to == "Bob"
    assert one(t.privmsg("Kappa", emote_only=True)).sticker
    assert one(t.privmsg("\x01ACTION waves\x01")).text == "waves"


def test_privmsg_with_bits_is_paid() -> None:
    e = one(t.privmsg("cheer100 Cheer50 great stream", bits=150))
    assert (e.kind, e.amount, e.gift_name, e.gift_count) == (Kind.SUPER_CHAT, 1.5, "bits", 150)
    assert e.text == "great stream" and e.is_paid


def test_subs_gifts_and_raids() -> None:
    m = MessageMapper("dallas")
    sub = one(t.resub(months=6, plan="2000", text="six months!"), m)
    assert (sub.kind, sub.gift_name, sub.gift_count, sub.amount, sub.text) == (
        Kind.GUARD, "Tier 2", 6, 9.99, "six months!")  # fmt: skip
    prime = one(t.resub(months=1, plan="Prime", kind="sub"), m)
    assert (prime.gift_name, prime.amount) == ("Prime", 0.0)
    mass = one(t.submysterygift(count=5, community="c77"), m)
    assert (mass.kind, mass.gift_count, mass.amount) == (Kind.GIFT, 5, 24.95)
    for i in range(5):  # the five individual gifts that follow are not counted again
        assert (
            m.translate(parse(t.subgift(f"r{i}", community="c77", msg_id=f"g{i}"))).status
            == "duplicate"
        )
    single = one(t.subgift("lucky", msg_id="g9"), m)
    assert (single.kind, single.text, single.amount, single.gift_count) == (
        Kind.GIFT,
        "lucky",
        4.99,
        1,
    )
    raid = one(t.raid(viewers=42), m)
    assert raid.kind == Kind.SYSTEM and raid.text == "42 raiders from TestChannel have joined!"
    assert m.translate(parse(t.usernotice("bitsbadgetier"))).status == "ignored"


def test_clearmsg_and_clearchat_retract() -> None:
    m = MessageMapper("dallas")
    (r,) = m.translate(parse(t.clearmsg("abc-123"))).items
    assert isinstance(r, Retraction) and r.raw_ids == ("abc-123",)
    (r,) = m.translate(parse(t.clearchat(user="ronni", user_id="1337", duration=350))).items
    assert isinstance(r, Retraction) and r.user_id == "1337" and r.reason == "timeout"
    (r,) = m.translate(parse(t.clearchat())).items
    assert isinstance(r, Retraction) and r.everything


def test_unknown_ignored_and_malformed() -> None:
    m = MessageMapper("dallas")
    assert m.translate(parse(":tmi.twitch.tv ROOMSTATE #dallas")).status == "ignored"
    assert m.translate(parse(":tmi.twitch.tv FUTURECMD #dallas :x")).status == "unknown"
    for bad in ("@id=1 :a!a@a PRIVMSG #dallas", "@login=a :tmi.twitch.tv CLEARMSG #dallas :x",
                ":tmi.twitch.tv USERNOTICE #dallas"):  # fmt: skip
        with pytest.raises(MalformedMessage):
            m.translate(parse(bad))


def test_options() -> None:
    assert TwitchOptions(channel="https://www.twitch.tv/Shroud/").channel == "shroud"
    assert TwitchOptions(channel="#dallas").channel == "dallas"
    with pytest.raises(ValueError, match="expected a Twitch login"):
        TwitchOptions(channel="no spaces allowed")
