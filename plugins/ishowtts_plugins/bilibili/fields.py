"""Reading the fields of a Bilibili command's JSON: numbers, strings and objects checked for
their type and range, so a malformed command is refused (``MalformedCommand``) instead of
crashing the session. Shared by the web room's commands and the open platform's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ishowtts.connectors import User

PLATFORM = "bilibili"
GOLD_PER_CNY = 1000.0
BATTERY_PER_CNY = 10.0


class MalformedCommand(ValueError):
    pass


_ROLE = {1: "总督", 2: "提督", 3: "舰长"}


# JavaScript's safe integers: no real count, price, level or id is larger. Past it, amounts
# overflowed floats (OverflowError), which ended the session and lost the rest of its frame.
MAX_NUMBER = 2**53


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        value = float(value)  # "12", "1e3"; ValueError otherwise (a malformed command)
    if isinstance(value, int | float):
        if not -MAX_NUMBER <= value <= MAX_NUMBER:  # NaN fails too
            raise MalformedCommand(f"number out of range: {str(value)[:40]}")
        return int(value)
    raise MalformedCommand(f"expected a number, got {type(value).__name__}")


def _map(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedCommand(f"expected an object, got {type(value).__name__}")
    return value


def _data(msg: Mapping[str, Any]) -> Mapping[str, Any]:
    data = msg.get("data")
    if not isinstance(data, Mapping):
        raise MalformedCommand("no 'data' object")
    return data


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedCommand(f"expected a string, got {type(value).__name__}")


def _gift_user(data: Mapping[str, Any], name_key: str) -> User:
    # The medal is decoration: a gift whose medal is not an object is still the gift.
    medal = data.get("medal_info")
    medal = medal if isinstance(medal, Mapping) else {}
    return User(
        id=_str(data["uid"]),
        name=_str(data.get(name_key)),
        guard_level=_int(data.get("guard_level")),
        medal_level=_int(medal.get("medal_level")),
        medal_name=_str(medal.get("medal_name")),
    )
