"""Money in another currency, in the platform's main one, for ordering and ``gifts.min_amount``.

Hype Chats, Super Chats and relayed donations come in the viewer's currency (ISO 4217 code and
minor-unit exponent). ``ChatEvent.amount`` is in one currency per platform (USD for Twitch and
YouTube), so they are converted with fixed approximate rates: the queue needs "paid, and
roughly how much", not an exchange. Rates are USD per unit, rounded, 2026; an unknown code gives
None (the caller decides: the message is still paid, its amount unknown).
"""

from __future__ import annotations

import math

# fmt: off
USD_PER_UNIT: dict[str, float] = {
    "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "KRW": 0.00073, "CNY": 0.14,
    "TWD": 0.031, "HKD": 0.128, "SGD": 0.74, "AUD": 0.66, "NZD": 0.6, "CAD": 0.73,
    "MXN": 0.055, "BRL": 0.19, "ARS": 0.001, "CLP": 0.00105, "COP": 0.00025, "PEN": 0.27,
    "UYU": 0.025, "CHF": 1.13, "NOK": 0.094, "SEK": 0.095, "DKK": 0.145, "ISK": 0.0072,
    "PLN": 0.25, "CZK": 0.043, "HUF": 0.0027, "RON": 0.22, "BGN": 0.55, "TRY": 0.03,
    "RUB": 0.011, "UAH": 0.024, "ILS": 0.27, "AED": 0.27, "SAR": 0.27, "QAR": 0.27,
    "INR": 0.012, "PKR": 0.0036, "IDR": 0.000062, "MYR": 0.22, "PHP": 0.018, "THB": 0.028,
    "VND": 0.00004, "ZAR": 0.055, "EGP": 0.02, "NGN": 0.00065, "KES": 0.0077,
}
# fmt: on

MAX_EXPONENT = 8  # no currency has more minor digits; past it a value is garbage


def minor_units(value: int, exponent: int) -> float | None:
    """``value`` in minor units (Twitch: 500 with exponent 2 is 5.00); None when out of range."""
    if not 0 <= exponent <= MAX_EXPONENT or value < 0:
        return None
    return value / 10**exponent


def convert(amount: float, currency: str, to: str = "USD") -> float | None:
    """``amount`` of ``currency`` in ``to``, rounded to cents; None for an unknown code."""
    src, dst = USD_PER_UNIT.get(currency.upper()), USD_PER_UNIT.get(to.upper())
    if src is None or dst is None or not math.isfinite(amount) or amount < 0:
        return None
    return round(amount * src / dst, 2)
