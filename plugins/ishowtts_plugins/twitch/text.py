"""Small readings of Twitch text and money shared by the PRIVMSG and USERNOTICE mappers."""

from __future__ import annotations

from ishowtts.connectors import money

ACTION = "\x01ACTION"


def unwrap_action(text: str) -> str:
    """The words of a ``/me`` message: CTCP ``\\x01ACTION words\\x01`` (in chat and in the
    message of a sub notice), an empty ``\\x01ACTION\\x01`` as nothing; stray ``\\x01`` go."""
    if text.startswith(ACTION):
        text = text[len(ACTION) :]
        text = text[1:] if text.startswith(" ") else text
    return text.replace("\x01", "")


def usd_number(value: float | None, currency: str) -> float:
    """A paid amount in USD (Twitch's currency for ``ChatEvent.amount``); 0 when unreadable."""
    if value is None:
        return 0.0
    usd = money.convert(value, currency or "USD")
    return usd if usd is not None else 0.0
