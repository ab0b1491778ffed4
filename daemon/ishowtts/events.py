"""The data that flows through the pipeline: ChatEvent → Utterance → AudioChunk."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Kind(str, Enum):
    DANMAKU = "danmaku"
    SUPER_CHAT = "super_chat"
    GIFT = "gift"
    GUARD = "guard"
    FOLLOW = "follow"
    ENTER = "enter"
    SHARE = "share"  # someone shared the stream (Bilibili)
    LIKE = "like"  # someone liked the stream (Bilibili open platform: summed per user per 2 s)
    SYSTEM = "system"

    def __str__(self) -> str:
        return self.value


PAID_KINDS = frozenset({Kind.SUPER_CHAT, Kind.GIFT, Kind.GUARD})

_ids = itertools.count(1)
_run = os.urandom(2).hex()


def new_event_id() -> str:
    """Short, unique within a run, sortable by arrival: what operators grep for."""
    return f"{_run}-{next(_ids):06d}"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    guard_level: int = 0  # Bilibili: 0 none, 1 总督, 2 提督, 3 舰长; Twitch: 1 for subscribers
    medal_level: int = 0
    medal_name: str = ""
    is_moderator: bool = False  # Bilibili room admin; Twitch moderator or broadcaster
    is_vip: bool = False  # Twitch VIP badge
    # Other ids naming the same user (Bilibili open platform: union_id beside open_id), so a
    # filter or a routing rule written with any of them matches.
    alt_ids: tuple[str, ...] = ()

    def ids(self) -> tuple[str, ...]:
        """Every id this user goes by (``id`` first, then ``alt_ids``)."""
        return (self.id, *self.alt_ids)

    def names(self) -> tuple[str, ...]:
        """Every string a filter or routing rule may name this user by (empty ones left out)."""
        return tuple(n for n in (self.id, *self.alt_ids, self.name) if n)


SYSTEM_USER = User(id="system", name="system")


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One thing that happened in a chat room, as a connector saw it."""

    platform: str
    room: str
    kind: Kind
    user: User
    text: str = ""
    amount: float = 0.0  # money value in the platform's main currency (CNY, USD), 0 if free
    gift_name: str = ""
    gift_count: int = 1
    raw_id: str = ""  # the platform's own message id: dedupe and recall
    reply_to: str = ""  # name of the user this message answers, where the platform says
    sticker: bool = False  # the whole message is one sticker/emote
    voice: str = ""  # a voice asked for (the operator's say box); empty: routing decides
    received_mono: float = field(default_factory=time.monotonic)
    received_wall: float = field(default_factory=time.time)
    id: str = field(default_factory=new_event_id)

    @property
    def is_paid(self) -> bool:
        return self.kind in PAID_KINDS


@dataclass(frozen=True, slots=True)
class Retraction:
    """A connector's request to take queued messages back (recalled danmaku, deleted super
    chat, a moderator's ban). Matches by platform message id, or all of one user's."""

    platform: str
    raw_ids: tuple[str, ...] = ()
    user_id: str = ""  # with no raw_ids: every queued message of this user
    everything: bool = False  # a room-wide clear
    reason: str = "recalled"

    def matches(self, event: ChatEvent) -> bool:
        """Whether ``event`` is taken back: the one rule for the queue and for what is being
        made or played. Platform message ids, if given, are all it matches."""
        if self.platform and self.platform != event.platform:
            return False
        if self.everything:
            return True
        if self.raw_ids:
            return bool(event.raw_id) and event.raw_id in self.raw_ids
        return bool(self.user_id) and event.user.id == self.user_id


ConnectorItem = ChatEvent | Retraction


@dataclass(frozen=True, slots=True)
class Utterance:
    """What the synth worker must say for one accepted event."""

    event: ChatEvent
    text: str
    voice: str
    priority: int
    deadline: float  # monotonic time after which it is stale and must not be read
    speed: float = 1.0  # speaking rate asked of the engine (raised under a backlog)
    speaker: str = ""  # the user's name as read aloud (cleaned): what the overlay shows
    language: str = ""  # the line's language as detected (ISO 639-1), "" when unknown
    # No configured voice speaks that language: the fallback engine (eSpeak NG) reads it in it.
    by_fallback: bool = False

    @property
    def id(self) -> str:
        return self.event.id


@dataclass(frozen=True, slots=True, eq=False)
class AudioChunk:
    """A piece of one utterance's audio, mono float32 in [-1, 1]."""

    utterance: Utterance
    samples: np.ndarray
    sample_rate: int
    index: int  # 0 for the first chunk of an utterance
    last: bool
