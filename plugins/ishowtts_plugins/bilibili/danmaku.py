"""Reading the parts of a DANMU_MSG that are not plain fields: its serialised ``extra``, the
``dm_v2`` protobuf copy, an "advanced" (mode 7) danmaku's words, and whether a viewer typed it
or a lottery sent it for them.

Pure and best effort: each returns something empty rather than raising, since the JSON fields
the mapper reads strictly are the authority.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from . import protobuf as pb

ADVANCED_MODE = 7  # info[0][1]: 1 scrolling, 4 bottom, 5 top, 7 advanced (positioned, animated)
ADVANCED_WORDS = 4  # index of the words in an advanced danmaku's array
# info[0][9], the danmaku type: 1 a 节奏风暴 (gift storm) line, 2 a 天选时刻 (lottery) entry,
# both sent by the client when a viewer joins the draw; info[0][16].activity_source says the
# same (1 天选时刻, 2 礼物红包).
AUTOMATIC_TYPES = frozenset({1, 2})
AUTOMATIC_SOURCES = frozenset({1, 2})


@dataclasses.dataclass(frozen=True, slots=True)
class DmV2:
    id_str: str = ""
    content: str = ""
    uid: str = ""
    name: str = ""


def dm_v2(value: Any) -> DmV2:
    """DANMU_MSG's dm_v2: base64 protobuf of the danmaku (1 id_str, 6 content, 20 user: 1 uid,
    2 name, 4 face, 11 medal), the layout of frames recorded from the service. Best effort: the
    JSON is authoritative, so a bad dm_v2 is just empty."""
    if not isinstance(value, str) or not value:
        return DmV2()
    try:
        m = pb.message(base64.b64decode(value, validate=True))
        user = pb.sub(m.get(20))
    except (binascii.Error, pb.WireError):
        return DmV2()
    uid = pb.integer(user.get(1))
    return DmV2(pb.text(m.get(1)), pb.text(m.get(6)), str(uid) if uid else "", pb.text(user.get(2)))


def extra(value: Any) -> Mapping[str, Any]:
    """DANMU_MSG's info[0][15].extra: a JSON object serialised into a string."""
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str) or not value:
        return {}
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, Mapping) else {}


def is_advanced(meta: list[Any], extras: Mapping[str, Any]) -> bool:
    return _number(meta, 1) == ADVANCED_MODE or extras.get("player_mode") == ADVANCED_MODE


def advanced_words(text: str) -> str:
    """The words of an advanced danmaku, whose text is a JSON array (start x, y, "alpha",
    duration, words, rotations, end x, y, ...); "" when the array holds none. Text that is not
    JSON is the words themselves."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return "" if text.lstrip().startswith("[") else text
    if isinstance(parsed, list) and len(parsed) > ADVANCED_WORDS:
        words = parsed[ADVANCED_WORDS]
        return words if isinstance(words, str) else ""
    return ""


def is_automatic(meta: list[Any]) -> bool:
    """Sent by the client for a lottery or gift storm, not typed by the viewer."""
    if _number(meta, 9) in AUTOMATIC_TYPES:
        return True
    activity = meta[16] if len(meta) > 16 and isinstance(meta[16], Mapping) else {}
    return activity.get("activity_source") in AUTOMATIC_SOURCES


def _number(meta: list[Any], index: int) -> int | None:
    value = meta[index] if len(meta) > index else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
