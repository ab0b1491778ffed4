"""The ``airtime`` section: how the bot shares one speaker with a busy room and a talking
streamer. ``queue/airtime.py`` serves lines by it (budget, speed, freshest chat, combining),
``pipeline/words.py`` words the combined and storm lines, ``pipeline/storms.py`` finds storms.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from ..confload import Section, checked_template
from ..events import Kind

# What a combined line may say: the names read (joined by ``separator``), ``more`` (rendered
# when not every name is read: "等6位"), how many people and how many not named, the gift(s),
# the total count and amount.
COMBINED_FIELDS = frozenset({"names", "more", "people", "others", "gift", "count", "amount"})
MORE_FIELDS = frozenset({"people", "others"})
STORM_FIELDS = frozenset({"text", "count"})

DEFAULT_COMBINED = {
    Kind.GIFT: "感谢{names}{more}送的{gift}",
    Kind.GUARD: "感谢{names}{more}开通{gift}",
    Kind.FOLLOW: "欢迎{names}{more}关注",
    Kind.ENTER: "欢迎{names}{more}",
    Kind.SHARE: "谢谢{names}{more}分享直播间",
    Kind.LIKE: "谢谢{names}{more}点赞",
}
NEVER_COMBINED = frozenset({Kind.SUPER_CHAT, Kind.DANMAKU, Kind.SYSTEM})


def _fields(known: frozenset[str]) -> AfterValidator:
    return AfterValidator(lambda template: checked_template(template, known))


CombinedTemplate = Annotated[str, _fields(COMBINED_FIELDS)]


class CombineConfig(Section):
    """Acknowledgements of one kind waiting together become one line."""

    # Guards are thanked one by one unless listed; super chats, danmaku and system lines
    # always are (each is its own message).
    kinds: list[Kind] = [Kind.GIFT, Kind.FOLLOW, Kind.ENTER, Kind.SHARE, Kind.LIKE]
    # While other lines wait, a kind is acknowledged at most once in this many seconds: what
    # arrives meanwhile is said together, and chat is heard between (the first at once).
    min_gap_s: float = Field(12.0, ge=0, le=600)
    max_names: int = Field(3, ge=1, le=20)  # names read in one line...
    busy_max_names: int = Field(2, ge=1, le=20)  # ...and under a backlog
    max_name_chars: int = Field(12, ge=1, le=64)  # a name read is cut to this many characters
    max_gifts: int = Field(3, ge=1, le=20)  # distinct gift names read
    separator: str = Field("、", max_length=8)  # between names and gifts (English: ", ")
    more: Annotated[str, _fields(MORE_FIELDS)] = "等{people}位"  # English: " and {others} others"
    templates: dict[Kind, CombinedTemplate] = {}  # merged over DEFAULT_COMBINED

    @field_validator("kinds")
    @classmethod
    def _combinable(cls, kinds: list[Kind]) -> list[Kind]:
        bad = sorted(k.value for k in kinds if k in NEVER_COMBINED)
        if bad:
            raise ValueError(f"{', '.join(bad)} cannot be combined: each is its own message")
        return kinds

    @field_validator("templates")
    @classmethod
    def _template_kinds(cls, templates: dict[Kind, str]) -> dict[Kind, str]:
        bad = sorted(k.value for k in templates if k in NEVER_COMBINED)
        if bad:
            raise ValueError(f"no combined template for {', '.join(bad)}: never combined")
        return templates

    def template_for(self, kind: Kind) -> str:
        return self.templates.get(kind, DEFAULT_COMBINED[kind])


class StormConfig(Section):
    """Many viewers sending the same (or nearly the same) text within the dedupe window become
    one line instead of silent duplicates."""

    enabled: bool = True
    min_senders: int = Field(3, ge=2, le=99)  # distinct viewers within dedupe.window_s
    template: Annotated[str, _fields(STORM_FIELDS)] = "好多人在刷{text}"  # {count}: senders
    # Events one storm line answers for at most; past it a repeat is dropped as a duplicate.
    max_cover: int = Field(500, ge=1, le=100_000)


class AirtimeConfig(Section):
    # The share of the last window_s the bot may speak. Past it, only the kinds in `exempt`
    # start (paid acknowledgements); plain chat waits, or expires. 1 turns the budget off.
    max_share: float = Field(0.6, gt=0, le=1)
    window_s: float = Field(60.0, ge=5, le=3600)
    exempt: list[Kind] = [Kind.SUPER_CHAT, Kind.GUARD, Kind.GIFT, Kind.SYSTEM]
    # Plain chat that waited longer than this is not read while newer chat waits: what is
    # read is what the room says now (a line alone is read up to its queue.ttl_s).
    chat_max_age_s: float = Field(8.0, gt=0, le=3600)
    # The backlog is the speech waiting, in seconds (estimated from the speaking rate heard so
    # far). Past busy_backlog_s the bot is brief: short templates, plain chat freshest first.
    busy_backlog_s: float = Field(8.0, gt=0, le=3600)
    # The speaking rate rises from 1 at speed_from_s of backlog to max_speed at speed_full_s,
    # through the engine's own duration control.
    max_speed: float = Field(1.35, ge=1.0, le=2.0)
    speed_from_s: float = Field(4.0, ge=0, le=3600)
    speed_full_s: float = Field(20.0, gt=0, le=3600)
    combine: CombineConfig = CombineConfig()
    storm: StormConfig = StormConfig()

    @model_validator(mode="after")
    def _speed_range(self) -> AirtimeConfig:
        if self.speed_full_s <= self.speed_from_s:
            raise ValueError(
                f"speed_full_s ({self.speed_full_s:g}) must exceed speed_from_s "
                f"({self.speed_from_s:g})"
            )
        return self
