"""The Twitch mapper on real recorded lines (tests/servers/twitch_real.py says where each is
from): paid messages at their price, shared chat not this channel's money, /me unwrapped."""

from __future__ import annotations

import pytest

from ishowtts.connectors import money
from ishowtts.events import ChatEvent, Kind
from ishowtts_plugins.twitch.commands import MessageMapper
from ishowtts_plugins.twitch.irc import parse
from tests.servers import twitch_real as real


def event(line: str, mapper: MessageMapper | None = None) -> ChatEvent:
    out = (mapper or MessageMapper("pajlada")).translate(parse(line))
    assert out.status == "event", out
    (e,) = out.items
    assert isinstance(e, ChatEvent)
    return e


def status(line: str) -> tuple[str, str]:
    out = MessageMapper("pajlada").translate(parse(line))
    return out.status.value, out.note


def test_hype_chat_is_paid_at_its_price_in_usd() -> None:
    e = event(real.HYPE_USD)
    assert (e.kind, e.amount, e.gift_name, e.text) == (Kind.SUPER_CHAT, 5.0, "Hype Chat", "-$5")
    nok = event(real.HYPE_NOK)
    assert nok.kind is Kind.SUPER_CHAT and nok.amount == money.convert(14.0, "NOK") > 1.0
    assert nok.text.startswith("Title: Beating the record")
    # Chatterino's "invalid" capture: an amount that is not a number is read as plain chat.
    bad = event(real.HYPE_INVALID)
    assert (bad.kind, bad.amount) == (Kind.DANMAKU, 0.0)


@pytest.mark.parametrize(
    ("line", "amount"),
    [(real.GIFT_12_MONTHS, 59.88), (real.ANON_GIFT_6_MONTHS, 29.94), (real.GIFT_6_MONTHS, 29.94)],
)
def test_multi_month_gift_subs_are_valued_at_every_month(line: str, amount: float) -> None:
    e = event(line)
    assert (e.kind, e.amount, e.gift_name) == (Kind.GIFT, amount, "Tier 1 sub")


def test_prepaid_subs_are_valued_at_the_months_bought() -> None:
    e = event(real.PREPAID_SUB_6)
    assert (e.kind, e.amount, e.gift_name) == (Kind.GUARD, 29.94, "Tier 1")
    t3 = event(real.PREPAID_RESUB_6_T3)
    assert (t3.amount, t3.gift_name, t3.gift_count) == (149.94, "Tier 3", 9)
    # A later month of a prepaid sub (tenure > 0) shared in chat was paid when bought.
    later = real.PREPAID_SUB_6.replace(
        "msg-param-multimonth-tenure=0", "msg-param-multimonth-tenure=3"
    )
    assert event(later).amount == 0.0


def test_shared_chat_notices_from_another_channel_are_not_this_channels_money() -> None:
    assert status(real.SHARED_RESUB) == ("ignored", "USERNOTICE:shared:resub")
    assert status(real.SHARED_RAID) == ("ignored", "USERNOTICE:shared:raid")
    # The same resub in its own channel (ids equal) is read; month 3 of a 4-month prepaid sub
    # (tenure 3) is no new money, its first month (tenure 0) is 4 months' price.
    own = real.SHARED_RESUB.replace("source-room-id=39317849", "source-room-id=11148817")
    assert (event(own).kind, event(own).amount) == (Kind.GUARD, 0.0)
    bought = own.replace("msg-param-multimonth-tenure=3", "msg-param-multimonth-tenure=0")
    assert event(bought).amount == 19.96
    shared = event(real.SHARED_ANNOUNCEMENT)
    assert (shared.kind, shared.text) == (Kind.DANMAKU, "hi this is an announcement from 1")


def test_shared_chat_cheer_from_another_channel_is_plain_chat() -> None:
    line = real.HYPE_USD.replace("room-id=36340781", "room-id=36340781;source-room-id=1")
    assert event(line).kind is Kind.DANMAKU


@pytest.mark.parametrize(
    ("line", "name", "amount"),
    [(real.GIFT_PAID_UPGRADE, "Tier 1", 4.99), (real.ANON_GIFT_PAID_UPGRADE, "Tier 1", 4.99),
     (real.PRIME_PAID_UPGRADE, "Tier 1", 4.99)],
)  # fmt: skip
def test_upgrades_to_a_paid_sub_are_paid(line: str, name: str, amount: float) -> None:
    e = event(line)
    assert (e.kind, e.gift_name, e.amount) == (Kind.GUARD, name, amount)
    assert "continuing" in e.text or "converted" in e.text  # the system message is read


def test_charity_donation_and_mass_gifts() -> None:
    e = event(real.CHARITY)
    assert (e.kind, e.amount, e.gift_name) == (
        Kind.SUPER_CHAT, 15.0, "Global Action for Trans Equality",
    )  # fmt: skip
    mass = event(real.ANON_MYSTERY_GIFT)
    assert (mass.kind, mass.gift_count, mass.amount) == (Kind.GIFT, 15, round(15 * 9.99, 2))


def test_free_and_repeating_notices_are_known_and_not_read() -> None:
    for line in (real.WATCH_STREAK, real.BITS_BADGE, real.REWARD_GIFT):
        assert status(line)[0] == "ignored"
    kind = real.BITS_BADGE.replace("msg-id=bitsbadgetier", "msg-id=brandnewkind")
    assert status(kind) == ("unknown", "USERNOTICE:brandnewkind")


def test_action_wrapper_is_never_spoken() -> None:
    assert event(real.ACTION).text == "Kappa"
    assert event(real.EMPTY_ACTION).text == ""
    resub = event(real.RESUB_ACTION)
    assert resub.text == "Great stream -- keep it up!" and "\x01" not in resub.text
    assert event(real.RESUB_PRIME).text == "Great stream -- keep it up!"
    cheer = event(real.CHEER_ACTION)
    assert (cheer.kind, cheer.amount, cheer.text) == (Kind.SUPER_CHAT, 1.0, "Hello :)")


def test_money_conversion_bounds() -> None:
    assert money.minor_units(500, 2) == 5.0 and money.minor_units(5, 0) == 5.0
    assert money.minor_units(1, 99) is None and money.minor_units(-1, 2) is None
    assert money.convert(10, "XXX") is None and money.convert(float("nan"), "USD") is None
    assert money.convert(100, "CNY", "CNY") == 100.0
